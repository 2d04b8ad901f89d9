package imageprep

import (
	"testing"

	predv1 "github.com/prepred/prepred/api/gen/prepred/pred/v1"
)

// TestPictureOrientation: ImageSize and Picture give the picture of
// orientation_0.jpg for every orientation_N.jpg, as Process sees it.
func TestPictureOrientation(t *testing.T) {
	p, err := New(colorsSpec(), Limits{})
	if err != nil {
		t.Fatal(err)
	}
	want, err := p.Picture(readImage(t, "testdata/images/orientation/orientation_0.jpg"))
	if err != nil {
		t.Fatal(err)
	}
	b := want.Bounds()
	for n := 1; n <= 8; n++ {
		img := readImage(t, "testdata/images/orientation/orientation_"+string(rune('0'+n))+".jpg")
		w, h, err := p.ImageSize(img)
		if err != nil || w != b.Dx() || h != b.Dy() {
			t.Errorf("orientation_%d.jpg: ImageSize %dx%d (%v), want %dx%d", n, w, h, err, b.Dx(), b.Dy())
		}
		got, err := p.Picture(img)
		if err != nil {
			t.Fatalf("orientation_%d.jpg: %v", n, err)
		}
		if got.Bounds() != b {
			t.Fatalf("orientation_%d.jpg: picture %v, want %v", n, got.Bounds(), b)
		}
		var diff, count float64
		for y := range b.Dy() {
			for x := range b.Dx() {
				g, w := got.NRGBAAt(x, y), want.NRGBAAt(x, y)
				diff += abs(int(g.R)-int(w.R)) + abs(int(g.G)-int(w.G)) + abs(int(g.B)-int(w.B))
				count += 3
				if g.A != 0xff {
					t.Fatalf("orientation_%d.jpg: pixel (%d,%d) is not opaque: %v", n, x, y, g)
				}
			}
		}
		if d := diff / count; d > 3 {
			t.Errorf("orientation_%d.jpg: picture differs from orientation_0.jpg by %.1f levels on average", n, d)
		}
	}
}

func abs(v int) float64 { return float64(max(v, -v)) }

// TestGeometry: SQUASH keeps the whole image; a center crop keeps its
// middle, as Process does.
func TestGeometry(t *testing.T) {
	squash, err := New(colorsSpec(), Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if rw, rh, cx, cy := squash.Geometry(500, 375); rw != 32 || rh != 32 || cx != 0 || cy != 0 {
		t.Errorf("SQUASH of 500x375: %dx%d at (%d,%d), want 32x32 at (0,0)", rw, rh, cx, cy)
	}
	s := colorsSpec()
	s.ResizeMode = predv1.ResizeMode_RESIZE_MODE_SHORTER_SIDE_CENTER_CROP
	s.ResizeShorterSide = 40
	crop, err := New(s, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	// 500x375 -> int(40*500/375) = 53 x 40; the 32x32 crop at
	// (round(21/2) = 10, 4).
	if rw, rh, cx, cy := crop.Geometry(500, 375); rw != 53 || rh != 40 || cx != 10 || cy != 4 {
		t.Errorf("center crop of 500x375: %dx%d at (%d,%d), want 53x40 at (10,4)", rw, rh, cx, cy)
	}
}
