package imageprep

import (
	"testing"

	predv1 "github.com/prepred/prepred/api/gen/prepred/pred/v1"
)

func TestLetterboxBox(t *testing.T) {
	for _, tc := range []struct {
		srcW, srcH, dstW, dstH int
		left, top, nw, nh      int
	}{
		{640, 480, 640, 640, 0, 80, 640, 480},  // wide: pads top and bottom
		{480, 640, 640, 640, 80, 0, 480, 640},  // tall: pads left and right
		{500, 375, 640, 640, 0, 80, 640, 480},  // upscaled
		{1000, 999, 640, 640, 0, 0, 640, 639},  // 639.36 rounds to 639, 1 row of pad below
		{333, 500, 640, 640, 107, 0, 426, 640}, // 426.24: left (640-426)/2 = 107
		{3, 2000, 640, 640, 319, 0, 1, 640},    // 0.96 rounds to 1
		{1, 5000, 640, 640, 319, 0, 1, 640},    // 0.128 is clamped to 1
		{10, 5, 5, 5, 0, 1, 5, 2},              // 2.5 rounds half to even: 2; (5-2)/2 floors to 1
		{10, 3, 10, 7, 0, 2, 10, 3},            // no resize at all
	} {
		_, left, top, nw, nh := LetterboxBox(tc.srcW, tc.srcH, tc.dstW, tc.dstH)
		if left != tc.left || top != tc.top || nw != tc.nw || nh != tc.nh {
			t.Errorf("LetterboxBox(%d, %d, %d, %d) = left %d top %d %dx%d, want left %d top %d %dx%d",
				tc.srcW, tc.srcH, tc.dstW, tc.dstH, left, top, nw, nh, tc.left, tc.top, tc.nw, tc.nh)
		}
	}
}

// TestLetterboxPad checks the canvas outside the resized image: every value
// there is the pad color's, normalized and in the spec's color order, and
// the window holds the image (no pad value on its border rows).
func TestLetterboxPad(t *testing.T) {
	for _, tc := range []struct {
		name  string
		image string
		order predv1.ColorOrder
	}{
		{"jpeg landscape", "testdata/images/photo-500x375.jpg", predv1.ColorOrder_COLOR_ORDER_RGB},
		{"png landscape bgr", "testdata/images/chelsea.png", predv1.ColorOrder_COLOR_ORDER_BGR},
		{"jpeg exif portrait", "testdata/images/orientation/orientation_6.jpg", predv1.ColorOrder_COLOR_ORDER_RGB},
	} {
		for _, r := range resamplers() {
			t.Run(tc.name+r.name, func(t *testing.T) {
				s := identitySpec(96, 80)
				s.ResizeMode = predv1.ResizeMode_RESIZE_MODE_LETTERBOX
				s.ColorOrder = tc.order
				s.PadColor = []uint32{1, 2, 3}
				p, err := New(s, Limits{})
				if err != nil {
					t.Fatal(err)
				}
				p.native, p.portableC = r.native, r.portableC
				img := readImage(t, tc.image)
				w, h, err := p.ImageSize(img)
				if err != nil {
					t.Fatal(err)
				}
				_, left, top, nw, nh := LetterboxBox(w, h, 96, 80)
				if left == 0 && top == 0 {
					t.Fatalf("%dx%d on 96x80 is not padded", w, h)
				}
				dst := make([]float32, p.TensorLen())
				for i := range dst {
					dst[i] = -1 // not a level: shows values left unwritten
				}
				if err := p.Process(img, dst); err != nil {
					t.Fatal(err)
				}
				pad := [3]float32{1, 2, 3}
				if tc.order == predv1.ColorOrder_COLOR_ORDER_BGR {
					pad = [3]float32{3, 2, 1}
				}
				for c := range 3 {
					for y := range 80 {
						for x := range 96 {
							v := dst[c*96*80+y*96+x]
							inside := x >= left && x < left+nw && y >= top && y < top+nh
							if !inside && v != pad[c] {
								t.Fatalf("c%d y%d x%d outside the %dx%d image at (%d,%d) is %v, want the pad %v", c, y, x, nw, nh, left, top, v, pad[c])
							}
							if inside && v < 0 {
								t.Fatalf("c%d y%d x%d inside the image was not written", c, y, x)
							}
						}
					}
				}
			})
		}
	}
}

// TestLetterboxAllocs checks that letterboxing a JPEG allocates nothing
// once the pools are warm, like the other modes.
func TestLetterboxAllocs(t *testing.T) {
	s := resnet50Spec()
	s.ResizeMode = predv1.ResizeMode_RESIZE_MODE_LETTERBOX
	s.Width, s.Height = 640, 640
	p, err := New(s, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	img := readImage(t, "testdata/images/photo-500x375.jpg")
	dst := make([]float32, p.TensorLen())
	if err := p.Process(img, dst); err != nil {
		t.Fatal(err)
	}
	if allocs := testing.AllocsPerRun(5, func() { _ = p.Process(img, dst) }); allocs > 0 {
		t.Errorf("Process allocated %.0f times per run, want 0", allocs)
	}
}
