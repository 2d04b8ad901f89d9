package predclient

import (
	"context"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	predv1 "github.com/prepred/prepred/api/gen/prepred/pred/v1"
	"github.com/prepred/prepred/prep/internal/fakepred"
	"github.com/prepred/prepred/prep/internal/imageprep"
)

// TestWatchFallsBackToPolling: against a pred without WatchModels (the
// fake is such an older pred), Run logs that it polls instead, keeps the
// models' states from ListModels, and stays ready.
func TestWatchFallsBackToPolling(t *testing.T) {
	pred := fakepred.Start(t, fakepred.ColorsMetadata())
	core, logs := observer.New(zapcore.InfoLevel)
	c, err := New(Config{Target: pred.Addr, Model: "colors", Limits: imageprep.Limits{MaxPixels: 1 << 20}, Logger: zap.New(core)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	ctx, cancel := context.WithCancel(testContext(t))
	var run sync.WaitGroup
	run.Go(func() { c.Run(ctx) })
	t.Cleanup(func() { cancel(); run.Wait() })

	deadline := time.Now().Add(testTimeout)
	for logs.FilterMessageSnippet("does not implement WatchModels").Len() == 0 || c.Serving("nope", 0) == nil {
		if time.Now().After(deadline) {
			t.Fatalf("no fallback to polling within %v: %v", testTimeout, logs.All())
		}
		time.Sleep(5 * time.Millisecond)
	}
	if c.Watching() {
		t.Error("Watching() is true against a pred without WatchModels")
	}
	if err := c.Serving("colors", 0); err != nil {
		t.Errorf("Serving(colors): %v", err)
	}
	if err := c.Serving("nope", 0); status.Code(err) != codes.NotFound {
		t.Errorf("Serving(nope): %v, want NotFound", err)
	}
	for c.def.contract.Load() == nil {
		if time.Now().After(deadline) {
			t.Fatal("no contract loaded")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if _, err := c.Ready(); err != nil {
		t.Errorf("Ready: %v", err)
	}
}

// TestServedState: what the watch reports decides readiness: a model with
// no READY version is not served (with the versions' states), a removed
// one is unknown to pred, and an update changes only its models.
func TestServedState(t *testing.T) {
	c := newClient(t, "127.0.0.1:1")
	if err := c.Serving("colors", 0); err != nil {
		t.Errorf("before any snapshot: %v, want nil (unknown)", err)
	}
	v := func(version int64, state, reason string) *predv1.ModelVersionState {
		return &predv1.ModelVersionState{Model: "colors", Version: version, State: state, Reason: reason, SpecFingerprint: "fp"}
	}
	changed := c.served.set(true, []*predv1.ModelState{
		{Model: "colors", Versions: []*predv1.ModelVersionState{v(1, "UNLOADING", ""), v(2, "LOADING", "")}},
		{Model: "other", Versions: []*predv1.ModelVersionState{{Model: "other", Version: 1, State: "READY"}}},
	})
	if len(changed) != 2 {
		t.Errorf("snapshot changed %v, want both models", changed)
	}
	err := c.Serving("colors", 0)
	if status.Code(err) != codes.Unavailable || err.Error() != `pred at dns:///127.0.0.1:1 serves no READY version of model "colors"; its versions: 1 (UNLOADING), 2 (LOADING)` {
		t.Errorf("Serving(colors) = %v", err)
	}
	if err := c.Serving("colors", 3); status.Code(err) != codes.NotFound {
		t.Errorf("Serving(colors, 3) = %v, want NotFound", err)
	}
	if changed := c.served.set(false, []*predv1.ModelState{{Model: "colors", Versions: []*predv1.ModelVersionState{v(2, "READY", "")}}}); len(changed) != 1 || changed[0] != "colors" {
		t.Errorf("update changed %v, want [colors]", changed)
	}
	if err := c.Serving("colors", 0); err != nil {
		t.Errorf("Serving(colors) after version 2 is READY: %v", err)
	}
	if err := c.Serving("other", 0); err != nil {
		t.Errorf("Serving(other), untouched by the update: %v", err)
	}
	c.served.set(false, []*predv1.ModelState{{Model: "other"}})
	if err := c.Serving("other", 0); status.Code(err) != codes.NotFound {
		t.Errorf("Serving(other) after its removal: %v, want NotFound", err)
	}
	c.served.forget()
	if err := c.Serving("other", 0); err != nil {
		t.Errorf("after the watch ended: %v, want nil (unknown)", err)
	}
}
