package imageprep

import "image"

// This file turns image/jpeg's subsampled YCbCr planes into RGB the way
// libjpeg-turbo (and so Pillow) does by default: "fancy" (triangle-filter)
// upsampling of 4:2:2, 4:2:0 and 4:4:0 chroma (jdsample.c) and the
// fixed-point ycc_rgb_convert of jdcolor.c. What then still differs from
// Pillow is only the IDCT's rounding: image/jpeg's is not libjpeg's islow.

const (
	yccScaleBits = 16
	yccOneHalf   = 1 << (yccScaleBits - 1)
)

// yccFix is libjpeg's FIX(x): x in 16.16 fixed point, rounded.
func yccFix(x float64) int32 { return int32(x*(1<<yccScaleBits) + 0.5) }

// yccTables are jdcolor.c's build_ycc_rgb_table.
var yccTables = func() (t struct{ crR, cbB, crG, cbG [256]int32 }) {
	for i := range 256 {
		x := int32(i - 128)
		t.crR[i] = (yccFix(1.40200)*x + yccOneHalf) >> yccScaleBits
		t.cbB[i] = (yccFix(1.77200)*x + yccOneHalf) >> yccScaleBits
		t.crG[i] = -yccFix(0.71414) * x
		t.cbG[i] = -yccFix(0.34414)*x + yccOneHalf
	}
	return t
}()

func rangeLimit(v int32) uint8 {
	if v < 0 {
		return 0
	}
	if v > 255 {
		return 255
	}
	return uint8(v)
}

// upsampleRow writes the full-width chroma row for image row y of plane c
// (stride cs, cw x ch samples) into out, per libjpeg's choice of upsampler
// for the sampling ratio.
func upsampleRow(out, c []uint8, cs, cw, ch, y int, ratio image.YCbCrSubsampleRatio) {
	w := len(out)
	row := func(r int) []uint8 { return c[r*cs : r*cs+cw] }
	switch {
	case ratio == image.YCbCrSubsampleRatio444:
		copy(out, row(y))
	case ratio == image.YCbCrSubsampleRatio422 && cw > 2:
		h2v1Fancy(out, row(y))
	case ratio == image.YCbCrSubsampleRatio440:
		// h1v2_fancy_upsample: 3/4 nearer row + 1/4 further row.
		in0 := row(y / 2)
		var in1 []uint8
		bias := int32(1)
		if y%2 == 0 {
			in1 = row(max(y/2-1, 0))
		} else {
			in1 = row(min(y/2+1, ch-1))
			bias = 2
		}
		for x := range w {
			out[x] = uint8((int32(in0[x])*3 + int32(in1[x]) + bias) >> 2)
		}
	case ratio == image.YCbCrSubsampleRatio420 && cw > 2:
		in0 := row(y / 2)
		var in1 []uint8
		if y%2 == 0 {
			in1 = row(max(y/2-1, 0))
		} else {
			in1 = row(min(y/2+1, ch-1))
		}
		h2v2Fancy(out, in0, in1)
	default:
		// int_upsample (and h2v1/h2v2_upsample for tiny widths):
		// replication.
		hs, vs := 1, 1
		switch ratio {
		case image.YCbCrSubsampleRatio422:
			hs = 2
		case image.YCbCrSubsampleRatio420:
			hs, vs = 2, 2
		case image.YCbCrSubsampleRatio411:
			hs = 4
		case image.YCbCrSubsampleRatio410:
			hs, vs = 4, 2
		}
		in := row(y / vs)
		for x := range w {
			out[x] = in[x/hs]
		}
	}
}

// h2v1Fancy is jdsample.c's h2v1_fancy_upsample for one row. out holds 2n
// values, or 2n-1 for an odd image width.
func h2v1Fancy(out, in []uint8) {
	n := len(in)
	out[0] = in[0]
	out[1] = uint8((int32(in[0])*3 + int32(in[1]) + 2) >> 2)
	for i := 1; i < n-1; i++ {
		v := int32(in[i]) * 3
		out[2*i] = uint8((v + int32(in[i-1]) + 1) >> 2)
		out[2*i+1] = uint8((v + int32(in[i+1]) + 2) >> 2)
	}
	out[2*n-2] = uint8((int32(in[n-1])*3 + int32(in[n-2]) + 1) >> 2)
	if len(out) == 2*n {
		out[2*n-1] = in[n-1]
	}
}

// h2v2Fancy is jdsample.c's h2v2_fancy_upsample for one output row: in0 is
// the nearest chroma row, in1 the next nearest. out holds 2n values, or
// 2n-1 for an odd image width.
func h2v2Fancy(out, in0, in1 []uint8) {
	n := len(in0)
	col := func(i int) int32 { return int32(in0[i])*3 + int32(in1[i]) }
	this, next := col(0), col(1)
	out[0] = uint8((this*4 + 8) >> 4)
	out[1] = uint8((this*3 + next + 7) >> 4)
	last := this
	this = next
	for i := 1; i < n-1; i++ {
		next = col(i + 1)
		out[2*i] = uint8((this*3 + last + 8) >> 4)
		out[2*i+1] = uint8((this*3 + next + 7) >> 4)
		last, this = this, next
	}
	out[2*n-2] = uint8((this*3 + last + 8) >> 4)
	if len(out) == 2*n {
		out[2*n-1] = uint8((this*4 + 7) >> 4)
	}
}

// ycbcrLibjpeg converts m to RGBX in dst like libjpeg-turbo's defaults.
func ycbcrLibjpeg(m *image.YCbCr, dst *rgbImage) {
	b := m.Bounds()
	// Chroma plane size, as image.YCbCr lays it out.
	cx0, cy0 := b.Min.X, b.Min.Y
	cx1, cy1 := b.Max.X, b.Max.Y
	switch m.SubsampleRatio {
	case image.YCbCrSubsampleRatio422:
		cx0, cx1 = cx0/2, (cx1+1)/2
	case image.YCbCrSubsampleRatio420:
		cx0, cx1, cy0, cy1 = cx0/2, (cx1+1)/2, cy0/2, (cy1+1)/2
	case image.YCbCrSubsampleRatio440:
		cy0, cy1 = cy0/2, (cy1+1)/2
	case image.YCbCrSubsampleRatio411:
		cx0, cx1 = cx0/4, (cx1+3)/4
	case image.YCbCrSubsampleRatio410:
		cx0, cx1, cy0, cy1 = cx0/4, (cx1+3)/4, cy0/2, (cy1+1)/2
	}
	chromaW, chromaH := cx1-cx0, cy1-cy0
	cbOff := m.COffset(b.Min.X, b.Min.Y)
	cb, cr := m.Cb[cbOff:], m.Cr[cbOff:]

	rowBuf := getBuf(2 * (dst.w + 8))
	defer putBuf(rowBuf)
	cbRow, crRow := (*rowBuf)[:dst.w], (*rowBuf)[dst.w+8:2*dst.w+8]
	t := &yccTables
	for y := range dst.h {
		upsampleRow(cbRow, cb, m.CStride, chromaW, chromaH, y, m.SubsampleRatio)
		upsampleRow(crRow, cr, m.CStride, chromaW, chromaH, y, m.SubsampleRatio)
		yrow := m.Y[m.YOffset(b.Min.X, b.Min.Y+y):]
		out := dst.row(y)
		for x := range dst.w {
			yy := int32(yrow[x])
			cbv, crv := cbRow[x], crRow[x]
			out[4*x] = rangeLimit(yy + t.crR[crv])
			out[4*x+1] = rangeLimit(yy + (t.cbG[cbv]+t.crG[crv])>>yccScaleBits)
			out[4*x+2] = rangeLimit(yy + t.cbB[cbv])
		}
	}
}
