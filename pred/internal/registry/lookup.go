package registry

import (
	"cmp"
	"slices"
	"strings"
	"sync"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

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
