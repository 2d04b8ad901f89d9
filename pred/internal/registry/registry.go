// Package registry holds the models pred serves: it loads the versions the
// model repository selects into ONNX Runtime sessions, tracks the state of
// each (loading, ready, unavailable and why), hands out versions to
// requests and closes a session only once its in-flight requests are done.
//
// Errors it returns carry gRPC status codes (NotFound for an unknown model
// or version, Unavailable for one that is loading, failed or shutting down,
// InvalidArgument for a bad tensor, FailedPrecondition for a contract
// mismatch) so that every protocol front end maps them the same way.
package registry

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	predv1 "github.com/prepred/prepred/api/gen/prepred/pred/v1"
	"github.com/prepred/prepred/api/spec"
	"github.com/prepred/prepred/pred/internal/ortrt"
	"github.com/prepred/prepred/pred/internal/repository"
)

// State is the serving state of a model version, as ListModels reports it.
type State string

// The states of a model version.
const (
	StateLoading     State = "LOADING"
	StateReady       State = "READY"
	StateUnavailable State = "UNAVAILABLE"
)

// Options configure a Registry.
type Options struct {
	Logger *zap.Logger
	// OnModelState, if set, is called whenever a model's readiness may have
	// changed: ready means at least one of its versions is READY.
	OnModelState func(model string, ready bool)
}

// Registry is the set of models pred serves.
type Registry struct {
	rt      *ortrt.Runtime
	log     *zap.Logger
	onState func(string, bool)

	// mu guards the fields below and the mutable fields of every Model and
	// Version (state, reason, session).
	mu     sync.RWMutex
	models map[string]*Model
	loaded bool
	closed bool
	// inflight counts acquired versions; Add happens under mu.RLock with
	// closed false, so Close's Wait cannot miss one.
	inflight sync.WaitGroup
}

// New returns an empty registry that opens sessions with rt.
func New(rt *ortrt.Runtime, o Options) *Registry {
	log := o.Logger
	if log == nil {
		log = zap.NewNop()
	}
	return &Registry{rt: rt, log: log, onState: o.OnModelState, models: map[string]*Model{}}
}

// Model is one model of the repository. Its exported fields do not change
// once registered.
type Model struct {
	Name   string
	Config *predv1.ModelConfig
	Labels []string
	// Fingerprint is spec.Fingerprint(Config.Preprocess); empty without a
	// spec.
	Fingerprint string

	state    State // UNAVAILABLE when the model as a whole cannot load
	reason   string
	versions []*Version // ascending
}

// Version is one version of a model.
type Version struct {
	Model  *Model
	Number int64
	path   string

	state   State
	reason  string
	session *ortrt.Session
	// outputDims holds, per output, the configured non-batch dimensions
	// when all are fixed (so outputs can be preallocated), else nil.
	outputDims [][]int64
}

// Load scans the model repository at dir and loads every model version it
// selects. A model or version that fails is recorded as UNAVAILABLE with
// the reason, and logged; the others still load. Load fails only when the
// repository itself cannot be read, or when called twice. When ctx is
// cancelled, versions not yet loaded are left UNAVAILABLE.
func (r *Registry) Load(ctx context.Context, dir string) error {
	models, err := repository.Scan(dir)
	if err != nil {
		return err
	}
	pending, err := r.register(models)
	if err != nil {
		return err
	}
	if r.onState != nil {
		for _, m := range models {
			r.onState(m.Name, false)
		}
	}
	for _, m := range pending {
		for _, v := range m.versions {
			r.mu.RLock()
			loading := v.state == StateLoading
			r.mu.RUnlock()
			if !loading {
				continue
			}
			if err := ctx.Err(); err != nil {
				r.finish(v, nil, fmt.Errorf("loading stopped: %w", err))
				continue
			}
			start := time.Now()
			sess, err := r.open(m, v)
			if r.finish(v, sess, err) {
				r.log.Info("model version loaded", zap.String("model", m.Name), zap.Int64("version", v.Number),
					zap.String("path", v.path), zap.Duration("duration", time.Since(start)))
			}
		}
		r.notify(m)
	}
	return nil
}

// register records the scanned models, every selected version LOADING, and
// returns the models that have versions to load.
func (r *Registry) register(scanned []repository.Model) ([]*Model, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return nil, errors.New("registry is closed")
	}
	if r.loaded {
		return nil, errors.New("registry is already loaded")
	}
	r.loaded = true
	var pending []*Model
	for _, sm := range scanned {
		m := &Model{Name: sm.Name, Config: sm.Config, Labels: sm.Labels, state: StateLoading}
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
			r.log.Error("model failed to load", zap.String("model", sm.Name), zap.String("dir", sm.Dir), zap.String("reason", m.reason))
		}
		for _, sv := range sm.Versions {
			v := &Version{Model: m, Number: sv.Number, path: sv.Path, state: StateLoading}
			if sv.Err != nil {
				v.state, v.reason = StateUnavailable, sv.Err.Error()
				r.log.Error("model version failed to load", zap.String("model", sm.Name), zap.Int64("version", sv.Number), zap.String("reason", v.reason))
			}
			m.versions = append(m.versions, v)
		}
		r.models[m.Name] = m
		if m.state == StateLoading {
			m.state = StateReady // the model is fine; its versions carry their own state
			pending = append(pending, m)
		}
	}
	return pending, nil
}

// open creates the session of v and checks it against the configuration.
func (r *Registry) open(m *Model, v *Version) (*ortrt.Session, error) {
	cfg := m.Config
	opts := ortrt.FromConfig(cfg.GetRuntime())
	for _, o := range cfg.GetOutputs() {
		opts.OutputNames = append(opts.OutputNames, o.GetName())
	}
	sess, err := r.rt.Open(v.path, opts)
	if err != nil {
		return nil, err
	}
	if err := checkSession(cfg, sess); err != nil {
		sess.Close()
		return nil, fmt.Errorf("%s does not match the config: %w", v.path, err)
	}
	return sess, nil
}

// finish records the outcome of loading v and reports whether v is ready.
func (r *Registry) finish(v *Version, sess *ortrt.Session, err error) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err == nil && r.closed {
		sess.Close()
		err = errors.New("pred is shutting down")
	}
	if err != nil {
		v.state, v.reason = StateUnavailable, err.Error()
		r.log.Error("model version failed to load", zap.String("model", v.Model.Name), zap.Int64("version", v.Number), zap.String("reason", v.reason))
		return false
	}
	v.session, v.state, v.reason = sess, StateReady, ""
	v.outputDims = make([][]int64, len(v.Model.Config.GetOutputs()))
	for i, o := range v.Model.Config.GetOutputs() {
		if !slices.Contains(o.GetShape(), -1) {
			v.outputDims[i] = o.GetShape()
		}
	}
	return true
}

func (r *Registry) notify(m *Model) {
	if r.onState == nil {
		return
	}
	r.mu.RLock()
	ready := m.readyLocked() != nil
	r.mu.RUnlock()
	r.onState(m.Name, ready)
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
	r.inflight.Add(1)
	return v, sync.OnceFunc(r.inflight.Done), nil
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
// model as a whole failed before its versions were known.
type VersionState struct {
	Model   string `json:"model"`
	Version int64  `json:"version"`
	State   State  `json:"state"`
	Reason  string `json:"reason,omitempty"`
}

// List returns the state of every model version, sorted by model and
// version.
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
			out = append(out, VersionState{Model: m.Name, Version: v.Number, State: v.state, Reason: v.reason})
		}
	}
	slices.SortFunc(out, func(a, b VersionState) int {
		return cmp.Or(cmp.Compare(a.Model, b.Model), cmp.Compare(a.Version, b.Version))
	})
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

	done := make(chan struct{})
	go func() {
		r.inflight.Wait()
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
	for _, m := range r.models {
		for _, v := range m.versions {
			if v.session == nil {
				continue
			}
			if err := v.session.Close(); err != nil {
				errs = append(errs, err)
			}
			v.session = nil
			v.state, v.reason = StateUnavailable, "pred is shutting down"
		}
	}
	return errors.Join(errs...)
}
