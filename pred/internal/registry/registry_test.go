package registry

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/prototext"
	"google.golang.org/protobuf/proto"

	predv1 "github.com/prepred/prepred/api/gen/prepred/pred/v1"
	"github.com/prepred/prepred/api/spec"
	"github.com/prepred/prepred/pred/internal/ortrt"
	"github.com/prepred/prepred/pred/internal/repository"
	"github.com/prepred/prepred/pred/internal/tensor"
	"github.com/prepred/prepred/pred/predtest"
)

var (
	rtOnce sync.Once
	rt     *ortrt.Runtime
	rtErr  error
)

func testRuntime(tb testing.TB) *ortrt.Runtime {
	tb.Helper()
	lib := predtest.ORTLibrary(tb)
	rtOnce.Do(func() { rt, rtErr = ortrt.New(lib) })
	if rtErr != nil {
		tb.Fatalf("ortrt.New(%s): %v", lib, rtErr)
	}
	return rt
}

func TestMain(m *testing.M) {
	code := m.Run()
	if rt != nil {
		if err := rt.Close(); err != nil {
			fmt.Fprintln(os.Stderr, "close runtime:", err)
			code = 1
		}
	}
	os.Exit(code)
}

// colorsModel returns the generated colors model's configuration, labels
// and ONNX bytes.
func colorsModel(t *testing.T) (*predv1.ModelConfig, []byte, []byte) {
	t.Helper()
	dir := filepath.Join(predtest.ModelRepository(t), "colors")
	text, err := os.ReadFile(filepath.Join(dir, repository.ConfigTextFile))
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := repository.ParseConfig(text, false)
	if err != nil {
		t.Fatal(err)
	}
	labels, err := os.ReadFile(filepath.Join(dir, "labels.json"))
	if err != nil {
		t.Fatal(err)
	}
	onnx, err := os.ReadFile(filepath.Join(dir, "1", repository.ModelFile))
	if err != nil {
		t.Fatal(err)
	}
	return cfg, labels, onnx
}

// writeModel writes a copy of the colors model named name, without
// dynamic batching, into repo, with its configuration changed by edit, as
// the given versions.
func writeModel(t *testing.T, repo, name string, edit func(*predv1.ModelConfig), versions ...string) {
	t.Helper()
	cfg, labels, onnx := colorsModel(t)
	cfg.Name = name
	cfg.DynamicBatching = nil
	if edit != nil {
		edit(cfg)
	}
	text, err := prototext.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(repo, name)
	files := map[string][]byte{repository.ConfigTextFile: text, "labels.json": labels}
	for _, v := range versions {
		files[filepath.Join(v, repository.ModelFile)] = onnx
	}
	for rel, data := range files {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, rel)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, rel), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// load loads repo into a new registry closed at the end of the test, and
// records the readiness reported per model.
func load(t *testing.T, repo string) (*Registry, map[string]bool) {
	t.Helper()
	var mu sync.Mutex
	ready := map[string]bool{}
	reg := New(testRuntime(t), Options{OnModelState: func(model string, ok bool) {
		mu.Lock()
		ready[model] = ok
		mu.Unlock()
	}})
	t.Cleanup(func() {
		if err := reg.Close(context.Background()); err != nil {
			t.Error(err)
		}
	})
	if err := reg.Load(context.Background(), repo); err != nil {
		t.Fatalf("Load: %v", err)
	}
	return reg, ready
}

func wantCode(t *testing.T, err error, code codes.Code, substr string) {
	t.Helper()
	if status.Code(err) != code || !strings.Contains(status.Convert(err).Message(), substr) {
		t.Errorf("error = %v, want %v containing %q", err, code, substr)
	}
}

func TestLoadKeepsGoodModelsBesideBadOnes(t *testing.T) {
	repo := t.TempDir()
	writeModel(t, repo, "colors", nil, "1", "2")
	writeModel(t, repo, "renamedinput", func(c *predv1.ModelConfig) {
		c.Inputs[0].Name = "image"
		c.Preprocess.Input = "image"
	}, "1")
	writeModel(t, repo, "wrongdims", func(c *predv1.ModelConfig) {
		c.Inputs[0].Shape = []int64{3, 64, 64}
		c.Preprocess.Width, c.Preprocess.Height = 64, 64
	}, "1")
	writeModel(t, repo, "badconfig", func(c *predv1.ModelConfig) { c.Platform = "" }, "1")
	writeModel(t, repo, "allversions", func(c *predv1.ModelConfig) {
		c.VersionPolicy = &predv1.VersionPolicy{Policy: &predv1.VersionPolicy_All_{All: &predv1.VersionPolicy_All{}}}
	}, "1", "2")
	if err := os.WriteFile(filepath.Join(repo, "allversions", "2", repository.ModelFile), []byte("corrupt"), 0o644); err != nil {
		t.Fatal(err)
	}

	reg, ready := load(t, repo)
	want := []VersionState{
		{Model: "allversions", Version: 1, State: StateReady},
		{Model: "allversions", Version: 2, State: StateUnavailable, Reason: "open model"},
		{Model: "badconfig", State: StateUnavailable, Reason: `platform is ""`},
		{Model: "colors", Version: 2, State: StateReady},
		{Model: "renamedinput", Version: 1, State: StateUnavailable, Reason: `the model has no input "image"`},
		{Model: "wrongdims", Version: 1, State: StateUnavailable, Reason: "the model's shape is [-1 3 32 32], the config's [3 64 64]"},
	}
	got := reg.List()
	if len(got) != len(want) {
		t.Fatalf("List = %+v, want %d entries", got, len(want))
	}
	for i, w := range want {
		g := got[i]
		if g.Model != w.Model || g.Version != w.Version || g.State != w.State || !strings.Contains(g.Reason, w.Reason) || (w.Reason == "" && g.Reason != "") {
			t.Errorf("List[%d] = %+v, want %+v (reason containing)", i, g, w)
		}
	}
	wantReady := map[string]bool{"allversions": true, "badconfig": false, "colors": true, "renamedinput": false, "wrongdims": false}
	if fmt.Sprint(ready) != fmt.Sprint(wantReady) {
		t.Errorf("readiness = %v, want %v", ready, wantReady)
	}

	v, release, err := reg.Acquire("colors", 0)
	if err != nil {
		t.Fatalf("Acquire(colors, 0): %v", err)
	}
	release()
	if v.Number != 2 || v.Model.Name != "colors" {
		t.Errorf("Acquire(colors, 0) = version %d of %s, want the latest, 2", v.Number, v.Model.Name)
	}
	if got := reg.ReadyVersions(v.Model); fmt.Sprint(got) != "[2]" {
		t.Errorf("ReadyVersions = %v", got)
	}
	fp, err := spec.Fingerprint(v.Model.Config.GetPreprocess())
	if err != nil || v.Model.Fingerprint != fp || fp == "" {
		t.Errorf("Fingerprint = %q, want %q (%v)", v.Model.Fingerprint, fp, err)
	}
	if len(v.Model.Labels) != 9 || v.Model.Labels[2] != "red" {
		t.Errorf("Labels = %v", v.Model.Labels)
	}

	lookups := []struct {
		model   string
		version int64
		code    codes.Code
		msg     string
	}{
		{"", 0, codes.InvalidArgument, "model is required"},
		{"colors", -1, codes.InvalidArgument, "negative"},
		{"nosuch", 0, codes.NotFound, `model "nosuch" is not served; served models: allversions, badconfig, colors, renamedinput, wrongdims`},
		{"colors", 1, codes.NotFound, `model "colors" has no version 1; served versions: 2 (READY)`},
		{"colors", 3, codes.NotFound, "has no version 3"},
		{"badconfig", 0, codes.Unavailable, `model "badconfig" is unavailable: invalid config: platform is ""`},
		{"renamedinput", 0, codes.Unavailable, `model "renamedinput" has no ready version: 1 (UNAVAILABLE: `},
		{"allversions", 2, codes.Unavailable, `model "allversions" version 2 is unavailable: open model`},
	}
	for _, l := range lookups {
		_, _, err := reg.Acquire(l.model, l.version)
		wantCode(t, err, l.code, l.msg)
	}
	if v, release, err := reg.Acquire("allversions", 1); err != nil || v.Number != 1 {
		t.Errorf("Acquire(allversions, 1) = %v, %v", v, err)
	} else {
		release()
	}
}

func TestLoadTwiceAndMissingRepository(t *testing.T) {
	reg := New(testRuntime(t), Options{})
	if err := reg.Load(context.Background(), filepath.Join(t.TempDir(), "absent")); err == nil {
		t.Fatal("Load of a missing repository succeeded")
	}
	repo := t.TempDir()
	if err := reg.Load(context.Background(), repo); err != nil {
		t.Fatalf("Load of an empty repository: %v", err)
	}
	if err := reg.Load(context.Background(), repo); err == nil {
		t.Fatal("second Load succeeded")
	}
	if err := reg.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func TestLoadCancelled(t *testing.T) {
	repo := t.TempDir()
	writeModel(t, repo, "colors", nil, "1")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	reg := New(testRuntime(t), Options{})
	t.Cleanup(func() { reg.Close(context.Background()) })
	if err := reg.Load(ctx, repo); err != nil {
		t.Fatal(err)
	}
	_, _, err := reg.Acquire("colors", 1)
	wantCode(t, err, codes.Unavailable, "loading stopped")
}

func TestUnavailableBeforeLoad(t *testing.T) {
	reg := New(testRuntime(t), Options{})
	_, _, err := reg.Acquire("colors", 0)
	wantCode(t, err, codes.Unavailable, "still being read")
	if err := reg.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func TestCloseWaitsForInFlight(t *testing.T) {
	repo := t.TempDir()
	writeModel(t, repo, "colors", nil, "1")
	reg := New(testRuntime(t), Options{})
	if err := reg.Load(context.Background(), repo); err != nil {
		t.Fatal(err)
	}
	v, release, err := reg.Acquire("colors", 0)
	if err != nil {
		t.Fatal(err)
	}
	expired, cancel := context.WithCancel(context.Background())
	cancel()
	if err := reg.Close(expired); !errors.Is(err, context.Canceled) {
		t.Fatalf("Close with a request in flight = %v, want it to give up with the context", err)
	}
	_, _, err = reg.Acquire("colors", 0)
	wantCode(t, err, codes.Unavailable, "shutting down")
	// The acquired version still runs.
	if _, err := v.Predict(context.Background(), []tensor.Tensor{redImage(v.Model.Config)}); err != nil {
		t.Fatalf("Predict on a version acquired before Close: %v", err)
	}
	release()
	release() // idempotent
	if err := reg.Close(context.Background()); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if got := reg.List(); len(got) != 1 || got[0].State != StateUnavailable {
		t.Errorf("List after Close = %+v", got)
	}
}

func redImage(cfg *predv1.ModelConfig) tensor.Tensor {
	return tensor.Tensor{
		Name: "input", DType: predv1.DataType_DATA_TYPE_FLOAT32, Shape: []int64{1, 3, 32, 32},
		Data: predtest.ConstantImages(cfg.GetPreprocess(), [3]uint8{255, 0, 0}),
	}
}

func TestPredictValidation(t *testing.T) {
	repo := t.TempDir()
	writeModel(t, repo, "colors", nil, "1")
	reg, _ := load(t, repo)
	v, release, err := reg.Acquire("colors", 0)
	if err != nil {
		t.Fatal(err)
	}
	defer release()
	cfg := v.Model.Config
	red := redImage(cfg)
	f32 := predv1.DataType_DATA_TYPE_FLOAT32
	withShape := func(shape ...int64) tensor.Tensor {
		n, _ := tensor.ElementCount(shape)
		return tensor.Tensor{Name: "input", DType: f32, Shape: shape, Data: make([]byte, 4*n)}
	}
	tests := []struct {
		name   string
		inputs []tensor.Tensor
		msg    string // empty: valid
	}{
		{name: "valid", inputs: []tensor.Tensor{red}},
		{name: "unnamed", inputs: []tensor.Tensor{{DType: f32, Shape: red.Shape, Data: red.Data}}},
		{name: "batch of 8", inputs: []tensor.Tensor{withShape(8, 3, 32, 32)}},
		{name: "no inputs", msg: `model "colors" takes 1 inputs (["input"]), the request has 0`},
		{name: "two inputs", inputs: []tensor.Tensor{red, red}, msg: "the request has 2"},
		{name: "unknown name", inputs: []tensor.Tensor{{Name: "image", DType: f32, Shape: red.Shape, Data: red.Data}}, msg: `unknown input "image"; model "colors" takes ["input"]`},
		{name: "no dtype", inputs: []tensor.Tensor{{Name: "input", Shape: red.Shape, Data: red.Data}}, msg: "dtype DATA_TYPE_UNSPECIFIED is not supported"},
		{name: "wrong dtype", inputs: []tensor.Tensor{{Name: "input", DType: predv1.DataType_DATA_TYPE_FLOAT64, Shape: red.Shape, Data: append(red.Data, red.Data...)}}, msg: `dtype is DATA_TYPE_FLOAT64, model "colors" expects DATA_TYPE_FLOAT32`},
		{name: "short data", inputs: []tensor.Tensor{{Name: "input", DType: f32, Shape: red.Shape, Data: red.Data[1:]}}, msg: "raw_data has 12287 bytes; shape [1 3 32 32] of DATA_TYPE_FLOAT32 (4 bytes each) needs 12288"},
		{name: "rank", inputs: []tensor.Tensor{withShape(3, 32, 32)}, msg: "shape [3 32 32] has rank 3, model \"colors\" expects rank 4: expected [N 3 32 32] with 1 <= N <= 8"},
		{name: "dims", inputs: []tensor.Tensor{withShape(1, 3, 32, 31)}, msg: `dimension 3 of shape [1 3 32 31] is 31, model "colors" expects 32`},
		{name: "batch too large", inputs: []tensor.Tensor{withShape(9, 3, 32, 32)}, msg: "batch size 9 (shape [9 3 32 32]) is outside 1..8"},
		{name: "zero batch", inputs: []tensor.Tensor{{Name: "input", DType: f32, Shape: []int64{0, 3, 32, 32}}}, msg: "batch size 0"},
		{name: "negative dim", inputs: []tensor.Tensor{{Name: "input", DType: f32, Shape: []int64{1, -3, 32, 32}}}, msg: "must not be negative"},
		{name: "element ceiling", inputs: []tensor.Tensor{{Name: "input", DType: f32, Shape: []int64{1, 3, 1 << 20, 1 << 20}}}, msg: fmt.Sprintf("more than %d elements", tensor.MaxElements)},
		{name: "overflow", inputs: []tensor.Tensor{{Name: "input", DType: f32, Shape: []int64{1 << 62, 1 << 62, 4}}}, msg: "more than"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			outs, err := v.Predict(context.Background(), tt.inputs)
			if tt.msg == "" {
				if err != nil {
					t.Fatalf("Predict: %v", err)
				}
				if len(outs) != 1 || outs[0].Shape[1] != 9 || outs[0].Shape[0] != tt.inputs[0].Shape[0] {
					t.Errorf("outputs = %+v", outs)
				}
				return
			}
			wantCode(t, err, codes.InvalidArgument, tt.msg)
		})
	}
	// A duplicate name needs a model with two inputs to reach; the
	// check on a single-input model reports the count first.
	_, err = v.Predict(context.Background(), []tensor.Tensor{red, red})
	wantCode(t, err, codes.InvalidArgument, "takes 1 inputs")
}

func TestCheckFingerprint(t *testing.T) {
	repo := t.TempDir()
	writeModel(t, repo, "colors", nil, "1")
	writeModel(t, repo, "raw", func(c *predv1.ModelConfig) {
		c.Preprocess = nil
		c.OutputKind = predv1.OutputKind_OUTPUT_KIND_UNSPECIFIED
	}, "1")
	reg, _ := load(t, repo)
	v, release, err := reg.Acquire("colors", 0)
	if err != nil {
		t.Fatal(err)
	}
	defer release()
	if err := v.CheckFingerprint(""); err != nil {
		t.Errorf("empty fingerprint: %v", err)
	}
	if err := v.CheckFingerprint(v.Model.Fingerprint); err != nil {
		t.Errorf("matching fingerprint: %v", err)
	}
	other := proto.Clone(v.Model.Config.GetPreprocess()).(*predv1.PreprocessSpec)
	other.ColorOrder = predv1.ColorOrder_COLOR_ORDER_BGR
	otherFP, _ := spec.Fingerprint(other)
	err = v.CheckFingerprint(otherFP)
	wantCode(t, err, codes.FailedPrecondition, fmt.Sprintf(`spec %q, the model announces %q`, otherFP, v.Model.Fingerprint))

	raw, releaseRaw, err := reg.Acquire("raw", 0)
	if err != nil {
		t.Fatal(err)
	}
	defer releaseRaw()
	if raw.Model.Fingerprint != "" {
		t.Errorf("a model without a spec has fingerprint %q", raw.Model.Fingerprint)
	}
	wantCode(t, raw.CheckFingerprint(otherFP), codes.FailedPrecondition, "announces no preprocess spec")
}

func TestLabelsMatchFile(t *testing.T) {
	repo := t.TempDir()
	writeModel(t, repo, "colors", nil, "1")
	reg, _ := load(t, repo)
	v, release, err := reg.Acquire("colors", 0)
	if err != nil {
		t.Fatal(err)
	}
	defer release()
	_, labels, _ := colorsModel(t)
	var want []string
	if err := json.Unmarshal(labels, &want); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(v.Model.Labels) != fmt.Sprint(want) {
		t.Errorf("Labels = %v, want %v", v.Model.Labels, want)
	}
}
