package registry

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/encoding/prototext"
	"google.golang.org/protobuf/proto"

	predv1 "github.com/prepred/prepred/api/gen/prepred/pred/v1"
	"github.com/prepred/prepred/pred/internal/repository"
	"github.com/prepred/prepred/pred/internal/tensor"
)

// addVersion writes the colors ONNX file (or data, when given) as version
// n of a model in repo.
func addVersion(t *testing.T, repo, model, n string, data []byte) {
	t.Helper()
	if data == nil {
		_, _, data = colorsModel(t)
	}
	dir := filepath.Join(repo, model, n)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, repository.ModelFile), data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// wantList checks List against entries "model/version STATE" (version 0
// for the model as a whole) and, where given after a colon, a reason
// substring.
func wantList(t *testing.T, reg *Registry, want ...string) {
	t.Helper()
	got := reg.List()
	var lines []string
	for _, s := range got {
		lines = append(lines, fmt.Sprintf("%s/%d %s: %s", s.Model, s.Version, s.State, s.Reason))
	}
	ok := len(got) == len(want)
	for i := 0; ok && i < len(want); i++ {
		head, reason, _ := strings.Cut(want[i], ":")
		ok = strings.HasPrefix(lines[i], head+":") && strings.Contains(lines[i], strings.TrimSpace(reason))
	}
	if !ok {
		t.Errorf("List =\n  %s\nwant\n  %s", strings.Join(lines, "\n  "), strings.Join(want, "\n  "))
	}
}

// writeConfig replaces the config.pbtxt of cfg's model in repo.
func writeConfig(t *testing.T, repo string, cfg *predv1.ModelConfig) {
	t.Helper()
	text, err := prototext.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(repo, cfg.GetName(), repository.ConfigTextFile), text, 0o644); err != nil {
		t.Fatal(err)
	}
}

func awaitClosed(t *testing.T, v *Version) {
	t.Helper()
	select {
	case <-v.Closed():
	case <-time.After(testTimeout):
		t.Fatalf("version %d was never closed", v.Number)
	}
}

// TestSyncReplacesVersionAfterInFlightRequests adds version 2 of a model
// whose policy serves the latest version while a request waits in version
// 1's queue: version 2 serves once warmed up, the waiting request
// completes correctly on version 1, and version 1 closes once the last
// request holding it is done.
func TestSyncReplacesVersionAfterInFlightRequests(t *testing.T) {
	repo := t.TempDir()
	writeModel(t, repo, "colors", func(c *predv1.ModelConfig) {
		c.DynamicBatching = &predv1.DynamicBatching{MaxQueueDelayMicroseconds: hourDelay}
	}, "1")
	f := loadWith(t, repo, Options{})
	ctx := testContext(t)
	v1, release1, err := f.reg.Acquire("colors", 0)
	if err != nil {
		t.Fatal(err)
	}
	inflight := predictAsync(ctx, v1, images(v1.Model.Config, palette[0]))
	f.awaitMetric(t, 1, "pred_inference_pending_request_count", "model", "colors", "version", "1")

	addVersion(t, repo, "colors", "2", nil)
	if err := f.reg.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	v2 := f.acquire(t, "colors", 0)
	if v2.Number != 2 {
		t.Fatalf("Acquire(colors, 0) = version %d after Sync, want 2", v2.Number)
	}
	loaded := f.logs.FilterMessage("model version loaded").FilterField(zapcore.Field{Key: "version", Type: zapcore.Int64Type, Integer: 2}).All()
	if len(loaded) != 1 || loaded[0].ContextMap()["warm_up"].(time.Duration) <= 0 {
		t.Errorf("version 2 load log = %+v, want one with its warm-up time", loaded)
	}
	wantList(t, f.reg, "colors/1 UNLOADING", "colors/2 READY")
	_, _, err = f.reg.Acquire("colors", 1)
	wantCode(t, err, codes.NotFound, "has no version 1")

	// The request queued on version 1 ran once version 1 began to drain.
	o := await(t, inflight)
	if o.err != nil {
		t.Fatalf("request in flight across the swap: %v", o.err)
	}
	if l := label(v1, o.outs[0]); l[0] != "red" {
		t.Errorf("request in flight across the swap: %v", l)
	}
	// A request that acquired version 1 before the swap still runs on it.
	outs, err := v1.Predict(ctx, []tensor.Tensor{images(v1.Model.Config, palette[1])})
	if err != nil || label(v1, outs[0])[0] != "green" {
		t.Fatalf("Predict on the retiring version: %v", err)
	}
	select {
	case <-v1.Closed():
		t.Fatal("version 1 closed while a request held it")
	default:
	}
	release1()
	awaitClosed(t, v1)
	wantList(t, f.reg, "colors/2 READY")
	if !f.readiness("colors") {
		t.Error("colors not ready")
	}
}

// TestSyncModelsComeAndGo adds a model, a corrupt model and removes one
// while the others keep serving; a failed version is retried once its
// file changes, not on every poll.
func TestSyncModelsComeAndGo(t *testing.T) {
	repo := t.TempDir()
	writeModel(t, repo, "colors", nil, "1")
	f := loadWith(t, repo, Options{})
	ctx := testContext(t)
	sync := func() {
		t.Helper()
		if err := f.reg.Sync(ctx); err != nil {
			t.Fatal(err)
		}
	}
	serves := func(model string) {
		t.Helper()
		v, release, err := f.reg.Acquire(model, 0)
		if err != nil {
			t.Fatalf("%s: %v", model, err)
		}
		defer release()
		outs, err := v.Predict(ctx, []tensor.Tensor{images(v.Model.Config, palette[2])})
		if err != nil || label(v, outs[0])[0] != "blue" {
			t.Errorf("%s: Predict = %v", model, err)
		}
	}

	writeModel(t, repo, "extra", nil, "1")
	writeModel(t, repo, "broken", nil)
	addVersion(t, repo, "broken", "1", []byte("corrupt"))
	sync()
	wantList(t, f.reg, "broken/1 UNAVAILABLE: open model", "colors/1 READY", "extra/1 READY")
	serves("colors")
	serves("extra")
	_, _, err := f.reg.Acquire("broken", 0)
	wantCode(t, err, codes.Unavailable, `model "broken" has no ready version: 1 (UNAVAILABLE: `)
	if f.readiness("broken") || !f.readiness("extra") {
		t.Errorf("readiness broken %v, extra %v", f.readiness("broken"), f.readiness("extra"))
	}

	failures := func() int {
		return f.logs.FilterMessage("model version failed to load").FilterFieldKey("model").Filter(func(e observer.LoggedEntry) bool {
			return e.ContextMap()["model"] == "broken"
		}).Len()
	}
	sync()
	if n := failures(); n != 1 {
		t.Errorf("%d failure logs after polling an unchanged broken model, want 1", n)
	}

	addVersion(t, repo, "broken", "1", nil) // fixed
	sync()
	wantList(t, f.reg, "broken/1 READY", "colors/1 READY", "extra/1 READY")
	serves("broken")

	extra := f.acquire(t, "extra", 0)
	if err := os.RemoveAll(filepath.Join(repo, "extra")); err != nil {
		t.Fatal(err)
	}
	sync()
	_, _, err = f.reg.Acquire("extra", 0)
	wantCode(t, err, codes.NotFound, `model "extra" is not served`)
	wantList(t, f.reg, "broken/1 READY", "colors/1 READY", "extra/1 UNLOADING")
	if f.readiness("extra") {
		t.Error("a removed model is ready")
	}
	// t.Cleanup releases extra; the registry's Close then waits for it.
	_ = extra
}

// TestFailedReplacementKeepsServing: a new version or a new configuration
// that fails to load leaves the previous one serving, and says so.
func TestFailedReplacementKeepsServing(t *testing.T) {
	repo := t.TempDir()
	writeModel(t, repo, "colors", nil, "1")
	f := loadWith(t, repo, Options{})
	ctx := testContext(t)

	addVersion(t, repo, "colors", "2", []byte("corrupt"))
	if err := f.reg.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	wantList(t, f.reg, "colors/1 READY: serving version 1 until a version the policy selects is ready", "colors/2 UNAVAILABLE: open model")
	v1, release, err := f.reg.Acquire("colors", 0)
	if err != nil || v1.Number != 1 {
		t.Fatalf("Acquire = %v, %v; want version 1", v1, err)
	}
	release()
	if !f.readiness("colors") {
		t.Error("colors not ready")
	}

	// Version 2 fixed: it replaces version 1.
	addVersion(t, repo, "colors", "2", nil)
	if err := f.reg.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	old := f.acquire(t, "colors", 0)
	if old.Number != 2 {
		t.Fatalf("serving version %d, want 2", old.Number)
	}
	awaitClosed(t, v1)

	// New labels: a new model replaces the old one.
	labels := append([]string(nil), old.Model.Labels...)
	labels[2] = "RED"
	data, _ := json.Marshal(labels)
	if err := os.WriteFile(filepath.Join(repo, "colors", "labels.json"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := f.reg.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	v := f.acquire(t, "colors", 0)
	if v.Model == old.Model || v.Model.Labels[2] != "RED" {
		t.Errorf("labels after Sync: %v", v.Model.Labels)
	}
	wantList(t, f.reg, "colors/2 READY")

	// A configuration the model file does not match: the previous one
	// serves on, and polling does not load it again until it changes.
	mismatch := proto.Clone(v.Model.Config).(*predv1.ModelConfig)
	mismatch.Inputs[0].Shape = []int64{3, 64, 64}
	mismatch.Preprocess.Width, mismatch.Preprocess.Height = 64, 64
	writeConfig(t, repo, mismatch)
	failures := func() int { return f.logs.FilterMessage("model version failed to load").Len() }
	before := failures()
	for range 2 {
		if err := f.reg.Sync(ctx); err != nil {
			t.Fatal(err)
		}
		wantList(t, f.reg, "colors/2 READY: the model's new configuration failed to load; the previous one serves: 2 (UNAVAILABLE: ")
		if n := failures() - before; n != 1 {
			t.Errorf("%d load failures logged, want 1: a rejected directory is not loaded again", n)
		}
	}
	if v := f.acquire(t, "colors", 0); v.Model.Labels[2] != "RED" || v.Model.Config.GetInputs()[0].GetShape()[1] != 32 {
		t.Errorf("the previous configuration does not serve: %v", v.Model.Config)
	}

	// A broken configuration: the previous one serves on.
	cfg := proto.Clone(v.Model.Config).(*predv1.ModelConfig)
	cfg.Platform = "tensorflow"
	writeConfig(t, repo, cfg)
	if err := f.reg.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	wantList(t, f.reg, "colors/2 READY: the model's new configuration failed to load; the previous one serves: invalid config: platform is \"tensorflow\"")
	if v := f.acquire(t, "colors", 0); v.Model.Labels[2] != "RED" {
		t.Errorf("the previous configuration does not serve: %v", v.Model.Labels)
	}
	err = f.reg.LoadModel(ctx, "colors")
	wantCode(t, err, codes.FailedPrecondition, `platform is "tensorflow"`)
}

// TestUnloadAndLoadModel unloads a model by request, which Sync then
// leaves alone, and loads it again.
func TestUnloadAndLoadModel(t *testing.T) {
	repo := t.TempDir()
	writeModel(t, repo, "colors", nil, "1")
	writeModel(t, repo, "other", nil, "1")
	f := loadWith(t, repo, Options{})
	ctx := testContext(t)
	v1, release, err := f.reg.Acquire("colors", 0)
	if err != nil {
		t.Fatal(err)
	}

	if err := f.reg.UnloadModel(ctx, "colors"); err != nil {
		t.Fatal(err)
	}
	_, _, err = f.reg.Acquire("colors", 0)
	wantCode(t, err, codes.Unavailable, `model "colors" is unavailable: unloaded`)
	wantList(t, f.reg, "colors/0 UNAVAILABLE: unloaded", "colors/1 UNLOADING", "other/1 READY")
	if f.readiness("colors") {
		t.Error("an unloaded model is ready")
	}
	release()
	awaitClosed(t, v1)
	if err := f.reg.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	wantList(t, f.reg, "colors/0 UNAVAILABLE: unloaded", "other/1 READY")

	if err := f.reg.LoadModel(ctx, "colors"); err != nil {
		t.Fatalf("LoadModel: %v", err)
	}
	wantList(t, f.reg, "colors/1 READY", "other/1 READY")
	if !f.readiness("colors") {
		t.Error("colors not ready after LoadModel")
	}
	// Loading a served model loads it anew.
	before := f.acquire(t, "other", 0)
	if err := f.reg.LoadModel(ctx, "other"); err != nil {
		t.Fatal(err)
	}
	if after := f.acquire(t, "other", 0); after == before {
		t.Error("LoadModel of a served model kept the old version")
	}

	writeModel(t, repo, "broken", nil)
	addVersion(t, repo, "broken", "1", []byte("corrupt"))
	for _, tt := range []struct {
		name string
		op   func() error
		code codes.Code
		msg  string
	}{
		{"load escaping name", func() error { return f.reg.LoadModel(ctx, "../colors") }, codes.InvalidArgument, `invalid model name "../colors"`},
		{"load dot name", func() error { return f.reg.LoadModel(ctx, "..") }, codes.InvalidArgument, "invalid model name"},
		{"unload escaping name", func() error { return f.reg.UnloadModel(ctx, "a/b") }, codes.InvalidArgument, "invalid model name"},
		{"load unknown", func() error { return f.reg.LoadModel(ctx, "nosuch") }, codes.NotFound, `model "nosuch" is not in the model repository`},
		{"unload unknown", func() error { return f.reg.UnloadModel(ctx, "nosuch") }, codes.NotFound, `model "nosuch" is not served`},
		{"load broken", func() error { return f.reg.LoadModel(ctx, "broken") }, codes.FailedPrecondition, `model "broken" has no ready version: 1 (UNAVAILABLE: `},
	} {
		wantCode(t, tt.op(), tt.code, tt.msg)
	}
	wantList(t, f.reg, "broken/1 UNAVAILABLE", "colors/1 READY", "other/1 READY")
}
