// Package ortrt is pred's only door to ONNX Runtime: it owns the runtime's
// process-wide environment, opens sessions with the options a model's
// configuration asks for, and runs them on raw tensor bytes. No other package
// imports github.com/yalue/onnxruntime_go.
package ortrt

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"sync"

	ort "github.com/yalue/onnxruntime_go"

	predv1 "github.com/prepred/prepred/api/gen/prepred/pred/v1"
)

// Runtime is the loaded ONNX Runtime library and its environment. ONNX
// Runtime has one environment per process, so at most one Runtime may be
// open at a time; Close destroys it and unloads the library.
type Runtime struct {
	libPath string

	// mu guards the fields below.
	mu       sync.Mutex
	sessions int // open sessions; Close refuses while any is open
	closed   bool
}

// New loads the ONNX Runtime shared library at libPath (a path, or a bare
// file name for the system loader) and creates the environment.
func New(libPath string) (*Runtime, error) {
	if ort.IsInitialized() {
		return nil, errors.New("onnx runtime: an environment already exists in this process; close the previous Runtime first")
	}
	ort.SetSharedLibraryPath(libPath)
	if err := ort.InitializeEnvironment(ort.WithLogLevelWarning()); err != nil {
		return nil, fmt.Errorf("onnx runtime: load %q (set --ort-lib or ONNXRUNTIME_LIB to the path of libonnxruntime.so; scripts/install-onnxruntime.sh installs one): %w", libPath, err)
	}
	return &Runtime{libPath: libPath}, nil
}

// Version returns the version of the loaded library, e.g. "1.24.3".
func (r *Runtime) Version() string { return ort.GetVersion() }

// LibraryPath returns the path the library was loaded from.
func (r *Runtime) LibraryPath() string { return r.libPath }

// Close destroys the environment and unloads the library. Every session must
// be closed first: a session outliving its environment would crash the
// process on its next use.
func (r *Runtime) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return nil
	}
	if r.sessions > 0 {
		return fmt.Errorf("onnx runtime: %d sessions are still open", r.sessions)
	}
	r.closed = true
	if err := ort.DestroyEnvironment(); err != nil {
		return fmt.Errorf("onnx runtime: destroy environment: %w", err)
	}
	return nil
}

// Options are the session options a model's configuration may set; the zero
// value leaves every choice to ONNX Runtime's defaults on the CPU.
type Options struct {
	// IntraOpThreads and InterOpThreads size the session's thread pools;
	// 0 lets ONNX Runtime choose (one thread per physical core).
	IntraOpThreads int
	InterOpThreads int
	// GraphOptimizationLevel is "disable", "basic", "extended" or "all";
	// empty means "all".
	GraphOptimizationLevel string
	// ExecutionProvider is "cpu", "cuda" or "tensorrt"; empty means "cpu".
	// tensorrt also registers cuda, for the nodes TensorRT does not take.
	ExecutionProvider string
	// DeviceID is the GPU of the cuda and tensorrt providers.
	DeviceID int
	// ProviderOptions are extra options of the cuda or tensorrt provider,
	// passed to ONNX Runtime as they are (device_id is set from DeviceID).
	ProviderOptions map[string]string
	// SessionConfig are ONNX Runtime session configuration entries (e.g.
	// "session.intra_op.allow_spinning": "0"), set as they are.
	SessionConfig map[string]string
	// DisableCPUMemArena turns off ONNX Runtime's CPU memory arena, so that
	// the memory of a burst of large batches returns to the system
	// afterwards instead of staying reserved for the session's life;
	// DisableMemPattern turns off the per-shape pre-allocation plans.
	DisableCPUMemArena bool
	DisableMemPattern  bool
	// OutputNames selects the outputs Run computes, in the order Run
	// returns them; empty means every output of the model, in model order.
	OutputNames []string
}

// FromConfig returns the session options of a model configuration.
func FromConfig(rt *predv1.RuntimeOptions) Options {
	return Options{
		IntraOpThreads:         int(rt.GetIntraOpThreads()),
		InterOpThreads:         int(rt.GetInterOpThreads()),
		GraphOptimizationLevel: rt.GetGraphOptimizationLevel(),
		ExecutionProvider:      rt.GetExecutionProvider(),
		DeviceID:               int(rt.GetDeviceId()),
		ProviderOptions:        rt.GetProviderOptions(),
		SessionConfig:          rt.GetSessionConfig(),
		DisableCPUMemArena:     rt.GetDisableCpuMemArena(),
		DisableMemPattern:      rt.GetDisableMemPattern(),
	}
}

// IsGPU reports whether the execution provider p runs on a GPU.
func IsGPU(p string) bool { return p == "cuda" || p == "tensorrt" }

// graphOptimizationLevels maps the configuration's names to ONNX Runtime's.
var graphOptimizationLevels = map[string]ort.GraphOptimizationLevel{
	"":         ort.GraphOptimizationLevelEnableAll,
	"all":      ort.GraphOptimizationLevelEnableAll,
	"extended": ort.GraphOptimizationLevelEnableExtended,
	"basic":    ort.GraphOptimizationLevelEnableBasic,
	"disable":  ort.GraphOptimizationLevelDisableAll,
}

// sessionOptions builds ONNX Runtime session options from o. The caller
// destroys the result.
func (r *Runtime) sessionOptions(o Options) (*ort.SessionOptions, error) {
	so, err := ort.NewSessionOptions()
	if err != nil {
		return nil, fmt.Errorf("create session options: %w", err)
	}
	ok := false
	defer func() {
		if !ok {
			so.Destroy()
		}
	}()
	if o.IntraOpThreads < 0 || o.InterOpThreads < 0 {
		return nil, fmt.Errorf("thread counts must not be negative (intra_op_threads %d, inter_op_threads %d)", o.IntraOpThreads, o.InterOpThreads)
	}
	if o.IntraOpThreads > 0 {
		if err := so.SetIntraOpNumThreads(o.IntraOpThreads); err != nil {
			return nil, fmt.Errorf("set intra-op threads: %w", err)
		}
	}
	if o.InterOpThreads > 0 {
		if err := so.SetInterOpNumThreads(o.InterOpThreads); err != nil {
			return nil, fmt.Errorf("set inter-op threads: %w", err)
		}
	}
	for _, k := range slices.Sorted(maps.Keys(o.SessionConfig)) {
		if err := so.AddSessionConfigEntry(k, o.SessionConfig[k]); err != nil {
			return nil, fmt.Errorf("session config %q = %q: %w", k, o.SessionConfig[k], err)
		}
	}
	if o.DisableCPUMemArena {
		if err := so.SetCpuMemArena(false); err != nil {
			return nil, fmt.Errorf("disable the CPU memory arena: %w", err)
		}
	}
	if o.DisableMemPattern {
		if err := so.SetMemPattern(false); err != nil {
			return nil, fmt.Errorf("disable memory patterns: %w", err)
		}
	}
	level, known := graphOptimizationLevels[o.GraphOptimizationLevel]
	if !known {
		return nil, fmt.Errorf("unknown graph optimization level %q (want disable, basic, extended or all)", o.GraphOptimizationLevel)
	}
	if err := so.SetGraphOptimizationLevel(level); err != nil {
		return nil, fmt.Errorf("set graph optimization level: %w", err)
	}
	switch o.ExecutionProvider {
	case "", "cpu":
		if len(o.ProviderOptions) > 0 {
			return nil, errors.New("provider options apply to the cuda and tensorrt execution providers, not to cpu")
		}
	case "tensorrt":
		if err := r.appendTensorRT(so, o); err != nil {
			return nil, err
		}
		// TensorRT hands the nodes it cannot take to the next provider.
		if err := r.appendCUDA(so, Options{DeviceID: o.DeviceID}); err != nil {
			return nil, err
		}
	case "cuda":
		if err := r.appendCUDA(so, o); err != nil {
			return nil, err
		}
	default:
		return nil, fmt.Errorf("unknown execution provider %q (want cpu, cuda or tensorrt)", o.ExecutionProvider)
	}
	ok = true
	return so, nil
}

// providerOptions returns o's provider options with its device.
func providerOptions(o Options) (map[string]string, error) {
	if o.DeviceID < 0 {
		return nil, fmt.Errorf("device_id %d must not be negative", o.DeviceID)
	}
	opts := map[string]string{"device_id": strconv.Itoa(o.DeviceID)}
	for k, v := range o.ProviderOptions {
		if k == "device_id" {
			return nil, errors.New("set the GPU with device_id, not provider_options")
		}
		opts[k] = v
	}
	return opts, nil
}

// gpuProviderOptions are the options of a GPU execution provider
// (onnxruntime_go's CUDAProviderOptions and TensorRTProviderOptions).
type gpuProviderOptions interface {
	Update(map[string]string) error
	Destroy() error
}

// appendGPUProvider adds the GPU execution provider named provider to so,
// with its options made by create, set from o, and added by add.
func appendGPUProvider[P gpuProviderOptions](r *Runtime, provider string, o Options, create func() (P, error), add func(P) error) error {
	opts, err := providerOptions(o)
	if err != nil {
		return err
	}
	p, err := create()
	if err != nil {
		return r.providerUnavailable(provider, err)
	}
	defer p.Destroy()
	if err := p.Update(opts); err != nil {
		// Also how a CPU build fails: it lacks the provider's library.
		return r.providerUnavailable(provider, fmt.Errorf("set options %v: %w", opts, err))
	}
	if err := add(p); err != nil {
		return r.providerUnavailable(provider, err)
	}
	return nil
}

func (r *Runtime) appendCUDA(so *ort.SessionOptions, o Options) error {
	return appendGPUProvider(r, "cuda", o, ort.NewCUDAProviderOptions, so.AppendExecutionProviderCUDA)
}

func (r *Runtime) appendTensorRT(so *ort.SessionOptions, o Options) error {
	return appendGPUProvider(r, "tensorrt", o, ort.NewTensorRTProviderOptions, so.AppendExecutionProviderTensorRT)
}

// providerUnavailable explains why a GPU execution provider failed.
func (r *Runtime) providerUnavailable(provider string, err error) error {
	needs := "CUDA 12 and cuDNN 9"
	if provider == "tensorrt" {
		needs += " and TensorRT 10"
	}
	return fmt.Errorf("execution provider %s is not available with the ONNX Runtime library %q (it needs a GPU build of ONNX Runtime 1.24 with %s installed; set --ort-lib to one, or set runtime.execution_provider to \"cpu\"): %w", provider, r.libPath, needs, err)
}

// addSession counts a new session, refusing if the runtime is closed.
func (r *Runtime) addSession() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return errors.New("onnx runtime: closed")
	}
	r.sessions++
	return nil
}

func (r *Runtime) removeSession() {
	r.mu.Lock()
	r.sessions--
	r.mu.Unlock()
}
