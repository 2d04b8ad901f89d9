package registry

import (
	"cmp"
	"slices"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/prepred/prepred/pred/internal/batcher"
	"github.com/prepred/prepred/pred/internal/metrics"
)

// Serving describes how a loaded version serves: the settings its
// configuration left to pred's defaults resolved.
type Serving struct {
	// Batching is the version's queue: batch sizes, delay, queue bound and
	// the number of executions that may run at once.
	Batching batcher.Config
	// ExecutionProvider is where its executions run ("cpu", "cuda" or
	// "tensorrt"), after any fallback to the CPU; DeviceID the GPU.
	ExecutionProvider string
	DeviceID          int
}

// Serving returns how v serves. It is set once v is loaded.
func (v *Version) Serving() Serving { return v.serving }

// Stats returns the cumulative statistics of v.
func (v *Version) Stats() metrics.Stats {
	if v.metrics == nil {
		return metrics.Stats{}
	}
	return v.metrics.Stats()
}

// ReadyVersionsOf returns, for a model (empty: every model) and a version
// (0: every version of it), the READY versions, sorted by model and
// number. An unknown model or version is NotFound, as in Acquire; a named
// model without a READY version, or a named version that is not READY, is
// Unavailable. With every model asked for, those without a READY version
// contribute none.
func (r *Registry) ReadyVersionsOf(model string, version int64) ([]*Version, error) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if model != "" && version > 0 {
		v, err := r.lookupLocked(model, version)
		if err != nil {
			return nil, err
		}
		return []*Version{v}, nil
	}
	if version < 0 {
		return nil, status.Errorf(codes.InvalidArgument, "version %d is negative; use 0 for every version", version)
	}
	var out []*Version
	for name, m := range r.models {
		if model != "" && name != model {
			continue
		}
		for _, v := range m.versions {
			if v.state == StateReady {
				out = append(out, v)
			}
		}
	}
	if model != "" && len(out) == 0 {
		// Unknown (NotFound), or known without a ready version
		// (Unavailable, with the versions' states).
		if _, err := r.lookupLocked(model, 0); err != nil {
			return nil, err
		}
	}
	slices.SortFunc(out, func(a, b *Version) int {
		return cmp.Or(cmp.Compare(a.Model.Name, b.Model.Name), cmp.Compare(a.Number, b.Number))
	})
	return out, nil
}
