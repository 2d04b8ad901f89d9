package predservice

import (
	"slices"
	"sync"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	predv1 "github.com/prepred/prepred/api/gen/prepred/pred/v1"
	"github.com/prepred/prepred/pred/internal/registry"
)

const (
	// MaxWatchers bounds the concurrent WatchModels streams: each is a
	// goroutine that lists the models at every change. A prep replica
	// holds one per pred it talks to, so this is far above a fleet's need
	// and far below what would make a change expensive.
	MaxWatchers = 1024
	// maxWatchModels bounds the models one WatchModels request names.
	maxWatchModels = 256
)

// watchers limits and ends the WatchModels streams.
type watchers struct {
	// slots holds one token per running stream.
	slots chan struct{}
	// stopping is closed by StopWatches.
	stopping chan struct{}
	stopOnce sync.Once
}

func newWatchers(n int) *watchers {
	return &watchers{slots: make(chan struct{}, n), stopping: make(chan struct{})}
}

// StopWatches ends every WatchModels stream and refuses new ones, so that
// a graceful stop of the gRPC server does not wait for them: call it
// before stopping the server. Watchers reconnect to another replica or to
// the restarted pred.
func (s *Service) StopWatches() {
	s.watch.stopOnce.Do(func() { close(s.watch.stopping) })
}

// WatchModels implements PredService.WatchModels. The stream never waits
// for the registry, and the registry never waits for the stream: at each
// change the stream lists the models and sends those that differ from
// what it sent last, so a slow reader holds one listing, not a backlog.
func (s *Service) WatchModels(req *predv1.WatchModelsRequest, stream predv1.PredService_WatchModelsServer) error {
	if n := len(req.GetModels()); n > maxWatchModels {
		return status.Errorf(codes.InvalidArgument, "%d models named; watch at most %d, or none for all", n, maxWatchModels)
	}
	select {
	case <-s.watch.stopping:
		return status.Error(codes.Unavailable, "pred is shutting down")
	default:
	}
	select {
	case s.watch.slots <- struct{}{}:
		defer func() { <-s.watch.slots }()
	default:
		return status.Errorf(codes.ResourceExhausted, "pred already serves %d model watches", cap(s.watch.slots))
	}
	var only map[string]bool
	if len(req.GetModels()) > 0 {
		only = make(map[string]bool, len(req.GetModels()))
		for _, m := range req.GetModels() {
			only[m] = true
		}
	}
	ctx := stream.Context()
	var sent map[string][]registry.VersionState
	for {
		// Take the channel before listing: a change after the listing
		// closes it, so none is missed.
		changed := s.reg.Changes()
		cur := byModel(s.reg.List(), only)
		if msg := diff(sent, cur); msg != nil {
			msg.Snapshot = sent == nil
			if err := stream.Send(msg); err != nil {
				return err
			}
		}
		sent = cur
		select {
		case <-changed:
		case <-ctx.Done():
			return status.FromContextError(ctx.Err()).Err()
		case <-s.watch.stopping:
			return status.Error(codes.Unavailable, "pred is shutting down")
		}
	}
}

// byModel groups a registry listing by model, keeping the models in only
// (all when nil).
func byModel(list []registry.VersionState, only map[string]bool) map[string][]registry.VersionState {
	out := map[string][]registry.VersionState{}
	for _, st := range list {
		if only == nil || only[st.Model] {
			out[st.Model] = append(out[st.Model], st)
		}
	}
	return out
}

// diff returns the message that brings a watcher from prev to cur: every
// model of cur when prev is nil (the snapshot), else the models that
// changed, a removed one with no versions; nil when nothing changed
// (except for the snapshot, which is always sent).
func diff(prev, cur map[string][]registry.VersionState) *predv1.WatchModelsResponse {
	var names []string
	for name, vs := range cur {
		if old, ok := prev[name]; prev == nil || !ok || !slices.Equal(old, vs) {
			names = append(names, name)
		}
	}
	for name := range prev {
		if _, ok := cur[name]; !ok {
			names = append(names, name)
		}
	}
	if prev != nil && len(names) == 0 {
		return nil
	}
	slices.Sort(names)
	msg := &predv1.WatchModelsResponse{Models: make([]*predv1.ModelState, len(names))}
	for i, name := range names {
		ms := &predv1.ModelState{Model: name}
		for _, st := range cur[name] {
			ms.Versions = append(ms.Versions, versionState(st))
		}
		msg.Models[i] = ms
	}
	return msg
}

// versionState is the wire form of one version's state.
func versionState(st registry.VersionState) *predv1.ModelVersionState {
	return &predv1.ModelVersionState{Model: st.Model, Version: st.Version, State: string(st.State), Reason: st.Reason, SpecFingerprint: st.Fingerprint}
}
