package predservice_test

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	predv1 "github.com/prepred/prepred/api/gen/prepred/pred/v1"
	"github.com/prepred/prepred/api/spec"
	"github.com/prepred/prepred/pred/internal/metrics"
	"github.com/prepred/prepred/pred/internal/predservice"
	"github.com/prepred/prepred/pred/internal/registry"
	"github.com/prepred/prepred/pred/predtest"
)

// watchEnv is a registry of its own serving the colors model (so that
// unloading it leaves the shared fixture alone), with the service on
// loopback.
type watchEnv struct {
	reg    *registry.Registry
	client predv1.PredServiceClient
	// repo is the registry's model repository.
	repo string
}

func newWatchEnv(t *testing.T) *watchEnv {
	t.Helper()
	f := setup(t)
	repo, err := os.MkdirTemp(filepath.Dir(f.repo), "predservice-watch-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(repo) })
	if err := linkTree(filepath.Join(predtest.ModelRepository(t), "colors"), filepath.Join(repo, "colors")); err != nil {
		t.Fatal(err)
	}
	reg := registry.New(f.rt, registry.Options{Logger: zap.NewNop()})
	if err := reg.Load(ctx(t), repo); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = reg.Close(context.Background()) })
	svc := predservice.New(reg, metrics.New())
	srv := grpc.NewServer()
	predv1.RegisterPredServiceServer(srv, svc)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(func() { svc.StopWatches(); srv.GracefulStop() })
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return &watchEnv{reg: reg, client: predv1.NewPredServiceClient(conn), repo: repo}
}

// recvUntil reads the stream until cond holds for the colors model's
// versions in a message, and returns how many messages it read.
func recvUntil(t *testing.T, stream predv1.PredService_WatchModelsClient, what string, cond func([]*predv1.ModelVersionState) bool) int {
	t.Helper()
	for n := 1; ; n++ {
		msg, err := stream.Recv()
		if err != nil {
			t.Fatalf("waiting for %s: %v", what, err)
		}
		for _, m := range msg.GetModels() {
			if m.GetModel() == "colors" && cond(m.GetVersions()) {
				return n
			}
		}
	}
}

func readyAs(fp string) func([]*predv1.ModelVersionState) bool {
	return func(vs []*predv1.ModelVersionState) bool {
		return len(vs) == 1 && vs[0].GetVersion() == 1 && vs[0].GetState() == "READY" && vs[0].GetSpecFingerprint() == fp
	}
}

func unloaded(vs []*predv1.ModelVersionState) bool {
	return len(vs) == 1 && vs[0].GetVersion() == 0 && vs[0].GetState() == "UNAVAILABLE" && vs[0].GetReason() == "unloaded"
}

// TestWatchModels: the stream starts with a snapshot of the served model
// (state and spec fingerprint), then follows an unload and a load.
func TestWatchModels(t *testing.T) {
	env := newWatchEnv(t)
	fp, err := spec.Fingerprint(setup(t).configs["colors"].GetPreprocess())
	if err != nil {
		t.Fatal(err)
	}
	stream, err := env.client.WatchModels(ctx(t), &predv1.WatchModelsRequest{Models: []string{"colors"}})
	if err != nil {
		t.Fatal(err)
	}
	first, err := stream.Recv()
	if err != nil {
		t.Fatal(err)
	}
	if !first.GetSnapshot() || len(first.GetModels()) != 1 || !readyAs(fp)(first.GetModels()[0].GetVersions()) {
		t.Fatalf("first message %v: want a snapshot of colors version 1 READY with fingerprint %s", first, fp)
	}
	if err := env.reg.UnloadModel(ctx(t), "colors"); err != nil {
		t.Fatal(err)
	}
	recvUntil(t, stream, "colors unloaded", unloaded)
	if err := env.reg.LoadModel(ctx(t), "colors"); err != nil {
		t.Fatal(err)
	}
	recvUntil(t, stream, "colors READY again", readyAs(fp))
}

// TestWatchNeverBlocksRegistry: a watcher that reads nothing holds up no
// change of the registry; when it reads, it gets to the latest state. The
// stream coalesces: a change undone before the stream lists again sends
// nothing, so the latest state is one the cycles never made (version 2
// READY), whose arrival proves the watcher caught up.
func TestWatchNeverBlocksRegistry(t *testing.T) {
	const cycles = 20
	env := newWatchEnv(t)
	stuck, err := env.client.WatchModels(ctx(t), &predv1.WatchModelsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := stuck.Recv(); err != nil { // the stream is established
		t.Fatal(err)
	}
	for range cycles {
		if err := env.reg.UnloadModel(ctx(t), "colors"); err != nil {
			t.Fatal(err)
		}
		if err := env.reg.LoadModel(ctx(t), "colors"); err != nil {
			t.Fatal(err)
		}
	}
	fp, err := spec.Fingerprint(setup(t).configs["colors"].GetPreprocess())
	if err != nil {
		t.Fatal(err)
	}
	if err := linkTree(filepath.Join(env.repo, "colors", "1"), filepath.Join(env.repo, "colors", "2")); err != nil {
		t.Fatal(err)
	}
	if err := env.reg.LoadModel(ctx(t), "colors"); err != nil {
		t.Fatal(err)
	}
	n := recvUntil(t, stuck, "the latest state", func(vs []*predv1.ModelVersionState) bool {
		return slices.ContainsFunc(vs, func(v *predv1.ModelVersionState) bool {
			return v.GetVersion() == 2 && v.GetState() == "READY" && v.GetSpecFingerprint() == fp
		})
	})
	t.Logf("%d messages for %d unload/load cycles and version 2", n, cycles)
}
