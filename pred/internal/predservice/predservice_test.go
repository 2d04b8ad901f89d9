package predservice_test

import (
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"math"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	inferencepb "github.com/prepred/prepred/api/gen/inference"
	predv1 "github.com/prepred/prepred/api/gen/prepred/pred/v1"
	"github.com/prepred/prepred/api/spec"
	"github.com/prepred/prepred/pred/internal/grpcserver"
	"github.com/prepred/prepred/pred/internal/infer"
	"github.com/prepred/prepred/pred/internal/metrics"
	"github.com/prepred/prepred/pred/internal/oip"
	"github.com/prepred/prepred/pred/internal/ortrt"
	"github.com/prepred/prepred/pred/internal/predservice"
	"github.com/prepred/prepred/pred/internal/registry"
	"github.com/prepred/prepred/pred/internal/repository"
	"github.com/prepred/prepred/pred/internal/tensor"
	"github.com/prepred/prepred/pred/internal/testmodels"
	"github.com/prepred/prepred/pred/predtest"
)

// fixture is one pred service on loopback, shared by the package's tests
// and benchmarks (ONNX Runtime has one environment per process) and torn
// down by TestMain.
type fixture struct {
	rt      *ortrt.Runtime
	reg     *registry.Registry
	metrics *metrics.Metrics
	srv     *grpcserver.Server
	logs    *observer.ObservedLogs
	conn    *grpc.ClientConn
	client  predv1.PredServiceClient
	// oip is the Open Inference Protocol client on the same server, for
	// benchmarks that compare the protocols.
	oip inferencepb.GRPCInferenceServiceClient
	// configs are the generated models' configurations, read independently
	// of the server.
	configs map[string]*predv1.ModelConfig
	// repo is the fixture's model repository: the generated models and
	// the test models of every element type (testmodels.DTypes).
	repo string
}

var (
	fixOnce sync.Once
	fix     *fixture
	fixErr  error
)

func setup(tb testing.TB) *fixture {
	tb.Helper()
	lib, repo := predtest.ORTLibrary(tb), predtest.ModelRepository(tb)
	work := filepath.Join(predtest.RepoRoot(tb), ".cache", "predtest")
	fixOnce.Do(func() { fix, fixErr = newFixture(lib, repo, work) })
	if fixErr != nil {
		tb.Fatal(fixErr)
	}
	return fix
}

// newFixture serves the models of repo and the test models from a
// repository it makes in work, a directory on repo's file system.
func newFixture(lib, repo, work string) (*fixture, error) {
	f := &fixture{configs: map[string]*predv1.ModelConfig{}, metrics: metrics.New()}
	for _, name := range []string{"colors", "resnet50", "squares"} {
		text, err := os.ReadFile(filepath.Join(repo, name, repository.ConfigTextFile))
		if err != nil {
			return nil, err
		}
		if f.configs[name], err = repository.ParseConfig(text, false); err != nil {
			return nil, err
		}
	}
	var err error
	// On the shared repository's file system, so that its models can be
	// hard links (the repository refuses symbolic links that leave it).
	if err := os.MkdirAll(work, 0o755); err != nil {
		return nil, err
	}
	if f.repo, err = os.MkdirTemp(work, "predservice-models-"); err != nil {
		return nil, err
	}
	for name := range f.configs {
		if err := linkTree(filepath.Join(repo, name), filepath.Join(f.repo, name)); err != nil {
			return nil, err
		}
	}
	if err := testmodels.Write(f.repo, testmodels.DTypes); err != nil {
		return nil, err
	}
	if f.rt, err = ortrt.New(lib); err != nil {
		return nil, err
	}
	core, logs := observer.New(zapcore.DebugLevel)
	f.logs = logs
	log := zap.New(core)
	f.reg = registry.New(f.rt, registry.Options{Logger: log})
	if err := f.reg.Load(context.Background(), f.repo); err != nil {
		return nil, err
	}
	f.srv = grpcserver.New(log,
		grpcserver.Service{Desc: &predv1.PredService_ServiceDesc, Impl: predservice.New(f.reg, f.metrics)},
		grpcserver.Service{Desc: &inferencepb.GRPCInferenceService_ServiceDesc, Impl: oip.New(infer.New(f.reg, nil), oip.Options{})},
	)
	f.srv.SetServing(true)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	go f.srv.Serve(lis)
	f.conn, err = grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil, err
	}
	f.client = predv1.NewPredServiceClient(f.conn)
	f.oip = inferencepb.NewGRPCInferenceServiceClient(f.conn)
	return f, nil
}

// linkTree recreates the directory tree src at dst with hard links.
func linkTree(src, dst string) error {
	return filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, path)
		if err != nil {
			return err
		}
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(dst, rel), 0o755)
		}
		return os.Link(path, filepath.Join(dst, rel))
	})
}

func (f *fixture) close() error {
	f.conn.Close()
	f.srv.Shutdown(time.Second)
	if err := f.reg.Close(context.Background()); err != nil {
		return err
	}
	if err := os.RemoveAll(f.repo); err != nil {
		return err
	}
	return f.rt.Close()
}

func TestMain(m *testing.M) {
	code := m.Run()
	if fix != nil {
		if err := fix.close(); err != nil {
			fmt.Fprintln(os.Stderr, "teardown:", err)
			code = 1
		}
	}
	os.Exit(code)
}

func ctx(tb testing.TB) context.Context {
	c, cancel := context.WithTimeout(context.Background(), time.Minute)
	tb.Cleanup(cancel)
	return c
}

// colorsRequest asks the colors model about constant-color images, with
// the fingerprint of the spec the inputs were made with.
func (f *fixture) colorsRequest(t testing.TB, colors ...[3]uint8) *predv1.PredictRequest {
	s := f.configs["colors"].GetPreprocess()
	fp, err := spec.Fingerprint(s)
	if err != nil {
		t.Fatal(err)
	}
	return &predv1.PredictRequest{
		Model:           "colors",
		SpecFingerprint: fp,
		Inputs: []*predv1.Tensor{{
			Name:    "input",
			Dtype:   predv1.DataType_DATA_TYPE_FLOAT32,
			Shape:   []int64{int64(len(colors)), 3, int64(s.GetHeight()), int64(s.GetWidth())},
			RawData: predtest.ConstantImages(s, colors...),
		}},
	}
}

func TestPredictColors(t *testing.T) {
	f := setup(t)
	md, err := f.client.ModelMetadata(ctx(t), &predv1.ModelMetadataRequest{Model: "colors"})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		rgb  [3]uint8
		want string
	}{
		{[3]uint8{255, 0, 0}, "red"},
		{[3]uint8{240, 30, 20}, "red"},
		{[3]uint8{0, 0, 255}, "blue"},
		{[3]uint8{0, 0, 0}, "black"},
		{[3]uint8{255, 255, 255}, "white"},
		{[3]uint8{128, 128, 128}, "gray"},
		{[3]uint8{0, 200, 0}, "green"},
		{[3]uint8{250, 250, 0}, "yellow"},
	}
	var colors [][3]uint8
	for _, tt := range tests {
		colors = append(colors, tt.rgb)
	}
	// One image per request, then all of them as one batch of 8.
	for _, batch := range [][][3]uint8{colors[:1], colors[1:2], colors[2:3], colors[3:4], colors} {
		resp, err := f.client.Predict(ctx(t), f.colorsRequest(t, batch...))
		if err != nil {
			t.Fatalf("Predict: %v", err)
		}
		if resp.GetModel() != "colors" || resp.GetVersion() != 1 || len(resp.GetOutputs()) != 1 {
			t.Fatalf("response = %v", resp)
		}
		out := resp.GetOutputs()[0]
		if out.GetName() != "output" || out.GetDtype() != predv1.DataType_DATA_TYPE_FLOAT32 || !slices.Equal(out.GetShape(), []int64{int64(len(batch)), 9}) {
			t.Fatalf("output = %v %v %v", out.GetName(), out.GetDtype(), out.GetShape())
		}
		logits := predtest.Float32s(out.GetRawData())
		for i := range batch {
			got := md.GetLabels()[predtest.Argmax(logits[9*i:9*i+9])]
			if want := tests[slices.Index(colors, batch[i])].want; got != want {
				t.Errorf("%v: %s, want %s", batch[i], got, want)
			}
		}
	}
}

func TestPredictResNet50(t *testing.T) {
	f := setup(t)
	image := func(seed float64) []byte {
		v := make([]float32, 3*224*224)
		for i := range v {
			v[i] = float32(math.Cos(seed + float64(i)*0.0007))
		}
		return predtest.Float32Bytes(v)
	}
	a, b := image(0), image(2)
	predict := func(n int64, data []byte) []float32 {
		t.Helper()
		resp, err := f.client.Predict(ctx(t), &predv1.PredictRequest{
			Model:   "resnet50",
			Version: 1,
			Inputs:  []*predv1.Tensor{{Dtype: predv1.DataType_DATA_TYPE_FLOAT32, Shape: []int64{n, 3, 224, 224}, RawData: data}},
		})
		if err != nil {
			t.Fatalf("Predict batch %d: %v", n, err)
		}
		out := resp.GetOutputs()[0]
		if !slices.Equal(out.GetShape(), []int64{n, 1000}) {
			t.Fatalf("output shape %v, want [%d 1000]", out.GetShape(), n)
		}
		logits := predtest.Float32s(out.GetRawData())
		for i, x := range logits {
			if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
				t.Fatalf("logit %d is %v", i, x)
			}
		}
		return logits
	}
	la := predict(1, a)
	lb := predict(1, b)
	if slices.Equal(la, lb) {
		t.Error("two different images gave the same logits")
	}
	pair := predict(2, append(slices.Clone(a), b...))
	for i := range 1000 {
		if !near(pair[i], la[i]) || !near(pair[1000+i], lb[i]) {
			t.Fatalf("logit %d of the batch (%v, %v) differs from the single requests (%v, %v)", i, pair[i], pair[1000+i], la[i], lb[i])
		}
	}
}

func near(a, b float32) bool {
	return math.Abs(float64(a-b)) <= 1e-3*max(1, math.Abs(float64(b)))
}

func TestModelMetadata(t *testing.T) {
	f := setup(t)
	for _, name := range []string{"colors", "resnet50"} {
		t.Run(name, func(t *testing.T) {
			cfg := f.configs[name]
			md, err := f.client.ModelMetadata(ctx(t), &predv1.ModelMetadataRequest{Model: name})
			if err != nil {
				t.Fatal(err)
			}
			fp, err := spec.Fingerprint(cfg.GetPreprocess())
			if err != nil {
				t.Fatal(err)
			}
			if md.GetSpecFingerprint() != fp || !strings.HasPrefix(fp, "sha256:") {
				t.Errorf("spec_fingerprint = %q, want %q", md.GetSpecFingerprint(), fp)
			}
			if !proto.Equal(md.GetPreprocess(), cfg.GetPreprocess()) {
				t.Errorf("preprocess = %v, want %v", md.GetPreprocess(), cfg.GetPreprocess())
			}
			if md.GetModel() != name || md.GetVersion() != 1 || !slices.Equal(md.GetVersions(), []int64{1}) {
				t.Errorf("model %q version %d versions %v", md.GetModel(), md.GetVersion(), md.GetVersions())
			}
			if md.GetMaxBatchSize() != 8 || md.GetOutputKind() != predv1.OutputKind_OUTPUT_KIND_LOGITS {
				t.Errorf("max_batch_size %d output_kind %v", md.GetMaxBatchSize(), md.GetOutputKind())
			}
			// Shapes are full tensor shapes: the batch dimension is -1.
			in, out := cfg.GetInputs()[0], cfg.GetOutputs()[0]
			wantIn := &predv1.TensorSpec{Name: in.GetName(), Dtype: in.GetDtype(), Shape: append([]int64{-1}, in.GetShape()...)}
			wantOut := &predv1.TensorSpec{Name: out.GetName(), Dtype: out.GetDtype(), Shape: append([]int64{-1}, out.GetShape()...)}
			if len(md.GetInputs()) != 1 || !proto.Equal(md.GetInputs()[0], wantIn) {
				t.Errorf("inputs = %v, want [%v]", md.GetInputs(), wantIn)
			}
			if len(md.GetOutputs()) != 1 || !proto.Equal(md.GetOutputs()[0], wantOut) {
				t.Errorf("outputs = %v, want [%v]", md.GetOutputs(), wantOut)
			}
			if want := out.GetShape()[0]; int64(len(md.GetLabels())) != want {
				t.Errorf("%d labels, want %d", len(md.GetLabels()), want)
			}
		})
	}
	md, err := f.client.ModelMetadata(ctx(t), &predv1.ModelMetadataRequest{Model: "colors"})
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"black", "white", "red", "green", "blue", "yellow", "cyan", "magenta", "gray"}; !slices.Equal(md.GetLabels(), want) {
		t.Errorf("colors labels = %v, want %v", md.GetLabels(), want)
	}
	for _, req := range []*predv1.ModelMetadataRequest{{Model: "nosuch"}, {Model: "colors", Version: 4}} {
		if _, err := f.client.ModelMetadata(ctx(t), req); status.Code(err) != codes.NotFound {
			t.Errorf("ModelMetadata(%v) = %v, want NotFound", req, err)
		}
	}
}

func TestListModels(t *testing.T) {
	f := setup(t)
	resp, err := f.client.ListModels(ctx(t), &predv1.ListModelsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	fingerprint := func(name string) string {
		fp, err := spec.Fingerprint(f.configs[name].GetPreprocess())
		if err != nil {
			t.Fatal(err)
		}
		return fp
	}
	want := []*predv1.ModelVersionState{
		{Model: "colors", Version: 1, State: "READY", SpecFingerprint: fingerprint("colors")},
		{Model: testmodels.DTypes, Version: 1, State: "READY"},
		{Model: "resnet50", Version: 1, State: "READY", SpecFingerprint: fingerprint("resnet50")},
		{Model: "squares", Version: 1, State: "READY", SpecFingerprint: fingerprint("squares")},
	}
	if len(resp.GetModels()) != len(want) {
		t.Fatalf("models = %v, want %v", resp.GetModels(), want)
	}
	for i := range want {
		if !proto.Equal(resp.GetModels()[i], want[i]) {
			t.Errorf("models[%d] = %v, want %v", i, resp.GetModels()[i], want[i])
		}
	}
}

// TestPredictErrors sends malformed requests; each must fail with the
// right code and an actionable message, and the server must still answer
// a good request afterwards.
func TestPredictErrors(t *testing.T) {
	f := setup(t)
	edit := func(fn func(r *predv1.PredictRequest)) *predv1.PredictRequest {
		r := f.colorsRequest(t, [3]uint8{255, 0, 0})
		fn(r)
		return r
	}
	otherSpec := proto.Clone(f.configs["colors"].GetPreprocess()).(*predv1.PreprocessSpec)
	otherSpec.ColorOrder = predv1.ColorOrder_COLOR_ORDER_BGR
	otherFP, err := spec.Fingerprint(otherSpec)
	if err != nil {
		t.Fatal(err)
	}
	colorsFP, _ := spec.Fingerprint(f.configs["colors"].GetPreprocess())
	nine := f.colorsRequest(t, slices.Repeat([][3]uint8{{1, 2, 3}}, 9)...)

	tests := []struct {
		name string
		req  *predv1.PredictRequest
		code codes.Code
		msg  string
	}{
		{"wrong byte length", edit(func(r *predv1.PredictRequest) { r.Inputs[0].RawData = r.Inputs[0].RawData[:100] }),
			codes.InvalidArgument, "raw_data has 100 bytes; shape [1 3 32 32] of DATA_TYPE_FLOAT32 (4 bytes each) needs 12288"},
		{"wrong rank", edit(func(r *predv1.PredictRequest) { r.Inputs[0].Shape = []int64{3, 32, 32} }),
			codes.InvalidArgument, "has rank 3, model \"colors\" expects rank 4: expected [N 3 32 32] with 1 <= N <= 8"},
		{"wrong dims", edit(func(r *predv1.PredictRequest) { r.Inputs[0].Shape = []int64{1, 3, 16, 64} }),
			codes.InvalidArgument, "dimension 2 of shape [1 3 16 64] is 16, model \"colors\" expects 32"},
		{"batch above max", nine, codes.InvalidArgument, "batch size 9 (shape [9 3 32 32]) is outside 1..8 (max_batch_size of model \"colors\")"},
		{"zero batch", edit(func(r *predv1.PredictRequest) {
			r.Inputs[0].Shape = []int64{0, 3, 32, 32}
			r.Inputs[0].RawData = nil
		}), codes.InvalidArgument, "batch size 0"},
		{"wrong dtype", edit(func(r *predv1.PredictRequest) { r.Inputs[0].Dtype = predv1.DataType_DATA_TYPE_FLOAT16 }),
			codes.InvalidArgument, "dtype is DATA_TYPE_FLOAT16, model \"colors\" expects DATA_TYPE_FLOAT32"},
		{"missing dtype", edit(func(r *predv1.PredictRequest) { r.Inputs[0].Dtype = 0 }),
			codes.InvalidArgument, "dtype DATA_TYPE_UNSPECIFIED is not supported"},
		{"unknown input", edit(func(r *predv1.PredictRequest) { r.Inputs[0].Name = "image" }),
			codes.InvalidArgument, "unknown input \"image\"; model \"colors\" takes [\"input\"]"},
		{"no inputs", edit(func(r *predv1.PredictRequest) { r.Inputs = nil }),
			codes.InvalidArgument, "takes 1 inputs ([\"input\"]), the request has 0"},
		{"element ceiling", edit(func(r *predv1.PredictRequest) {
			r.Inputs[0].Shape = []int64{8, 3, 1 << 16, 1 << 16}
			r.Inputs[0].RawData = nil
		}), codes.InvalidArgument, fmt.Sprintf("has more than %d elements", tensor.MaxElements)},
		{"no model", edit(func(r *predv1.PredictRequest) { r.Model = "" }), codes.InvalidArgument, "model is required"},
		{"unknown model", edit(func(r *predv1.PredictRequest) { r.Model = "resnet51" }),
			codes.NotFound, "model \"resnet51\" is not served; served models: colors, dtypes, resnet50"},
		{"unknown version", edit(func(r *predv1.PredictRequest) { r.Version = 2 }),
			codes.NotFound, "model \"colors\" has no version 2; served versions: 1 (READY)"},
		{"fingerprint mismatch", edit(func(r *predv1.PredictRequest) { r.SpecFingerprint = otherFP }),
			codes.FailedPrecondition, fmt.Sprintf("spec_fingerprint mismatch for model \"colors\" version 1: the request was preprocessed with spec %q, the model announces %q", otherFP, colorsFP)},
	}
	good := f.colorsRequest(t, [3]uint8{0, 0, 255})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := f.client.Predict(ctx(t), tt.req)
			if st := status.Convert(err); st.Code() != tt.code || !strings.Contains(st.Message(), tt.msg) {
				t.Errorf("Predict = %v\nwant %v containing %q", err, tt.code, tt.msg)
			}
			resp, err := f.client.Predict(ctx(t), good)
			if err != nil {
				t.Fatalf("good request after the bad one: %v", err)
			}
			if got := predtest.Argmax(predtest.Float32s(resp.GetOutputs()[0].GetRawData())); got != 4 {
				t.Errorf("good request after the bad one: class %d, want 4 (blue)", got)
			}
		})
	}
}

func TestMessageSizeLimit(t *testing.T) {
	f := setup(t)
	// A batch of 8 ResNet-50 inputs fits.
	data := make([]byte, 8*3*224*224*4)
	_, err := f.client.Predict(ctx(t), &predv1.PredictRequest{Model: "resnet50", Inputs: []*predv1.Tensor{{
		Dtype: predv1.DataType_DATA_TYPE_FLOAT32, Shape: []int64{8, 3, 224, 224}, RawData: data,
	}}})
	if err != nil {
		t.Fatalf("batch of 8 ResNet-50 inputs: %v", err)
	}
	// A message above the limit is refused by the transport.
	big := make([]byte, grpcserver.MaxRecvMsgBytes+1)
	_, err = f.client.Predict(ctx(t), &predv1.PredictRequest{Model: "colors", Inputs: []*predv1.Tensor{{RawData: big}}})
	if status.Code(err) != codes.ResourceExhausted {
		t.Errorf("oversized message: %v, want ResourceExhausted", err)
	}
}

func TestMetricsAndRequestLog(t *testing.T) {
	f := setup(t)
	before := testutil.ToFloat64(f.metrics.Requests.WithLabelValues("colors", "1", "OK"))
	beforeBad := testutil.ToFloat64(f.metrics.Requests.WithLabelValues("colors", "1", "InvalidArgument"))
	beforeNotFound := testutil.ToFloat64(f.metrics.Requests.WithLabelValues("", "", "NotFound"))

	const id = "test-request-7f3a"
	var header metadata.MD
	c := metadata.AppendToOutgoingContext(ctx(t), "x-request-id", id)
	if _, err := f.client.Predict(c, f.colorsRequest(t, [3]uint8{1, 1, 1}), grpc.Header(&header)); err != nil {
		t.Fatal(err)
	}
	if got := header.Get("x-request-id"); !slices.Equal(got, []string{id}) {
		t.Errorf("response header x-request-id = %v, want [%s]", got, id)
	}
	bad := f.colorsRequest(t, [3]uint8{1, 1, 1})
	bad.Inputs[0].Shape = []int64{1, 3, 32}
	f.client.Predict(ctx(t), bad)
	f.client.Predict(ctx(t), &predv1.PredictRequest{Model: "nosuch"})

	if got := testutil.ToFloat64(f.metrics.Requests.WithLabelValues("colors", "1", "OK")); got != before+1 {
		t.Errorf("OK requests: %v, want %v", got, before+1)
	}
	if got := testutil.ToFloat64(f.metrics.Requests.WithLabelValues("colors", "1", "InvalidArgument")); got != beforeBad+1 {
		t.Errorf("InvalidArgument requests: %v, want %v", got, beforeBad+1)
	}
	if got := testutil.ToFloat64(f.metrics.Requests.WithLabelValues("", "", "NotFound")); got != beforeNotFound+1 {
		t.Errorf("NotFound requests for an unknown model: %v, want %v", got, beforeNotFound+1)
	}
	if n := testutil.CollectAndCount(f.metrics.Duration, "pred_inference_duration_seconds"); n == 0 {
		t.Error("no duration observed")
	}

	entries := f.logs.FilterField(zap.String("request_id", id)).All()
	if len(entries) != 1 {
		t.Fatalf("%d log entries with request_id %s, want 1", len(entries), id)
	}
	fields := entries[0].ContextMap()
	if fields["model"] != "colors" || fields["code"] != "OK" || fields["method"] != "/prepred.pred.v1.PredService/Predict" {
		t.Errorf("log fields = %v", fields)
	}
	// Requests without an ID get a fresh one.
	if n := len(f.logs.FilterMessage("rpc").FilterField(zap.String("code", "NotFound")).All()); n == 0 {
		t.Error("the failed request was not logged")
	}
}

func TestDeadlineExceeded(t *testing.T) {
	f := setup(t)
	c, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer cancel()
	data := make([]byte, 8*3*224*224*4)
	_, err := f.client.Predict(c, &predv1.PredictRequest{Model: "resnet50", Inputs: []*predv1.Tensor{{
		Dtype: predv1.DataType_DATA_TYPE_FLOAT32, Shape: []int64{8, 3, 224, 224}, RawData: data,
	}}})
	if status.Code(err) != codes.DeadlineExceeded {
		t.Fatalf("Predict = %v, want DeadlineExceeded", err)
	}
	// The server is still fine.
	if _, err := f.client.Predict(ctx(t), f.colorsRequest(t, [3]uint8{9, 9, 9})); err != nil {
		t.Fatal(err)
	}
}

// TestPredictEveryDType sends one tensor of every element type, STRING
// included, through the native API and ONNX Runtime and back.
func TestPredictEveryDType(t *testing.T) {
	f := setup(t)
	req := &predv1.PredictRequest{Model: testmodels.DTypes}
	for _, s := range testmodels.Samples() {
		req.Inputs = append(req.Inputs, &predv1.Tensor{Name: s.Name, Dtype: s.DType, Shape: []int64{1, 3}, RawData: s.Raw})
	}
	resp, err := f.client.Predict(ctx(t), req)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]*predv1.Tensor{}
	for _, o := range resp.GetOutputs() {
		got[o.GetName()] = o
	}
	for _, s := range testmodels.Samples() {
		o := got[testmodels.Output(s.Name)]
		if o.GetDtype() != s.DType || !slices.Equal(o.GetShape(), []int64{1, 3}) || !bytes.Equal(o.GetRawData(), s.Raw) {
			t.Errorf("%s: output %v %v %x, want %v [1 3] %x", s.Name, o.GetDtype(), o.GetShape(), o.GetRawData(), s.DType, s.Raw)
		}
	}
}
