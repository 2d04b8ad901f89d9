package repository

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"

	predv1 "github.com/prepred/prepred/api/gen/prepred/pred/v1"
	"github.com/prepred/prepred/api/spec"
	"github.com/prepred/prepred/pred/internal/tensor"
)

// Platform is the only platform pred serves.
const Platform = "onnxruntime_onnx"

// MaxBatchSizeLimit bounds max_batch_size: a larger batch of even a tiny
// model would exceed tensor.MaxElements.
const MaxBatchSizeLimit = 1024

// MaxInstanceCount bounds instance_count (and pred's --instance-count):
// more concurrent executions than this only contend for the same cores.
const MaxInstanceCount = 64

// Runtime option values the configuration accepts (see RuntimeOptions in
// config.proto).
var (
	graphOptimizationLevels = []string{"", "disable", "basic", "extended", "all"}
	executionProviders      = []string{"", "cpu", "cuda", "tensorrt"}
)

// problems collects every problem of a configuration, so that one error
// names them all.
type problems []string

func (p *problems) addf(format string, args ...any) { *p = append(*p, fmt.Sprintf(format, args...)) }

// Validate checks a model configuration read from the directory dirName.
// The error lists every problem found.
func Validate(cfg *predv1.ModelConfig, dirName string) error {
	var p problems
	if cfg.GetName() != dirName {
		p.addf("name is %q but the model directory is %q; they must be equal", cfg.GetName(), dirName)
	}
	if cfg.GetPlatform() != Platform {
		p.addf("platform is %q; pred serves only %q", cfg.GetPlatform(), Platform)
	}
	mbs := cfg.GetMaxBatchSize()
	if mbs < 0 || mbs > MaxBatchSizeLimit {
		p.addf("max_batch_size %d is outside [0, %d]", mbs, MaxBatchSizeLimit)
	}
	validateTensors(&p, "inputs", cfg.GetInputs(), mbs)
	validateTensors(&p, "outputs", cfg.GetOutputs(), mbs)
	for i, t := range cfg.GetOutputs() {
		// The ONNX Runtime binding cannot hand back a FLOAT16 output that
		// ONNX Runtime allocated, so pred must allocate it: every
		// dimension but the batch dimension must be known.
		if t.GetDtype() == predv1.DataType_DATA_TYPE_FLOAT16 && slices.Contains(t.GetShape(), -1) {
			p.addf("outputs[%d] %q: shape %v: a FLOAT16 output needs fixed dimensions (apart from the batch dimension)", i, t.GetName(), t.GetShape())
		}
	}
	if _, known := predv1.OutputKind_name[int32(cfg.GetOutputKind())]; !known {
		p.addf("output_kind %d is not a known OutputKind", cfg.GetOutputKind())
	}
	switch pre, kind := cfg.GetPreprocess(), cfg.GetOutputKind(); {
	case pre == nil && kind != predv1.OutputKind_OUTPUT_KIND_UNSPECIFIED:
		p.addf("output_kind is set but preprocess is missing: a model served to prep needs the preprocessing spec it was trained with")
	case pre != nil && kind == predv1.OutputKind_OUTPUT_KIND_UNSPECIFIED:
		p.addf("preprocess is set but output_kind is missing: say whether output %q holds LOGITS, PROBABILITIES, YOLO boxes or DETECTIONS", firstName(cfg.GetOutputs()))
	case pre != nil:
		validatePreprocess(&p, cfg)
	}
	validateDetection(&p, cfg)
	validateVersionPolicy(&p, cfg.GetVersionPolicy())
	validateBatching(&p, cfg.GetDynamicBatching(), mbs)
	validateRuntime(&p, cfg.GetRuntime())
	if n := cfg.GetInstanceCount(); n < 0 || n > MaxInstanceCount {
		p.addf("instance_count %d is outside 0..%d", n, MaxInstanceCount)
	}
	if len(p) == 0 {
		return nil
	}
	return errors.New("invalid config: " + strings.Join(p, "; "))
}

func firstName(ts []*predv1.TensorSpec) string {
	if len(ts) == 0 {
		return ""
	}
	return ts[0].GetName()
}

func validateTensors(p *problems, field string, ts []*predv1.TensorSpec, mbs int32) {
	if len(ts) == 0 {
		p.addf("%s is empty", field)
	}
	seen := make(map[string]bool, len(ts))
	for i, t := range ts {
		where := fmt.Sprintf("%s[%d] %q", field, i, t.GetName())
		switch {
		case t.GetName() == "":
			p.addf("%s[%d] has no name", field, i)
		case seen[t.GetName()]:
			p.addf("%s: duplicate name", where)
		}
		seen[t.GetName()] = true
		if !tensor.Supported(t.GetDtype()) {
			p.addf("%s: dtype %v is not supported", where, t.GetDtype())
		}
		if mbs == 0 && len(t.GetShape()) == 0 {
			p.addf("%s: shape is empty; scalars are not supported", where)
		}
		known := true
		for _, d := range t.GetShape() {
			if d == 0 || d < -1 {
				p.addf("%s: shape %v: a dimension is -1 (variable) or positive", where, t.GetShape())
				known = false
				break
			}
			known = known && d > 0
		}
		if known {
			shape := t.GetShape()
			if mbs > 0 {
				shape = append([]int64{int64(mbs)}, shape...)
			}
			if _, err := tensor.ElementCount(shape); err != nil {
				p.addf("%s: %v", where, err)
			}
		}
	}
}

// validatePreprocess checks the spec itself and that it fits the input it
// names.
func validatePreprocess(p *problems, cfg *predv1.ModelConfig) {
	s := cfg.GetPreprocess()
	if v := s.GetSchemaVersion(); v < 1 || v > spec.SchemaVersion {
		p.addf("preprocess.schema_version is %d; this release implements 1..%d", v, spec.SchemaVersion)
	}
	enums := []struct {
		field string
		value int32
		names map[int32]string
	}{
		{"color_order", int32(s.GetColorOrder()), predv1.ColorOrder_name},
		{"resize_mode", int32(s.GetResizeMode()), predv1.ResizeMode_name},
		{"interpolation", int32(s.GetInterpolation()), predv1.Interpolation_name},
		{"layout", int32(s.GetLayout()), predv1.Layout_name},
		{"dtype", int32(s.GetDtype()), predv1.DataType_name},
	}
	for _, e := range enums {
		if _, known := e.names[e.value]; !known || e.value == 0 {
			p.addf("preprocess.%s must be set to a known value (got %d)", e.field, e.value)
		}
	}
	if s.GetWidth() == 0 || s.GetHeight() == 0 {
		p.addf("preprocess.width and height must be positive (got %dx%d)", s.GetWidth(), s.GetHeight())
	}
	switch s.GetResizeMode() {
	case predv1.ResizeMode_RESIZE_MODE_SHORTER_SIDE_CENTER_CROP:
		if s.GetResizeShorterSide() < max(s.GetWidth(), s.GetHeight()) {
			p.addf("preprocess.resize_shorter_side %d must be at least the crop size %dx%d", s.GetResizeShorterSide(), s.GetWidth(), s.GetHeight())
		}
	case predv1.ResizeMode_RESIZE_MODE_SQUASH, predv1.ResizeMode_RESIZE_MODE_LETTERBOX:
		if s.GetResizeShorterSide() != 0 {
			p.addf("preprocess.resize_shorter_side is only used by RESIZE_MODE_SHORTER_SIDE_CENTER_CROP")
		}
	}
	if sc := float64(s.GetScale()); !(sc > 0) || math.IsInf(sc, 0) {
		p.addf("preprocess.scale must be positive and finite (got %v)", s.GetScale())
	}
	const channels = 3 // RGB or BGR
	if len(s.GetMean()) != channels || len(s.GetStd()) != channels {
		p.addf("preprocess.mean and std need %d values each (got %d and %d)", channels, len(s.GetMean()), len(s.GetStd()))
	}
	for i, m := range s.GetMean() {
		if math.IsNaN(float64(m)) || math.IsInf(float64(m), 0) {
			p.addf("preprocess.mean[%d] is %v", i, m)
		}
	}
	for i, sd := range s.GetStd() {
		if !(sd > 0) || math.IsInf(float64(sd), 0) {
			p.addf("preprocess.std[%d] must be positive and finite (got %v)", i, sd)
		}
	}
	if bg := s.GetBackground(); len(bg) != 0 {
		if len(bg) != channels || max(bg[0], bg[1], bg[2]) > 255 {
			p.addf("preprocess.background is empty or 3 values in 0..255 (got %v)", bg)
		}
	}
	if pc := s.GetPadColor(); len(pc) != 0 {
		if s.GetResizeMode() != predv1.ResizeMode_RESIZE_MODE_LETTERBOX {
			p.addf("preprocess.pad_color is only used by RESIZE_MODE_LETTERBOX")
		}
		if len(pc) != channels || max(pc[0], pc[1], pc[2]) > 255 {
			p.addf("preprocess.pad_color is empty or 3 values in 0..255 (got %v)", pc)
		}
	}

	var in *predv1.TensorSpec
	for _, t := range cfg.GetInputs() {
		if t.GetName() == s.GetInput() {
			in = t
		}
	}
	if in == nil {
		p.addf("preprocess.input %q is not one of the inputs", s.GetInput())
		return
	}
	if in.GetDtype() != s.GetDtype() {
		p.addf("preprocess.dtype %v differs from input %q dtype %v", s.GetDtype(), in.GetName(), in.GetDtype())
	}
	dims := in.GetShape()
	if cfg.GetMaxBatchSize() == 0 && len(dims) > 0 {
		dims = dims[1:] // the model's own batch dimension
	}
	want := []int64{channels, int64(s.GetHeight()), int64(s.GetWidth())}
	if !compatible(dims, want) {
		p.addf("input %q has shape %v (batch dimension excluded); preprocess (NCHW) makes %v", in.GetName(), dims, want)
	}
}

// compatible reports whether a configured shape (-1 variable) admits want.
func compatible(shape, want []int64) bool {
	if len(shape) != len(want) {
		return false
	}
	for i, d := range shape {
		if d != -1 && d != want[i] {
			return false
		}
	}
	return true
}

func validateVersionPolicy(p *problems, vp *predv1.VersionPolicy) {
	switch v := vp.GetPolicy().(type) {
	case *predv1.VersionPolicy_Latest_:
		if v.Latest.GetNumVersions() == 0 {
			p.addf("version_policy.latest.num_versions must be at least 1")
		}
	case *predv1.VersionPolicy_Specific_:
		if len(v.Specific.GetVersions()) == 0 {
			p.addf("version_policy.specific.versions is empty")
		}
		for _, n := range v.Specific.GetVersions() {
			if n <= 0 {
				p.addf("version_policy.specific.versions: %d is not a positive version", n)
			}
		}
	}
}

func validateBatching(p *problems, db *predv1.DynamicBatching, mbs int32) {
	if db == nil {
		return
	}
	if mbs == 0 {
		p.addf("dynamic_batching needs max_batch_size > 0")
	}
	for _, n := range db.GetPreferredBatchSize() {
		if n < 1 || n > mbs {
			p.addf("dynamic_batching.preferred_batch_size %d is outside [1, max_batch_size %d]", n, mbs)
		}
	}
	if db.GetMaxQueueSize() < 0 {
		p.addf("dynamic_batching.max_queue_size must not be negative")
	}
}

func validateRuntime(p *problems, rt *predv1.RuntimeOptions) {
	if rt.GetIntraOpThreads() < 0 || rt.GetInterOpThreads() < 0 {
		p.addf("runtime thread counts must not be negative")
	}
	if !slices.Contains(graphOptimizationLevels, rt.GetGraphOptimizationLevel()) {
		p.addf("runtime.graph_optimization_level %q is not one of disable, basic, extended, all", rt.GetGraphOptimizationLevel())
	}
	if !slices.Contains(executionProviders, rt.GetExecutionProvider()) {
		p.addf("runtime.execution_provider %q is not one of cpu, cuda, tensorrt", rt.GetExecutionProvider())
	}
	if rt.GetDeviceId() < 0 {
		p.addf("runtime.device_id %d must not be negative", rt.GetDeviceId())
	}
	if len(rt.GetProviderOptions()) > 0 && (rt.GetExecutionProvider() == "" || rt.GetExecutionProvider() == "cpu") {
		// An empty provider may become a GPU one through pred's
		// --execution-provider, but options written for one GPU provider
		// are not options of the CPU: name the provider they are for.
		p.addf("runtime.provider_options need runtime.execution_provider cuda or tensorrt")
	}
	if _, ok := rt.GetSessionConfig()[""]; ok {
		p.addf("runtime.session_config has an empty key")
	}
	if _, ok := rt.GetProviderOptions()["device_id"]; ok {
		p.addf("runtime.provider_options: set the GPU with runtime.device_id")
	}
}
