package imageprep

import "math"

// LetterboxBox is the geometry of RESIZE_MODE_LETTERBOX for a srcW x srcH
// image (after EXIF orientation) on a dstW x dstH tensor, as Ultralytics'
// LetterBox computes it: scale = min(dstW/srcW, dstH/srcH); the image is
// resized to nw x nh = round_half_even(srcW*scale) x
// round_half_even(srcH*scale), each clamped to 1..dstW or 1..dstH, and
// placed with its top-left corner at (left, top) = ((dstW-nw)/2,
// (dstH-nh)/2), rounded down. A tensor pixel coordinate x maps back to the
// image's (x-left) * srcW/nw, and y to (y-top) * srcH/nh: use the two axes'
// own ratios, not scale, since rounding makes them differ slightly.
// Sizes must be positive.
func LetterboxBox(srcW, srcH, dstW, dstH int) (scale float64, left, top, nw, nh int) {
	scale = min(float64(dstW)/float64(srcW), float64(dstH)/float64(srcH))
	nw = min(max(int(math.RoundToEven(float64(srcW)*scale)), 1), dstW)
	nh = min(max(int(math.RoundToEven(float64(srcH)*scale)), 1), dstH)
	return scale, (dstW - nw) / 2, (dstH - nh) / 2, nw, nh
}

// defaultPadColor is the canvas of RESIZE_MODE_LETTERBOX when the spec's
// pad_color is empty: Ultralytics' gray.
var defaultPadColor = [3]uint8{114, 114, 114}

// fillPad writes the pad color's normalized values to every value of dst
// outside pl's window (nothing unless pl is padded).
func (p *Preprocessor) fillPad(pl *resamplePlan, dst []float32) {
	if !pl.padded {
		return
	}
	W := pl.stride
	top, left := pl.off/W, pl.off%W
	for c := range 3 {
		v := p.lut[c][p.pad[p.channelOrder[c]]]
		plane := dst[c*pl.plane : (c+1)*pl.plane]
		fill(plane[:top*W], v)
		for y := top; y < top+pl.h; y++ {
			row := plane[y*W : (y+1)*W]
			fill(row[:left], v)
			fill(row[left+pl.w:], v)
		}
		fill(plane[(top+pl.h)*W:], v)
	}
}

func fill(s []float32, v float32) {
	for i := range s {
		s[i] = v
	}
}
