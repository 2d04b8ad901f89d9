// Package infer is the protocol-neutral core of pred's standard protocol
// front ends (Open Inference Protocol over gRPC and REST, ONNX Runtime
// Server): each decodes its request into tensors and hands them here, and
// gets back the outputs, model metadata and readiness it encodes in its own
// format. It resolves the model version in the registry, checks requested
// outputs, records the metrics and the request's log fields, and maps
// errors to HTTP statuses for the REST front ends.
package infer

import (
	"context"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	predv1 "github.com/prepred/prepred/api/gen/prepred/pred/v1"
	"github.com/prepred/prepred/pred/internal/classify"
	"github.com/prepred/prepred/pred/internal/metrics"
	"github.com/prepred/prepred/pred/internal/registry"
	"github.com/prepred/prepred/pred/internal/requestlog"
	"github.com/prepred/prepred/pred/internal/tensor"
)

// Runner runs inference requests on the models of a registry.
type Runner struct {
	reg     *registry.Registry
	metrics *metrics.Metrics
}

// New returns a runner on reg that records into m (nil: no metrics).
func New(reg *registry.Registry, m *metrics.Metrics) *Runner {
	return &Runner{reg: reg, metrics: m}
}

// Request is one inference request.
type Request struct {
	Model string
	// Version 0 means the highest ready version.
	Version int64
	// Fingerprint, if set, must match the model's spec fingerprint.
	Fingerprint string
	Inputs      []tensor.Tensor
	// Outputs names the outputs to return, in the order to return them;
	// empty returns every output in the configured order.
	Outputs []string
	// Classification maps requested outputs to the number of classes K
	// of Triton's classification extension: such an output comes back as
	// its top K per item (see package classify).
	Classification map[string]int64
}

// Response is the result of an inference request.
type Response struct {
	Model   string
	Version int64
	Outputs []tensor.Tensor
}

// Run resolves the model version, checks the requested outputs and runs
// the model. Errors carry gRPC status codes.
func (r *Runner) Run(ctx context.Context, req Request) (*Response, error) {
	start := time.Now()
	if r.metrics != nil {
		r.metrics.InFlight.Inc()
		defer r.metrics.InFlight.Dec()
	}
	requestlog.AddFields(ctx, zap.String("model", req.Model), zap.Int64("version", req.Version))
	var model, version string // metric labels: set once a served version is resolved
	resp, err := r.run(ctx, req, &model, &version)
	if r.metrics != nil {
		r.metrics.Requests.WithLabelValues(model, version, status.Code(err).String()).Inc()
		if err == nil {
			r.metrics.Duration.WithLabelValues(model, version).Observe(time.Since(start).Seconds())
		}
	}
	return resp, err
}

func (r *Runner) run(ctx context.Context, req Request, model, version *string) (*Response, error) {
	v, release, err := r.reg.Acquire(req.Model, req.Version)
	if err != nil {
		return nil, err
	}
	defer release()
	*model, *version = v.Model.Name, strconv.FormatInt(v.Number, 10)
	if err := v.CheckFingerprint(req.Fingerprint); err != nil {
		return nil, err
	}
	specs := v.Model.Config.GetOutputs()
	pick, err := selectOutputs(v.Model.Name, specs, req.Outputs)
	if err != nil {
		return nil, err
	}
	outs, err := v.Predict(ctx, req.Inputs)
	if err != nil {
		return nil, err
	}
	if len(outs) != len(specs) {
		return nil, status.Errorf(codes.Internal, "model %q version %d returned %d outputs for %d configured", v.Model.Name, v.Number, len(outs), len(specs))
	}
	if pick != nil {
		picked := make([]tensor.Tensor, len(pick))
		for i, j := range pick {
			picked[i] = outs[j]
		}
		outs = picked
	}
	for i, o := range outs {
		if k, ok := req.Classification[o.Name]; ok {
			if outs[i], err = classify.TopK(o, k, v.Model.Config.GetMaxBatchSize() > 0, v.Model.Labels); err != nil {
				return nil, err
			}
		}
	}
	return &Response{Model: v.Model.Name, Version: v.Number, Outputs: outs}, nil
}

// selectOutputs returns, for each requested name, its index among the
// configured outputs; nil when every output is wanted.
func selectOutputs(model string, specs []*predv1.TensorSpec, names []string) ([]int, error) {
	if len(names) == 0 {
		return nil, nil
	}
	pick := make([]int, len(names))
	for i, name := range names {
		j := slices.IndexFunc(specs, func(s *predv1.TensorSpec) bool { return s.GetName() == name })
		if j < 0 {
			return nil, status.Errorf(codes.InvalidArgument, "unknown output %q; model %q has outputs %s", name, model, specNames(specs))
		}
		if slices.Contains(pick[:i], j) {
			return nil, status.Errorf(codes.InvalidArgument, "output %q is requested twice", name)
		}
		pick[i] = j
	}
	return pick, nil
}

func specNames(specs []*predv1.TensorSpec) string {
	names := make([]string, len(specs))
	for i, s := range specs {
		names[i] = strconv.Quote(s.GetName())
	}
	return "[" + strings.Join(names, ", ") + "]"
}

// Metadata describes a model version for the protocols' metadata calls.
type Metadata struct {
	Model    string
	Version  int64
	Platform string
	// Versions are the model's ready versions, ascending.
	Versions []int64
	// Inputs and Outputs have full shapes: with max_batch_size > 0 the
	// batch dimension is prepended as -1, as the native ModelMetadata does.
	Inputs  []*predv1.TensorSpec
	Outputs []*predv1.TensorSpec
}

// Metadata returns the metadata of a model version (0: the highest ready).
func (r *Runner) Metadata(model string, version int64) (*Metadata, error) {
	v, release, err := r.reg.Acquire(model, version)
	if err != nil {
		return nil, err
	}
	defer release()
	cfg := v.Model.Config
	return &Metadata{
		Model:    v.Model.Name,
		Version:  v.Number,
		Platform: cfg.GetPlatform(),
		Versions: r.reg.ReadyVersions(v.Model),
		Inputs:   v.Model.Inputs(),
		Outputs:  v.Model.Outputs(),
	}, nil
}

// Ready reports whether a model version (0: any) can serve requests. A
// model or version that is loading, failed or shutting down is not ready;
// an unknown one is an error (NotFound), as is an invalid request.
func (r *Runner) Ready(model string, version int64) (bool, error) {
	_, release, err := r.reg.Acquire(model, version)
	if status.Code(err) == codes.Unavailable {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	release()
	return true, nil
}

// Models returns the names of the models in the registry, sorted.
func (r *Runner) Models() []string {
	var names []string
	for _, s := range r.reg.List() {
		if !slices.Contains(names, s.Model) {
			names = append(names, s.Model)
		}
	}
	return names
}

// ParseVersion parses a protocol's version string: empty means 0 (the
// highest ready version), otherwise a positive decimal integer.
func ParseVersion(s string) (int64, error) {
	if s == "" {
		return 0, nil
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 1 {
		return 0, status.Errorf(codes.InvalidArgument, "model version %q is not a positive integer; leave it empty for the highest ready version", s)
	}
	return n, nil
}

// FormatVersion formats a version number as the protocols' version string.
func FormatVersion(n int64) string { return strconv.FormatInt(n, 10) }
