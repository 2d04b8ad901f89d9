package modelgen

import (
	onnxpb "github.com/prepred/prepred/api/gen/onnx"
)

// colorsImageSize is the colors model's input width and height.
const colorsImageSize = 32

// ColorLabels are the colors model's classes, in output order.
var ColorLabels = [...]string{"black", "white", "red", "green", "blue", "yellow", "cyan", "magenta", "gray"}

// ColorCenters are the RGB colors (0..255) the colors model scores against,
// in the order of ColorLabels.
var ColorCenters = [len(ColorLabels)][3]uint8{
	{0, 0, 0},
	{255, 255, 255},
	{255, 0, 0},
	{0, 255, 0},
	{0, 0, 255},
	{255, 255, 0},
	{0, 255, 255},
	{255, 0, 255},
	{128, 128, 128},
}

// Normalize maps an RGB pixel (0..255 per channel) through the colors model's
// preprocessing, (v*ImageScale - mean[c]) / std[c], in float32 as prep
// computes it.
func Normalize(rgb [3]float32) [3]float32 {
	var n [3]float32
	for c, v := range rgb {
		// The conversions round each step, so no fused multiply-add can
		// change the result.
		scaled := float32(v * ImageScale)
		n[c] = float32(scaled-ImageNetMean[c]) / ImageNetStd[c]
	}
	return n
}

// ColorWeights returns the colors model's Gemm parameters: B[c][k] = 2·n_k[c]
// and C[k] = -|n_k|², where n_k is the normalized center of color k. Logit k
// of a mean pixel x is then 2x·n_k - |n_k|² = |x|² - |x - n_k|², so the
// largest logit is the nearest center in normalized space.
func ColorWeights() (b [3][len(ColorLabels)]float32, c [len(ColorLabels)]float32) {
	for k, center := range ColorCenters {
		n := Normalize([3]float32{float32(center[0]), float32(center[1]), float32(center[2])})
		var sq float32
		for ch := range n {
			b[ch][k] = 2 * n[ch]
			sq += n[ch] * n[ch]
		}
		c[k] = -sq
	}
	return b, c
}

// buildColors returns the colors model: the per-channel mean of the
// normalized image, scored against each color center.
func buildColors() *onnxpb.ModelProto {
	g := newGraph("main_graph")
	batch := dim{param: batchParam}
	g.input("input", batch, dim{size: 3}, dim{size: colorsImageSize}, dim{size: colorsImageSize})

	x := g.node("ReduceMean", "/ReduceMean", []string{"input"}, []string{"/ReduceMean_output_0"},
		attrInts("axes", 2, 3),
		attrInt("keepdims", 0),
	)

	b, c := ColorWeights()
	flatB := make([]float32, 0, len(b)*len(c))
	for _, row := range b {
		flatB = append(flatB, row[:]...)
	}
	w := g.initializer("color_centers.weight", []int64{3, int64(len(c))}, flatB)
	bias := g.initializer("color_centers.bias", []int64{int64(len(c))}, c[:])
	g.node("Gemm", "/Gemm", []string{x, w, bias}, []string{"output"},
		attrFloat("alpha", 1),
		attrFloat("beta", 1),
	)
	g.output("output", batch, dim{size: int64(len(c))})

	return g.model("Scores the mean normalized color of an image against named colors; the largest logit is the nearest color.")
}
