package imageprep

import (
	"bytes"
	"image"
)

// Geometry says how Process makes the tensor of an image of inW x inH
// pixels (after EXIF orientation): the image is resized to resizedW x
// resizedH and the tensor is the spec's width x height window at (cropX,
// cropY) of it (0, 0 and the spec's size for SQUASH; negative for
// LETTERBOX, whose window extends past the resized image into the pad:
// cropX, cropY = -left, -top of LetterboxBox).
func (p *Preprocessor) Geometry(inW, inH int) (resizedW, resizedH, cropX, cropY int) {
	return p.geometry(inW, inH)
}

// ImageSize returns the size of img as Process sees it, after EXIF
// orientation, from its header; an image it cannot read is an *Error.
func (p *Preprocessor) ImageSize(img []byte) (w, h int, err error) {
	f := sniff(img)
	if f == formatUnknown {
		return 0, 0, errorf(CodeUnsupportedFormat, "not a JPEG, PNG, GIF, WebP or BMP image")
	}
	w, h, err = headerSize(f, img)
	if err != nil {
		return 0, 0, err
	}
	if err := p.checkSize(f, w, h); err != nil {
		return 0, 0, err
	}
	if orientation(f, img) >= 5 {
		return h, w, nil
	}
	return w, h, nil
}

// Picture decodes img into the opaque RGB picture Process resizes: EXIF
// orientation applied, alpha composited onto the spec's background. It
// uses the pure-Go decoders, whose JPEG pixels may differ from the cgo
// build's by a few levels: it is for showing, not for tensors.
func (p *Preprocessor) Picture(img []byte) (*image.NRGBA, error) {
	w, h, err := p.ImageSize(img)
	if err != nil {
		return nil, err
	}
	f := sniff(img)
	im, err := decodeFuncs[f](bytes.NewReader(img))
	if err != nil {
		return nil, decodeError(f, err)
	}
	b := im.Bounds()
	if err := p.checkSize(f, b.Dx(), b.Dy()); err != nil {
		return nil, err
	}
	buf := getImageBuf(b.Dx(), b.Dy())
	defer putBuf(buf)
	m := rgbImage{w: b.Dx(), h: b.Dy(), stride: b.Dx() * pixelSize, pix: *buf}
	toRGB(f, im, &m, p.background)
	if o := orientation(f, img); o != 1 {
		obuf := getImageBuf(m.h, m.w)
		defer putBuf(obuf)
		m = orient(&m, o, *obuf)
	}
	if m.w != w || m.h != h {
		return nil, errorf(CodeInvalidImage, "%s image decodes to %dx%d, its header says %dx%d", f, m.w, m.h, w, h)
	}
	out := image.NewNRGBA(image.Rect(0, 0, m.w, m.h))
	for y := range m.h {
		src, dst := m.row(y), out.Pix[y*out.Stride:]
		for x := range m.w {
			copy(dst[4*x:4*x+3], src[pixelSize*x:pixelSize*x+3])
			dst[4*x+3] = 0xff
		}
	}
	return out, nil
}
