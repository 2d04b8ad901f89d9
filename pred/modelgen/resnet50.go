package modelgen

import (
	"fmt"
	"math"

	onnxpb "github.com/prepred/prepred/api/gen/onnx"
)

// ResNet-50 dimensions (torchvision resnet50, "v1.5": the stride of a
// downsampling bottleneck sits on its 3x3 convolution).
const (
	resnetImageSize = 224
	resnetClasses   = 1000
	resnetStemWidth = 64
	// resnetExpansion is the bottleneck's output width over its inner width.
	resnetExpansion = 4
)

// resnetStages lists, per stage (layer1..layer4), the number of bottleneck
// blocks, their inner width and the stride of the first block.
var resnetStages = [...]struct{ blocks, width, stride int }{
	{3, 64, 1},
	{4, 128, 2},
	{6, 256, 2},
	{3, 512, 2},
}

// Weight scales. Every convolution followed by a ReLU gets He-normal weights
// (std sqrt(2/fan_in)), which keeps the activations' second moment constant.
// The last convolution of each residual branch is scaled down so that the
// residual stream grows slowly over 16 blocks instead of doubling at each,
// and stays sensitive to the input; biases are small, as folded batch-norm
// shifts of a trained network would be.
const (
	resnetBranchGain     = 0.4
	resnetDownsampleGain = 1.0
	resnetBiasStd        = 0.01
	resnetLogitGain      = 5
)

// centeredGain restores the second moment that zero-sum weights lose on a
// ReLU output: of its second moment v/2 only the variance v(1/2 - 1/2π)
// passes a zero-sum filter.
var centeredGain = 1 / math.Sqrt(1-1/math.Pi)

// resnet builds the graph, naming nodes, values and initializers the way
// torch.onnx names them for torchvision's module tree.
type resnet struct {
	*graph
}

// conv appends a Conv with a folded bias and returns its output.
func (r resnet) conv(module, path, x string, in, out, kernel, stride, pad int, gain float64) string {
	fanIn := in * kernel * kernel
	std := gain * math.Sqrt(2/float64(fanIn))
	if x != "input" {
		std *= centeredGain
	}
	w := r.initializer(module+".weight", []int64{int64(out), int64(in), int64(kernel), int64(kernel)},
		centeredNormal(module+".weight", out, fanIn, std))
	b := r.initializer(module+".bias", []int64{int64(out)}, normal(module+".bias", out, resnetBiasStd))
	k, s, p := int64(kernel), int64(stride), int64(pad)
	return r.node("Conv", path+"/Conv", []string{x, w, b}, []string{path + "/Conv_output_0"},
		attrInts("dilations", 1, 1),
		attrInt("group", 1),
		attrInts("kernel_shape", k, k),
		attrInts("pads", p, p, p, p),
		attrInts("strides", s, s),
	)
}

func (r resnet) relu(path, x string) string {
	return r.node("Relu", path+"/Relu", []string{x}, []string{path + "/Relu_output_0"})
}

// bottleneck appends torchvision's Bottleneck block.
func (r resnet) bottleneck(stage, block int, x string, in, width, stride int) string {
	module := fmt.Sprintf("layer%d.%d", stage, block)
	path := fmt.Sprintf("/layer%d/layer%d.%d", stage, stage, block)
	out := width * resnetExpansion

	h := r.conv(module+".conv1", path+"/conv1", x, in, width, 1, 1, 0, 1)
	h = r.relu(path+"/relu", h)
	h = r.conv(module+".conv2", path+"/conv2", h, width, width, 3, stride, 1, 1)
	h = r.relu(path+"/relu_1", h)
	h = r.conv(module+".conv3", path+"/conv3", h, width, out, 1, 1, 0, resnetBranchGain)

	identity := x
	if stride != 1 || in != out {
		identity = r.conv(module+".downsample.0", path+"/downsample/downsample.0", x, in, out, 1, stride, 0,
			resnetDownsampleGain/math.Sqrt2)
	}
	sum := r.node("Add", path+"/Add", []string{h, identity}, []string{path + "/Add_output_0"})
	return r.relu(path+"/relu_2", sum)
}

// buildResNet50 returns torchvision's ResNet-50 as torch.onnx exports it in
// eval mode (batch norm folded into the convolutions), with deterministic
// synthetic weights.
func buildResNet50() *onnxpb.ModelProto {
	r := resnet{newGraph("main_graph")}
	batch := dim{param: batchParam}
	r.input("input", batch, dim{size: 3}, dim{size: resnetImageSize}, dim{size: resnetImageSize})

	x := r.conv("conv1", "/conv1", "input", 3, resnetStemWidth, 7, 2, 3, 1)
	x = r.relu("/relu", x)
	x = r.node("MaxPool", "/maxpool/MaxPool", []string{x}, []string{"/maxpool/MaxPool_output_0"},
		attrInt("ceil_mode", 0),
		attrInts("dilations", 1, 1),
		attrInts("kernel_shape", 3, 3),
		attrInts("pads", 1, 1, 1, 1),
		attrInts("strides", 2, 2),
	)

	in := resnetStemWidth
	for i, st := range resnetStages {
		for b := range st.blocks {
			stride := 1
			if b == 0 {
				stride = st.stride
			}
			x = r.bottleneck(i+1, b, x, in, st.width, stride)
			in = st.width * resnetExpansion
		}
	}

	x = r.node("GlobalAveragePool", "/avgpool/GlobalAveragePool", []string{x}, []string{"/avgpool/GlobalAveragePool_output_0"})
	x = r.node("Flatten", "/Flatten", []string{x}, []string{"/Flatten_output_0"}, attrInt("axis", 1))
	w := r.initializer("fc.weight", []int64{resnetClasses, int64(in)}, centeredNormal("fc.weight", resnetClasses, in, resnetLogitGain*centeredGain*math.Sqrt(1/float64(in))))
	b := r.initializer("fc.bias", []int64{resnetClasses}, normal("fc.bias", resnetClasses, resnetBiasStd))
	r.node("Gemm", "/fc/Gemm", []string{x, w, b}, []string{"output"},
		attrFloat("alpha", 1),
		attrFloat("beta", 1),
		attrInt("transB", 1),
	)
	r.output("output", batch, dim{size: resnetClasses})

	return r.model("ResNet-50 (torchvision graph, batch norm folded) with deterministic synthetic weights; its labels are meaningless.")
}
