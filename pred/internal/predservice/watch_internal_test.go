package predservice

import (
	"context"
	"net"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	predv1 "github.com/prepred/prepred/api/gen/prepred/pred/v1"
	"github.com/prepred/prepred/pred/internal/registry"
)

func TestDiff(t *testing.T) {
	a1 := registry.VersionState{Model: "a", Version: 1, State: registry.StateReady, Fingerprint: "f1"}
	a2 := registry.VersionState{Model: "a", Version: 2, State: registry.StateLoading, Fingerprint: "f1"}
	b1 := registry.VersionState{Model: "b", Version: 1, State: registry.StateReady}
	state := func(vs ...registry.VersionState) *predv1.ModelState {
		ms := &predv1.ModelState{Model: vs[0].Model}
		for _, v := range vs {
			ms.Versions = append(ms.Versions, versionState(v))
		}
		return ms
	}
	tests := []struct {
		name      string
		prev, cur map[string][]registry.VersionState
		want      *predv1.WatchModelsResponse
	}{
		{
			name: "snapshot",
			cur:  map[string][]registry.VersionState{"a": {a1}, "b": {b1}},
			want: &predv1.WatchModelsResponse{Models: []*predv1.ModelState{state(a1), state(b1)}},
		},
		{
			name: "empty snapshot",
			cur:  map[string][]registry.VersionState{},
			want: &predv1.WatchModelsResponse{Models: []*predv1.ModelState{}},
		},
		{
			name: "unchanged",
			prev: map[string][]registry.VersionState{"a": {a1}, "b": {b1}},
			cur:  map[string][]registry.VersionState{"a": {a1}, "b": {b1}},
		},
		{
			name: "a version added: only its model",
			prev: map[string][]registry.VersionState{"a": {a1}, "b": {b1}},
			cur:  map[string][]registry.VersionState{"a": {a1, a2}, "b": {b1}},
			want: &predv1.WatchModelsResponse{Models: []*predv1.ModelState{state(a1, a2)}},
		},
		{
			name: "a model removed: no versions",
			prev: map[string][]registry.VersionState{"a": {a1}, "b": {b1}},
			cur:  map[string][]registry.VersionState{"a": {a1}},
			want: &predv1.WatchModelsResponse{Models: []*predv1.ModelState{{Model: "b"}}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := diff(tt.prev, tt.cur); !proto.Equal(got, tt.want) {
				t.Errorf("diff = %v, want %v", got, tt.want)
			}
		})
	}
}

// TestWatchLimitAndStop: a watch beyond the limit is refused with
// RESOURCE_EXHAUSTED, and StopWatches ends the running ones so that a
// graceful server stop does not wait for them.
func TestWatchLimitAndStop(t *testing.T) {
	s := &Service{reg: registry.New(nil, registry.Options{}), watch: newWatchers(1)}
	srv := grpc.NewServer()
	predv1.RegisterPredServiceServer(srv, s)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	client := predv1.NewPredServiceClient(conn)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	first, err := client.WatchModels(ctx, &predv1.WatchModelsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	msg, err := first.Recv()
	if err != nil || !msg.GetSnapshot() || len(msg.GetModels()) != 0 {
		t.Fatalf("first message: %v, %v; want an empty snapshot", msg, err)
	}
	second, err := client.WatchModels(ctx, &predv1.WatchModelsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := second.Recv(); status.Code(err) != codes.ResourceExhausted {
		t.Fatalf("second watch: %v, want RESOURCE_EXHAUSTED", err)
	}
	tooMany, err := client.WatchModels(ctx, &predv1.WatchModelsRequest{Models: make([]string, maxWatchModels+1)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tooMany.Recv(); status.Code(err) != codes.InvalidArgument {
		t.Fatalf("watch of %d models: %v, want INVALID_ARGUMENT", maxWatchModels+1, err)
	}

	s.StopWatches()
	if _, err := first.Recv(); status.Code(err) != codes.Unavailable {
		t.Fatalf("after StopWatches: %v, want UNAVAILABLE", err)
	}
	done := make(chan struct{})
	go func() { srv.GracefulStop(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		t.Fatal("GracefulStop waits for a stopped watch")
	}
}
