package predclient

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/resolver"
	"google.golang.org/grpc/resolver/manual"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	predv1 "github.com/prepred/prepred/api/gen/prepred/pred/v1"
	"github.com/prepred/prepred/pred/predtest"
	"github.com/prepred/prepred/prep/internal/fakepred"
	"github.com/prepred/prepred/prep/internal/imageprep"
)

// testTimeout bounds each blocking call of these tests.
const testTimeout = 10 * time.Second

func newClient(t *testing.T, target string) *Client {
	t.Helper()
	c, err := New(Config{Target: target, Model: "colors", Limits: imageprep.Limits{MaxPixels: 1 << 20}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	t.Cleanup(cancel)
	return ctx
}

func TestTarget(t *testing.T) {
	tests := map[string]string{
		"localhost:50051":         "dns:///localhost:50051",
		"127.0.0.1:1":             "dns:///127.0.0.1:1",
		"pred.ns.svc:50051":       "dns:///pred.ns.svc:50051",
		"dns:///pred:50051":       "dns:///pred:50051",
		"passthrough:///pred:1":   "passthrough:///pred:1",
		"unix:///run/pred.sock":   "unix:///run/pred.sock",
		"unix:pred.sock":          "unix:pred.sock",
		"[::1]:50051":             "dns:///[::1]:50051",
		"dns://8.8.8.8/pred:5005": "dns://8.8.8.8/pred:5005",
	}
	for in, want := range tests {
		if got := Target(in); got != want {
			t.Errorf("Target(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestRunLoadsContract(t *testing.T) {
	pred := fakepred.Start(t, fakepred.ColorsMetadata())
	c := newClient(t, pred.Addr)
	if _, err := c.Contract(); err == nil || !strings.Contains(err.Error(), "not been read") {
		t.Fatalf("Contract before Run = %v, want not read yet", err)
	}
	runInBackground(t, c)
	waitReady(t, c)
	ct, err := c.Contract()
	if err != nil || ct.Version != 1 || !slices.Equal(ct.Labels, fakepred.ColorLabels) {
		t.Fatalf("Contract = %+v, %v", ct, err)
	}
}

func TestPredictSendsRawTensor(t *testing.T) {
	md := fakepred.ColorsMetadata()
	pred := fakepred.Start(t, md)
	c := newClient(t, pred.Addr)
	ctx := testContext(t)
	ct, err := c.Refresh(ctx)
	if err != nil {
		t.Fatal(err)
	}
	input := make([]float32, ct.Preprocessor.TensorLen())
	for i := range input {
		input[i] = float32(i)*0.25 - 100
	}
	logits := []float32{0, 1, 9, 2, 3, 4, 5, 6, 7}
	pred.SetPredict(func(context.Context, *predv1.PredictRequest) (*predv1.PredictResponse, error) {
		return fakepred.Answer(md, logits), nil
	})
	out, err := c.Predict(ctx, ct, "req-42", input)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(out.GetRawData(), predtest.Float32Bytes(logits)) {
		t.Errorf("output bytes differ")
	}
	reqs, ids := pred.Requests()
	if len(reqs) != 1 {
		t.Fatalf("pred got %d requests", len(reqs))
	}
	req := reqs[0]
	if req.GetModel() != "colors" || req.GetVersion() != 1 || req.GetSpecFingerprint() != md.GetSpecFingerprint() {
		t.Errorf("request model %q version %d fingerprint %q", req.GetModel(), req.GetVersion(), req.GetSpecFingerprint())
	}
	in := req.GetInputs()[0]
	if in.GetName() != "input" || in.GetDtype() != predv1.DataType_DATA_TYPE_FLOAT32 || !slices.Equal(in.GetShape(), []int64{1, 3, 32, 32}) {
		t.Errorf("input tensor %q %v %v", in.GetName(), in.GetDtype(), in.GetShape())
	}
	if !bytes.Equal(in.GetRawData(), predtest.Float32Bytes(input)) {
		t.Errorf("input bytes are not the little-endian float32 values")
	}
	if ids[0] != "req-42" {
		t.Errorf("x-request-id = %q, want req-42", ids[0])
	}
}

func TestPredictContractChanged(t *testing.T) {
	pred := fakepred.Start(t, fakepred.ColorsMetadata())
	c := newClient(t, pred.Addr)
	ctx := testContext(t)
	old, err := c.Refresh(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// pred now serves version 2, trained with bicubic resizing.
	md := fakepred.ColorsMetadata()
	md.Version, md.Versions = 2, []int64{2}
	md.Preprocess.Interpolation = predv1.Interpolation_INTERPOLATION_BICUBIC
	refingerprint(t, md)
	pred.SetMetadata(md, nil)
	calls := pred.MetadataCalls()

	_, err = c.Predict(ctx, old, "", make([]float32, old.Preprocessor.TensorLen()))
	var ce *ContractError
	if !errors.As(err, &ce) || !ce.Changed() {
		t.Fatalf("Predict = %v, want a changed-contract error", err)
	}
	if !strings.Contains(err.Error(), "now version 2") || !strings.Contains(err.Error(), "retry") {
		t.Errorf("message %q does not say what changed", err)
	}
	if n := pred.MetadataCalls() - calls; n != 1 {
		t.Errorf("contract re-read %d times, want once", n)
	}
	cur, err := c.Contract()
	if err != nil || cur.Version != 2 || cur.Fingerprint != md.GetSpecFingerprint() {
		t.Fatalf("Contract after re-read = %+v, %v", cur, err)
	}
	if _, err := c.Predict(ctx, cur, "", make([]float32, cur.Preprocessor.TensorLen())); err != nil {
		t.Errorf("Predict with the new contract: %v", err)
	}
}

func TestPredictContractMismatchPersists(t *testing.T) {
	pred := fakepred.Start(t, fakepred.ColorsMetadata())
	pred.SetPredict(func(context.Context, *predv1.PredictRequest) (*predv1.PredictResponse, error) {
		return nil, status.Error(codes.FailedPrecondition, "spec fingerprint mismatch")
	})
	c := newClient(t, pred.Addr)
	ctx := testContext(t)
	ct, err := c.Refresh(ctx)
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Predict(ctx, ct, "", make([]float32, ct.Preprocessor.TensorLen()))
	var ce *ContractError
	if !errors.As(err, &ce) || ce.Changed() || ce.RefreshErr != nil {
		t.Fatalf("Predict = %v, want an unchanged-contract error", err)
	}
	if !strings.Contains(err.Error(), "disagree") || !strings.Contains(err.Error(), "spec fingerprint mismatch") {
		t.Errorf("message %q", err)
	}
}

func TestRefreshRefusesUnexecutableSpec(t *testing.T) {
	md := fakepred.ColorsMetadata()
	md.Preprocess.SchemaVersion = 99
	refingerprint(t, md)
	pred := fakepred.Start(t, md)
	c := newClient(t, pred.Addr)
	if _, err := c.Refresh(testContext(t)); err == nil {
		t.Fatal("Refresh accepted schema_version 99")
	}
	_, err := c.Contract()
	if err == nil || !strings.Contains(err.Error(), "schema_version 99") || !strings.Contains(err.Error(), `model "colors" version 1`) {
		t.Errorf("Contract = %v, want the refusal reason", err)
	}
	if _, err := c.Ready(); err == nil {
		t.Error("Ready with a refused contract")
	}
}

func TestPredUnreachable(t *testing.T) {
	addr := fakepred.ClosedAddr(t)
	c := newClient(t, addr)
	start := time.Now()
	_, err := c.Refresh(testContext(t))
	if status.Code(err) != codes.Unavailable {
		t.Fatalf("Refresh = %v, want Unavailable", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Refresh took %v against a closed port", d)
	}
	_, err = c.Contract()
	if err == nil || !strings.Contains(err.Error(), addr) {
		t.Errorf("Contract = %v, want the reason naming %s", err, addr)
	}
}

func TestPredStopsAfterContractLoaded(t *testing.T) {
	pred := fakepred.Start(t, fakepred.ColorsMetadata())
	c := newClient(t, pred.Addr)
	ctx := testContext(t)
	ct, err := c.Refresh(ctx)
	if err != nil {
		t.Fatal(err)
	}
	pred.Stop()

	// The contract survives pred being unreachable; calls fail fast.
	if _, err := c.Refresh(ctx); status.Code(err) != codes.Unavailable {
		t.Fatalf("Refresh = %v, want Unavailable", err)
	}
	if _, err := c.Contract(); err != nil {
		t.Fatalf("contract dropped while pred is unreachable: %v", err)
	}
	start := time.Now()
	_, err = c.Predict(ctx, ct, "", make([]float32, ct.Preprocessor.TensorLen()))
	if status.Code(err) != codes.Unavailable {
		t.Fatalf("Predict = %v, want Unavailable", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Predict took %v with pred stopped", d)
	}
	deadline := time.Now().Add(testTimeout)
	for {
		_, err := c.Ready()
		if err != nil && strings.Contains(err.Error(), "not reachable") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("Ready = %v after pred stopped", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestFloat32Bytes(t *testing.T) {
	v := []float32{1, -2.5, 3e-8}
	if got := float32Bytes(v); !bytes.Equal(got, predtest.Float32Bytes(v)) {
		t.Errorf("float32Bytes = %x", got)
	}
	if float32Bytes(nil) != nil {
		t.Error("float32Bytes(nil) != nil")
	}
}

// waitReady polls Ready until it succeeds (there is no event for it).
func waitReady(t *testing.T, c *Client) *Contract {
	t.Helper()
	deadline := time.Now().Add(testTimeout + retryMaxDelay + reconnectMaxDelay)
	for {
		ct, err := c.Ready()
		if err == nil {
			return ct
		}
		if time.Now().After(deadline) {
			t.Fatalf("not ready: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func runInBackground(t *testing.T, c *Client) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { c.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
}

// TestPredStartsLater: prep starts before pred; the contract is loaded once
// pred comes up.
func TestPredStartsLater(t *testing.T) {
	addr := fakepred.ClosedAddr(t)
	c := newClient(t, addr)
	runInBackground(t, c)
	// Wait for a failed read, so that pred comes up during the backoff.
	deadline := time.Now().Add(testTimeout)
	for {
		_, err := c.Ready()
		if err == nil {
			t.Fatal("ready without pred")
		}
		if status.Code(err) == codes.Unavailable {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("Ready = %v, want a failed read", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	fakepred.StartAt(t, addr, fakepred.ColorsMetadata())
	if ct := waitReady(t, c); ct.Model != "colors" {
		t.Errorf("contract %+v", ct)
	}
}

// TestRoundRobin: calls are spread over every address the target resolves
// to, so that pred replicas share the load.
func TestRoundRobin(t *testing.T) {
	md := fakepred.ColorsMetadata()
	a, b := fakepred.Start(t, md), fakepred.Start(t, md)
	r := manual.NewBuilderWithScheme("predclienttest")
	r.InitialState(resolver.State{Addresses: []resolver.Address{{Addr: a.Addr}, {Addr: b.Addr}}})
	resolver.Register(r)
	c := newClient(t, "predclienttest:///pred")
	ctx := testContext(t)
	ct, err := c.Refresh(ctx)
	if err != nil {
		t.Fatal(err)
	}
	input := make([]float32, ct.Preprocessor.TensorLen())
	counts := func() (int, int) {
		ra, _ := a.Requests()
		rb, _ := b.Requests()
		return len(ra), len(rb)
	}
	// Until both connections are up, calls go to whichever is.
	for na, nb := counts(); na == 0 || nb == 0; na, nb = counts() {
		if _, err := c.Predict(ctx, ct, "", input); err != nil {
			t.Fatal(err)
		}
	}
	na0, nb0 := counts()
	const calls = 40
	for range calls {
		if _, err := c.Predict(ctx, ct, "", input); err != nil {
			t.Fatal(err)
		}
	}
	na, nb := counts()
	if da, db := na-na0, nb-nb0; da < calls/4 || db < calls/4 {
		t.Errorf("replicas got %d and %d of %d calls, want them spread", da, db, calls)
	}
}

// TestDeadlineWhileUnreachable: a deadline that passes while pred cannot be
// reached is reported as pred being unavailable, not as a slow pred.
func TestDeadlineWhileUnreachable(t *testing.T) {
	c := newClient(t, fakepred.ClosedAddr(t))
	ct, err := newContract(fakepred.ColorsMetadata(), "colors", 0, imageprep.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	err = c.predictError(testContext(t), ct, status.Error(codes.DeadlineExceeded, "context deadline exceeded"))
	if status.Code(err) != codes.Unavailable || !strings.Contains(err.Error(), "not reachable") {
		t.Errorf("predictError = %v, want Unavailable", err)
	}
}

// twoModels is a fake pred serving colors and "other", a copy of colors
// at version 4.
func twoModels(t *testing.T) (*fakepred.Server, *predv1.ModelMetadataResponse) {
	t.Helper()
	pred := fakepred.Start(t, fakepred.ColorsMetadata())
	other := fakepred.ColorsMetadata()
	other.Model, other.Version, other.Versions = "other", 4, []int64{4}
	pred.AddModel(other)
	return pred, other
}

func TestLookup(t *testing.T) {
	pred, other := twoModels(t)
	c := newClient(t, pred.Addr)
	ctx := testContext(t)
	if _, err := c.Lookup(ctx, "colors", 0); err == nil {
		t.Fatal("Lookup of the default model before its contract is read succeeded")
	}
	def, err := c.Refresh(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if ct, err := c.Lookup(ctx, "colors", 0); err != nil || ct != def {
		t.Errorf("Lookup(colors, 0) = %p, %v, want the default contract %p", ct, err, def)
	}
	calls := pred.MetadataCalls()
	ct, err := c.Lookup(ctx, "other", 0)
	if err != nil || ct.Model != "other" || ct.Version != 4 || ct.Fingerprint != other.GetSpecFingerprint() {
		t.Fatalf("Lookup(other, 0) = %+v, %v", ct, err)
	}
	if again, err := c.Lookup(ctx, "other", 0); err != nil || again != ct {
		t.Errorf("second Lookup = %p, %v, want the kept %p", again, err, ct)
	}
	if v4, err := c.Lookup(ctx, "other", 4); err != nil || v4.Version != 4 {
		t.Errorf("Lookup(other, 4) = %+v, %v", v4, err)
	}
	if n := pred.MetadataCalls() - calls; n != 2 {
		t.Errorf("%d contract reads, want 2 (other latest, other 4)", n)
	}
	for _, tt := range []struct {
		model   string
		version int64
	}{{"nothing", 0}, {"other", 5}, {"colors", 2}} {
		if _, err := c.Lookup(ctx, tt.model, tt.version); status.Code(err) != codes.NotFound {
			t.Errorf("Lookup(%s, %d) = %v, want NotFound", tt.model, tt.version, err)
		}
	}
	var got []string
	for _, st := range c.States() {
		got = append(got, fmt.Sprintf("%s/%d/%v/%v", st.Model, st.Version, st.Default, st.Contract != nil))
	}
	if want := []string{"colors/0/true/true", "other/0/false/true", "other/4/false/true"}; !slices.Equal(got, want) {
		t.Errorf("States = %q, want %q (unknown models are not kept)", got, want)
	}
}

func TestLookupRefusedContract(t *testing.T) {
	pred, _ := twoModels(t)
	bad := fakepred.ColorsMetadata()
	bad.Model = "future"
	bad.Preprocess.SchemaVersion = 99
	refingerprint(t, bad)
	pred.AddModel(bad)
	c := newClient(t, pred.Addr)
	_, err := c.Lookup(testContext(t), "future", 0)
	var re *RefusedError
	if !errors.As(err, &re) || re.Model != "future" || !strings.Contains(err.Error(), "schema_version 99") {
		t.Errorf("Lookup = %v, want a *RefusedError", err)
	}
}

func TestPredictBatch(t *testing.T) {
	md := fakepred.ColorsMetadata()
	pred := fakepred.Start(t, md)
	c := newClient(t, pred.Addr)
	ctx := testContext(t)
	ct, err := c.Refresh(ctx)
	if err != nil {
		t.Fatal(err)
	}
	size := ct.Preprocessor.TensorLen()
	input := make([]float32, 3*size)
	for i := range input {
		input[i] = float32(i % 1000)
	}
	out, err := c.PredictBatch(ctx, ct, "batch-1", 3, input)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(out.GetRawData()); n != 3*len(fakepred.ColorLabels)*4 {
		t.Errorf("output has %d bytes", n)
	}
	reqs, ids := pred.Requests()
	if len(reqs) != 1 || ids[0] != "batch-1" {
		t.Fatalf("pred got %d requests, IDs %q", len(reqs), ids)
	}
	in := reqs[0].GetInputs()[0]
	if !slices.Equal(in.GetShape(), []int64{3, 3, 32, 32}) || !bytes.Equal(in.GetRawData(), predtest.Float32Bytes(input)) {
		t.Errorf("input shape %v, or its bytes differ", in.GetShape())
	}
	// Refused before pred is called.
	for _, tt := range []struct{ n, values int }{{9, 9 * size}, {0, 0}, {2, 3 * size}} {
		if _, err := c.PredictBatch(ctx, ct, "", tt.n, make([]float32, tt.values)); err == nil {
			t.Errorf("PredictBatch of %d images with %d values succeeded", tt.n, tt.values)
		}
	}
	if reqs, _ := pred.Requests(); len(reqs) != 1 {
		t.Errorf("refused batches reached pred")
	}
}

// TestPredictContractChangedOtherModel: a refused contract of a model other
// than the default is re-read for that model, not the default.
func TestPredictContractChangedOtherModel(t *testing.T) {
	pred, other := twoModels(t)
	c := newClient(t, pred.Addr)
	ctx := testContext(t)
	def, err := c.Refresh(ctx)
	if err != nil {
		t.Fatal(err)
	}
	old, err := c.Lookup(ctx, "other", 0)
	if err != nil {
		t.Fatal(err)
	}
	next := proto.Clone(other).(*predv1.ModelMetadataResponse)
	next.Version, next.Versions = 5, []int64{5}
	next.Preprocess.Interpolation = predv1.Interpolation_INTERPOLATION_BICUBIC
	refingerprint(t, next)
	pred.AddModel(next)
	_, err = c.Predict(ctx, old, "", make([]float32, old.Preprocessor.TensorLen()))
	var ce *ContractError
	if !errors.As(err, &ce) || !ce.Changed() || ce.Code != codes.FailedPrecondition || ce.Current.Version != 5 {
		t.Fatalf("Predict = %v, want a changed contract now at version 5", err)
	}
	if cur, err := c.Lookup(ctx, "other", 0); err != nil || cur.Version != 5 {
		t.Errorf("Lookup after the re-read = %+v, %v", cur, err)
	}
	if cur, _ := c.Contract(); cur != def {
		t.Error("the default contract was replaced")
	}
}

func TestListModels(t *testing.T) {
	pred, _ := twoModels(t)
	c := newClient(t, pred.Addr)
	models, err := c.ListModels(testContext(t))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, m := range models {
		got = append(got, fmt.Sprintf("%s/%d/%s", m.GetModel(), m.GetVersion(), m.GetState()))
	}
	if want := []string{"colors/1/READY", "other/4/READY"}; !slices.Equal(got, want) {
		t.Errorf("ListModels = %q, want %q", got, want)
	}
}
