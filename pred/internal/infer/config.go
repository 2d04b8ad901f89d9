package infer

import (
	predv1 "github.com/prepred/prepred/api/gen/prepred/pred/v1"
	"github.com/prepred/prepred/pred/internal/metrics"
	"github.com/prepred/prepred/pred/internal/registry"
)

// Config is the configuration a model version serves with.
type Config struct {
	Version int64
	// Config is the model's configuration as the repository has it.
	Config *predv1.ModelConfig
	// Labels are the class names of the model's labels file, if any.
	Labels []string
	// Serving holds what pred resolved: queue settings, instances and the
	// execution provider in use.
	Serving registry.Serving
}

// Config returns the configuration of a ready model version (0: the
// highest ready).
func (r *Runner) Config(model string, version int64) (*Config, error) {
	v, release, err := r.reg.Acquire(model, version)
	if err != nil {
		return nil, err
	}
	defer release()
	return &Config{Version: v.Number, Config: v.Model.Config, Labels: v.Model.Labels, Serving: v.Serving()}, nil
}

// Statistics returns the cumulative statistics of the ready versions of a
// model (empty: of every model; version 0: every version of it).
func (r *Runner) Statistics(model string, version int64) ([]metrics.Stats, error) {
	vs, err := r.reg.ReadyVersionsOf(model, version)
	if err != nil {
		return nil, err
	}
	out := make([]metrics.Stats, len(vs))
	for i, v := range vs {
		out[i] = v.Stats()
	}
	return out, nil
}
