// Package predservice implements pred's native gRPC API,
// prepred.pred.v1.PredService: raw tensor bytes in and out, model metadata
// with the preprocessing contract, the list of served models and a stream
// of their state changes.
//
// Shapes in ModelMetadata are full tensor shapes, as a request must send
// them: when max_batch_size > 0 the batch dimension is prepended as -1
// (the configuration lists shapes without it), the convention of the Open
// Inference Protocol's model metadata.
package predservice

import (
	"context"
	"strconv"
	"time"

	"go.uber.org/zap"
	"google.golang.org/grpc/status"

	predv1 "github.com/prepred/prepred/api/gen/prepred/pred/v1"
	"github.com/prepred/prepred/api/spec"
	"github.com/prepred/prepred/pred/internal/metrics"
	"github.com/prepred/prepred/pred/internal/registry"
	"github.com/prepred/prepred/pred/internal/requestlog"
	"github.com/prepred/prepred/pred/internal/tensor"
)

// Service implements predv1.PredServiceServer on a model registry.
type Service struct {
	predv1.UnimplementedPredServiceServer
	reg     *registry.Registry
	metrics *metrics.Metrics
	watch   *watchers
}

// New returns the service serving the models of reg and recording into m.
func New(reg *registry.Registry, m *metrics.Metrics) *Service {
	return &Service{reg: reg, metrics: m, watch: newWatchers(MaxWatchers)}
}

// Predict implements PredService.Predict.
func (s *Service) Predict(ctx context.Context, req *predv1.PredictRequest) (*predv1.PredictResponse, error) {
	start := time.Now()
	s.metrics.InFlight.Inc()
	defer s.metrics.InFlight.Dec()
	requestlog.AddFields(ctx, zap.String("model", req.GetModel()), zap.Int64("version", req.GetVersion()))

	var model, version string // metric labels: set once a served version is resolved
	resp, err := s.predict(ctx, req, &model, &version)
	s.metrics.Requests.WithLabelValues(model, version, status.Code(err).String()).Inc()
	if err == nil {
		s.metrics.Duration.WithLabelValues(model, version).Observe(time.Since(start).Seconds())
	}
	return resp, err
}

func (s *Service) predict(ctx context.Context, req *predv1.PredictRequest, model, version *string) (*predv1.PredictResponse, error) {
	v, release, err := s.reg.Acquire(req.GetModel(), req.GetVersion())
	if err != nil {
		return nil, err
	}
	defer release()
	*model, *version = v.Model.Name, strconv.FormatInt(v.Number, 10)
	if err := v.CheckFingerprint(req.GetSpecFingerprint()); err != nil {
		return nil, err
	}
	inputs := make([]tensor.Tensor, len(req.GetInputs()))
	for i, in := range req.GetInputs() {
		// Data aliases the request's bytes: no copy on the way to the model.
		inputs[i] = tensor.Tensor{Name: in.GetName(), DType: in.GetDtype(), Shape: in.GetShape(), Data: in.GetRawData()}
	}
	outs, err := v.Predict(ctx, inputs)
	if err != nil {
		return nil, err
	}
	resp := &predv1.PredictResponse{Model: v.Model.Name, Version: v.Number, Outputs: make([]*predv1.Tensor, len(outs))}
	for i, o := range outs {
		resp.Outputs[i] = &predv1.Tensor{Name: o.Name, Dtype: o.DType, Shape: o.Shape, RawData: o.Data}
	}
	return resp, nil
}

// ModelMetadata implements PredService.ModelMetadata.
func (s *Service) ModelMetadata(ctx context.Context, req *predv1.ModelMetadataRequest) (*predv1.ModelMetadataResponse, error) {
	requestlog.AddFields(ctx, zap.String("model", req.GetModel()), zap.Int64("version", req.GetVersion()))
	v, release, err := s.reg.Acquire(req.GetModel(), req.GetVersion())
	if err != nil {
		return nil, err
	}
	defer release()
	m := v.Model
	cfg := m.Config
	var detection *predv1.Detection
	if spec.IsDetector(cfg.GetOutputKind()) {
		detection = spec.Detection(cfg.GetDetection())
	}
	return &predv1.ModelMetadataResponse{
		Model:           m.Name,
		Version:         v.Number,
		Versions:        s.reg.ReadyVersions(m),
		Inputs:          m.Inputs(),
		Outputs:         m.Outputs(),
		Labels:          m.Labels,
		Preprocess:      cfg.GetPreprocess(),
		SpecFingerprint: m.Fingerprint,
		MaxBatchSize:    cfg.GetMaxBatchSize(),
		OutputKind:      cfg.GetOutputKind(),
		Detection:       detection,
	}, nil
}

// ListModels implements PredService.ListModels.
func (s *Service) ListModels(context.Context, *predv1.ListModelsRequest) (*predv1.ListModelsResponse, error) {
	states := s.reg.List()
	resp := &predv1.ListModelsResponse{Models: make([]*predv1.ModelVersionState, len(states))}
	for i, st := range states {
		resp.Models[i] = versionState(st)
	}
	return resp, nil
}

// check that the service keeps implementing the generated interface.
var _ predv1.PredServiceServer = (*Service)(nil)
