package inflight

import (
	"context"
	"runtime"
	"runtime/debug"
	"sync/atomic"
	"time"
)

// DefaultReclaimInterval is the shortest time between two returns of
// memory by a Reclaimer: a flood that comes back every second costs one
// forced collection per interval, not one per wave.
const DefaultReclaimInterval = 10 * time.Second

// A Reclaimer returns the memory of a burst to the operating system as
// soon as the burst is over. After a flood that filled a budget, the Go
// runtime keeps the freed heap pages and gives them back only slowly (its
// scavenger paces itself to about 1% of a CPU), so the process's resident
// memory stays near the peak for minutes, where the next flood, or a
// neighbour in the same pod, finds it taken. Each time one of its budgets
// drains after a burst (see Budget.NotifyDrained), the Reclaimer runs
// debug.FreeOSMemory: a collection, then every free page returned.
type Reclaimer struct {
	interval time.Duration
	drained  chan struct{}
	returns  atomic.Int64
	released atomic.Int64
}

// NewReclaimer returns a Reclaimer of the budgets that returns memory at
// most once per interval.
func NewReclaimer(interval time.Duration, budgets ...*Budget) *Reclaimer {
	r := &Reclaimer{interval: interval, drained: make(chan struct{}, 1)}
	for _, b := range budgets {
		b.NotifyDrained(r.drained)
	}
	return r
}

// Returns is the number of times memory was returned.
func (r *Reclaimer) Returns() int64 { return r.returns.Load() }

// ReleasedBytes is the number of bytes of heap those returns gave back to
// the operating system, in all.
func (r *Reclaimer) ReleasedBytes() int64 { return r.released.Load() }

// Run returns memory after each burst until ctx ends; onReturn, when not
// nil, learns how many bytes each return released and how long it took.
func (r *Reclaimer) Run(ctx context.Context, onReturn func(released uint64, took time.Duration)) {
	var last time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case <-r.drained:
		}
		if wait := r.interval - time.Since(last); !last.IsZero() && wait > 0 {
			// Bursts closer than the interval share one return, after it.
			t := time.NewTimer(wait)
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case <-t.C:
			}
		}
		start := time.Now()
		released := freeOSMemory()
		last = time.Now()
		r.released.Add(int64(released))
		r.returns.Add(1)
		if onReturn != nil {
			onReturn(released, last.Sub(start))
		}
	}
}

// freeOSMemory returns the free heap to the operating system and reports
// how many bytes more the runtime holds as released than before.
func freeOSMemory() uint64 {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	debug.FreeOSMemory()
	runtime.ReadMemStats(&after)
	if after.HeapReleased < before.HeapReleased {
		return 0
	}
	return after.HeapReleased - before.HeapReleased
}
