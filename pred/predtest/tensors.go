package predtest

import (
	"encoding/binary"
	"math"

	predv1 "github.com/prepred/prepred/api/gen/prepred/pred/v1"
)

// ConstantImages returns the input tensor, as raw little-endian float32
// NCHW bytes, that the preprocessing spec s makes of len(colors) images of
// one RGB color each: every pixel of channel c is (v·scale − mean[c]) /
// std[c], channels in the spec's color order. Its shape is
// [len(colors), 3, s.height, s.width].
func ConstantImages(s *predv1.PreprocessSpec, colors ...[3]uint8) []byte {
	plane := int(s.GetWidth() * s.GetHeight())
	out := make([]byte, 0, len(colors)*3*plane*4)
	for _, rgb := range colors {
		order := rgb
		if s.GetColorOrder() == predv1.ColorOrder_COLOR_ORDER_BGR {
			order = [3]uint8{rgb[2], rgb[1], rgb[0]}
		}
		for c, v := range order {
			scaled := float32(v) * s.GetScale()
			n := (scaled - s.GetMean()[c]) / s.GetStd()[c]
			for range plane {
				out = binary.LittleEndian.AppendUint32(out, math.Float32bits(n))
			}
		}
	}
	return out
}

// Float32s decodes raw little-endian float32 bytes.
func Float32s(b []byte) []float32 {
	out := make([]float32, len(b)/4)
	for i := range out {
		out[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
	}
	return out
}

// Float32Bytes encodes float32 values as raw little-endian bytes.
func Float32Bytes(v []float32) []byte {
	out := make([]byte, 0, 4*len(v))
	for _, f := range v {
		out = binary.LittleEndian.AppendUint32(out, math.Float32bits(f))
	}
	return out
}

// Argmax returns the index of the largest value (the first on ties), or -1
// for an empty slice.
func Argmax(v []float32) int {
	best := -1
	for i, x := range v {
		if best < 0 || x > v[best] {
			best = i
		}
	}
	return best
}
