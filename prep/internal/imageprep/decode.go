package imageprep

import (
	"bytes"
	"errors"
	"image"
	"image/gif"
	"image/jpeg"
	"image/png"
	"io"

	"golang.org/x/image/bmp"
	"golang.org/x/image/webp"
)

// format is an input container format, recognized by its magic bytes.
type format int

const (
	formatUnknown format = iota
	formatJPEG
	formatPNG
	formatGIF
	formatWebP
	formatBMP
)

func (f format) String() string {
	return [...]string{"unknown", "JPEG", "PNG", "GIF", "WebP", "BMP"}[f]
}

func sniff(b []byte) format {
	switch {
	case len(b) >= 3 && b[0] == 0xFF && b[1] == 0xD8 && b[2] == 0xFF:
		return formatJPEG
	case bytes.HasPrefix(b, []byte("\x89PNG\r\n\x1a\n")):
		return formatPNG
	case bytes.HasPrefix(b, []byte("GIF87a")), bytes.HasPrefix(b, []byte("GIF89a")):
		return formatGIF
	case len(b) >= 12 && string(b[:4]) == "RIFF" && string(b[8:12]) == "WEBP":
		return formatWebP
	case bytes.HasPrefix(b, []byte("BM")):
		return formatBMP
	}
	return formatUnknown
}

// decodeConfigFuncs and decodeFuncs are the pure-Go decoders per format.
var (
	decodeConfigFuncs = map[format]func(io.Reader) (image.Config, error){
		formatJPEG: jpeg.DecodeConfig,
		formatPNG:  png.DecodeConfig,
		formatGIF:  gif.DecodeConfig,
		formatWebP: webp.DecodeConfig,
		formatBMP:  bmp.DecodeConfig,
	}
	decodeFuncs = map[format]func(io.Reader) (image.Image, error){
		formatJPEG: jpeg.Decode,
		formatPNG:  png.Decode,
		formatGIF:  gif.Decode,
		formatWebP: webp.Decode,
		formatBMP:  bmp.Decode,
	}
)

// maxIntermediateBytes bounds the horizontally resampled rows kept for the
// vertical pass (input height x output width, as in Pillow). Only very
// elongated images come near it: 256 MiB is 299,593 rows at width 224.
const maxIntermediateBytes = 256 << 20

// checkSize applies Limits to the dimensions read from a header, and
// refuses images too elongated to resample in bounded memory.
func (p *Preprocessor) checkSize(f format, w, h int) error {
	if w <= 0 || h <= 0 {
		return errorf(CodeInvalidImage, "%s image has size %dx%d", f, w, h)
	}
	if p.limits.MaxPixels > 0 && int64(w)*int64(h) > p.limits.MaxPixels {
		return errorf(CodeImageTooLarge, "%s image is %dx%d = %d pixels, more than the limit of %d",
			f, w, h, int64(w)*int64(h), p.limits.MaxPixels)
	}
	// Either side may become the height after EXIF orientation.
	if need := int64(max(w, h)) * int64(tmpStride(p.width)); need > maxIntermediateBytes {
		return errorf(CodeImageTooLarge, "%s image is %dx%d: too elongated to resize to %dx%d (%d MiB of intermediate rows, limit %d MiB)",
			f, w, h, p.width, p.height, need>>20, maxIntermediateBytes>>20)
	}
	return nil
}

// decodeError classifies a decoder's error.
func decodeError(f format, err error) *Error {
	var ue jpeg.UnsupportedError
	if errors.As(err, &ue) {
		return errorf(CodeUnsupportedFormat, "%s: %v", f, err)
	}
	return errorf(CodeInvalidImage, "decode %s: %v", f, err)
}

// orientation returns the EXIF orientation of img, for the formats whose
// EXIF Pillow reads.
func orientation(f format, img []byte) int {
	switch f {
	case formatJPEG:
		return jpegOrientation(img)
	case formatPNG:
		return pngOrientation(img)
	case formatWebP:
		return webpOrientation(img)
	}
	return 1
}

// decode turns img into oriented, background-composited RGBX, in buf (to
// be returned with putBuf). For some inputs it does all the work, writing
// dst, and reports done.
func (p *Preprocessor) decode(img []byte, dst []float32) (m rgbImage, buf *[]byte, done bool, err error) {
	f := sniff(img)
	if f == formatUnknown {
		return m, nil, false, errorf(CodeUnsupportedFormat, "not a JPEG, PNG, GIF, WebP or BMP image")
	}
	if f == formatJPEG && nativeJPEG {
		return p.decodeJPEGNative(img, dst)
	}
	if f == formatPNG && nativeJPEG && p.native {
		if ok, err := p.decodePNGNative(img, dst); ok {
			return m, nil, err == nil, err
		}
	}
	cfg, err := decodeConfigFuncs[f](bytes.NewReader(img))
	if err != nil {
		return m, nil, false, decodeError(f, err)
	}
	if err := p.checkSize(f, cfg.Width, cfg.Height); err != nil {
		return m, nil, false, err
	}
	im, err := decodeFuncs[f](bytes.NewReader(img))
	if err != nil {
		return m, nil, false, decodeError(f, err)
	}
	b := im.Bounds()
	if err := p.checkSize(f, b.Dx(), b.Dy()); err != nil {
		return m, nil, false, err
	}
	buf = getImageBuf(b.Dx(), b.Dy())
	m = rgbImage{w: b.Dx(), h: b.Dy(), stride: b.Dx() * pixelSize, pix: *buf}
	toRGB(f, im, &m, p.background)
	if o := orientation(f, img); o != 1 {
		obuf := getImageBuf(m.h, m.w)
		m = orient(&m, o, *obuf)
		putBuf(buf)
		buf = obuf
	}
	return m, buf, false, nil
}
