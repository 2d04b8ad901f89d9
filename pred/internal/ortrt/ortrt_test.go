package ortrt

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	predv1 "github.com/prepred/prepred/api/gen/prepred/pred/v1"
	"github.com/prepred/prepred/pred/internal/repository"
	"github.com/prepred/prepred/pred/internal/tensor"
	"github.com/prepred/prepred/pred/predtest"
)

// The ONNX Runtime environment is per process: one Runtime serves every
// test and TestMain destroys it at the end.
var (
	rtOnce sync.Once
	rt     *Runtime
	rtErr  error
)

func testRuntime(tb testing.TB) *Runtime {
	tb.Helper()
	lib := predtest.ORTLibrary(tb)
	rtOnce.Do(func() { rt, rtErr = New(lib) })
	if rtErr != nil {
		tb.Fatalf("New(%s): %v", lib, rtErr)
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

// model returns the path and configuration of a generated model.
func model(tb testing.TB, name string) (string, *predv1.ModelConfig) {
	tb.Helper()
	repo := predtest.ModelRepository(tb)
	models, err := repository.Scan(repo)
	if err != nil {
		tb.Fatal(err)
	}
	for _, m := range models {
		if m.Name == name && m.Err == nil {
			return m.Versions[len(m.Versions)-1].Path, m.Config
		}
	}
	tb.Fatalf("no usable model %q in %s", name, repo)
	return "", nil
}

func open(tb testing.TB, name string, o Options) (*Session, *predv1.ModelConfig) {
	tb.Helper()
	path, cfg := model(tb, name)
	s, err := testRuntime(tb).Open(path, o)
	if err != nil {
		tb.Fatalf("Open: %v", err)
	}
	tb.Cleanup(func() {
		if err := s.Close(); err != nil {
			tb.Error(err)
		}
	})
	return s, cfg
}

// colorCenters are the colors model's classes and RGB centers, in output order.
var colorCenters = []struct {
	label string
	rgb   [3]uint8
}{
	{"black", [3]uint8{0, 0, 0}},
	{"white", [3]uint8{255, 255, 255}},
	{"red", [3]uint8{255, 0, 0}},
	{"green", [3]uint8{0, 255, 0}},
	{"blue", [3]uint8{0, 0, 255}},
	{"yellow", [3]uint8{255, 255, 0}},
	{"cyan", [3]uint8{0, 255, 255}},
	{"magenta", [3]uint8{255, 0, 255}},
	{"gray", [3]uint8{128, 128, 128}},
}

func imageTensor(cfg *predv1.ModelConfig, colors ...[3]uint8) tensor.Tensor {
	s := cfg.GetPreprocess()
	return tensor.Tensor{
		Name:  "input",
		DType: predv1.DataType_DATA_TYPE_FLOAT32,
		Shape: []int64{int64(len(colors)), 3, int64(s.GetHeight()), int64(s.GetWidth())},
		Data:  predtest.ConstantImages(s, colors...),
	}
}

func TestSessionInfo(t *testing.T) {
	s, _ := open(t, "colors", Options{})
	wantIn := []TensorInfo{{Name: "input", DType: predv1.DataType_DATA_TYPE_FLOAT32, Shape: []int64{-1, 3, 32, 32}}}
	wantOut := []TensorInfo{{Name: "output", DType: predv1.DataType_DATA_TYPE_FLOAT32, Shape: []int64{-1, 9}}}
	if got := s.Inputs(); fmt.Sprint(got) != fmt.Sprint(wantIn) {
		t.Errorf("Inputs = %v, want %v", got, wantIn)
	}
	if got := s.Outputs(); fmt.Sprint(got) != fmt.Sprint(wantOut) {
		t.Errorf("Outputs = %v, want %v", got, wantOut)
	}
}

func TestRunColors(t *testing.T) {
	s, cfg := open(t, "colors", Options{})
	var batch [][3]uint8
	for _, c := range colorCenters {
		batch = append(batch, c.rgb)
	}
	// Near-but-not-exact colors still land on their center.
	batch = append(batch, [3]uint8{230, 20, 10}, [3]uint8{10, 10, 200})
	want := []int{0, 1, 2, 3, 4, 5, 6, 7, 8, 2, 4}

	for _, prealloc := range []bool{true, false} {
		t.Run(fmt.Sprintf("preallocated=%v", prealloc), func(t *testing.T) {
			var shapes [][]int64
			if prealloc {
				shapes = [][]int64{{int64(len(batch)), 9}}
			}
			outs, err := s.Run(context.Background(), []tensor.Tensor{imageTensor(cfg, batch...)}, shapes)
			if err != nil {
				t.Fatalf("Run: %v", err)
			}
			if len(outs) != 1 || outs[0].Name != "output" || outs[0].DType != predv1.DataType_DATA_TYPE_FLOAT32 ||
				!slices.Equal(outs[0].Shape, []int64{int64(len(batch)), 9}) {
				t.Fatalf("outputs = %+v", outs)
			}
			logits := predtest.Float32s(outs[0].Data)
			for i, w := range want {
				if got := predtest.Argmax(logits[9*i : 9*i+9]); got != w {
					t.Errorf("image %d %v: argmax %s, want %s (logits %v)", i, batch[i], colorCenters[got].label, colorCenters[w].label, logits[9*i:9*i+9])
				}
			}
		})
	}
}

func TestRunMisalignedInput(t *testing.T) {
	s, cfg := open(t, "colors", Options{})
	in := imageTensor(cfg, [3]uint8{255, 0, 0})
	buf := make([]byte, len(in.Data)+1)
	copy(buf[1:], in.Data)
	in.Data = buf[1:]
	outs, err := s.Run(context.Background(), []tensor.Tensor{in}, nil)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if got := predtest.Argmax(predtest.Float32s(outs[0].Data)); got != 2 {
		t.Errorf("argmax = %d, want 2 (red)", got)
	}
}

func TestRunErrors(t *testing.T) {
	s, cfg := open(t, "colors", Options{})
	good := imageTensor(cfg, [3]uint8{1, 2, 3})
	short := good
	short.Data = good.Data[:len(good.Data)-4]
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	tests := []struct {
		name    string
		ctx     context.Context
		inputs  []tensor.Tensor
		shapes  [][]int64
		wantErr string
	}{
		{name: "no inputs", ctx: context.Background(), wantErr: "got 0 inputs, the model takes 1"},
		{name: "short data", ctx: context.Background(), inputs: []tensor.Tensor{short}, wantErr: "needs 12288"},
		{name: "output shape count", ctx: context.Background(), inputs: []tensor.Tensor{good}, shapes: [][]int64{{1, 9}, {1}}, wantErr: "2 output shapes for 1 outputs"},
		{name: "wrong output shape", ctx: context.Background(), inputs: []tensor.Tensor{good}, shapes: [][]int64{{1, 8}}, wantErr: "run:"},
		{name: "cancelled", ctx: cancelled, inputs: []tensor.Tensor{good}, wantErr: context.Canceled.Error()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := s.Run(tt.ctx, tt.inputs, tt.shapes)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("Run = %v, want an error containing %q", err, tt.wantErr)
			}
		})
	}
	// The session still works.
	if _, err := s.Run(context.Background(), []tensor.Tensor{good}, nil); err != nil {
		t.Errorf("Run after errors: %v", err)
	}
}

func TestConcurrentRuns(t *testing.T) {
	s, cfg := open(t, "colors", Options{IntraOpThreads: 1})
	const goroutines, runs = 8, 25
	var wg sync.WaitGroup
	errs := make(chan error, goroutines)
	for g := range goroutines {
		wg.Go(func() {
			for i := range runs {
				k := (g + i) % len(colorCenters)
				outs, err := s.Run(context.Background(), []tensor.Tensor{imageTensor(cfg, colorCenters[k].rgb)}, [][]int64{{1, 9}})
				if err != nil {
					errs <- err
					return
				}
				if got := predtest.Argmax(predtest.Float32s(outs[0].Data)); got != k {
					errs <- fmt.Errorf("goroutine %d run %d: argmax %d, want %d", g, i, got, k)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// resnetInput returns n deterministic pseudo-images, each different.
func resnetInput(n int, seed float32) tensor.Tensor {
	const per = 3 * 224 * 224
	v := make([]float32, n*per)
	for i := range v {
		v[i] = float32(math.Sin(float64(seed)+float64(i)*0.001)) * 2
	}
	return tensor.Tensor{Name: "input", DType: predv1.DataType_DATA_TYPE_FLOAT32, Shape: []int64{int64(n), 3, 224, 224}, Data: predtest.Float32Bytes(v)}
}

func TestRunResNet50(t *testing.T) {
	s, _ := open(t, "resnet50", Options{})
	run := func(in tensor.Tensor) []float32 {
		t.Helper()
		outs, err := s.Run(context.Background(), []tensor.Tensor{in}, [][]int64{{in.Shape[0], 1000}})
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
		logits := predtest.Float32s(outs[0].Data)
		if len(logits) != int(in.Shape[0])*1000 {
			t.Fatalf("got %d logits", len(logits))
		}
		for i, x := range logits {
			if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
				t.Fatalf("logit %d is %v", i, x)
			}
		}
		return logits
	}
	a, b := resnetInput(1, 0), resnetInput(1, 1)
	la, lb := run(a), run(b)
	if slices.Equal(la, lb) {
		t.Error("two different images gave the same logits")
	}
	pair := tensor.Tensor{Name: "input", DType: a.DType, Shape: []int64{2, 3, 224, 224}, Data: append(slices.Clone(a.Data), b.Data...)}
	lp := run(pair)
	for i := range 1000 {
		if !near(lp[i], la[i]) || !near(lp[1000+i], lb[i]) {
			t.Fatalf("logit %d of the batch (%v, %v) differs from the single runs (%v, %v)", i, lp[i], lp[1000+i], la[i], lb[i])
		}
	}
}

func near(a, b float32) bool {
	return math.Abs(float64(a-b)) <= 1e-3*max(1, math.Abs(float64(b)))
}

func TestRunCancelledMidway(t *testing.T) {
	s, _ := open(t, "resnet50", Options{})
	in := resnetInput(8, 0)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := s.Run(ctx, []tensor.Tensor{in}, nil)
	t.Logf("cancelled run returned after %v", time.Since(start))
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Run = %v, want context.DeadlineExceeded", err)
	}
}

func TestOptions(t *testing.T) {
	path, _ := model(t, "colors")
	r := testRuntime(t)
	tests := []struct {
		opts    Options
		wantErr string
	}{
		{opts: Options{IntraOpThreads: 1, InterOpThreads: 1, GraphOptimizationLevel: "disable", ExecutionProvider: "cpu"}},
		{opts: Options{GraphOptimizationLevel: "basic"}},
		{opts: Options{GraphOptimizationLevel: "extended"}},
		{opts: Options{SessionConfig: map[string]string{"session.intra_op.allow_spinning": "0", "session.inter_op.allow_spinning": "0"}}},
		{opts: Options{SessionConfig: map[string]string{"": "1"}}, wantErr: `session config ""`},
		{opts: Options{DisableCPUMemArena: true, DisableMemPattern: true}},
		{opts: Options{GraphOptimizationLevel: "max"}, wantErr: `unknown graph optimization level "max"`},
		{opts: Options{ExecutionProvider: "tpu"}, wantErr: `unknown execution provider "tpu"`},
		{opts: Options{IntraOpThreads: -1}, wantErr: "must not be negative"},
		{opts: Options{OutputNames: []string{"logits"}}, wantErr: `the model has no output "logits"`},
		{opts: Options{ExecutionProvider: "cuda"}, wantErr: "execution provider cuda is not available"},
		{opts: Options{ExecutionProvider: "cuda", DeviceID: 1, ProviderOptions: map[string]string{"cudnn_conv_algo_search": "HEURISTIC"}}, wantErr: "execution provider cuda is not available"},
		{opts: Options{ExecutionProvider: "tensorrt"}, wantErr: "execution provider tensorrt is not available"},
		{opts: Options{ExecutionProvider: "cuda", DeviceID: -1}, wantErr: "device_id -1 must not be negative"},
		{opts: Options{ExecutionProvider: "tensorrt", ProviderOptions: map[string]string{"device_id": "1"}}, wantErr: "set the GPU with device_id"},
		{opts: Options{ProviderOptions: map[string]string{"trt_fp16_enable": "1"}}, wantErr: "not to cpu"},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%+v", tt.opts), func(t *testing.T) {
			s, err := r.Open(path, tt.opts)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("Open: %v", err)
				}
				if err := s.Close(); err != nil {
					t.Error(err)
				}
				return
			}
			if err == nil {
				s.Close()
				if IsGPU(tt.opts.ExecutionProvider) && strings.Contains(tt.wantErr, "is not available") {
					t.Skip("this ONNX Runtime library has " + tt.opts.ExecutionProvider)
				}
				t.Fatalf("Open succeeded, want an error containing %q", tt.wantErr)
			}
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("Open = %v, want an error containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestOpenBadModel(t *testing.T) {
	bad := filepath.Join(t.TempDir(), "model.onnx")
	if err := os.WriteFile(bad, []byte("not a model"), 0o644); err != nil {
		t.Fatal(err)
	}
	if s, err := testRuntime(t).Open(bad, Options{}); err == nil {
		s.Close()
		t.Fatal("Open of a corrupt model succeeded")
	}
}

func TestCloseRefusesOpenSessions(t *testing.T) {
	s, _ := open(t, "colors", Options{})
	if err := testRuntime(t).Close(); err == nil || !strings.Contains(err.Error(), "sessions are still open") {
		t.Fatalf("Close with an open session = %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

func TestNewTwice(t *testing.T) {
	testRuntime(t)
	if r, err := New(predtest.ORTLibrary(t)); err == nil {
		r.Close()
		t.Fatal("a second Runtime was created")
	}
}
