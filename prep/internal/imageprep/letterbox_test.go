package imageprep

import "testing"

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
