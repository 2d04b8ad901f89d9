package registry

import (
	"bytes"
	"context"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
	"google.golang.org/grpc/codes"

	predv1 "github.com/prepred/prepred/api/gen/prepred/pred/v1"
	"github.com/prepred/prepred/pred/internal/batcher"
	"github.com/prepred/prepred/pred/internal/metrics"
	"github.com/prepred/prepred/pred/internal/tensor"
	"github.com/prepred/prepred/pred/predtest"
)

// hourDelay is a queue delay no test waits out: a batch runs only once
// full (or when its version drains).
const hourDelay = uint64(time.Hour / time.Microsecond)

// testTimeout bounds every wait of a test on an event.
const testTimeout = time.Minute

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	t.Cleanup(cancel)
	return ctx
}

// fixture is a loaded registry with its logs, metrics and per model
// readiness.
type fixture struct {
	reg     *Registry
	logs    *observer.ObservedLogs
	metrics *metrics.Metrics

	mu    sync.Mutex
	ready map[string]bool
}

func (f *fixture) readiness(model string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.ready[model]
}

// loadWith loads repo into a registry with options o (logger, metrics and
// readiness callback filled in), closed at the end of the test.
func loadWith(t *testing.T, repo string, o Options) *fixture {
	t.Helper()
	core, logs := observer.New(zap.DebugLevel)
	f := &fixture{logs: logs, metrics: metrics.New(), ready: map[string]bool{}}
	o.Logger = zap.New(core)
	o.Metrics = f.metrics
	o.OnModelState = func(model string, ok bool) {
		f.mu.Lock()
		f.ready[model] = ok
		f.mu.Unlock()
	}
	f.reg = New(testRuntime(t), o)
	t.Cleanup(func() {
		if err := f.reg.Close(context.Background()); err != nil {
			t.Error(err)
		}
	})
	if err := f.reg.Load(testContext(t), repo); err != nil {
		t.Fatalf("Load: %v", err)
	}
	return f
}

// acquire acquires a version, released at the end of the test.
func (f *fixture) acquire(t *testing.T, model string, version int64) *Version {
	t.Helper()
	v, release, err := f.reg.Acquire(model, version)
	if err != nil {
		t.Fatalf("Acquire(%s, %d): %v", model, version, err)
	}
	t.Cleanup(release)
	return v
}

// metric returns the value of a counter or gauge, or the sample count of
// a histogram, with the given labels; -1 when there is none.
func (f *fixture) metric(t *testing.T, name string, labels ...string) float64 {
	t.Helper()
	return gatherValue(t, f.metrics.Registry, name, labels...)
}

func gatherValue(t *testing.T, g prometheus.Gatherer, name string, labels ...string) float64 {
	t.Helper()
	families, err := g.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	for _, fam := range families {
		if fam.GetName() != name {
			continue
		}
	metrics:
		for _, m := range fam.GetMetric() {
			for i := 0; i+1 < len(labels); i += 2 {
				found := false
				for _, l := range m.GetLabel() {
					found = found || (l.GetName() == labels[i] && l.GetValue() == labels[i+1])
				}
				if !found {
					continue metrics
				}
			}
			switch {
			case m.GetCounter() != nil:
				return m.GetCounter().GetValue()
			case m.GetGauge() != nil:
				return m.GetGauge().GetValue()
			case m.GetHistogram() != nil:
				return float64(m.GetHistogram().GetSampleCount())
			}
		}
	}
	return -1
}

// awaitMetric polls a metric until it has the wanted value: no event says
// when a request has joined a queue.
func (f *fixture) awaitMetric(t *testing.T, want float64, name string, labels ...string) {
	t.Helper()
	deadline := time.Now().Add(testTimeout)
	for {
		got := f.metric(t, name, labels...)
		if got == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s%v = %v, want %v", name, labels, got, want)
		}
		time.Sleep(time.Millisecond)
	}
}

// images returns the colors model's input for one image per color.
func images(cfg *predv1.ModelConfig, colors ...[3]uint8) tensor.Tensor {
	s := cfg.GetPreprocess()
	return tensor.Tensor{
		Name: "input", DType: predv1.DataType_DATA_TYPE_FLOAT32,
		Shape: []int64{int64(len(colors)), 3, int64(s.GetHeight()), int64(s.GetWidth())},
		Data:  predtest.ConstantImages(s, colors...),
	}
}

type outcome struct {
	outs []tensor.Tensor
	err  error
}

func predictAsync(ctx context.Context, v *Version, in tensor.Tensor) <-chan outcome {
	ch := make(chan outcome, 1)
	go func() {
		outs, err := v.Predict(ctx, []tensor.Tensor{in})
		ch <- outcome{outs, err}
	}()
	return ch
}

func await(t *testing.T, ch <-chan outcome) outcome {
	t.Helper()
	select {
	case o := <-ch:
		return o
	case <-time.After(testTimeout):
		t.Fatal("Predict did not return")
		return outcome{}
	}
}

// label returns the colors label of each image of an output.
func label(v *Version, out tensor.Tensor) []string {
	scores := predtest.Float32s(out.Data)
	n := len(v.Model.Labels)
	var labels []string
	for i := 0; i+n <= len(scores); i += n {
		labels = append(labels, v.Model.Labels[predtest.Argmax(scores[i:i+n])])
	}
	return labels
}

var palette = [][3]uint8{{255, 0, 0}, {0, 255, 0}, {0, 0, 255}, {255, 255, 0}, {0, 255, 255}, {255, 0, 255}, {0, 0, 0}, {255, 255, 255}}
var paletteNames = []string{"red", "green", "blue", "yellow", "cyan", "magenta", "black", "white"}

// TestDynamicBatchingMergesConcurrentRequests sends max_batch_size
// concurrent requests of one image each to a model whose queue delay no
// test waits out: they run as one execution, and each request gets
// exactly the bytes it gets from a model without batching.
func TestDynamicBatchingMergesConcurrentRequests(t *testing.T) {
	repo := t.TempDir()
	writeModel(t, repo, "colors", func(c *predv1.ModelConfig) {
		c.DynamicBatching = &predv1.DynamicBatching{MaxQueueDelayMicroseconds: hourDelay}
	}, "1")
	writeModel(t, repo, "unbatched", nil, "1")
	f := loadWith(t, repo, Options{})
	v := f.acquire(t, "colors", 0)
	plain := f.acquire(t, "unbatched", 0)
	cfg := v.Model.Config

	ctx := testContext(t)
	results := make([]<-chan outcome, len(palette))
	for i, c := range palette {
		results[i] = predictAsync(ctx, v, images(cfg, c))
	}
	for i, ch := range results {
		got := await(t, ch)
		if got.err != nil {
			t.Fatalf("request %d: %v", i, got.err)
		}
		want, err := plain.Predict(ctx, []tensor.Tensor{images(cfg, palette[i])})
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got.outs[0].Data, want[0].Data) || !slices.Equal(got.outs[0].Shape, want[0].Shape) {
			t.Errorf("request %d: batched output %v differs from the unbatched %v", i, predtest.Float32s(got.outs[0].Data), predtest.Float32s(want[0].Data))
		}
		if l := label(v, got.outs[0]); len(l) != 1 || l[0] != paletteNames[i] {
			t.Errorf("request %d: label %v, want %s", i, l, paletteNames[i])
		}
	}

	colors := []string{"model", "colors", "version", "1"}
	for _, m := range []struct {
		name string
		want float64
	}{
		{"pred_inference_exec_count_total", 1},
		{"pred_inference_request_success_total", 8},
		{"pred_inference_count_total", 8},
		{"pred_inference_batch_size", 1},
		{"pred_inference_queue_duration_seconds", 8},
		{"pred_inference_compute_input_duration_seconds", 1},
		{"pred_inference_compute_infer_duration_seconds", 1},
		{"pred_inference_compute_output_duration_seconds", 1},
		{"pred_inference_request_duration_seconds", 8},
		{"pred_inference_pending_request_count", 0},
	} {
		if got := f.metric(t, m.name, colors...); got != m.want {
			t.Errorf("%s = %v, want %v", m.name, got, m.want)
		}
	}
	if got := f.metric(t, "pred_inference_exec_count_total", "model", "unbatched"); got != 8 {
		t.Errorf("unbatched model: %v executions, want 8", got)
	}
	if got := f.metric(t, "pred_model_state", "model", "colors", "version", "1", "state", "READY"); got != 1 {
		t.Errorf("pred_model_state READY = %v, want 1", got)
	}
	if got := f.metric(t, "pred_model_state", "model", "colors", "version", "1", "state", "LOADING"); got != 0 {
		t.Errorf("pred_model_state LOADING = %v, want 0", got)
	}
}

// deadlineContext is a context whose deadline passes when the test says.
type deadlineContext struct {
	context.Context
	done chan struct{}
}

func newDeadlineContext() *deadlineContext {
	return &deadlineContext{Context: context.Background(), done: make(chan struct{})}
}

func (c *deadlineContext) expire()                     { close(c.done) }
func (c *deadlineContext) Done() <-chan struct{}       { return c.done }
func (c *deadlineContext) Deadline() (time.Time, bool) { return time.Now().Add(time.Hour), true }
func (c *deadlineContext) Err() error {
	select {
	case <-c.done:
		return context.DeadlineExceeded
	default:
		return nil
	}
}

// TestQueueLimitsAndDeadlines fills a model's queue: the next request is
// refused at once; a request whose deadline passes, or whose caller
// cancels, while queued fails and never runs.
func TestQueueLimitsAndDeadlines(t *testing.T) {
	repo := t.TempDir()
	writeModel(t, repo, "colors", func(c *predv1.ModelConfig) {
		c.DynamicBatching = &predv1.DynamicBatching{MaxQueueDelayMicroseconds: hourDelay, MaxQueueSize: 3}
	}, "1")
	f := loadWith(t, repo, Options{})
	v := f.acquire(t, "colors", 0)
	cfg := v.Model.Config
	ctx := testContext(t)
	pending := func(n float64) {
		t.Helper()
		f.awaitMetric(t, n, "pred_inference_pending_request_count", "model", "colors", "version", "1")
	}

	a := predictAsync(ctx, v, images(cfg, palette[0]))
	b := predictAsync(ctx, v, images(cfg, palette[1]))
	pending(2)
	deadline := newDeadlineContext()
	expired := predictAsync(deadline, v, images(cfg, palette[2]))
	pending(3)

	start := time.Now()
	_, err := v.Predict(ctx, []tensor.Tensor{images(cfg, palette[3])})
	wantCode(t, err, codes.ResourceExhausted, `model "colors" version 1 is overloaded: its queue holds 3 requests`)
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("the refusal took %v", d)
	}

	deadline.expire()
	wantCode(t, await(t, expired).err, codes.DeadlineExceeded, "while it waited in the queue")
	pending(2)
	cancelled, cancel := context.WithCancel(ctx)
	aborted := predictAsync(cancelled, v, images(cfg, palette[4]))
	pending(3)
	cancel()
	wantCode(t, await(t, aborted).err, codes.Canceled, "while it waited in the queue")
	pending(2)

	// Six more items fill the batch: it runs, without the two that left.
	six := predictAsync(ctx, v, images(cfg, palette[:6]...))
	for i, ch := range []<-chan outcome{a, b} {
		o := await(t, ch)
		if o.err != nil {
			t.Fatal(o.err)
		}
		if l := label(v, o.outs[0]); len(l) != 1 || l[0] != paletteNames[i] {
			t.Errorf("request %d: %v", i, l)
		}
	}
	o := await(t, six)
	if o.err != nil {
		t.Fatal(o.err)
	}
	if l := label(v, o.outs[0]); !slices.Equal(l, paletteNames[:6]) {
		t.Errorf("batch of six: %v", l)
	}
	labels := []string{"model", "colors", "version", "1"}
	if got := f.metric(t, "pred_inference_exec_count_total", labels...); got != 1 {
		t.Errorf("%v executions, want 1", got)
	}
	if got := f.metric(t, "pred_inference_count_total", labels...); got != 8 {
		t.Errorf("%v items inferred, want 8: the expired and cancelled requests must not run", got)
	}
	for reason, want := range map[string]float64{"ResourceExhausted": 1, "DeadlineExceeded": 1, "Canceled": 1} {
		if got := f.metric(t, "pred_inference_request_failure_total", append(labels, "reason", reason)...); got != want {
			t.Errorf("failures for %s = %v, want %v", reason, got, want)
		}
	}
}

// TestNoDynamicBatchingRunsOneByOne: a model without dynamic_batching
// runs every request on its own, a request's own batch included.
func TestNoDynamicBatchingRunsOneByOne(t *testing.T) {
	repo := t.TempDir()
	writeModel(t, repo, "colors", nil, "1")
	f := loadWith(t, repo, Options{InstanceCount: 2})
	v := f.acquire(t, "colors", 0)
	ctx := testContext(t)
	var results []<-chan outcome
	for i := range 4 {
		results = append(results, predictAsync(ctx, v, images(v.Model.Config, palette[i:i+2]...)))
	}
	for i, ch := range results {
		o := await(t, ch)
		if o.err != nil {
			t.Fatal(o.err)
		}
		if l := label(v, o.outs[0]); !slices.Equal(l, paletteNames[i:i+2]) {
			t.Errorf("request %d: %v", i, l)
		}
	}
	labels := []string{"model", "colors", "version", "1"}
	if got := f.metric(t, "pred_inference_exec_count_total", labels...); got != 4 {
		t.Errorf("%v executions, want 4", got)
	}
	if got := f.metric(t, "pred_inference_count_total", labels...); got != 8 {
		t.Errorf("%v items, want 8", got)
	}
	_, err := v.Predict(ctx, []tensor.Tensor{{Name: "input"}})
	wantCode(t, err, codes.InvalidArgument, "dtype")
	if got := f.metric(t, "pred_inference_request_failure_total", append(labels, "reason", "InvalidArgument")...); got != 1 {
		t.Errorf("InvalidArgument failures = %v, want 1", got)
	}
}

// TestExecutionProviderFallback asks for CUDA, which the CPU build of ONNX
// Runtime the tests use lacks: by default the model runs on the CPU with a
// warning; with FallbackFail it is UNAVAILABLE and says why.
func TestExecutionProviderFallback(t *testing.T) {
	tests := []struct {
		name      string
		provider  string
		inConfig  bool // the config asks for provider, else Options.ExecutionProvider does
		fallback  string
		wantState State
	}{
		{"config asks, fallback to cpu", "cuda", true, "", StateReady},
		{"default asks, fallback to cpu", "cuda", false, FallbackCPU, StateReady},
		{"config asks, fail", "cuda", true, FallbackFail, StateUnavailable},
		{"default asks, fail", "cuda", false, FallbackFail, StateUnavailable},
		{"tensorrt, fallback to cpu", "tensorrt", true, "", StateReady},
		{"tensorrt, fail", "tensorrt", false, FallbackFail, StateUnavailable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			repo := t.TempDir()
			writeModel(t, repo, "colors", func(c *predv1.ModelConfig) {
				if tt.inConfig {
					c.Runtime = &predv1.RuntimeOptions{ExecutionProvider: tt.provider, IntraOpThreads: 1, DeviceId: 0, ProviderOptions: map[string]string{"gpu_mem_limit": "1073741824"}}
				}
			}, "1")
			o := Options{CUDAFallback: tt.fallback}
			if !tt.inConfig {
				o.ExecutionProvider = tt.provider
			}
			f := loadWith(t, repo, o)
			got := f.reg.List()
			if len(got) != 1 {
				t.Fatalf("List = %+v", got)
			}
			if got[0].State == StateReady && tt.wantState == StateUnavailable && f.logs.FilterMessageSnippet("runs on the CPU").Len() == 0 {
				t.Skip("this ONNX Runtime provides CUDA")
			}
			if got[0].State != tt.wantState {
				t.Fatalf("state = %+v, want %v", got[0], tt.wantState)
			}
			warned := f.logs.FilterMessageSnippet("execution provider " + tt.provider + " is not available").Len()
			if tt.wantState == StateReady {
				if warned != 1 {
					t.Errorf("%d fallback warnings, want 1", warned)
				}
				v := f.acquire(t, "colors", 0)
				outs, err := v.Predict(testContext(t), []tensor.Tensor{images(v.Model.Config, palette[0])})
				if err != nil || label(v, outs[0])[0] != "red" {
					t.Errorf("Predict on the CPU fallback: %v", err)
				}
			} else if !strings.Contains(got[0].Reason, "execution provider "+tt.provider) {
				t.Errorf("reason %q does not name %s", got[0].Reason, tt.provider)
			}
		})
	}
}

func TestBatcherConfig(t *testing.T) {
	defaults := Options{InstanceCount: 2, MaxQueueSize: 100}
	tests := []struct {
		name string
		cfg  *predv1.ModelConfig
		want batcher.Config
	}{
		{"defaults", &predv1.ModelConfig{MaxBatchSize: 8},
			batcher.Config{Name: "m", MaxBatchSize: 8, MaxQueueSize: 100, Instances: 2}},
		{"config wins", &predv1.ModelConfig{MaxBatchSize: 8, InstanceCount: 3, DynamicBatching: &predv1.DynamicBatching{
			MaxQueueDelayMicroseconds: 1500, PreferredBatchSize: []int32{4}, MaxQueueSize: 7}},
			batcher.Config{Name: "m", MaxBatchSize: 8, Dynamic: true, MaxQueueDelay: 1500 * time.Microsecond,
				PreferredBatchSizes: []int64{4}, MaxQueueSize: 7, Instances: 3}},
		{"no batch dimension", &predv1.ModelConfig{DynamicBatching: &predv1.DynamicBatching{}},
			batcher.Config{Name: "m", MaxQueueSize: 100, Instances: 2}},
	}
	for _, tt := range tests {
		if got := batcherConfig("m", tt.cfg, defaults); !reflect.DeepEqual(got, tt.want) {
			t.Errorf("%s: batcherConfig = %+v, want %+v", tt.name, got, tt.want)
		}
	}
}
