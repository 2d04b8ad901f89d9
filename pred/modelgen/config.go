package modelgen

import (
	"bytes"
	"fmt"
	"regexp"

	"google.golang.org/protobuf/encoding/prototext"

	predv1 "github.com/prepred/prepred/api/gen/prepred/pred/v1"
)

// Preprocessing constants shared by the generated models.
const (
	// ImageScale maps 8-bit channel values to [0, 1].
	ImageScale float32 = 1.0 / 255
	// maxBatchSize is the largest batch pred may run on a generated model.
	maxBatchSize = 8
	// labelsFile is the labels file name inside a model directory.
	labelsFile = "labels.json"
	// platform is the runtime the generated models are served with.
	platform = "onnxruntime_onnx"
)

// Dynamic batching of the generated models.
const (
	// resnetQueueDelayMicros is how long a lone ResNet-50 request waits
	// for others to join its batch: small beside the tens of milliseconds
	// one image costs on a CPU.
	resnetQueueDelayMicros = 2000
	// colorsQueueDelayMicros is 0: the colors model runs in microseconds,
	// so a request never waits for company, and requests that queue while
	// the model runs still share the next execution.
	colorsQueueDelayMicros = 0
	// squaresQueueDelayMicros is 0 for the same reason: the squares model
	// runs in a few milliseconds.
	squaresQueueDelayMicros = 0
	// maxQueueSize bounds the requests waiting for either model; beyond
	// it pred answers RESOURCE_EXHAUSTED at once.
	maxQueueSize = 64
)

// ImageNetMean and ImageNetStd are torchvision's per-channel (RGB)
// normalization constants.
var (
	ImageNetMean = [3]float32{0.485, 0.456, 0.406}
	ImageNetStd  = [3]float32{0.229, 0.224, 0.225}
)

// Config returns the ModelConfig of the named generated model.
func Config(name string) (*predv1.ModelConfig, error) {
	switch name {
	case ResNet50:
		return &predv1.ModelConfig{
			Name:         ResNet50,
			Platform:     platform,
			MaxBatchSize: maxBatchSize,
			Inputs:       []*predv1.TensorSpec{float32Spec("input", 3, resnetImageSize, resnetImageSize)},
			Outputs:      []*predv1.TensorSpec{float32Spec("output", resnetClasses)},
			LabelsFile:   labelsFile,
			Preprocess: imageNetSpec(resnetImageSize,
				predv1.Interpolation_INTERPOLATION_BICUBIC),
			VersionPolicy:   latestVersion(),
			DynamicBatching: dynamicBatching(resnetQueueDelayMicros),
			OutputKind:      predv1.OutputKind_OUTPUT_KIND_LOGITS,
		}, nil
	case Colors:
		return &predv1.ModelConfig{
			Name:         Colors,
			Platform:     platform,
			MaxBatchSize: maxBatchSize,
			Inputs:       []*predv1.TensorSpec{float32Spec("input", 3, colorsImageSize, colorsImageSize)},
			Outputs:      []*predv1.TensorSpec{float32Spec("output", int64(len(ColorLabels)))},
			LabelsFile:   labelsFile,
			Preprocess: imageNetSpec(colorsImageSize,
				predv1.Interpolation_INTERPOLATION_BILINEAR),
			VersionPolicy:   latestVersion(),
			DynamicBatching: dynamicBatching(colorsQueueDelayMicros),
			OutputKind:      predv1.OutputKind_OUTPUT_KIND_LOGITS,
		}, nil
	case Squares:
		return &predv1.ModelConfig{
			Name:            Squares,
			Platform:        platform,
			MaxBatchSize:    squaresMaxBatch,
			Inputs:          []*predv1.TensorSpec{float32Spec("images", 3, squaresImageSize, squaresImageSize)},
			Outputs:         []*predv1.TensorSpec{float32Spec("output0", int64(4+len(SquaresLabels)), SquaresAnchors)},
			LabelsFile:      labelsFile,
			Preprocess:      letterboxSpec(squaresImageSize),
			VersionPolicy:   latestVersion(),
			DynamicBatching: dynamicBatching(squaresQueueDelayMicros),
			OutputKind:      predv1.OutputKind_OUTPUT_KIND_YOLO,
			Detection:       &predv1.Detection{ConfidenceThreshold: squaresConfidence},
		}, nil
	}
	return nil, fmt.Errorf("unknown model %q (known: %v)", name, Names())
}

// Labels returns the class names of the named generated model, index =
// output position.
func Labels(name string) ([]string, error) {
	switch name {
	case ResNet50:
		labels := make([]string, resnetClasses)
		for i := range labels {
			labels[i] = fmt.Sprintf("class_%04d", i)
		}
		return labels, nil
	case Colors:
		return append([]string(nil), ColorLabels[:]...), nil
	case Squares:
		return append([]string(nil), SquaresLabels[:]...), nil
	}
	return nil, fmt.Errorf("unknown model %q (known: %v)", name, Names())
}

func float32Spec(name string, shape ...int64) *predv1.TensorSpec {
	return &predv1.TensorSpec{Name: name, Dtype: predv1.DataType_DATA_TYPE_FLOAT32, Shape: shape}
}

func latestVersion() *predv1.VersionPolicy {
	return &predv1.VersionPolicy{Policy: &predv1.VersionPolicy_Latest_{
		Latest: &predv1.VersionPolicy_Latest{NumVersions: 1},
	}}
}

func dynamicBatching(delayMicros uint64) *predv1.DynamicBatching {
	return &predv1.DynamicBatching{MaxQueueDelayMicroseconds: delayMicros, MaxQueueSize: maxQueueSize}
}

// imageNetSpec is a squash resize to size x size, scaled to [0, 1] and
// normalized with the ImageNet mean and std, RGB, NCHW float32.
func imageNetSpec(size uint32, interp predv1.Interpolation) *predv1.PreprocessSpec {
	return &predv1.PreprocessSpec{
		SchemaVersion: 1,
		Input:         "input",
		ColorOrder:    predv1.ColorOrder_COLOR_ORDER_RGB,
		ResizeMode:    predv1.ResizeMode_RESIZE_MODE_SQUASH,
		Interpolation: interp,
		Width:         size,
		Height:        size,
		Scale:         ImageScale,
		Mean:          ImageNetMean[:],
		Std:           ImageNetStd[:],
		Layout:        predv1.Layout_LAYOUT_NCHW,
		Dtype:         predv1.DataType_DATA_TYPE_FLOAT32,
	}
}

// letterboxSpec is Ultralytics' preprocessing: a letterbox to size x size
// on gray 114, bilinear, scaled to [0, 1] without mean or std, RGB, NCHW
// float32, into input "images".
func letterboxSpec(size uint32) *predv1.PreprocessSpec {
	return &predv1.PreprocessSpec{
		SchemaVersion: 1,
		Input:         "images",
		ColorOrder:    predv1.ColorOrder_COLOR_ORDER_RGB,
		ResizeMode:    predv1.ResizeMode_RESIZE_MODE_LETTERBOX,
		Interpolation: predv1.Interpolation_INTERPOLATION_BILINEAR,
		Width:         size,
		Height:        size,
		Scale:         ImageScale,
		Mean:          []float32{0, 0, 0},
		Std:           []float32{1, 1, 1},
		Layout:        predv1.Layout_LAYOUT_NCHW,
		Dtype:         predv1.DataType_DATA_TYPE_FLOAT32,
		PadColor:      []uint32{114, 114, 114},
	}
}

// configHeader starts every generated config.pbtxt.
const configHeader = "# Generated by pred/cmd/genmodels (scripts/gen-models.sh); edits are overwritten.\n" +
	"# proto-file: api/proto/prepred/pred/v1/config.proto\n" +
	"# proto-message: prepred.pred.v1.ModelConfig\n"

// fieldSpacing matches a field name and the spaces after it at the start of
// a line: prototext inserts a random extra space there on purpose.
var fieldSpacing = regexp.MustCompile(`(?m)^(\s*[A-Za-z_][A-Za-z0-9_]*:?) +`)

// marshalConfig writes cfg as protobuf text with stable spacing, so the same
// config is the same bytes whichever binary writes it.
func marshalConfig(cfg *predv1.ModelConfig) ([]byte, error) {
	text, err := prototext.MarshalOptions{Multiline: true, Indent: "  "}.Marshal(cfg)
	if err != nil {
		return nil, fmt.Errorf("marshal config of %s: %w", cfg.GetName(), err)
	}
	text = fieldSpacing.ReplaceAll(text, []byte("$1 "))
	var buf bytes.Buffer
	buf.WriteString(configHeader)
	buf.Write(text)
	return buf.Bytes(), nil
}
