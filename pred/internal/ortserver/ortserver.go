// Package ortserver makes pred a drop-in replacement for the (deprecated)
// ONNX Runtime Server: its gRPC service onnxruntime.server.PredictionService
// and its HTTP endpoint
//
//	POST /v1/models/{model}[/versions/{version}]:predict
//
// with a PredictRequest as JSON (application/json) or binary protobuf
// (application/octet-stream, application/x-protobuf,
// application/vnd.google.protobuf), answered in the type the client
// accepts. Inputs and outputs are ONNX TensorProtos keyed by name; outputs
// carry raw_data, except STRING outputs, which carry string_data (ONNX
// allows no raw_data for STRING).
//
// ONNX Runtime Server served one model, so its requests name none: over
// gRPC, pred runs the model named in the metadata keys "model-name" (and
// "model-version"), else the default model (pred's --default-model, else
// the only model served). Over HTTP, the URL's model is used when pred
// serves it; otherwise the default model, as ONNX Runtime Server ignored
// the name.
package ortserver

import (
	"context"
	"maps"
	"slices"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	onnxpb "github.com/prepred/prepred/api/gen/onnx"
	ortserverpb "github.com/prepred/prepred/api/gen/onnxruntime/server"
	"github.com/prepred/prepred/pred/internal/infer"
	"github.com/prepred/prepred/pred/internal/tensor"
)

// gRPC metadata keys that choose the model.
const (
	ModelNameKey    = "model-name"
	ModelVersionKey = "model-version"
)

// Options configure a Service.
type Options struct {
	// DefaultModel is the model requests that name none run; empty means
	// the only model served.
	DefaultModel string
}

// Service implements ortserverpb.PredictionServiceServer and, through
// HTTPHandler, the HTTP endpoint.
type Service struct {
	ortserverpb.UnimplementedPredictionServiceServer
	run  *infer.Runner
	opts Options
}

// New returns the service running requests on run.
func New(run *infer.Runner, o Options) *Service {
	return &Service{run: run, opts: o}
}

// Predict implements PredictionService.Predict.
func (s *Service) Predict(ctx context.Context, req *ortserverpb.PredictRequest) (*ortserverpb.PredictResponse, error) {
	var model, version string
	if md, ok := metadata.FromIncomingContext(ctx); ok {
		if v := md.Get(ModelNameKey); len(v) > 0 {
			model = v[0]
		}
		if v := md.Get(ModelVersionKey); len(v) > 0 {
			version = v[0]
		}
	}
	if model == "" {
		if version != "" {
			return nil, status.Errorf(codes.InvalidArgument, "metadata %s is set without %s", ModelVersionKey, ModelNameKey)
		}
		var err error
		if model, err = s.defaultModel(); err != nil {
			return nil, err
		}
	}
	v, err := infer.ParseVersion(version)
	if err != nil {
		return nil, err
	}
	return s.predict(ctx, model, v, req)
}

// defaultModel returns the model to run when the request names none.
func (s *Service) defaultModel() (string, error) {
	if s.opts.DefaultModel != "" {
		return s.opts.DefaultModel, nil
	}
	models := s.run.Models()
	switch len(models) {
	case 1:
		return models[0], nil
	case 0:
		return "", status.Error(codes.Unavailable, "pred serves no models")
	}
	return "", status.Errorf(codes.InvalidArgument,
		"the request names no model and pred serves %d (%s): set the gRPC metadata key %q to one, or start pred with --default-model",
		len(models), strings.Join(models, ", "), ModelNameKey)
}

// predict decodes the request, runs it on the model version and encodes
// the outputs.
func (s *Service) predict(ctx context.Context, model string, version int64, req *ortserverpb.PredictRequest) (*ortserverpb.PredictResponse, error) {
	// Map order is random; sort the names so that errors are reproducible.
	names := slices.Sorted(maps.Keys(req.GetInputs()))
	inputs := make([]tensor.Tensor, len(names))
	for i, name := range names {
		t, err := DecodeTensor(req.GetInputs()[name])
		if err != nil {
			return nil, status.Errorf(codes.InvalidArgument, "input %q: %v", name, err)
		}
		t.Name = name
		inputs[i] = t
	}
	resp, err := s.run.Run(ctx, infer.Request{Model: model, Version: version, Inputs: inputs, Outputs: req.GetOutputFilter()})
	if err != nil {
		return nil, err
	}
	out := &ortserverpb.PredictResponse{Outputs: make(map[string]*onnxpb.TensorProto, len(resp.Outputs))}
	for _, o := range resp.Outputs {
		tp, err := EncodeTensor(o)
		if err != nil {
			return nil, status.Errorf(codes.Internal, "output %q: %v", o.Name, err)
		}
		out.Outputs[o.Name] = tp
	}
	return out, nil
}

// check that the service keeps implementing the generated interface.
var _ ortserverpb.PredictionServiceServer = (*Service)(nil)
