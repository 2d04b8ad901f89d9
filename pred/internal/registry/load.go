package registry

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"go.uber.org/zap"

	predv1 "github.com/prepred/prepred/api/gen/prepred/pred/v1"
	"github.com/prepred/prepred/pred/internal/batcher"
	"github.com/prepred/prepred/pred/internal/ortrt"
	"github.com/prepred/prepred/pred/internal/tensor"
)

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

	defer r.signalChange() // after the unlock: watchers see the new state
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
	v.serving.ExecutionProvider, v.serving.DeviceID = opts.ExecutionProvider, opts.DeviceID
	if v.serving.ExecutionProvider == "" {
		v.serving.ExecutionProvider = "cpu"
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
			r.signalChange()
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
