package batcher

import (
	"bytes"
	"context"
	"runtime"
	"slices"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prepred/prepred/pred/internal/tensor"
)

// goroutineID is the number runtime.Stack prints for the calling goroutine.
func goroutineID(t *testing.T) int {
	buf := make([]byte, 64)
	buf = buf[:runtime.Stack(buf, false)]
	f := bytes.Fields(buf) // "goroutine 123 [running]:"
	id, err := strconv.Atoi(string(f[1]))
	if err != nil {
		t.Fatalf("goroutine id in %q: %v", buf, err)
	}
	return id
}

// TestIdleInstanceRunsOnCaller checks that a request finding an idle
// instance and an empty queue runs on the goroutine that submitted it,
// with and without dynamic batching, instead of waking a worker.
func TestIdleInstanceRunsOnCaller(t *testing.T) {
	for _, cfg := range []Config{
		{MaxBatchSize: 8},
		{MaxBatchSize: 8, Dynamic: true}, // MaxQueueDelay 0: nothing to wait for
	} {
		m := newModel(t)
		var ran atomic.Int64
		run := func(ctx context.Context, in []tensor.Tensor, items int64) ([]tensor.Tensor, error) {
			ran.Store(int64(goroutineID(t)))
			return m.run(ctx, in, items)
		}
		cfg.Name, cfg.MaxQueueSize, cfg.Instances = "fake", 4, 1
		b, err := New(cfg, run, Hooks{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(b.Close)
		for i := range 3 {
			outs, err := b.Submit(context.Background(), item(byte(i), 1), 1)
			if err != nil {
				t.Fatal(err)
			}
			if got := outs[0].Data[0]; got != byte(i)+1 {
				t.Errorf("output %d, want %d", got, i+1)
			}
			if got, want := ran.Load(), int64(goroutineID(t)); got != want {
				t.Errorf("dynamic=%v request %d ran on goroutine %d, want the caller's %d", cfg.Dynamic, i, got, want)
			}
		}
	}
}

// TestCallerRunHoldsItsInstance holds a run Submit makes itself and checks
// that, with one instance, the workers leave what queues meanwhile until it
// ends, and then run it as one batch.
func TestCallerRunHoldsItsInstance(t *testing.T) {
	m := newModel(t)
	q := newQueueWatch()
	b := start(t, Config{MaxBatchSize: 8, Dynamic: true}, m, Hooks{QueueLength: q.hook})
	m.hold()
	first := submit(context.Background(), b, item(0, 1))
	m.awaitStart()
	second := submit(context.Background(), b, item(10, 1))
	third := submit(context.Background(), b, item(20, 2))
	q.await(t, 2)
	if got := len(m.runs()); got != 1 {
		t.Fatalf("%d runs while the only instance was busy, want 1", got)
	}
	m.release()
	for _, ch := range []<-chan result{first, second, third} {
		if r := wait(t, ch); r.err != nil {
			t.Fatal(r.err)
		}
	}
	runs := m.runs()
	if len(runs) != 2 || !slices.Equal(runs[0], []byte{0}) {
		t.Fatalf("runs %v, want [0] then the two queued requests together", runs)
	}
	if got := runs[1]; len(got) != 3 || !slices.Contains(got, 10) || !slices.Contains(got, 20) {
		t.Errorf("second run %v, want items 10, 20, 21 in one batch", got)
	}
}

// TestCloseWaitsForCallerRun checks that Close returns only after a run
// that Submit makes on its own goroutine has ended, as it does for the
// workers' runs: the model must not be released under it.
func TestCloseWaitsForCallerRun(t *testing.T) {
	m := newModel(t)
	b, err := New(Config{Name: "fake", MaxBatchSize: 8, MaxQueueSize: 4, Instances: 1}, m.run, Hooks{})
	if err != nil {
		t.Fatal(err)
	}
	m.hold()
	first := submit(context.Background(), b, item(0, 1))
	m.awaitStart()
	var running atomic.Bool
	running.Store(true)
	closed := make(chan bool)
	go func() {
		b.Close()
		closed <- running.Load()
	}()
	// Close must still be waiting while the run is held; a Close that does
	// not wait returns at once.
	select {
	case <-closed:
		t.Fatal("Close returned while a run was in progress")
	case <-time.After(100 * time.Millisecond):
	}
	running.Store(false)
	m.release()
	if r := wait(t, first); r.err != nil {
		t.Fatal(r.err)
	}
	if <-closed {
		t.Error("Close returned before the run ended")
	}
}
