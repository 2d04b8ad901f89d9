package imageprep

import (
	"image"
	"image/color"
)

// This file converts decoded images to packed 8-bit RGB with the arithmetic
// Pillow's convert("RGB") uses, compositing transparent pixels onto the
// background the way Image.paste(im, mask=alpha) does.

// blend is Pillow's BLEND: DIV255(bg*(255-a) + c*a), an exact rounding of
// (bg*(255-a) + c*a) / 255.
func blend(c, a, bg uint8) uint8 {
	t := uint32(bg)*(255-uint32(a)) + uint32(c)*uint32(a) + 128
	return uint8(((t >> 8) + t) >> 8)
}

// ycbcrToRGB is the JFIF conversion image/jpeg's YCbCr images use
// (color.YCbCrToRGB), inlined.
func ycbcrToRGB(y, cb, cr uint8) (uint8, uint8, uint8) {
	yy1 := int32(y) * 0x10101
	cb1 := int32(cb) - 128
	cr1 := int32(cr) - 128
	r := yy1 + 91881*cr1
	if uint32(r)&0xff000000 == 0 {
		r >>= 16
	} else {
		r = ^(r >> 31)
	}
	g := yy1 - 22554*cb1 - 46802*cr1
	if uint32(g)&0xff000000 == 0 {
		g >>= 16
	} else {
		g = ^(g >> 31)
	}
	b := yy1 + 116130*cb1
	if uint32(b)&0xff000000 == 0 {
		b >>= 16
	} else {
		b = ^(b >> 31)
	}
	return uint8(r), uint8(g), uint8(b)
}

// cmykToRGB is Pillow's cmyk2rgb: nk - c*nk/255 with MULDIV255 rounding.
func cmykToRGB(c, m, y, k uint8) (uint8, uint8, uint8) {
	nk := int32(255 - k)
	f := func(v uint8) uint8 {
		t := int32(v)*nk + 128
		r := nk - (((t >> 8) + t) >> 8)
		if r < 0 {
			r = 0
		}
		return uint8(r)
	}
	return f(c), f(m), f(y)
}

// toRGB converts m, decoded from format f, into dst (same size, RGBX),
// compositing alpha onto bg.
func toRGB(f format, m image.Image, dst *rgbImage, bg [3]uint8) {
	b := m.Bounds()
	switch m := m.(type) {
	case *image.YCbCr:
		switch {
		case f == formatJPEG:
			ycbcrLibjpeg(m, dst)
			return
		case f == formatWebP && m.SubsampleRatio == image.YCbCrSubsampleRatio420:
			webpToRGB(m, nil, 0, dst, bg)
			return
		}
		for y := range dst.h {
			row := dst.row(y)
			yi := m.YOffset(b.Min.X, b.Min.Y+y)
			for x := range dst.w {
				ci := m.COffset(b.Min.X+x, b.Min.Y+y)
				row[4*x], row[4*x+1], row[4*x+2] = ycbcrToRGB(m.Y[yi+x], m.Cb[ci], m.Cr[ci])
			}
		}
	case *image.Gray:
		for y := range dst.h {
			row := dst.row(y)
			src := m.Pix[y*m.Stride : y*m.Stride+dst.w]
			for x, v := range src {
				row[4*x], row[4*x+1], row[4*x+2] = v, v, v
			}
		}
	case *image.CMYK:
		for y := range dst.h {
			row := dst.row(y)
			src := m.Pix[y*m.Stride : y*m.Stride+4*dst.w]
			for x := range dst.w {
				row[4*x], row[4*x+1], row[4*x+2] = cmykToRGB(src[4*x], src[4*x+1], src[4*x+2], src[4*x+3])
			}
		}
	case *image.NYCbCrA:
		if f == formatWebP && m.SubsampleRatio == image.YCbCrSubsampleRatio420 {
			ab := m.Bounds()
			webpToRGB(&m.YCbCr, m.A[m.AOffset(ab.Min.X, ab.Min.Y):], m.AStride, dst, bg)
			return
		}
		toRGBGeneric(m, dst, bg)
	case *image.NRGBA:
		for y := range dst.h {
			row := dst.row(y)
			src := m.Pix[y*m.Stride : y*m.Stride+4*dst.w]
			for x := range dst.w {
				p := src[4*x : 4*x+4 : 4*x+4]
				if a := p[3]; a == 255 {
					row[4*x], row[4*x+1], row[4*x+2] = p[0], p[1], p[2]
				} else {
					row[4*x], row[4*x+1], row[4*x+2] = blend(p[0], a, bg[0]), blend(p[1], a, bg[1]), blend(p[2], a, bg[2])
				}
			}
		}
	case *image.RGBA:
		// Premultiplied; opaque images (the common case: PNG and BMP
		// without alpha) are plain RGB.
		for y := range dst.h {
			row := dst.row(y)
			src := m.Pix[y*m.Stride : y*m.Stride+4*dst.w]
			for x := range dst.w {
				p := src[4*x : 4*x+4 : 4*x+4]
				if a := p[3]; a == 255 {
					row[4*x], row[4*x+1], row[4*x+2] = p[0], p[1], p[2]
				} else {
					n := color.NRGBAModel.Convert(color.RGBA{p[0], p[1], p[2], a}).(color.NRGBA)
					row[4*x], row[4*x+1], row[4*x+2] = blend(n.R, a, bg[0]), blend(n.G, a, bg[1]), blend(n.B, a, bg[2])
				}
			}
		}
	case *image.Paletted:
		var lut [256][3]uint8
		for i, c := range m.Palette {
			n := color.NRGBAModel.Convert(c).(color.NRGBA)
			lut[i] = [3]uint8{blend(n.R, n.A, bg[0]), blend(n.G, n.A, bg[1]), blend(n.B, n.A, bg[2])}
		}
		for y := range dst.h {
			row := dst.row(y)
			src := m.Pix[y*m.Stride : y*m.Stride+dst.w]
			for x, i := range src {
				c := &lut[i]
				row[4*x], row[4*x+1], row[4*x+2] = c[0], c[1], c[2]
			}
		}
	case *image.Gray16:
		// Pillow unpacks 16-bit samples by keeping the high byte.
		for y := range dst.h {
			row := dst.row(y)
			src := m.Pix[y*m.Stride : y*m.Stride+2*dst.w]
			for x := range dst.w {
				v := src[2*x]
				row[4*x], row[4*x+1], row[4*x+2] = v, v, v
			}
		}
	case *image.NRGBA64:
		for y := range dst.h {
			row := dst.row(y)
			src := m.Pix[y*m.Stride : y*m.Stride+8*dst.w]
			for x := range dst.w {
				p := src[8*x : 8*x+8 : 8*x+8]
				a := p[6]
				row[4*x], row[4*x+1], row[4*x+2] = blend(p[0], a, bg[0]), blend(p[2], a, bg[1]), blend(p[4], a, bg[2])
			}
		}
	default:
		toRGBGeneric(m, dst, bg)
	}
}

// toRGBGeneric converts any image through its color model: RGBA64 (16-bit
// PNG without alpha), NYCbCrA and anything else.
func toRGBGeneric(m image.Image, dst *rgbImage, bg [3]uint8) {
	b := m.Bounds()
	{
		for y := range dst.h {
			row := dst.row(y)
			for x := range dst.w {
				var r, g, bb, a uint8
				switch c := m.At(b.Min.X+x, b.Min.Y+y).(type) {
				case color.RGBA64:
					if c.A == 0xffff {
						r, g, bb, a = uint8(c.R>>8), uint8(c.G>>8), uint8(c.B>>8), 255
					} else {
						n := color.NRGBA64Model.Convert(c).(color.NRGBA64)
						r, g, bb, a = uint8(n.R>>8), uint8(n.G>>8), uint8(n.B>>8), uint8(n.A>>8)
					}
				case color.NYCbCrA:
					r, g, bb = ycbcrToRGB(c.Y, c.Cb, c.Cr)
					a = c.A
				default:
					n := color.NRGBAModel.Convert(c).(color.NRGBA)
					r, g, bb, a = n.R, n.G, n.B, n.A
				}
				row[4*x], row[4*x+1], row[4*x+2] = blend(r, a, bg[0]), blend(g, a, bg[1]), blend(bb, a, bg[2])
			}
		}
	}
}
