package imageprep

import "image"

// This file turns golang.org/x/image/webp's 4:2:0 YCbCr frames into RGB the
// way libwebp (and so Pillow) does by default: the "fancy" upsampler of
// src/dsp/upsampling.c, with rows paired as src/dec/io_dec.c's EmitFancyRGB
// pairs them, and the 14-bit conversion of src/dsp/yuv.h. VP8 decoding
// itself is normative, so the YCbCr planes are libwebp's.

// webpMultHi is yuv.h's MultHi.
func webpMultHi(v, coeff int32) int32 { return (v * coeff) >> 8 }

// webpClip8 is yuv.h's VP8Clip8 (YUV_FIX2 = 6).
func webpClip8(v int32) uint8 {
	const mask = (256 << 6) - 1
	if v&^mask == 0 {
		return uint8(v >> 6)
	}
	if v < 0 {
		return 0
	}
	return 255
}

func webpYUVToRGB(y, u, v uint8) (uint8, uint8, uint8) {
	yy := webpMultHi(int32(y), 19077)
	r := webpClip8(yy + webpMultHi(int32(v), 26149) - 14234)
	g := webpClip8(yy - webpMultHi(int32(u), 6419) - webpMultHi(int32(v), 13320) + 8708)
	b := webpClip8(yy + webpMultHi(int32(u), 33050) - 17685)
	return r, g, b
}

// webpUpsampleRow writes the full-width chroma of one output row from the
// nearer chroma row near and the further one far (UPSAMPLE_FUNC's top row,
// with top_u = near and cur_u = far; its bottom row is the same with the
// roles swapped).
func webpUpsampleRow(out, near, far []uint8) {
	w := len(out)
	tl, l := int32(near[0]), int32(far[0])
	out[0] = uint8((3*tl + l + 2) >> 2)
	last := (w - 1) >> 1
	for x := 1; x <= last; x++ {
		t, c := int32(near[x]), int32(far[x])
		avg := tl + t + l + c + 8
		d12 := (avg + 2*(t+l)) >> 3
		d03 := (avg + 2*(tl+c)) >> 3
		out[2*x-1] = uint8((d12 + tl) >> 1)
		out[2*x] = uint8((d03 + t) >> 1)
		tl, l = t, c
	}
	if w&1 == 0 {
		out[w-1] = uint8((3*tl + l + 2) >> 2)
	}
}

// webpToRGB converts a decoded lossy WebP frame (4:2:0 YCbCr, with alpha
// when a is not nil) to RGBX, compositing alpha onto bg.
func webpToRGB(m *image.YCbCr, a []uint8, aStride int, dst *rgbImage, bg [3]uint8) {
	b := m.Bounds()
	ch := (b.Dy() + 1) / 2
	cw := (b.Dx() + 1) / 2
	chroma := func(plane []uint8, r int) []uint8 {
		off := m.COffset(b.Min.X, b.Min.Y) + r*m.CStride
		return plane[off : off+cw]
	}
	rowBuf := getBuf(2 * dst.w)
	defer putBuf(rowBuf)
	uRow, vRow := (*rowBuf)[:dst.w], (*rowBuf)[dst.w:2*dst.w]
	for y := range dst.h {
		// EmitFancyRGB: row 0 pairs chroma row 0 with itself; odd row
		// 2k-1 is nearer chroma row k-1, even row 2k nearer row k; the
		// last row of an even height repeats its chroma row.
		var near, far int
		switch {
		case y == 0:
		case y%2 == 1:
			near, far = (y+1)/2-1, min((y+1)/2, ch-1)
		default:
			near, far = y/2, y/2-1
		}
		webpUpsampleRow(uRow, chroma(m.Cb, near), chroma(m.Cb, far))
		webpUpsampleRow(vRow, chroma(m.Cr, near), chroma(m.Cr, far))
		yrow := m.Y[m.YOffset(b.Min.X, b.Min.Y+y):]
		out := dst.row(y)
		var arow []uint8
		if a != nil {
			arow = a[y*aStride:]
		}
		for x := range dst.w {
			r, g, bb := webpYUVToRGB(yrow[x], uRow[x], vRow[x])
			if arow != nil && arow[x] != 255 {
				al := arow[x]
				r, g, bb = blend(r, al, bg[0]), blend(g, al, bg[1]), blend(bb, al, bg[2])
			}
			out[4*x], out[4*x+1], out[4*x+2] = r, g, bb
		}
	}
}
