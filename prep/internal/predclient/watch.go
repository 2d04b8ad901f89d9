package predclient

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	predv1 "github.com/prepred/prepred/api/gen/prepred/pred/v1"
)

// maxServedModels bounds the models whose state prep keeps from pred's
// watch: pred serves far fewer; beyond it, models are left out (and their
// state is read with the contract, as before the watch).
const maxServedModels = 4096

// Watch modes of a Client: how it learns of model changes.
const (
	watchUnknown int32 = iota // not yet connected
	watchStream               // pred streams changes (WatchModels)
	watchPoll                 // an older pred without WatchModels: polled
)

// served is what pred last said about the state of its models.
type served struct {
	mu sync.Mutex
	// known is true while models holds the state of a live watch (or of the
	// last poll of an older pred).
	known  bool
	models map[string][]*predv1.ModelVersionState
}

// set replaces the state of every model (a snapshot) or of the models of
// an update; it returns the models that changed.
func (s *served) set(snapshot bool, models []*predv1.ModelState) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var changed []string
	if snapshot || s.models == nil {
		old := s.models
		s.models = make(map[string][]*predv1.ModelVersionState, len(models))
		for name := range old {
			changed = append(changed, name) // re-checked against the snapshot
		}
	}
	s.known = true
	for _, m := range models {
		name := m.GetModel()
		if len(m.GetVersions()) == 0 {
			delete(s.models, name)
		} else if _, ok := s.models[name]; ok || len(s.models) < maxServedModels {
			s.models[name] = m.GetVersions()
		}
		if !slices.Contains(changed, name) {
			changed = append(changed, name)
		}
	}
	return changed
}

// forget marks the state unknown (the watch ended): readiness falls back to
// what the contracts say until the next snapshot.
func (s *served) forget() {
	s.mu.Lock()
	s.known = false
	s.mu.Unlock()
}

// target returns the state of the version of model that version selects
// (0: the highest READY one) and the READY versions, ascending; ok is
// false when the state is not known.
func (s *served) target(model string, version int64) (t *predv1.ModelVersionState, ready []int64, exists, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.known {
		return nil, nil, false, false
	}
	vs, exists := s.models[model]
	for _, v := range vs {
		if v.GetState() == "READY" {
			ready = append(ready, v.GetVersion())
			if version == 0 {
				t = v // ascending: the last READY one wins
			}
		}
		if version != 0 && v.GetVersion() == version {
			t = v
		}
	}
	return t, ready, exists, true
}

// describe renders the states of a model's versions for a reason, e.g.
// "1 (UNLOADING), 2 (LOADING)".
func (s *served) describe(model string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	vs := s.models[model]
	if len(vs) == 0 {
		return "none"
	}
	parts := make([]string, len(vs))
	for i, v := range vs {
		parts[i] = fmt.Sprintf("%d (%s)", v.GetVersion(), v.GetState())
		if v.GetReason() != "" {
			parts[i] = fmt.Sprintf("%d (%s: %s)", v.GetVersion(), v.GetState(), v.GetReason())
		}
	}
	return strings.Join(parts, ", ")
}

// Serving reports whether pred serves a READY version of model as version
// selects (0: any), as its model watch last said: nil when it does or
// when the watch has not said (yet), else an error with code NotFound
// (pred has no such model or version) or Unavailable, with the versions'
// states.
func (c *Client) Serving(model string, version int64) error {
	t, _, exists, ok := c.served.target(model, version)
	switch {
	case !ok:
		return nil
	case !exists:
		return notServed(codes.NotFound, "pred at %s does not serve model %q", c.cfg.Target, model)
	case t != nil && t.GetState() == "READY":
		return nil
	case version != 0 && t == nil:
		return notServed(codes.NotFound, "pred at %s has no version %d of model %q; its versions: %s", c.cfg.Target, version, model, c.served.describe(model))
	case version != 0:
		return notServed(codes.Unavailable, "model %q version %d is %s at pred %s; its versions: %s", model, version, t.GetState(), c.cfg.Target, c.served.describe(model))
	}
	return notServed(codes.Unavailable, "pred at %s serves no READY version of model %q; its versions: %s", c.cfg.Target, model, c.served.describe(model))
}

// NotServedError says that pred serves no READY version of a model (code
// Unavailable) or does not have the model or version (NotFound).
type NotServedError struct {
	Code    codes.Code
	Message string
}

func notServed(code codes.Code, format string, args ...any) *NotServedError {
	return &NotServedError{Code: code, Message: fmt.Sprintf(format, args...)}
}

func (e *NotServedError) Error() string { return e.Message }

// GRPCStatus gives the error its code for status.Code.
func (e *NotServedError) GRPCStatus() *status.Status { return status.New(e.Code, e.Message) }

// Watching reports whether the client follows pred's model changes through
// WatchModels (false: not connected yet, or an older pred that is polled).
func (c *Client) Watching() bool { return c.mode.Load() == watchStream }

// watchModels follows pred's model changes until ctx ends: it keeps a
// WatchModels stream open, reconnecting with backoff, and re-reads a
// contract as soon as pred serves another version or spec of its model.
// Against an older pred without WatchModels it polls ListModels every
// refreshInterval instead (and tries the watch again each time).
func (c *Client) watchModels(ctx context.Context) {
	delay := retryMinDelay
	for {
		received, err := c.watchOnce(ctx)
		c.served.forget()
		if ctx.Err() != nil {
			return
		}
		wait := delay
		switch {
		case status.Code(err) == codes.Unimplemented:
			if c.mode.Swap(watchPoll) != watchPoll {
				c.log.Warn("pred does not implement WatchModels (an older pred): polling for model changes instead",
					zap.String("pred", c.cfg.Target), zap.Duration("interval", refreshInterval))
			}
			c.pollModels(ctx)
			wait, delay = refreshInterval, retryMinDelay
		case received:
			c.mode.Store(watchUnknown)
			c.log.Warn("model watch ended; reconnecting", zap.String("pred", c.cfg.Target), zap.Error(err))
			wait, delay = retryMinDelay, retryMinDelay
		default:
			c.mode.Store(watchUnknown)
			delay = min(2*delay, retryMaxDelay)
		}
		c.wakeRun() // Run polls while the watch is down
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// watchOnce runs one WatchModels stream until it fails; received says
// whether it delivered anything.
func (c *Client) watchOnce(ctx context.Context) (received bool, err error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// WaitForReady: while pred is unreachable the stream waits for it
	// instead of failing at once, and starts as soon as it is back.
	stream, err := c.rpc.WatchModels(ctx, &predv1.WatchModelsRequest{}, grpc.WaitForReady(true))
	if err != nil {
		return false, err
	}
	for {
		msg, err := stream.Recv()
		if err != nil {
			return received, err
		}
		if !received {
			received = true
			if c.mode.Swap(watchStream) != watchStream {
				c.log.Info("watching pred's model changes", zap.String("pred", c.cfg.Target))
			}
		}
		c.apply(ctx, c.served.set(msg.GetSnapshot(), msg.GetModels()))
	}
}

// pollModels reads the models' states once with ListModels, for an older
// pred, and re-reads the contracts that changed.
func (c *Client) pollModels(ctx context.Context) {
	rctx, cancel := context.WithTimeout(ctx, metadataTimeout)
	list, err := c.ListModels(rctx)
	cancel()
	if err != nil {
		return
	}
	var models []*predv1.ModelState
	for _, v := range list {
		if n := len(models); n == 0 || models[n-1].GetModel() != v.GetModel() {
			models = append(models, &predv1.ModelState{Model: v.GetModel()})
		}
		m := models[len(models)-1]
		m.Versions = append(m.Versions, v)
	}
	c.apply(ctx, c.served.set(true, models))
}

// apply re-reads the contracts of the changed models whose served version
// or spec differs from the loaded contract. A model with no READY version
// keeps its contract: it serves again as it was, or the next change
// re-reads it.
func (c *Client) apply(ctx context.Context, changed []string) {
	if len(changed) == 0 {
		return
	}
	c.mu.Lock()
	entries := []*entry{c.def}
	for _, e := range c.others {
		if slices.Contains(changed, e.key.model) {
			entries = append(entries, e)
		}
	}
	c.mu.Unlock()
	for _, e := range entries {
		if !slices.Contains(changed, e.key.model) || !c.stale(e) {
			continue
		}
		rctx, cancel := context.WithTimeout(ctx, metadataTimeout)
		_, err := c.refreshEntry(rctx, e)
		cancel()
		if err != nil && e == c.def {
			c.wakeRun() // Run retries with backoff
		}
		if ctx.Err() != nil {
			return
		}
	}
}

// stale reports whether pred serves a READY version of e's model that its
// contract does not describe (another version, spec or set of versions),
// or e has no contract and pred now serves one.
func (c *Client) stale(e *entry) bool {
	t, ready, _, ok := c.served.target(e.key.model, e.key.version)
	if !ok || t == nil || t.GetState() != "READY" {
		return false
	}
	ct := e.contract.Load()
	return ct == nil || ct.Version != t.GetVersion() || ct.Fingerprint != t.GetSpecFingerprint() || !slices.Equal(ct.Versions, ready)
}
