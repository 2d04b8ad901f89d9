// Package registry holds the models pred serves: it loads the versions the
// model repository selects into ONNX Runtime sessions, warms each up before
// it serves, tracks the state of each (loading, ready, unloading,
// unavailable and why), hands out versions to requests, queues and batches
// their inferences, and closes a session only once its in-flight requests
// are done. The repository can be re-read while pred serves (Sync, or
// LoadModel and UnloadModel for one model).
//
// Errors it returns carry gRPC status codes (NotFound for an unknown model
// or version, Unavailable for one that is loading, failed or shutting down,
// InvalidArgument for a bad tensor, FailedPrecondition for a contract
// mismatch, ResourceExhausted for a full queue) so that every protocol
// front end maps them the same way.
package registry

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"go.uber.org/zap"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/prepred/prepred/pred/internal/metrics"
	"github.com/prepred/prepred/pred/internal/ortrt"
	"github.com/prepred/prepred/pred/internal/tracing"
)

// State is the serving state of a model version, as List reports it.
type State string

// The states of a model version.
const (
	StateLoading     State = "LOADING"
	StateReady       State = "READY"
	StateUnloading   State = "UNLOADING" // finishing its in-flight requests before its session closes
	StateUnavailable State = "UNAVAILABLE"
)

// What to do when a model asks for a GPU execution provider (cuda or
// tensorrt) and ONNX Runtime cannot provide it (Options.CUDAFallback).
const (
	// FallbackCPU logs a warning and runs the model on the CPU.
	FallbackCPU = "cpu"
	// FallbackFail leaves the model version UNAVAILABLE with the reason.
	FallbackFail = "fail"
)

// DefaultMaxQueueSize bounds the queue of a model version whose config
// sets no dynamic_batching.max_queue_size: at ResNet-50's tens of
// milliseconds per image on a CPU, a full queue is seconds of work, about
// as long as a client waits.
const DefaultMaxQueueSize = 128

// reasonUnloaded is the reason of a model unloaded by request.
const reasonUnloaded = "unloaded"

// Options configure a Registry.
type Options struct {
	Logger *zap.Logger
	// OnModelState, if set, is called whenever a model's readiness may have
	// changed: ready means at least one of its versions is READY.
	OnModelState func(model string, ready bool)
	// Metrics receives the per model version metrics; nil keeps them
	// unexported.
	Metrics *metrics.Metrics
	// ExecutionProvider is the execution provider ("cpu", "cuda" or
	// "tensorrt") of
	// models whose runtime options name none; empty means "cpu".
	ExecutionProvider string
	// CUDAFallback is FallbackCPU (the default when empty) or FallbackFail.
	CUDAFallback string
	// InstanceCount is how many executions of one model version may run at
	// once; 0 means 1.
	InstanceCount int
	// MaxQueueSize bounds the queue of model versions whose config does not
	// (dynamic_batching.max_queue_size); 0 means DefaultMaxQueueSize.
	MaxQueueSize int
	// Tracing records the queue, batch and ONNX Runtime spans of each
	// request; nil (tracing off) records none.
	Tracing *tracing.Tracing
}

// Registry is the set of models pred serves.
type Registry struct {
	rt      *ortrt.Runtime
	log     *zap.Logger
	onState func(string, bool)
	metrics *metrics.Metrics
	opts    Options

	// changing holds a token while no change to the set of models (Load,
	// Sync, LoadModel, UnloadModel, Close) is under way: changes take it,
	// one at a time, waiting with a context. It guards dir and unloaded.
	changing chan struct{}
	dir      string
	// unloaded names the models unloaded by request; Sync leaves them
	// alone until LoadModel.
	unloaded map[string]bool

	// mu guards the fields below and the mutable fields of every Model and
	// Version (state, reason, note, versions).
	mu     sync.RWMutex
	models map[string]*Model
	// retiring are versions taken out of service that finish their
	// in-flight requests before their sessions close.
	retiring map[*Version]bool
	loaded   bool
	closed   bool
	// drains counts the goroutines closing retiring versions.
	drains sync.WaitGroup

	// changeMu guards changed, which is closed and replaced at every
	// change of state (see Changes).
	changeMu sync.Mutex
	changed  chan struct{}
}

// New returns an empty registry that opens sessions with rt.
func New(rt *ortrt.Runtime, o Options) *Registry {
	if o.Logger == nil {
		o.Logger = zap.NewNop()
	}
	if o.Metrics == nil {
		o.Metrics = metrics.New()
	}
	if o.InstanceCount < 1 {
		o.InstanceCount = 1
	}
	if o.MaxQueueSize < 1 {
		o.MaxQueueSize = DefaultMaxQueueSize
	}
	r := &Registry{
		rt:       rt,
		log:      o.Logger,
		onState:  o.OnModelState,
		metrics:  o.Metrics,
		opts:     o,
		changing: make(chan struct{}, 1),
		unloaded: map[string]bool{},
		models:   map[string]*Model{},
		retiring: map[*Version]bool{},
		changed:  make(chan struct{}),
	}
	r.changing <- struct{}{}
	o.Metrics.SetModelStates(r.modelStates)
	return r
}

// takeOpen is take on a registry that is not closed; it holds nothing
// when it fails.
func (r *Registry) takeOpen(ctx context.Context) error {
	if err := r.take(ctx); err != nil {
		return err
	}
	if err := r.checkOpen(); err != nil {
		r.give()
		return err
	}
	return nil
}

// take waits for the right to change the set of models.
func (r *Registry) take(ctx context.Context) error {
	select {
	case <-r.changing:
		return nil
	default:
	}
	select {
	case <-r.changing:
		return nil
	case <-ctx.Done():
		return status.FromContextError(ctx.Err()).Err()
	}
}

func (r *Registry) give() { r.changing <- struct{}{} }

func (r *Registry) checkOpen() error {
	r.mu.RLock()
	defer r.mu.RUnlock()
	switch {
	case r.closed:
		return status.Error(codes.Unavailable, "pred is shutting down")
	case !r.loaded:
		return status.Error(codes.Unavailable, "the model repository is still being read")
	}
	return nil
}

// Close stops handing out versions, waits for in-flight requests to
// release theirs (or for ctx to end) and closes every session. If ctx ends
// first, sessions stay open and Close returns an error: closing a session
// under a running request would crash the process.
func (r *Registry) Close(ctx context.Context) error {
	r.mu.Lock()
	r.closed = true
	r.mu.Unlock()
	if err := r.take(ctx); err != nil {
		return fmt.Errorf("close model registry: a repository change is under way: %w", err)
	}
	defer r.give()

	r.mu.RLock()
	var vs []*Version
	for _, m := range r.models {
		vs = append(vs, m.versions...)
	}
	r.mu.RUnlock()
	done := make(chan struct{})
	go func() {
		for _, v := range vs {
			v.refs.Wait()
		}
		r.drains.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
		return fmt.Errorf("close model registry: requests still in flight: %w", ctx.Err())
	}

	defer r.signalChange()
	r.mu.Lock()
	defer r.mu.Unlock()
	var errs []error
	for _, v := range vs {
		if v.state != StateReady {
			continue
		}
		if err := v.close(); err != nil {
			errs = append(errs, err)
		}
		v.state, v.reason = StateUnavailable, "pred is shutting down"
		close(v.closed)
	}
	return errors.Join(errs...)
}
