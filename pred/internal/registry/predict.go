package registry

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	predv1 "github.com/prepred/prepred/api/gen/prepred/pred/v1"
	"github.com/prepred/prepred/pred/internal/batcher"
	"github.com/prepred/prepred/pred/internal/metrics"
	"github.com/prepred/prepred/pred/internal/ortrt"
	"github.com/prepred/prepred/pred/internal/tensor"
)

// CheckFingerprint compares the fingerprint of the preprocessing spec a
// caller executed with the one the model announces. An empty fingerprint
// (a caller that sends raw tensors) always passes.
func (v *Version) CheckFingerprint(fingerprint string) error {
	m := v.Model
	if fingerprint == "" || fingerprint == m.Fingerprint {
		return nil
	}
	if m.Fingerprint == "" {
		return status.Errorf(codes.FailedPrecondition,
			"spec_fingerprint mismatch for model %q version %d: the request was preprocessed with spec %q, but the model announces no preprocess spec; send raw tensors with an empty spec_fingerprint",
			m.Name, v.Number, fingerprint)
	}
	return status.Errorf(codes.FailedPrecondition,
		"spec_fingerprint mismatch for model %q version %d: the request was preprocessed with spec %q, the model announces %q; re-read ModelMetadata and preprocess with the announced spec",
		m.Name, v.Number, fingerprint, m.Fingerprint)
}

// Predict validates inputs against the model's configuration, queues them
// for the model version's next execution, which may batch them with other
// requests, and returns their outputs. Inputs may be given in any order; a
// single unnamed input names the model's only input. Every problem with
// the inputs is an InvalidArgument error found before ONNX Runtime sees
// them. Outputs follow the configured output order; they may share memory
// with other requests' outputs and must not be appended to.
//
// A full queue is ResourceExhausted; a request whose context ends while it
// waits never runs and fails with DeadlineExceeded or Canceled.
func (v *Version) Predict(ctx context.Context, inputs []tensor.Tensor) ([]tensor.Tensor, error) {
	start := time.Now()
	outs, batch, err := v.predict(ctx, inputs)
	if err != nil {
		if v.metrics != nil {
			v.metrics.RequestDone(batch, time.Since(start), status.Code(err).String())
		}
		return nil, err
	}
	v.metrics.RequestDone(batch, time.Since(start), "")
	return outs, nil
}

func (v *Version) predict(ctx context.Context, inputs []tensor.Tensor) ([]tensor.Tensor, int64, error) {
	ordered, batch, err := v.validate(inputs)
	if err != nil {
		return nil, 0, err
	}
	if v.batcher == nil {
		return nil, 0, status.Errorf(codes.Unavailable, "%s is not loaded", v.name())
	}
	outs, err := v.batcher.Submit(ctx, ordered, batch)
	return outs, batch, err
}

// batcherConfig returns the queue settings of a model version: its
// config's, else the registry's defaults.
func batcherConfig(name string, cfg *predv1.ModelConfig, o Options) batcher.Config {
	db := cfg.GetDynamicBatching()
	bc := batcher.Config{
		Name:          name,
		MaxBatchSize:  int64(cfg.GetMaxBatchSize()),
		Dynamic:       db != nil && cfg.GetMaxBatchSize() > 0,
		MaxQueueDelay: time.Duration(db.GetMaxQueueDelayMicroseconds()) * time.Microsecond,
		MaxQueueSize:  int(db.GetMaxQueueSize()),
		Instances:     o.InstanceCount,
	}
	if bc.MaxQueueSize == 0 {
		bc.MaxQueueSize = o.MaxQueueSize
	}
	if n := cfg.GetInstanceCount(); n > 0 {
		bc.Instances = int(n)
	}
	for _, p := range db.GetPreferredBatchSize() {
		bc.PreferredBatchSizes = append(bc.PreferredBatchSizes, int64(p))
	}
	return bc
}

// newBatcher starts the queue of v, whose executions run on sess, with the
// batching settings of its configuration.
func (r *Registry) newBatcher(v *Version, sess *ortrt.Session) (*batcher.Batcher, error) {
	bc := batcherConfig(v.name(), v.Model.Config, r.opts)
	v.serving.Batching = bc
	m := r.metrics.Version(v.Model.Name, strconv.FormatInt(v.Number, 10))
	v.metrics = m
	hooks := batcher.Hooks{
		QueueLength: func(n int) { m.Pending.Set(float64(n)) },
		Dequeued:    func(wait time.Duration) { m.QueueDuration.Observe(wait.Seconds()) },
		Executed: func(s batcher.BatchStats) {
			m.Executed(metrics.Execution{Requests: s.Requests, Items: s.Items, Input: s.Input, Infer: s.Infer, Output: s.Output, Failed: s.Err != nil})
		},
		Trace: r.opts.Tracing.BatchHook(v.Model.Name, v.Number, v.Model.Fingerprint),
	}
	return batcher.New(bc, func(ctx context.Context, inputs []tensor.Tensor, items int64) ([]tensor.Tensor, error) {
		return v.run(ctx, sess, inputs, items)
	}, hooks)
}

// run executes the model once on a batch of items.
func (v *Version) run(ctx context.Context, sess *ortrt.Session, inputs []tensor.Tensor, items int64) ([]tensor.Tensor, error) {
	shapes := make([][]int64, len(v.outputDims))
	for i, dims := range v.outputDims {
		switch {
		case dims == nil:
		case v.Model.Config.GetMaxBatchSize() > 0:
			shapes[i] = append([]int64{items}, dims...)
		default:
			shapes[i] = dims
		}
	}
	outs, err := sess.Run(ctx, inputs, shapes)
	if err != nil {
		if ctxErr := ctx.Err(); ctxErr != nil {
			return nil, status.FromContextError(ctxErr).Err()
		}
		return nil, status.Errorf(codes.Internal, "%s failed to run: %v", v.name(), err)
	}
	return outs, nil
}

// warmUp runs the model once on zeros of its input shapes (batch 1, and 1
// for every variable dimension), as requests run it (outputs of known
// shape allocated by pred: ONNX Runtime cannot hand back a FLOAT16 output
// it allocated itself), so that the first request does not pay for ONNX
// Runtime's lazy initialisation and a model that cannot run never serves.
func (v *Version) warmUp(ctx context.Context, sess *ortrt.Session) error {
	cfg := v.Model.Config
	inputs := make([]tensor.Tensor, len(sess.Inputs()))
	for i, info := range sess.Inputs() {
		j := slices.IndexFunc(cfg.GetInputs(), func(s *predv1.TensorSpec) bool { return s.GetName() == info.Name })
		if j < 0 {
			return fmt.Errorf("input %q is not in the config", info.Name)
		}
		spec := cfg.GetInputs()[j]
		var shape []int64
		if cfg.GetMaxBatchSize() > 0 {
			shape = append(shape, 1)
		}
		for _, d := range spec.GetShape() {
			shape = append(shape, max(d, 1))
		}
		data, err := zeros(spec.GetDtype(), shape)
		if err != nil {
			return fmt.Errorf("input %q: %w", info.Name, err)
		}
		inputs[i] = tensor.Tensor{Name: info.Name, DType: spec.GetDtype(), Shape: shape, Data: data}
	}
	_, err := v.run(ctx, sess, inputs, 1)
	return err
}

// zeros returns the data of a tensor of zeros (empty strings for STRING).
func zeros(d predv1.DataType, shape []int64) ([]byte, error) {
	if tensor.IsString(d) {
		n, err := tensor.ElementCount(shape)
		if err != nil {
			return nil, err
		}
		return tensor.FromStrings(make([]string, n)), nil
	}
	size, err := tensor.ByteSize(d, shape)
	if err != nil {
		return nil, err
	}
	return make([]byte, size), nil
}

// validate checks inputs against the configuration and returns them in the
// session's input order, with the batch size (1 without a batch dimension).
// checkSession made sure the session's inputs are the configured ones.
func (v *Version) validate(inputs []tensor.Tensor) ([]tensor.Tensor, int64, error) {
	cfg := v.Model.Config
	specs := cfg.GetInputs()
	if len(inputs) != len(specs) {
		return nil, 0, invalid("model %q takes %d inputs (%s), the request has %d", v.Model.Name, len(specs), tensorNames(specs), len(inputs))
	}
	ordered := make([]tensor.Tensor, len(specs))
	var batch int64 = -1
	batchFrom := ""
	for i, in := range inputs {
		name := in.Name
		if name == "" {
			if len(specs) != 1 {
				return nil, 0, invalid("input %d has no name; model %q takes inputs %s", i, v.Model.Name, tensorNames(specs))
			}
			name = specs[0].GetName()
		}
		j := slices.IndexFunc(specs, func(s *predv1.TensorSpec) bool { return s.GetName() == name })
		if j < 0 {
			return nil, 0, invalid("unknown input %q; model %q takes %s", name, v.Model.Name, tensorNames(specs))
		}
		if ordered[j].Name != "" {
			return nil, 0, invalid("input %q is given twice", name)
		}
		b, err := v.checkTensor(specs[j], in)
		if err != nil {
			return nil, 0, err
		}
		if batch >= 0 && b != batch {
			return nil, 0, invalid("input %q has batch size %d but input %q has %d; all inputs must share the batch size", name, b, batchFrom, batch)
		}
		batch, batchFrom = b, name
		in.Name = name
		ordered[j] = in
	}
	if v.inputOrder != nil {
		byConfig := ordered
		ordered = make([]tensor.Tensor, len(byConfig))
		for i, j := range v.inputOrder {
			ordered[i] = byConfig[j]
		}
	}
	return ordered, batch, nil
}

// checkTensor checks one input against its spec and returns its batch size.
func (v *Version) checkTensor(spec *predv1.TensorSpec, in tensor.Tensor) (int64, error) {
	name := spec.GetName()
	mbs := int64(v.Model.Config.GetMaxBatchSize())
	if !tensor.Supported(in.DType) {
		return 0, invalid("input %q: dtype %v is not supported; model %q expects %v", name, in.DType, v.Model.Name, spec.GetDtype())
	}
	if in.DType != spec.GetDtype() {
		return 0, invalid("input %q: dtype is %v, model %q expects %v", name, in.DType, v.Model.Name, spec.GetDtype())
	}
	// The element ceiling comes before the size arithmetic below, so no
	// shape can overflow it.
	n, err := tensor.ElementCount(in.Shape)
	if err != nil {
		return 0, invalid("input %q: %v", name, err)
	}
	want := spec.GetShape()
	expected := expectedShape(want, mbs)
	dims := in.Shape
	batch := int64(1)
	if mbs > 0 {
		if len(in.Shape) != len(want)+1 {
			return 0, invalid("input %q: shape %v has rank %d, model %q expects rank %d: %s", name, in.Shape, len(in.Shape), v.Model.Name, len(want)+1, expected)
		}
		batch, dims = in.Shape[0], in.Shape[1:]
		if batch < 1 || batch > mbs {
			return 0, invalid("input %q: batch size %d (shape %v) is outside 1..%d (max_batch_size of model %q)", name, batch, in.Shape, mbs, v.Model.Name)
		}
	} else if len(in.Shape) != len(want) {
		return 0, invalid("input %q: shape %v has rank %d, model %q expects rank %d: %s", name, in.Shape, len(in.Shape), v.Model.Name, len(want), expected)
	}
	for i, d := range dims {
		axis := i
		if mbs > 0 {
			axis++
		}
		if w := want[i]; w == -1 && d < 1 {
			return 0, invalid("input %q: dimension %d of shape %v is %d; it must be at least 1: %s", name, axis, in.Shape, d, expected)
		} else if w != -1 && d != w {
			return 0, invalid("input %q: dimension %d of shape %v is %d, model %q expects %d: %s", name, axis, in.Shape, d, v.Model.Name, w, expected)
		}
	}
	if tensor.IsString(in.DType) {
		return batch, checkStrings(name, in, n)
	}
	size := n * int64(tensor.ElementSize(in.DType))
	if int64(len(in.Data)) != size {
		return 0, invalid("input %q: raw_data has %d bytes; shape %v of %v (%d bytes each) needs %d",
			name, len(in.Data), in.Shape, in.DType, tensor.ElementSize(in.DType), size)
	}
	return batch, nil
}

// checkStrings checks the n elements of a STRING input. ONNX Runtime's C
// API takes strings NUL-terminated, so an element with a NUL byte would
// reach the model cut short: it is refused instead.
func checkStrings(name string, in tensor.Tensor, n int64) error {
	var nul error
	err := tensor.EachString(in.Data, n, func(i int, s []byte) error {
		if bytes.IndexByte(s, 0) >= 0 {
			nul = invalid("input %q: STRING element %d contains a NUL byte, which ONNX Runtime cannot take", name, i)
			return nul
		}
		return nil
	})
	if nul != nil {
		return nul
	}
	if err != nil {
		return invalid("input %q: shape %v of %v: %v", name, in.Shape, in.DType, err)
	}
	return nil
}

// expectedShape describes the shape an input must have, e.g.
// "expected [N 3 224 224] with 1 <= N <= 8".
func expectedShape(dims []int64, mbs int64) string {
	parts := make([]string, 0, len(dims)+1)
	if mbs > 0 {
		parts = append(parts, "N")
	}
	for _, d := range dims {
		if d == -1 {
			parts = append(parts, "*")
		} else {
			parts = append(parts, fmt.Sprint(d))
		}
	}
	s := "expected [" + strings.Join(parts, " ") + "]"
	if mbs > 0 {
		s += fmt.Sprintf(" with 1 <= N <= %d", mbs)
	}
	return s
}

func invalid(format string, args ...any) error {
	return status.Errorf(codes.InvalidArgument, format, args...)
}

func tensorNames(specs []*predv1.TensorSpec) string {
	names := make([]string, len(specs))
	for i, s := range specs {
		names[i] = fmt.Sprintf("%q", s.GetName())
	}
	return "[" + strings.Join(names, ", ") + "]"
}

// checkSession checks that the model file has exactly the configured
// inputs, and the configured outputs, with matching types and shapes.
func checkSession(cfg *predv1.ModelConfig, sess *ortrt.Session) error {
	mbs := cfg.GetMaxBatchSize()
	var errs []error
	if len(sess.Inputs()) != len(cfg.GetInputs()) {
		errs = append(errs, fmt.Errorf("the model has inputs %v, the config lists %s", infoNames(sess.Inputs()), tensorNames(cfg.GetInputs())))
	}
	for _, spec := range cfg.GetInputs() {
		errs = append(errs, checkTensorInfo("input", spec, sess.Inputs(), mbs))
	}
	for _, spec := range cfg.GetOutputs() {
		errs = append(errs, checkTensorInfo("output", spec, sess.Outputs(), mbs))
	}
	return errors.Join(errs...)
}

func checkTensorInfo(kind string, spec *predv1.TensorSpec, infos []ortrt.TensorInfo, mbs int32) error {
	i := slices.IndexFunc(infos, func(t ortrt.TensorInfo) bool { return t.Name == spec.GetName() })
	if i < 0 {
		return fmt.Errorf("the model has no %s %q (it has %v)", kind, spec.GetName(), infoNames(infos))
	}
	info := infos[i]
	if info.DType != spec.GetDtype() {
		return fmt.Errorf("%s %q: the model's dtype is %v, the config says %v", kind, spec.GetName(), info.DType, spec.GetDtype())
	}
	dims := info.Shape
	if mbs > 0 {
		if len(dims) == 0 {
			return fmt.Errorf("%s %q: the model's shape is a scalar, but max_batch_size %d needs a batch dimension", kind, spec.GetName(), mbs)
		}
		if b := dims[0]; b != -1 && !(b == 1 && mbs == 1) {
			return fmt.Errorf("%s %q: the model fixes the first dimension at %d, so it cannot run batches of up to %d; export it with a dynamic batch dimension or set max_batch_size to 0 and list the full shape", kind, spec.GetName(), b, mbs)
		}
		dims = dims[1:]
	}
	if len(dims) != len(spec.GetShape()) {
		return fmt.Errorf("%s %q: the model's shape %v has rank %d, the config's shape %v (batch dimension excluded) rank %d", kind, spec.GetName(), info.Shape, len(info.Shape), spec.GetShape(), len(spec.GetShape()))
	}
	for j, d := range dims {
		if w := spec.GetShape()[j]; d != -1 && w != -1 && d != w {
			return fmt.Errorf("%s %q: the model's shape is %v, the config's %v (batch dimension excluded)", kind, spec.GetName(), info.Shape, spec.GetShape())
		}
	}
	return nil
}

func infoNames(infos []ortrt.TensorInfo) []string {
	names := make([]string, len(infos))
	for i, t := range infos {
		names[i] = t.Name
	}
	return names
}
