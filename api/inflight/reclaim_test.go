package inflight

import (
	"context"
	"runtime"
	"testing"
	"time"
)

// drainedNote reports whether c holds a note, without waiting.
func drainedNote(c <-chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}

func TestNotifyDrained(t *testing.T) {
	b := NewBudget(1600)
	c := make(chan struct{}, 1)
	b.NotifyDrained(c)

	b.TryReserve(700, ReasonBody)
	b.Release(700)
	if drainedNote(c) {
		t.Fatal("a note after use below half the limit: no burst happened")
	}

	b.TryReserve(500, ReasonBody)
	b.TryReserve(300, ReasonBody) // 800: half the limit, a burst
	b.Release(500)
	if drainedNote(c) {
		t.Fatal("a note with 300 of 1600 bytes still reserved")
	}
	b.Release(200) // 100: a sixteenth
	if !drainedNote(c) {
		t.Fatal("no note after the burst drained to a sixteenth")
	}
	b.Release(100)
	if drainedNote(c) {
		t.Fatal("a second note for the same burst")
	}
}

// sink keeps an allocation reachable until the test drops it.
var sink []byte

func TestReclaimerReturnsAfterBurst(t *testing.T) {
	const garbage = 64 << 20
	b := NewBudget(1000)
	r := NewReclaimer(50*time.Millisecond, b)
	type ret struct {
		released uint64
		at       time.Time
	}
	rets := make(chan ret, 2)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		r.Run(ctx, func(released uint64, _ time.Duration) { rets <- ret{released, time.Now()} })
	}()
	t.Cleanup(func() { cancel(); <-done })

	// A burst that leaves 64 MiB of garbage behind.
	sink = make([]byte, garbage)
	for i := range sink {
		sink[i] = 1
	}
	b.TryReserve(1000, ReasonBody)
	sink = nil
	runtime.GC()
	b.Release(1000)
	first := <-rets
	if first.released < garbage/2 {
		t.Errorf("the return after the burst released %d bytes; want most of the %d of garbage", first.released, garbage)
	}

	// A second burst at once shares the interval: its return comes after.
	b.TryReserve(1000, ReasonBody)
	b.Release(1000)
	second := <-rets
	// (40ms: first.at is taken a little after the interval starts.)
	if gap := second.at.Sub(first.at); gap < 40*time.Millisecond {
		t.Errorf("second return %v after the first, within the 50ms interval", gap)
	}
	if got := r.Returns(); got != 2 {
		t.Errorf("Returns() = %d, want 2", got)
	}
	if got := r.ReleasedBytes(); got < int64(first.released) {
		t.Errorf("ReleasedBytes() = %d, below the first return's %d", got, first.released)
	}
}
