//go:build purego || !cgo

package imageprep

// The pure-Go build: JPEG through image/jpeg (with libjpeg's upsampling and
// color conversion, ycc.go) and resampling with resampleGo. See native.go
// for the default build.

const (
	// nativeJPEG: JPEG decoding uses image/jpeg.
	nativeJPEG = false
	// nativeResample: resampling uses resampleGo.
	nativeResample = false
)

func (p *Preprocessor) decodeJPEGNative([]byte, []float32) (rgbImage, *[]byte, bool, error) {
	panic("unreachable: nativeJPEG is false")
}

func (p *Preprocessor) resampleNative(*rgbImage, *resamplePlan, []float32) {
	panic("unreachable: nativeResample is false")
}

func (p *Preprocessor) decodePNGNative([]byte, []float32) (bool, error) {
	panic("unreachable: nativeJPEG is false")
}
