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
	"time"

	"go.uber.org/zap"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/prepred/prepred/api/spec"
	"github.com/prepred/prepred/pred/internal/repository"
)

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
