// Package imageprep turns an encoded image into the float32 NCHW tensor a
// model's PreprocessSpec describes, with the results of the classic Pillow
// pipeline: Image.open → ImageOps.exif_transpose → convert("RGB") (alpha
// composited onto the spec's background) → resize (Pillow's BILINEAR or
// BICUBIC; torchvision's Resize + CenterCrop arithmetic for
// SHORTER_SIDE_CENTER_CROP; Ultralytics' LetterBox arithmetic for LETTERBOX,
// the resized image pasted onto a canvas of the pad color) → float32
// (v*scale - mean) / std.
//
// The resampler is Pillow's ImagingResample reimplemented bit for bit, and
// the decoders produce Pillow's pixels, so the tensors are identical to
// Pillow + numpy's, value for value (testdata/golden holds the evidence).
// The default (cgo) build decodes JPEG with libjpeg-turbo, as Pillow does,
// and resamples with AVX2 where the CPU has it; it needs Debian's
// libjpeg62-turbo-dev to build and libjpeg62-turbo to run. The pure-Go
// build (-tags purego, or CGO_ENABLED=0) decodes JPEG with image/jpeg, whose
// IDCT rounds differently: its pixels differ from Pillow's by at most 3
// levels after resizing (more at edges in rare Adobe RGB/YCCK JPEGs).
//
// Deliberate differences from Pillow 9: a 16-bit grayscale PNG keeps the
// high byte of each sample (Pillow clips the 16-bit value to 255, making it
// almost white), as 16-bit RGB PNGs do in both; a GIF's first frame is used
// at its own size. EXIF orientation is applied for JPEG, PNG (eXIf) and WebP
// (EXIF chunk), as Pillow's exif_transpose does.
package imageprep

import (
	"fmt"
	"math"
	"strings"
	"time"

	predv1 "github.com/prepred/prepred/api/gen/prepred/pred/v1"
	"github.com/prepred/prepred/api/spec"
)

// Error codes carried by *Error.
const (
	// CodeUnsupportedFormat: the bytes are not an image format prep decodes.
	CodeUnsupportedFormat = "unsupported_format"
	// CodeInvalidImage: a known format, but corrupt or truncated.
	CodeInvalidImage = "invalid_image"
	// CodeImageTooLarge: the header announces more pixels than Limits allows.
	CodeImageTooLarge = "image_too_large"
)

// maxOutputSide bounds width, height and resize_shorter_side of a spec: no
// vision model takes inputs this large, and it keeps TensorLen far from
// overflowing.
const maxOutputSide = 8192

// Error is a failure to turn an input image into a tensor; Code is one of the
// Code* constants and is safe to show to clients.
type Error struct {
	Code    string
	Message string
}

func (e *Error) Error() string { return e.Code + ": " + e.Message }

func errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// Limits bound the work one input may cause.
type Limits struct {
	// MaxPixels is the largest width*height accepted, checked from the image
	// header before any pixel is decoded. Zero or negative means no limit.
	MaxPixels int64
}

// Preprocessor executes one PreprocessSpec. It is immutable after New and
// safe for concurrent use.
type Preprocessor struct {
	limits       Limits
	width        int
	height       int
	filter       *filter
	shorterSide  int // 0 for SQUASH
	letterbox    bool
	background   [3]uint8
	pad          [3]uint8 // LETTERBOX's canvas, RGB
	channelOrder [3]int   // channelOrder[c] is the RGB index feeding output channel c
	// lut[c][v] is (v*scale - mean[c]) / std[c] for output channel c, computed
	// once in float32 exactly as the formula is written.
	lut [3][256]float32
	// The same by RGB index, for the C code: lutRGB[j*256+v]; normRGB is
	// scale, the means, then the stds; planeOf[j] is the output channel of
	// RGB index j.
	lutRGB  [3 * 256]float32
	normRGB [7]float32
	planeOf [3]int
	coeffs  coeffCache
	// native selects the resampler of the cgo build (resampleNative);
	// tests turn it off to check the Go one against the same data, and
	// set portableC to check the C code that runs without AVX2.
	native    bool
	portableC bool
}

// New validates that spec is executable by this package and returns a
// Preprocessor for it.
func New(s *predv1.PreprocessSpec, limits Limits) (*Preprocessor, error) {
	if s == nil {
		return nil, fmt.Errorf("preprocess spec: missing")
	}
	bad := func(format string, args ...any) error {
		return fmt.Errorf("preprocess spec: "+format, args...)
	}
	if v := s.GetSchemaVersion(); v == 0 || v > spec.SchemaVersion {
		return nil, bad("schema_version %d is not supported by this prep (knows 1..%d)", v, spec.SchemaVersion)
	}
	p := &Preprocessor{limits: limits, native: nativeResample}

	switch co := s.GetColorOrder(); co {
	case predv1.ColorOrder_COLOR_ORDER_RGB:
		p.channelOrder = [3]int{0, 1, 2}
	case predv1.ColorOrder_COLOR_ORDER_BGR:
		p.channelOrder = [3]int{2, 1, 0}
	default:
		return nil, bad("color_order %s is not supported by this prep (knows RGB, BGR)", enumName(int32(co), predv1.ColorOrder_name))
	}

	w, h := s.GetWidth(), s.GetHeight()
	if w == 0 || w > maxOutputSide {
		return nil, bad("width %d is out of range (1..%d)", w, maxOutputSide)
	}
	if h == 0 || h > maxOutputSide {
		return nil, bad("height %d is out of range (1..%d)", h, maxOutputSide)
	}
	p.width, p.height = int(w), int(h)

	switch rm := s.GetResizeMode(); rm {
	case predv1.ResizeMode_RESIZE_MODE_SQUASH:
	case predv1.ResizeMode_RESIZE_MODE_SHORTER_SIDE_CENTER_CROP:
		rs := s.GetResizeShorterSide()
		if rs > maxOutputSide {
			return nil, bad("resize_shorter_side %d is out of range (..%d)", rs, maxOutputSide)
		}
		if int(rs) < max(p.width, p.height) {
			return nil, bad("resize_shorter_side %d is smaller than the %dx%d crop", rs, w, h)
		}
		p.shorterSide = int(rs)
	case predv1.ResizeMode_RESIZE_MODE_LETTERBOX:
		p.letterbox = true
	default:
		return nil, bad("resize_mode %s is not supported by this prep (knows SQUASH, SHORTER_SIDE_CENTER_CROP, LETTERBOX)", enumName(int32(rm), predv1.ResizeMode_name))
	}
	p.pad = defaultPadColor
	switch pc := s.GetPadColor(); len(pc) {
	case 0:
	case 3:
		for c, v := range pc {
			if v > 255 {
				return nil, bad("pad_color[%d] %d is out of range (0..255)", c, v)
			}
			p.pad[c] = uint8(v)
		}
	default:
		return nil, bad("pad_color has %d values, want 0 or 3", len(pc))
	}

	switch in := s.GetInterpolation(); in {
	case predv1.Interpolation_INTERPOLATION_BILINEAR:
		p.filter = &bilinearFilter
	case predv1.Interpolation_INTERPOLATION_BICUBIC:
		p.filter = &bicubicFilter
	default:
		return nil, bad("interpolation %s is not supported by this prep (knows BILINEAR, BICUBIC)", enumName(int32(in), predv1.Interpolation_name))
	}

	if l := s.GetLayout(); l != predv1.Layout_LAYOUT_NCHW {
		return nil, bad("layout %s is not supported by this prep (knows NCHW)", enumName(int32(l), predv1.Layout_name))
	}
	if d := s.GetDtype(); d != predv1.DataType_DATA_TYPE_FLOAT32 {
		return nil, bad("dtype %s is not supported by this prep (knows FLOAT32)", enumName(int32(d), predv1.DataType_name))
	}

	scale := s.GetScale()
	if !finite(scale) || scale == 0 {
		return nil, bad("scale %v must be finite and non-zero", scale)
	}
	mean, std := s.GetMean(), s.GetStd()
	if len(mean) != 3 {
		return nil, bad("mean has %d values, want 3", len(mean))
	}
	if len(std) != 3 {
		return nil, bad("std has %d values, want 3", len(std))
	}
	for c := range 3 {
		if !finite(mean[c]) {
			return nil, bad("mean[%d] %v is not finite", c, mean[c])
		}
		if !finite(std[c]) || std[c] == 0 {
			return nil, bad("std[%d] %v must be finite and non-zero", c, std[c])
		}
	}
	switch bg := s.GetBackground(); len(bg) {
	case 0:
		p.background = [3]uint8{255, 255, 255}
	case 3:
		for c, v := range bg {
			if v > 255 {
				return nil, bad("background[%d] %d is out of range (0..255)", c, v)
			}
			p.background[c] = uint8(v)
		}
	default:
		return nil, bad("background has %d values, want 0 or 3", len(bg))
	}

	p.normRGB[0] = scale
	for c := range 3 {
		for v := range 256 {
			// Explicit conversions keep each step rounded to float32 (no
			// fused multiply-add), matching numpy's float32 arithmetic.
			x := float32(float32(v) * scale)
			p.lut[c][v] = float32(x-mean[c]) / std[c]
		}
		j := p.channelOrder[c]
		copy(p.lutRGB[j*256:], p.lut[c][:])
		p.normRGB[1+j], p.normRGB[4+j] = mean[c], std[c]
		p.planeOf[j] = c
	}
	return p, nil
}

func finite(f float32) bool { return !math.IsNaN(float64(f)) && !math.IsInf(float64(f), 0) }

// enumName renders an enum value the way error messages use it: the short
// name for a known value, the number for an unknown one.
func enumName(v int32, names map[int32]string) string {
	n, ok := names[v]
	if !ok {
		return fmt.Sprint(v)
	}
	// COLOR_ORDER_RGB → RGB: drop the prefix the UNSPECIFIED value has.
	return strings.TrimPrefix(n, strings.TrimSuffix(names[0], "UNSPECIFIED"))
}

// TensorLen is the number of float32 values Process writes: 3*H*W.
func (p *Preprocessor) TensorLen() int { return 3 * p.width * p.height }

// Shape is the tensor's shape without the batch dimension: [3, H, W].
func (p *Preprocessor) Shape() []int64 {
	return []int64{3, int64(p.height), int64(p.width)}
}

// Process decodes img and writes its normalized NCHW tensor into dst, which
// must hold exactly TensorLen values. Failures caused by the input are
// *Error values.
func (p *Preprocessor) Process(img []byte, dst []float32) error {
	_, _, err := p.ProcessStages(img, dst)
	return err
}

// ProcessStages is Process that also says when decoding ended and resizing
// and normalizing began, for tracing. fused reports that the two were one
// pass (libjpeg-turbo and libspng stream rows into the resampler as they
// decode them, for JPEGs without EXIF rotation and most PNGs): decoded is
// then when that pass ended. decoded is zero when decoding failed.
func (p *Preprocessor) ProcessStages(img []byte, dst []float32) (decoded time.Time, fused bool, err error) {
	if len(dst) != p.TensorLen() {
		return decoded, false, fmt.Errorf("imageprep: dst has %d values, want %d", len(dst), p.TensorLen())
	}
	src, buf, done, err := p.decode(img, dst)
	if err != nil {
		return decoded, false, err
	}
	decoded = time.Now()
	if done {
		return decoded, true, nil
	}
	p.resample(&src, dst)
	putBuf(buf)
	return decoded, false, nil
}
