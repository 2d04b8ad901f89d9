package registry

import (
	"cmp"
	"slices"
	"strconv"

	"github.com/prepred/prepred/pred/internal/metrics"
)

// notify reports that the state of a model may have changed: to
// OnModelState, and to the watchers of Changes.
func (r *Registry) notify(name string) {
	r.signalChange()
	if r.onState == nil {
		return
	}
	r.mu.RLock()
	m := r.models[name]
	ready := m != nil && m.readyLocked() != nil
	r.mu.RUnlock()
	r.onState(name, ready)
}

// VersionState is the state of one model version; Version is 0 when the
// model as a whole is unavailable (its configuration failed, or it was
// unloaded) or has no versions.
type VersionState struct {
	Model   string `json:"model"`
	Version int64  `json:"version"`
	State   State  `json:"state"`
	Reason  string `json:"reason,omitempty"`
	// Fingerprint is the spec fingerprint of the version's model; empty
	// without a spec.
	Fingerprint string `json:"spec_fingerprint,omitempty"`
}

// Changes returns a channel that is closed at the next change of a model
// version's state, so that a watcher compares List before and after. Many
// changes may happen before a watcher calls List again: it sees the latest
// state, and no change waits for a watcher.
func (r *Registry) Changes() <-chan struct{} {
	r.changeMu.Lock()
	defer r.changeMu.Unlock()
	return r.changed
}

// signalChange wakes the watchers of Changes.
func (r *Registry) signalChange() {
	r.changeMu.Lock()
	defer r.changeMu.Unlock()
	close(r.changed)
	r.changed = make(chan struct{})
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
			out = append(out, VersionState{Model: m.Name, State: StateUnavailable, Reason: m.reason, Fingerprint: m.Fingerprint})
			continue
		}
		for _, v := range m.versions {
			reason := v.reason
			if v.state == StateReady {
				reason = m.note
			}
			out = append(out, VersionState{Model: m.Name, Version: v.Number, State: v.state, Reason: reason, Fingerprint: m.Fingerprint})
		}
	}
	for v := range r.retiring {
		// A version reloaded under the same number is listed once, as the
		// one serving.
		if m := r.models[v.Model.Name]; m != nil && slices.ContainsFunc(m.versions, func(c *Version) bool { return c.Number == v.Number }) {
			continue
		}
		out = append(out, VersionState{Model: v.Model.Name, Version: v.Number, State: StateUnloading, Fingerprint: v.Model.Fingerprint})
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
