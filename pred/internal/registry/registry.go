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
	"cmp"
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	predv1 "github.com/prepred/prepred/api/gen/prepred/pred/v1"
	"github.com/prepred/prepred/api/spec"
	"github.com/prepred/prepred/pred/internal/batcher"
	"github.com/prepred/prepred/pred/internal/metrics"
	"github.com/prepred/prepred/pred/internal/ortrt"
	"github.com/prepred/prepred/pred/internal/repository"
	"github.com/prepred/prepred/pred/internal/tensor"
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
	}
	r.changing <- struct{}{}
	o.Metrics.SetModelStates(r.modelStates)
	return r
}

// Model is one model of the repository, with one configuration: a changed
// configuration makes a new Model. Its exported fields do not change once
// registered.
type Model struct {
	Name   string
	Config *predv1.ModelConfig
	Labels []string
	// Fingerprint is spec.Fingerprint(Config.Preprocess); empty without a
	// spec.
	Fingerprint string

	state  State // UNAVAILABLE when the model as a whole cannot load
	reason string
	// note explains why READY versions serve that the repository no
	// longer selects (their replacements failed).
	note     string
	versions []*Version // ascending
	// rejected is the last changed directory that failed to replace this
	// model: Sync does not load it again until it changes.
	rejected *rejection
}

// Inputs returns the model's inputs as clients see them: the configured
// shapes with the batch dimension, -1, first when the model batches.
func (m *Model) Inputs() []*predv1.TensorSpec {
	return withBatchDim(m.Config.GetInputs(), m.Config.GetMaxBatchSize())
}

// Outputs returns the model's outputs as clients see them (see Inputs).
func (m *Model) Outputs() []*predv1.TensorSpec {
	return withBatchDim(m.Config.GetOutputs(), m.Config.GetMaxBatchSize())
}

func withBatchDim(specs []*predv1.TensorSpec, maxBatchSize int32) []*predv1.TensorSpec {
	out := make([]*predv1.TensorSpec, len(specs))
	for i, t := range specs {
		shape := t.GetShape()
		if maxBatchSize > 0 {
			shape = append([]int64{-1}, shape...)
		}
		out[i] = &predv1.TensorSpec{Name: t.GetName(), Dtype: t.GetDtype(), Shape: shape}
	}
	return out
}

// rejection is a scanned model directory that failed to load, with the
// stamps its version files had.
type rejection struct {
	dir    *repository.Model
	stamps []fileStamp
}

func rejectionOf(sm *repository.Model) *rejection {
	rj := &rejection{dir: sm}
	for _, v := range sm.Versions {
		rj.stamps = append(rj.stamps, stampOf(v.Path))
	}
	return rj
}

// matches reports whether a new scan found the rejected directory
// unchanged: configuration, labels and version files.
func (rj *rejection) matches(sm *repository.Model) bool {
	if rj == nil || !proto.Equal(rj.dir.Config, sm.Config) || !slices.Equal(rj.dir.Labels, sm.Labels) || len(rj.dir.Versions) != len(sm.Versions) {
		return false
	}
	for i, v := range sm.Versions {
		if v.Number != rj.dir.Versions[i].Number || stampOf(v.Path) != rj.stamps[i] {
			return false
		}
	}
	return true
}

// Version is one version of a model.
type Version struct {
	Model  *Model
	Number int64
	path   string
	// stamp identifies the model file's contents when it was loaded, so a
	// version that failed is retried once its file changes.
	stamp fileStamp

	state   State
	reason  string
	session *ortrt.Session
	batcher *batcher.Batcher
	metrics *metrics.Version
	// outputDims holds, per output, the configured non-batch dimensions
	// when all are fixed and the elements are of fixed size (so outputs
	// can be preallocated), else nil.
	outputDims [][]int64
	// inputOrder maps the session's inputs to the configuration's: input
	// i of the session is configured input inputOrder[i]; nil when the
	// orders agree.
	inputOrder []int
	// refs counts the requests holding the version; Add happens under
	// Registry.mu.RLock with the version READY, so a retirement, which
	// changes the state under the write lock, cannot miss one.
	refs sync.WaitGroup
	// closed is closed once the session is closed.
	closed chan struct{}
}

// fileStamp is a file's size and modification time.
type fileStamp struct {
	size    int64
	modTime time.Time
}

func stampOf(path string) fileStamp {
	info, err := os.Stat(path)
	if err != nil {
		return fileStamp{}
	}
	return fileStamp{size: info.Size(), modTime: info.ModTime()}
}

// Closed is closed once the version's session has been closed: after it
// was taken out of service and its in-flight requests finished.
func (v *Version) Closed() <-chan struct{} { return v.closed }

// name describes v in messages.
func (v *Version) name() string { return fmt.Sprintf("model %q version %d", v.Model.Name, v.Number) }

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

// Load scans the model repository at dir and loads every model version it
// selects. A model or version that fails is recorded as UNAVAILABLE with
// the reason, and logged; the others still load. Load fails only when the
// repository itself cannot be read, or when called twice. When ctx is
// cancelled, versions not yet loaded are left UNAVAILABLE.
func (r *Registry) Load(ctx context.Context, dir string) error {
	if err := r.take(ctx); err != nil {
		return err
	}
	defer r.give()
	scanned, err := repository.Scan(dir)
	if err != nil {
		return err
	}
	r.mu.Lock()
	switch {
	case r.closed:
		r.mu.Unlock()
		return errors.New("registry is closed")
	case r.loaded:
		r.mu.Unlock()
		return errors.New("registry is already loaded")
	}
	r.loaded = true
	r.dir = dir
	models := make([]*Model, len(scanned))
	for i, sm := range scanned {
		models[i] = r.newModel(sm)
		r.models[sm.Name] = models[i]
		if models[i].state == StateUnavailable {
			r.log.Error("model failed to load", zap.String("model", sm.Name), zap.String("dir", sm.Dir), zap.String("reason", models[i].reason))
		}
	}
	r.mu.Unlock()
	if r.onState != nil {
		for _, m := range models {
			r.onState(m.Name, false)
		}
	}
	for _, m := range models {
		r.loadVersions(ctx, m.versions)
		r.notify(m.Name)
	}
	return nil
}

// Sync re-reads the model repository of Load and brings the served models
// in line with it: new models and versions are loaded and warmed up before
// they serve, removed ones are taken out of service (finishing their
// in-flight requests first), and a model whose configuration or labels
// changed is loaded anew and replaces the old one. A version that failed
// is retried once its model file changes. What fails to load is recorded
// with the reason; a model or version it would replace keeps serving.
// Models unloaded by request stay unloaded.
func (r *Registry) Sync(ctx context.Context) error {
	if err := r.takeOpen(ctx); err != nil {
		return err
	}
	defer r.give()
	scanned, err := repository.Scan(r.dir)
	if err != nil {
		return err
	}
	byName := map[string]*repository.Model{}
	for i := range scanned {
		byName[scanned[i].Name] = &scanned[i]
	}
	r.mu.RLock()
	var names []string
	for name := range r.models {
		if byName[name] == nil {
			names = append(names, name)
		}
	}
	r.mu.RUnlock()
	for name := range byName {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		if sm := byName[name]; sm != nil && r.unloaded[name] {
			continue
		}
		r.syncModel(ctx, name, byName[name], false)
	}
	return nil
}

// Poll calls Sync every interval until ctx ends, logging its errors.
func (r *Registry) Poll(ctx context.Context, interval time.Duration) {
	ticker := time.NewTicker(interval)
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		}
		if err := r.Sync(ctx); err != nil && ctx.Err() == nil {
			r.log.Error("model repository poll failed", zap.Error(err))
		}
	}
}

// LoadModel (re)loads one model from the repository: all the versions its
// policy selects are loaded and warmed up anew and then replace those that
// serve. It fails with NotFound when the repository has no such model and
// FailedPrecondition, with the reasons, when no version of it is ready
// afterwards. A model unloaded by request is served again.
func (r *Registry) LoadModel(ctx context.Context, name string) error {
	if !repository.ValidName(name) {
		return status.Errorf(codes.InvalidArgument, "invalid model name %q", name)
	}
	if err := r.takeOpen(ctx); err != nil {
		return err
	}
	defer r.give()
	sm, err := repository.ScanModel(r.dir, name)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return status.Errorf(codes.NotFound, "model %q is not in the model repository", name)
		}
		return status.Errorf(codes.FailedPrecondition, "load model %q: %v", name, err)
	}
	delete(r.unloaded, name)
	r.syncModel(ctx, name, &sm, true)

	r.mu.RLock()
	defer r.mu.RUnlock()
	m := r.models[name]
	switch {
	case m == nil:
		return status.Errorf(codes.NotFound, "model %q is not in the model repository", name)
	case m.state == StateUnavailable:
		return status.Errorf(codes.FailedPrecondition, "model %q failed to load: %s", name, m.reason)
	case m.Config != sm.Config:
		return status.Errorf(codes.FailedPrecondition, "model %q failed to load, the previous configuration still serves: %s", name, m.note)
	case m.readyLocked() == nil:
		return status.Errorf(codes.FailedPrecondition, "model %q has no ready version: %s", name, m.versionStatesLocked())
	}
	return nil
}

// UnloadModel takes every version of a model out of service; each closes
// once its in-flight requests are done. The model stays unloaded, also
// across Sync, until LoadModel.
func (r *Registry) UnloadModel(ctx context.Context, name string) error {
	if !repository.ValidName(name) {
		return status.Errorf(codes.InvalidArgument, "invalid model name %q", name)
	}
	if err := r.takeOpen(ctx); err != nil {
		return err
	}
	defer r.give()
	r.mu.Lock()
	m := r.models[name]
	if m == nil {
		r.mu.Unlock()
		return status.Errorf(codes.NotFound, "model %q is not served", name)
	}
	r.unloaded[name] = true
	r.models[name] = &Model{Name: name, Config: m.Config, Labels: m.Labels, Fingerprint: m.Fingerprint, state: StateUnavailable, reason: reasonUnloaded}
	r.retireLocked(m.versions)
	r.mu.Unlock()
	r.log.Info("model unloaded", zap.String("model", name))
	r.notify(name)
	return nil
}

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

// newModel makes a Model, with its versions LOADING, from a scanned model
// directory; a model that cannot be served is UNAVAILABLE with the reason.
func (r *Registry) newModel(sm repository.Model) *Model {
	m := &Model{Name: sm.Name, Config: sm.Config, Labels: sm.Labels, state: StateReady}
	for _, w := range sm.Warnings {
		r.log.Warn("model repository", zap.String("model", sm.Name), zap.String("warning", w))
	}
	if sm.Err == nil {
		fp, err := spec.Fingerprint(sm.Config.GetPreprocess())
		if err != nil {
			sm.Err = err
		}
		m.Fingerprint = fp
	}
	if sm.Err != nil {
		m.state, m.reason = StateUnavailable, sm.Err.Error()
		return m
	}
	for _, sv := range sm.Versions {
		m.versions = append(m.versions, r.newVersion(m, sv))
	}
	return m
}

// newVersion makes a LOADING Version, or an UNAVAILABLE one (logged) when
// the repository already found it unusable.
func (r *Registry) newVersion(m *Model, sv repository.Version) *Version {
	v := &Version{Model: m, Number: sv.Number, path: sv.Path, state: StateLoading, stamp: stampOf(sv.Path), closed: make(chan struct{})}
	if sv.Err != nil {
		v.state, v.reason = StateUnavailable, sv.Err.Error()
		r.log.Error("model version failed to load", zap.String("model", m.Name), zap.Int64("version", v.Number), zap.String("reason", v.reason))
	}
	return v
}

// syncModel brings one model in line with its scanned directory (nil: the
// directory is gone). force loads every version anew.
func (r *Registry) syncModel(ctx context.Context, name string, sm *repository.Model, force bool) {
	r.mu.RLock()
	cur := r.models[name]
	r.mu.RUnlock()

	if sm == nil {
		if cur == nil {
			return
		}
		r.mu.Lock()
		delete(r.models, name)
		r.retireLocked(cur.versions)
		r.mu.Unlock()
		r.log.Info("model removed from the repository", zap.String("model", name))
		r.notify(name)
		return
	}

	if !force && cur != nil && cur.state != StateUnavailable &&
		proto.Equal(cur.Config, sm.Config) && slices.Equal(cur.Labels, sm.Labels) && sm.Err == nil {
		r.syncVersions(ctx, cur, sm.Versions)
		return
	}

	if !force && cur != nil && cur.rejected.matches(sm) {
		return // it failed to load as it is
	}
	next := r.newModel(*sm)
	if next.state == StateUnavailable {
		r.mu.Lock()
		switch {
		case cur != nil && cur.state == StateUnavailable && cur.reason == next.reason && !force:
			// Unchanged: nothing to log again.
		case cur != nil && cur.readyLocked() != nil:
			note := "the model's new configuration failed to load; the previous one serves: " + next.reason
			if cur.note != note {
				cur.note = note
				r.log.Error("model failed to load", zap.String("model", name), zap.String("reason", next.reason), zap.Bool("previous_serves", true))
			}
		default:
			r.models[name] = next
			if cur != nil {
				r.retireLocked(cur.versions)
			}
			r.log.Error("model failed to load", zap.String("model", name), zap.String("dir", sm.Dir), zap.String("reason", next.reason))
		}
		r.mu.Unlock()
		r.notify(name)
		return
	}

	r.mu.Lock()
	if cur == nil || cur.readyLocked() == nil {
		// Nothing serves that the new model would have to wait for: it
		// shows its versions LOADING while they load.
		r.models[name] = next
		if cur != nil {
			r.retireLocked(cur.versions)
		}
		r.mu.Unlock()
		r.notify(name)
		r.loadVersions(ctx, next.versions)
		r.notify(name)
		return
	}
	r.mu.Unlock()

	// A changed model loads beside the one serving and replaces it once a
	// version is ready.
	r.loadVersions(ctx, next.versions)
	r.mu.Lock()
	if next.readyLocked() == nil && cur.readyLocked() != nil {
		cur.note = "the model's new configuration failed to load; the previous one serves: " + next.versionStatesLocked()
		cur.rejected = rejectionOf(sm)
		r.log.Error("model failed to load", zap.String("model", name), zap.String("reason", cur.note))
		r.retireLocked(next.versions) // none is ready; closes nothing
	} else {
		r.models[name] = next
		r.retireLocked(cur.versions)
		r.log.Info("model replaced", zap.String("model", name), zap.String("versions", next.versionStatesLocked()))
	}
	r.mu.Unlock()
	r.notify(name)
}

// syncVersions brings the versions of an unchanged model in line with the
// scanned ones: new versions (and failed ones whose file changed) load and
// warm up, then the versions no longer selected leave service. When none
// of the selected versions is ready, those that served keep serving.
func (r *Registry) syncVersions(ctx context.Context, m *Model, scanned []repository.Version) {
	r.mu.RLock()
	current := slices.Clone(m.versions)
	r.mu.RUnlock()
	var plan, load []*Version
	for _, sv := range scanned {
		i := slices.IndexFunc(current, func(v *Version) bool { return v.Number == sv.Number })
		if i >= 0 {
			v := current[i]
			r.mu.RLock()
			retry := v.state == StateUnavailable && v.stamp != stampOf(sv.Path)
			r.mu.RUnlock()
			if !retry {
				plan = append(plan, v)
				continue
			}
		}
		v := r.newVersion(m, sv)
		plan = append(plan, v)
		load = append(load, v)
	}
	if len(load) == 0 && slices.Equal(plan, current) {
		r.mu.Lock()
		m.note = "" // the selected versions are the ones serving
		r.mu.Unlock()
		return
	}
	r.loadVersions(ctx, load)

	r.mu.Lock()
	var replaced []*Version
	for _, v := range current {
		if !slices.Contains(plan, v) {
			replaced = append(replaced, v)
		}
	}
	m.note = ""
	if !slices.ContainsFunc(plan, func(v *Version) bool { return v.state == StateReady }) {
		var kept []string
		for _, v := range replaced {
			if v.state == StateReady && !slices.ContainsFunc(plan, func(p *Version) bool { return p.Number == v.Number }) {
				plan = append(plan, v)
				kept = append(kept, strconv.FormatInt(v.Number, 10))
			}
		}
		if len(kept) > 0 {
			m.note = fmt.Sprintf("serving version %s until a version the policy selects is ready", strings.Join(kept, ", "))
			replaced = slices.DeleteFunc(replaced, func(v *Version) bool { return slices.Contains(plan, v) })
		}
	}
	slices.SortFunc(plan, func(a, b *Version) int { return cmp.Compare(a.Number, b.Number) })
	m.versions = plan
	r.retireLocked(replaced)
	r.mu.Unlock()
	r.notify(m.Name)
}

// loadVersions loads the LOADING versions among vs, one after another.
func (r *Registry) loadVersions(ctx context.Context, vs []*Version) {
	for _, v := range vs {
		r.mu.RLock()
		loading := v.state == StateLoading
		r.mu.RUnlock()
		if loading {
			r.loadVersion(ctx, v)
		}
	}
}

// loadVersion opens the session of v, warms it up and starts its batcher,
// then records v READY, or UNAVAILABLE with the reason.
func (r *Registry) loadVersion(ctx context.Context, v *Version) {
	start := time.Now()
	var sess *ortrt.Session
	var b *batcher.Batcher
	err := ctx.Err()
	if err != nil {
		err = fmt.Errorf("loading stopped: %w", err)
	} else {
		sess, err = r.open(v)
	}
	var warm time.Duration
	if err == nil {
		warmStart := time.Now()
		if err = v.warmUp(ctx, sess); err != nil {
			err = fmt.Errorf("warm-up run failed: %w", err)
		}
		warm = time.Since(warmStart)
	}
	if err == nil {
		b, err = r.newBatcher(v, sess)
	}
	if err != nil && sess != nil {
		sess.Close()
		sess = nil
	}

	r.mu.Lock()
	defer r.mu.Unlock()
	if err == nil && r.closed {
		b.Close()
		sess.Close()
		err = errors.New("pred is shutting down")
	}
	if err != nil {
		v.state, v.reason = StateUnavailable, err.Error()
		r.log.Error("model version failed to load", zap.String("model", v.Model.Name), zap.Int64("version", v.Number), zap.String("reason", v.reason))
		return
	}
	v.session, v.batcher, v.state, v.reason = sess, b, StateReady, ""
	r.log.Info("model version loaded", zap.String("model", v.Model.Name), zap.Int64("version", v.Number),
		zap.String("path", v.path), zap.Duration("duration", time.Since(start)), zap.Duration("warm_up", warm))
}

// open creates the session of v and checks it against the configuration.
func (r *Registry) open(v *Version) (*ortrt.Session, error) {
	cfg := v.Model.Config
	opts := ortrt.FromConfig(cfg.GetRuntime())
	if opts.ExecutionProvider == "" {
		opts.ExecutionProvider = r.opts.ExecutionProvider
	}
	for _, o := range cfg.GetOutputs() {
		opts.OutputNames = append(opts.OutputNames, o.GetName())
	}
	sess, err := r.rt.Open(v.path, opts)
	if err != nil && ortrt.IsGPU(opts.ExecutionProvider) && r.opts.CUDAFallback != FallbackFail {
		gpuErr, provider := err, opts.ExecutionProvider
		opts.ExecutionProvider, opts.DeviceID, opts.ProviderOptions = "cpu", 0, nil
		if sess, err = r.rt.Open(v.path, opts); err == nil {
			r.log.Warn("execution provider "+provider+" is not available; the model version runs on the CPU (--cuda-fallback=cpu)",
				zap.String("model", v.Model.Name), zap.Int64("version", v.Number), zap.String("provider_error", gpuErr.Error()))
		}
	}
	if err != nil {
		return nil, err
	}
	if err := checkSession(cfg, sess); err != nil {
		sess.Close()
		return nil, fmt.Errorf("%s does not match the config: %w", v.path, err)
	}
	v.inputOrder = nil
	for i, info := range sess.Inputs() {
		j := slices.IndexFunc(cfg.GetInputs(), func(s *predv1.TensorSpec) bool { return s.GetName() == info.Name })
		if j != i && v.inputOrder == nil {
			v.inputOrder = make([]int, len(sess.Inputs()))
			for k := range i {
				v.inputOrder[k] = k
			}
		}
		if v.inputOrder != nil {
			v.inputOrder[i] = j
		}
	}
	v.outputDims = make([][]int64, len(cfg.GetOutputs()))
	for i, o := range cfg.GetOutputs() {
		if !slices.Contains(o.GetShape(), -1) && !tensor.IsString(o.GetDtype()) {
			v.outputDims[i] = o.GetShape()
		}
	}
	return sess, nil
}

// retireLocked takes versions out of service. Each one that has a session
// finishes its in-flight requests in the background, then closes.
func (r *Registry) retireLocked(vs []*Version) {
	for _, v := range vs {
		if v.state != StateReady {
			if v.state == StateLoading {
				v.state, v.reason = StateUnavailable, "removed while loading"
			}
			continue
		}
		v.state = StateUnloading
		r.retiring[v] = true
		r.drains.Add(1)
		v.batcher.Drain()
		go func() {
			defer r.drains.Done()
			v.refs.Wait()
			err := v.close()
			r.mu.Lock()
			delete(r.retiring, v)
			v.state, v.reason = StateUnavailable, reasonUnloaded
			r.mu.Unlock()
			close(v.closed)
			if err != nil {
				r.log.Error("close model version", zap.String("model", v.Model.Name), zap.Int64("version", v.Number), zap.Error(err))
			} else {
				r.log.Info("model version unloaded", zap.String("model", v.Model.Name), zap.Int64("version", v.Number))
			}
		}()
	}
}

// close stops the batcher of v and closes its session; the caller makes
// sure no request holds v, and closes v.closed once it has recorded the
// new state.
func (v *Version) close() error {
	if v.batcher != nil {
		v.batcher.Close()
	}
	if v.session != nil {
		return v.session.Close()
	}
	return nil
}

func (r *Registry) notify(name string) {
	if r.onState == nil {
		return
	}
	r.mu.RLock()
	m := r.models[name]
	ready := m != nil && m.readyLocked() != nil
	r.mu.RUnlock()
	r.onState(name, ready)
}

// readyLocked returns the highest READY version of m, or nil.
func (m *Model) readyLocked() *Version {
	for i := len(m.versions) - 1; i >= 0; i-- {
		if m.versions[i].state == StateReady {
			return m.versions[i]
		}
	}
	return nil
}

// Acquire returns the given version of a model (0: its highest ready
// version) for one request. The caller must call release when done with
// it; until then the version's session stays open.
func (r *Registry) Acquire(model string, version int64) (v *Version, release func(), err error) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if r.closed {
		return nil, nil, status.Error(codes.Unavailable, "pred is shutting down")
	}
	if v, err = r.lookupLocked(model, version); err != nil {
		return nil, nil, err
	}
	v.refs.Add(1)
	return v, sync.OnceFunc(v.refs.Done), nil
}

func (r *Registry) lookupLocked(model string, version int64) (*Version, error) {
	if model == "" {
		return nil, status.Error(codes.InvalidArgument, "model is required")
	}
	if version < 0 {
		return nil, status.Errorf(codes.InvalidArgument, "version %d is negative; use 0 for the highest version served", version)
	}
	m := r.models[model]
	if m == nil {
		if !r.loaded {
			return nil, status.Errorf(codes.Unavailable, "model %q: the model repository is still being read", model)
		}
		return nil, status.Errorf(codes.NotFound, "model %q is not served; served models: %s", model, r.namesLocked())
	}
	if m.state == StateUnavailable {
		return nil, status.Errorf(codes.Unavailable, "model %q is unavailable: %s", model, m.reason)
	}
	if version == 0 {
		if v := m.readyLocked(); v != nil {
			return v, nil
		}
		return nil, status.Errorf(codes.Unavailable, "model %q has no ready version: %s", model, m.versionStatesLocked())
	}
	i, found := slices.BinarySearchFunc(m.versions, version, func(v *Version, n int64) int { return cmp.Compare(v.Number, n) })
	if !found {
		return nil, status.Errorf(codes.NotFound, "model %q has no version %d; served versions: %s", model, version, m.versionStatesLocked())
	}
	v := m.versions[i]
	switch v.state {
	case StateReady:
		return v, nil
	case StateLoading:
		return nil, status.Errorf(codes.Unavailable, "model %q version %d is still loading", model, version)
	default:
		return nil, status.Errorf(codes.Unavailable, "model %q version %d is unavailable: %s", model, version, v.reason)
	}
}

func (r *Registry) namesLocked() string {
	names := make([]string, 0, len(r.models))
	for name := range r.models {
		names = append(names, name)
	}
	slices.Sort(names)
	if len(names) == 0 {
		return "none"
	}
	return strings.Join(names, ", ")
}

// versionStatesLocked describes the versions of m, e.g. "1 (READY), 2 (LOADING)".
func (m *Model) versionStatesLocked() string {
	if len(m.versions) == 0 {
		return "none"
	}
	parts := make([]string, len(m.versions))
	for i, v := range m.versions {
		parts[i] = fmt.Sprintf("%d (%s)", v.Number, v.state)
		if v.reason != "" {
			parts[i] = fmt.Sprintf("%d (%s: %s)", v.Number, v.state, v.reason)
		}
	}
	return strings.Join(parts, ", ")
}

// ReadyVersions returns the numbers of the READY versions of the model,
// ascending.
func (r *Registry) ReadyVersions(m *Model) []int64 {
	r.mu.RLock()
	defer r.mu.RUnlock()
	var out []int64
	for _, v := range m.versions {
		if v.state == StateReady {
			out = append(out, v.Number)
		}
	}
	return out
}

// VersionState is the state of one model version; Version is 0 when the
// model as a whole is unavailable (its configuration failed, or it was
// unloaded) or has no versions.
type VersionState struct {
	Model   string `json:"model"`
	Version int64  `json:"version"`
	State   State  `json:"state"`
	Reason  string `json:"reason,omitempty"`
}

// List returns the state of every model version, those finishing their
// in-flight requests before they close (UNLOADING) included, sorted by
// model and version.
func (r *Registry) List() []VersionState {
	r.mu.RLock()
	defer r.mu.RUnlock()
	var out []VersionState
	for _, m := range r.models {
		if m.state == StateUnavailable || len(m.versions) == 0 {
			out = append(out, VersionState{Model: m.Name, State: StateUnavailable, Reason: m.reason})
			continue
		}
		for _, v := range m.versions {
			reason := v.reason
			if v.state == StateReady {
				reason = m.note
			}
			out = append(out, VersionState{Model: m.Name, Version: v.Number, State: v.state, Reason: reason})
		}
	}
	for v := range r.retiring {
		// A version reloaded under the same number is listed once, as the
		// one serving.
		if m := r.models[v.Model.Name]; m != nil && slices.ContainsFunc(m.versions, func(c *Version) bool { return c.Number == v.Number }) {
			continue
		}
		out = append(out, VersionState{Model: v.Model.Name, Version: v.Number, State: StateUnloading})
	}
	slices.SortFunc(out, func(a, b VersionState) int {
		return cmp.Or(cmp.Compare(a.Model, b.Model), cmp.Compare(a.Version, b.Version))
	})
	return out
}

// modelStates reports List for pred_model_state.
func (r *Registry) modelStates() []metrics.ModelState {
	list := r.List()
	out := make([]metrics.ModelState, len(list))
	for i, s := range list {
		version := ""
		if s.Version > 0 {
			version = strconv.FormatInt(s.Version, 10)
		}
		out[i] = metrics.ModelState{Model: s.Model, Version: version, State: string(s.State)}
	}
	return out
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
