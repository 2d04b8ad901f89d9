package predclient

import (
	"fmt"
	"slices"

	predv1 "github.com/prepred/prepred/api/gen/prepred/pred/v1"
	"github.com/prepred/prepred/api/spec"
	"github.com/prepred/prepred/prep/internal/imageprep"
)

// Contract is what pred announced for one model version and prep agreed to
// execute. It is immutable; a re-read produces a new Contract.
type Contract struct {
	Model string
	// Version is the version the contract was read from; every Predict
	// names it, so outputs are always interpreted with their own labels.
	Version int64
	// Versions lists every version pred serves for the model.
	Versions     []int64
	Spec         *predv1.PreprocessSpec
	Fingerprint  string
	Labels       []string
	OutputKind   predv1.OutputKind
	MaxBatchSize int32
	// Input and Output are the model's image input and first output, as
	// announced: when MaxBatchSize > 0 their shapes may include the batch
	// dimension as -1 (pred does) or leave it out (as configs do).
	Input  *predv1.TensorSpec
	Output *predv1.TensorSpec
	// Classes is the number of values the output holds per image: one per
	// class for a classifier, every box value for a detector.
	Classes int
	// Detector describes the boxes of a detector's output (OUTPUT_KIND_YOLO,
	// OUTPUT_KIND_DETECTIONS); nil for a classifier.
	Detector *Detector
	// Preprocessor executes Spec.
	Preprocessor *imageprep.Preprocessor

	// requestShape is the shape of the input tensor for one image.
	requestShape []int64
	// outputDims is the first output's shape for one image (without a
	// batch dimension).
	outputDims []int64
	// key is the model and version the contract was looked up by.
	key modelKey
}

// Detector is the layout and post-processing defaults of a detector's first
// output.
type Detector struct {
	// Boxes is the number of candidate boxes per image: the anchors of
	// OUTPUT_KIND_YOLO ([4+Classes, Boxes]), the rows K of
	// OUTPUT_KIND_DETECTIONS ([Boxes, 6]).
	Boxes int
	// Classes is the number of classes: the score rows of OUTPUT_KIND_YOLO;
	// for OUTPUT_KIND_DETECTIONS the number of labels, 0 without labels.
	Classes int
	// Defaults are the model's confidence, IoU and max_detections with
	// prep's defaults in place of unset fields (api/spec.Detection), all
	// non-zero and within the ranges of api/spec.CheckDetection.
	Defaults *predv1.Detection
}

// IsDetector reports whether the model's output holds boxes.
func (ct *Contract) IsDetector() bool { return ct.Detector != nil }

// MaxBatch is the most images one Predict call may carry: the model's
// max_batch_size, or 1 for a model without a batch dimension.
func (ct *Contract) MaxBatch() int {
	return max(1, int(ct.MaxBatchSize))
}

// newContract checks that prep can execute what md announces for the
// model (and version, when want is not 0) it asked for and builds the
// Contract; the error says which part it refuses and why.
func newContract(md *predv1.ModelMetadataResponse, model string, want int64, limits imageprep.Limits) (*Contract, error) {
	if md.GetModel() != model {
		return nil, fmt.Errorf("pred answered for model %q instead of %q", md.GetModel(), model)
	}
	if want != 0 && md.GetVersion() != want {
		return nil, fmt.Errorf("pred answered for version %d instead of %d", md.GetVersion(), want)
	}
	s := md.GetPreprocess()
	if s == nil {
		return nil, fmt.Errorf("the model announces no preprocess spec, so prep cannot build its input from an image")
	}
	fp, err := spec.Fingerprint(s)
	if err != nil {
		return nil, fmt.Errorf("fingerprint the preprocess spec: %w", err)
	}
	if md.GetSpecFingerprint() != fp {
		return nil, fmt.Errorf("pred announces spec_fingerprint %q but the spec it sent has fingerprint %q (prep and pred disagree on the spec's encoding)", md.GetSpecFingerprint(), fp)
	}
	pre, err := imageprep.New(s, limits)
	if err != nil {
		return nil, err
	}
	ct := &Contract{
		Model:        md.GetModel(),
		Version:      md.GetVersion(),
		Versions:     md.GetVersions(),
		Spec:         s,
		Fingerprint:  fp,
		Labels:       md.GetLabels(),
		OutputKind:   md.GetOutputKind(),
		MaxBatchSize: md.GetMaxBatchSize(),
		Preprocessor: pre,
	}
	if ct.MaxBatchSize < 0 {
		return nil, fmt.Errorf("max_batch_size %d is negative", ct.MaxBatchSize)
	}
	if err := ct.setInput(md.GetInputs()); err != nil {
		return nil, err
	}
	if err := ct.setOutput(md.GetOutputs()); err != nil {
		return nil, err
	}
	switch ct.OutputKind {
	case predv1.OutputKind_OUTPUT_KIND_LOGITS, predv1.OutputKind_OUTPUT_KIND_PROBABILITIES:
		if n := len(ct.Labels); n != 0 && n != ct.Classes {
			return nil, fmt.Errorf("the model announces %d labels for %d output values", n, ct.Classes)
		}
		if md.GetDetection() != nil {
			return nil, fmt.Errorf("output_kind %v is a classifier's, but the model announces detection settings", ct.OutputKind)
		}
	case predv1.OutputKind_OUTPUT_KIND_YOLO, predv1.OutputKind_OUTPUT_KIND_DETECTIONS:
		if err := ct.setDetector(md.GetDetection()); err != nil {
			return nil, err
		}
	default:
		return nil, fmt.Errorf("output_kind %v: prep knows LOGITS, PROBABILITIES, YOLO and DETECTIONS only, so it cannot interpret the output", ct.OutputKind)
	}
	return ct, nil
}

// setDetector checks the shape of a detector's output against its kind and
// labels, and takes its post-processing defaults.
func (ct *Contract) setDetector(d *predv1.Detection) error {
	out := ct.Output
	dims := ct.outputDims
	det := &Detector{Defaults: spec.Detection(d)}
	if err := spec.CheckDetection(det.Defaults); err != nil {
		return fmt.Errorf("the model's detection settings: %w", err)
	}
	switch ct.OutputKind {
	case predv1.OutputKind_OUTPUT_KIND_YOLO:
		if len(dims) != 2 || dims[0] <= yoloBoxRows {
			return fmt.Errorf("model output %q has shape %v; OUTPUT_KIND_YOLO needs [4 + classes, anchors] per image", out.GetName(), out.GetShape())
		}
		det.Classes, det.Boxes = int(dims[0])-yoloBoxRows, int(dims[1])
		if n := len(ct.Labels); n != 0 && n != det.Classes {
			return fmt.Errorf("the model announces %d labels for the %d classes of its output %q %v (4 + classes rows)", n, det.Classes, out.GetName(), out.GetShape())
		}
	case predv1.OutputKind_OUTPUT_KIND_DETECTIONS:
		if len(dims) != 2 || dims[1] != detectionColumns {
			return fmt.Errorf("model output %q has shape %v; OUTPUT_KIND_DETECTIONS needs [K, 6] per image (x1, y1, x2, y2, score, class)", out.GetName(), out.GetShape())
		}
		det.Classes, det.Boxes = len(ct.Labels), int(dims[0])
	}
	ct.Detector = det
	return nil
}

// yoloBoxRows are the rows of an OUTPUT_KIND_YOLO output before the class
// scores (cx, cy, w, h); detectionColumns the values of an
// OUTPUT_KIND_DETECTIONS row.
const (
	yoloBoxRows      = 4
	detectionColumns = 6
)

// setInput finds the input the spec fills and checks that its type and shape
// are those of the tensor the spec produces.
func (ct *Contract) setInput(inputs []*predv1.TensorSpec) error {
	if len(inputs) != 1 {
		return fmt.Errorf("the model has %d inputs; prep fills exactly one image input", len(inputs))
	}
	in := inputs[0]
	if name := ct.Spec.GetInput(); name != "" && name != in.GetName() {
		return fmt.Errorf("the preprocess spec fills input %q but the model's input is %q", name, in.GetName())
	}
	if in.GetDtype() != predv1.DataType_DATA_TYPE_FLOAT32 {
		return fmt.Errorf("model input %q has data type %v; prep produces FLOAT32", in.GetName(), in.GetDtype())
	}
	produced := ct.Preprocessor.Shape() // [3, H, W]
	shape := in.GetShape()
	batched := append([]int64{1}, produced...)
	switch {
	case ct.MaxBatchSize > 0 && (dimsMatch(shape, produced) || dimsMatch(shape, batched)):
		// The shape with or without its batch dimension (-1).
		ct.requestShape = batched
	case ct.MaxBatchSize == 0 && dimsMatch(shape, batched):
		ct.requestShape = batched
	case ct.MaxBatchSize == 0 && dimsMatch(shape, produced):
		ct.requestShape = slices.Clone(produced)
	default:
		return fmt.Errorf("model input %q has shape %v (max_batch_size %d) but the preprocess spec produces %v", in.GetName(), shape, ct.MaxBatchSize, produced)
	}
	ct.Input = in
	return nil
}

// setOutput takes the first output as the scores and derives how many values
// it holds per image.
func (ct *Contract) setOutput(outputs []*predv1.TensorSpec) error {
	if len(outputs) == 0 {
		return fmt.Errorf("the model announces no outputs")
	}
	out := outputs[0]
	switch out.GetDtype() {
	case predv1.DataType_DATA_TYPE_FLOAT32, predv1.DataType_DATA_TYPE_FLOAT64:
	default:
		return fmt.Errorf("model output %q has data type %v; prep reads FLOAT32 or FLOAT64 scores", out.GetName(), out.GetDtype())
	}
	dims := out.GetShape()
	switch {
	case ct.MaxBatchSize > 0 && len(dims) > 1 && dims[0] == -1:
		dims = dims[1:] // announced with its batch dimension
	case ct.MaxBatchSize == 0 && len(ct.requestShape) == 4 && len(dims) > 1 && (dims[0] == 1 || dims[0] == -1):
		dims = dims[1:] // the model's own batch dimension of 1
	}
	classes := int64(1)
	for _, d := range dims {
		if d <= 0 {
			return fmt.Errorf("model output %q has shape %v; prep needs a fixed number of values per image", out.GetName(), out.GetShape())
		}
		classes *= d
		if classes > maxClasses {
			return fmt.Errorf("model output %q has shape %v, more than %d values per image", out.GetName(), out.GetShape(), maxClasses)
		}
	}
	ct.Output = out
	ct.outputDims = dims
	ct.Classes = int(classes)
	return nil
}

// maxClasses bounds the values per image of a model output prep accepts; it
// keeps the JSON answers of /predict bounded.
const maxClasses = 1 << 20

// dimsMatch reports whether an announced shape (where -1 is variable) admits
// the concrete shape want.
func dimsMatch(announced, want []int64) bool {
	if len(announced) != len(want) {
		return false
	}
	for i, d := range announced {
		if d != -1 && d != want[i] {
			return false
		}
	}
	return true
}
