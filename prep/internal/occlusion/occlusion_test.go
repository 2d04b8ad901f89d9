package occlusion

import (
	"errors"
	"image"
	"image/color"
	"math"
	"strings"
	"testing"
)

func TestNewPlanPositions(t *testing.T) {
	tests := []struct {
		size, win, stride int
		want              []int
	}{
		{32, 4, 2, []int{0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28}},
		{32, 8, 4, []int{0, 4, 8, 12, 16, 20, 24}},
		{10, 4, 4, []int{0, 4, 6}}, // the last patch is flush with the end
		{10, 10, 3, []int{0}},
		{5, 1, 1, []int{0, 1, 2, 3, 4}},
	}
	for _, tt := range tests {
		pl, err := NewPlan(tt.size, tt.size, Params{Window: tt.win, Stride: tt.stride}, 1<<20)
		if err != nil {
			t.Fatalf("size %d window %d stride %d: %v", tt.size, tt.win, tt.stride, err)
		}
		if !equal(pl.Xs, tt.want) || !equal(pl.Ys, tt.want) {
			t.Errorf("size %d window %d stride %d: positions %v %v, want %v", tt.size, tt.win, tt.stride, pl.Xs, pl.Ys, tt.want)
		}
		if got, want := pl.Inferences(), len(tt.want)*len(tt.want)+1; got != want {
			t.Errorf("size %d window %d stride %d: %d inferences, want %d", tt.size, tt.win, tt.stride, got, want)
		}
	}
}

func equal(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestNewPlanLimits(t *testing.T) {
	tests := []struct {
		name string
		p    Params
		max  int
		want string // in the error; "" for none
	}{
		{"defaults", Defaults(224, 224), 1024, ""},
		{"window zero", Params{Window: 0, Stride: 1}, 1024, "window=0"},
		{"window too wide", Params{Window: 225, Stride: 1}, 1024, "window=225"},
		{"stride beyond window", Params{Window: 8, Stride: 9}, 1024, "stride=9"},
		{"too many inferences", Params{Window: 1, Stride: 1}, 1024, "need 50177 inferences"},
		{"exactly the limit", Params{Window: 14, Stride: 14}, 16*16 + 1, ""},
		{"one over the limit", Params{Window: 14, Stride: 14}, 16 * 16, "at most 256"},
	}
	for _, tt := range tests {
		_, err := NewPlan(224, 224, tt.p, tt.max)
		var pe *ParamError
		switch {
		case tt.want == "" && err != nil:
			t.Errorf("%s: %v", tt.name, err)
		case tt.want != "" && (!errors.As(err, &pe) || !strings.Contains(err.Error(), tt.want)):
			t.Errorf("%s: error %v, want a ParamError with %q", tt.name, err, tt.want)
		}
	}
	if d := Defaults(224, 224); d.Window != 28 || d.Stride != 14 {
		t.Errorf("defaults for 224x224: %+v, want window 28 stride 14", d)
	}
}

func TestOcclude(t *testing.T) {
	pl, err := NewPlan(4, 3, Params{Window: 2, Stride: 2}, 100)
	if err != nil {
		t.Fatal(err)
	}
	base := make([]float32, 3*4*3)
	for i := range base {
		base[i] = 1
	}
	dst := make([]float32, len(base))
	// Patches: x in {0, 2}, y in {0, 1}; patch 3 is at (2, 1).
	pl.Occlude(dst, base, nil, 3)
	for c := range 3 {
		for y := range 3 {
			for x := range 4 {
				want := float32(1)
				if x >= 2 && y >= 1 {
					want = 0
				}
				if got := dst[c*12+y*4+x]; got != want {
					t.Errorf("channel %d (%d,%d) = %v, want %v", c, x, y, got, want)
				}
			}
		}
	}
}

func TestBoxBlur(t *testing.T) {
	// A constant plane stays constant; a single bright pixel spreads to
	// its 3x3 box with its mass over the 9 pixels.
	w, h := 5, 5
	tensor := make([]float32, 3*w*h)
	for i := range w * h {
		tensor[i] = 2
	}
	tensor[w*h+2*w+2] = 9
	out := BoxBlur(tensor, w, h, 1)
	for i := range w * h {
		if math.Abs(float64(out[i]-2)) > 1e-6 {
			t.Fatalf("constant plane changed at %d: %v", i, out[i])
		}
	}
	for y := range h {
		for x := range w {
			want := float32(0)
			if x >= 1 && x <= 3 && y >= 1 && y <= 3 {
				want = 1
			}
			if got := out[w*h+y*w+x]; math.Abs(float64(got-want)) > 1e-6 {
				t.Errorf("(%d,%d) = %v, want %v", x, y, got, want)
			}
		}
	}
}

func TestGridSquash(t *testing.T) {
	// A 32x32 tensor squashed from a 64x128 (w x h) image; window 8,
	// stride 8: 4x4 patches, one per cell; the grid is 4x4 and cell (r, c)
	// is patch r*4+c.
	pl, err := NewPlan(32, 32, Params{Window: 8, Stride: 8}, 100)
	if err != nil {
		t.Fatal(err)
	}
	drops := make([]float64, pl.Patches())
	for i := range drops {
		drops[i] = float64(i)
	}
	grid := pl.Grid(drops, Geometry{ImageW: 64, ImageH: 128, ResizedW: 32, ResizedH: 32})
	if len(grid) != 4 || len(grid[0]) != 4 {
		t.Fatalf("grid is %dx%d, want 4x4", len(grid), len(grid[0]))
	}
	for r := range 4 {
		for c := range 4 {
			if grid[r][c] != float64(r*4+c) {
				t.Errorf("cell (%d,%d) = %v, want %v", r, c, grid[r][c], r*4+c)
			}
		}
	}
}

func TestGridOverlappingPatches(t *testing.T) {
	// Window 8, stride 4 over 16 pixels: patches at 0, 4, 8 per axis and
	// a 4x4 grid of 4-pixel cells. Only the patch at (8, 8) drops (by 1):
	// it covers cells 2..3 x 2..3, where 1, 2 or 4 patches meet.
	pl, err := NewPlan(16, 16, Params{Window: 8, Stride: 4}, 100)
	if err != nil {
		t.Fatal(err)
	}
	drops := make([]float64, pl.Patches())
	drops[8] = 1 // x index 2, y index 2
	grid := pl.Grid(drops, Geometry{ImageW: 16, ImageH: 16, ResizedW: 16, ResizedH: 16})
	want := [][]float64{
		{0, 0, 0, 0},
		{0, 0, 0, 0},
		{0, 0, 0.25, 0.5},
		{0, 0, 0.5, 1},
	}
	for r := range want {
		for c := range want[r] {
			if math.Abs(grid[r][c]-want[r][c]) > 1e-12 {
				t.Errorf("cell (%d,%d) = %v, want %v", r, c, grid[r][c], want[r][c])
			}
		}
	}
}

func TestGridCenterCrop(t *testing.T) {
	// An 80x40 image resized to 64x32 (shorter side 32), center-cropped to
	// 32x32 at x 16: the tensor shows the middle half of the image's
	// width. With window = stride = 16 the grid is ceil(64/16) x
	// ceil(32/16) = 4 columns x 2 rows; the outer columns, which the model
	// never sees, are 0, and the inner ones carry the patches.
	pl, err := NewPlan(32, 32, Params{Window: 16, Stride: 16}, 100)
	if err != nil {
		t.Fatal(err)
	}
	drops := []float64{1, 2, 3, 4}
	grid := pl.Grid(drops, Geometry{ImageW: 80, ImageH: 40, ResizedW: 64, ResizedH: 32, CropX: 16})
	want := [][]float64{{0, 1, 2, 0}, {0, 3, 4, 0}}
	if len(grid) != 2 || len(grid[0]) != 4 {
		t.Fatalf("grid is %dx%d, want 2x4", len(grid), len(grid[0]))
	}
	for r := range want {
		for c := range want[r] {
			if grid[r][c] != want[r][c] {
				t.Errorf("cell (%d,%d) = %v, want %v", r, c, grid[r][c], want[r][c])
			}
		}
	}
}

func TestOverlay(t *testing.T) {
	img := image.NewNRGBA(image.Rect(0, 0, 10, 4))
	for i := range img.Pix {
		img.Pix[i] = 0xff // white
	}
	out := Overlay(img, [][]float64{{1, 0}})
	if out.Bounds() != img.Bounds() {
		t.Fatalf("overlay is %v, want %v", out.Bounds(), img.Bounds())
	}
	hot, cold := out.NRGBAAt(2, 2), out.NRGBAAt(7, 2)
	if cold != (color.NRGBA{255, 255, 255, 255}) {
		t.Errorf("a zero cell changed: %v", cold)
	}
	if hot.R != 255 || hot.G >= 200 || hot.B >= 200 {
		t.Errorf("the top cell is not tinted red: %v", hot)
	}
}
