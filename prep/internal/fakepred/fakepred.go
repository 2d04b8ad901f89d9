// Package fakepred is an in-process PredService for prep's tests: it
// announces whatever metadata a test sets and answers Predict with a
// function the test provides, on a real loopback gRPC server.
package fakepred

import (
	"context"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	predv1 "github.com/prepred/prepred/api/gen/prepred/pred/v1"
	"github.com/prepred/prepred/api/spec"
	"github.com/prepred/prepred/pred/predtest"
)

// PredictFunc answers one Predict call.
type PredictFunc func(ctx context.Context, req *predv1.PredictRequest) (*predv1.PredictResponse, error)

// Server is a fake pred listening on 127.0.0.1.
type Server struct {
	predv1.UnimplementedPredServiceServer
	// Addr is the "host:port" the server listens on.
	Addr string

	srv *grpc.Server

	mu          sync.Mutex
	metadata    *predv1.ModelMetadataResponse
	metadataErr error
	// extra holds the models added with AddModel, by name.
	extra      map[string]*predv1.ModelMetadataResponse
	predict    PredictFunc
	requests   []*predv1.PredictRequest
	requestIDs []string
	deadlines  []time.Duration
	metaCalls  int
}

// Start starts a Server on 127.0.0.1:0 that announces md and stops it when
// the test ends.
func Start(tb testing.TB, md *predv1.ModelMetadataResponse) *Server {
	tb.Helper()
	return StartAt(tb, "127.0.0.1:0", md)
}

// StartAt is Start on the given address.
func StartAt(tb testing.TB, addr string, md *predv1.ModelMetadataResponse) *Server {
	tb.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		tb.Fatalf("fakepred: listen: %v", err)
	}
	s := &Server{Addr: ln.Addr().String(), srv: grpc.NewServer(), metadata: md}
	predv1.RegisterPredServiceServer(s.srv, s)
	go func() { _ = s.srv.Serve(ln) }()
	tb.Cleanup(s.Stop)
	return s
}

// ClosedAddr returns a loopback address nothing listens on: where a pred
// that is down would be.
func ClosedAddr(tb testing.TB) string {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatalf("fakepred: listen: %v", err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	return addr
}

// Stop stops the server at once, failing calls in flight.
func (s *Server) Stop() { s.srv.Stop() }

// SetMetadata changes what ModelMetadata answers; err, if not nil, is
// returned instead.
func (s *Server) SetMetadata(md *predv1.ModelMetadataResponse, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.metadata, s.metadataErr = md, err
}

// AddModel makes the server announce md too, besides the model Start was
// given; the default Predict answers it as for that one.
func (s *Server) AddModel(md *predv1.ModelMetadataResponse) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.extra == nil {
		s.extra = make(map[string]*predv1.ModelMetadataResponse)
	}
	s.extra[md.GetModel()] = md
}

// lookup returns the metadata of model; s.mu must be held.
func (s *Server) lookup(model string) *predv1.ModelMetadataResponse {
	if s.metadata != nil && s.metadata.GetModel() == model {
		return s.metadata
	}
	return s.extra[model]
}

// SetPredict sets how Predict answers.
func (s *Server) SetPredict(f PredictFunc) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.predict = f
}

// Requests returns the Predict requests received so far and the
// x-request-id metadata of each.
func (s *Server) Requests() ([]*predv1.PredictRequest, []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]*predv1.PredictRequest(nil), s.requests...), append([]string(nil), s.requestIDs...)
}

// Deadlines returns, for each Predict request received, the time that was
// left until its deadline when it arrived (0 for none).
func (s *Server) Deadlines() []time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]time.Duration(nil), s.deadlines...)
}

// MetadataCalls returns how many ModelMetadata calls were answered.
func (s *Server) MetadataCalls() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.metaCalls
}

// ModelMetadata implements PredService.
func (s *Server) ModelMetadata(_ context.Context, req *predv1.ModelMetadataRequest) (*predv1.ModelMetadataResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.metaCalls++
	if s.metadataErr != nil {
		return nil, s.metadataErr
	}
	md := s.lookup(req.GetModel())
	if md == nil {
		return nil, status.Errorf(codes.NotFound, "unknown model %q", req.GetModel())
	}
	if v := req.GetVersion(); v != 0 && v != md.GetVersion() {
		return nil, status.Errorf(codes.NotFound, "model %q has no version %d", req.GetModel(), v)
	}
	return proto.Clone(md).(*predv1.ModelMetadataResponse), nil
}

// ListModels implements PredService: every announced model, READY.
func (s *Server) ListModels(context.Context, *predv1.ListModelsRequest) (*predv1.ListModelsResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	resp := &predv1.ListModelsResponse{}
	mds := []*predv1.ModelMetadataResponse{s.metadata}
	for _, md := range s.extra {
		mds = append(mds, md)
	}
	for _, md := range mds {
		if md != nil {
			resp.Models = append(resp.Models, &predv1.ModelVersionState{Model: md.GetModel(), Version: md.GetVersion(), State: "READY"})
		}
	}
	slices.SortFunc(resp.Models, func(a, b *predv1.ModelVersionState) int { return strings.Compare(a.GetModel(), b.GetModel()) })
	return resp, nil
}

// Predict implements PredService: it records the request and answers with
// the PredictFunc (by default: a fingerprint check, then Logits(0...)).
func (s *Server) Predict(ctx context.Context, req *predv1.PredictRequest) (*predv1.PredictResponse, error) {
	var id string
	if md, ok := metadata.FromIncomingContext(ctx); ok {
		if v := md.Get("x-request-id"); len(v) > 0 {
			id = v[0]
		}
	}
	var left time.Duration
	if dl, ok := ctx.Deadline(); ok {
		left = time.Until(dl)
	}
	s.mu.Lock()
	s.requests = append(s.requests, proto.Clone(req).(*predv1.PredictRequest))
	s.requestIDs = append(s.requestIDs, id)
	s.deadlines = append(s.deadlines, left)
	f, md := s.predict, s.lookup(req.GetModel())
	s.mu.Unlock()
	if f != nil {
		return f(ctx, req)
	}
	if md == nil {
		return nil, status.Errorf(codes.NotFound, "unknown model %q", req.GetModel())
	}
	if fp := md.GetSpecFingerprint(); req.GetSpecFingerprint() != fp {
		return nil, status.Errorf(codes.FailedPrecondition, "spec fingerprint %q does not match the model's %q", req.GetSpecFingerprint(), fp)
	}
	n := int64(1)
	for _, d := range md.GetOutputs()[0].GetShape() {
		n *= max(d, 1) // one item of a batch
	}
	items := batchOf(req)
	return AnswerBatch(md, items, make([]float32, int64(items)*n)), nil
}

// batchOf returns the number of items of req's first input: its first
// dimension when it has four.
func batchOf(req *predv1.PredictRequest) int {
	if shape := req.GetInputs()[0].GetShape(); len(shape) == 4 {
		return int(shape[0])
	}
	return 1
}

// Answer builds a PredictResponse carrying values as md's first output for
// one item.
func Answer(md *predv1.ModelMetadataResponse, values []float32) *predv1.PredictResponse {
	return AnswerBatch(md, 1, values)
}

// AnswerBatch builds a PredictResponse carrying values as md's first output
// for n items, len(values)/n values each.
func AnswerBatch(md *predv1.ModelMetadataResponse, n int, values []float32) *predv1.PredictResponse {
	out := md.GetOutputs()[0]
	return &predv1.PredictResponse{
		Model:   md.GetModel(),
		Version: md.GetVersion(),
		Outputs: []*predv1.Tensor{{
			Name:    out.GetName(),
			Dtype:   predv1.DataType_DATA_TYPE_FLOAT32,
			Shape:   []int64{int64(n), int64(len(values) / max(n, 1))},
			RawData: predtest.Float32Bytes(values),
		}},
	}
}

// ColorsSpec is the preprocess spec of the colors test model: RGB, squash
// to 32x32 bilinear, ImageNet mean/std.
func ColorsSpec() *predv1.PreprocessSpec {
	return &predv1.PreprocessSpec{
		SchemaVersion: spec.SchemaVersion,
		Input:         "input",
		ColorOrder:    predv1.ColorOrder_COLOR_ORDER_RGB,
		ResizeMode:    predv1.ResizeMode_RESIZE_MODE_SQUASH,
		Interpolation: predv1.Interpolation_INTERPOLATION_BILINEAR,
		Width:         32,
		Height:        32,
		Scale:         1.0 / 255,
		Mean:          []float32{0.485, 0.456, 0.406},
		Std:           []float32{0.229, 0.224, 0.225},
		Layout:        predv1.Layout_LAYOUT_NCHW,
		Dtype:         predv1.DataType_DATA_TYPE_FLOAT32,
	}
}

// ColorLabels are the labels of the colors test model, in output order.
var ColorLabels = []string{"black", "white", "red", "green", "blue", "yellow", "cyan", "magenta", "gray"}

// colorCenters are the RGB values of ColorLabels.
var colorCenters = [][3]float64{{0, 0, 0}, {255, 255, 255}, {255, 0, 0}, {0, 255, 0}, {0, 0, 255}, {255, 255, 0}, {0, 255, 255}, {255, 0, 255}, {128, 128, 128}}

// ColorsModel computes what the colors test model computes: from the
// per-channel means m of each [3,H,W] image of the [N,3,H,W] input, the
// logit of color k is 2*n_k·m - |n_k|^2 where n_k is the color's
// normalized center, so the nearest color wins.
func ColorsModel(md *predv1.ModelMetadataResponse) PredictFunc {
	return func(_ context.Context, req *predv1.PredictRequest) (*predv1.PredictResponse, error) {
		raw := req.GetInputs()[0].GetRawData()
		items := batchOf(req)
		plane := len(raw) / 4 / 3 / max(items, 1)
		if items < 1 || plane == 0 || len(raw) != 4*3*plane*items {
			return nil, status.Errorf(codes.InvalidArgument, "input has %d bytes for %d images", len(raw), items)
		}
		values := predtest.Float32s(raw)
		s := md.GetPreprocess()
		logits := make([]float32, 0, items*len(colorCenters))
		for i := range items {
			img := values[i*3*plane : (i+1)*3*plane]
			var m [3]float64
			for c := range 3 {
				for _, v := range img[c*plane : (c+1)*plane] {
					m[c] += float64(v)
				}
				m[c] /= float64(plane)
			}
			for _, center := range colorCenters {
				var dot, norm float64
				for c := range 3 {
					n := (center[c]/255 - float64(s.GetMean()[c])) / float64(s.GetStd()[c])
					dot += n * m[c]
					norm += n * n
				}
				logits = append(logits, float32(2*dot-norm))
			}
		}
		return AnswerBatch(md, items, logits), nil
	}
}

// ColorsMetadata is what pred announces for version 1 of the colors test
// model: shapes with the batch dimension as -1, a correct fingerprint.
func ColorsMetadata() *predv1.ModelMetadataResponse {
	s := ColorsSpec()
	fp, err := spec.Fingerprint(s)
	if err != nil {
		panic(err)
	}
	return &predv1.ModelMetadataResponse{
		Model:           "colors",
		Version:         1,
		Versions:        []int64{1},
		Inputs:          []*predv1.TensorSpec{{Name: "input", Dtype: predv1.DataType_DATA_TYPE_FLOAT32, Shape: []int64{-1, 3, 32, 32}}},
		Outputs:         []*predv1.TensorSpec{{Name: "output", Dtype: predv1.DataType_DATA_TYPE_FLOAT32, Shape: []int64{-1, int64(len(ColorLabels))}}},
		Labels:          append([]string(nil), ColorLabels...),
		Preprocess:      s,
		SpecFingerprint: fp,
		MaxBatchSize:    8,
		OutputKind:      predv1.OutputKind_OUTPUT_KIND_LOGITS,
	}
}
