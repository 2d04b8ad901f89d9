// Package inflight bounds the memory a server holds for requests in
// flight: a byte budget that requests reserve before their bodies are
// read (shedding load with an immediate refusal when it is spent), an
// HTTP middleware and gRPC hooks that use it, and a listener that caps
// open connections. prep and pred share it so that both refuse the same
// way.
package inflight

import (
	"context"
	"sync"
	"sync/atomic"
)

// Reason is why a request was refused; its String is the metric label.
type Reason int

// The reasons a Budget refuses a request.
const (
	// ReasonBody: the body's declared Content-Length does not fit.
	ReasonBody Reason = iota
	// ReasonBodyStream: a body of unknown length grew past what is left.
	ReasonBodyStream
	// ReasonWork: memory a request needs after its body (e.g. a tensor)
	// does not fit.
	ReasonWork
	// ReasonGRPCStream: a new gRPC stream arrived while the budget was
	// all but spent.
	ReasonGRPCStream
	// ReasonGRPCMessage: a received gRPC message does not fit.
	ReasonGRPCMessage
	numReasons
)

// Reasons lists every Reason, for metrics that export each one.
var Reasons = []Reason{ReasonBody, ReasonBodyStream, ReasonWork, ReasonGRPCStream, ReasonGRPCMessage}

func (r Reason) String() string {
	switch r {
	case ReasonBody:
		return "body"
	case ReasonBodyStream:
		return "body_stream"
	case ReasonWork:
		return "work"
	case ReasonGRPCStream:
		return "grpc_stream"
	case ReasonGRPCMessage:
		return "grpc_message"
	}
	return "unknown"
}

// Budget is a byte semaphore: requests reserve the bytes they will hold
// and release them when they are done. It never lets more than its limit
// be reserved at once.
type Budget struct {
	limit int64
	used  atomic.Int64

	// mu guards waiters and wake, for Reserve's waiting.
	mu      sync.Mutex
	waiters int
	wake    chan struct{}

	refused [numReasons]atomic.Int64

	// burst is set when the bytes reserved reach half the limit, and
	// cleared (with a note on drained, when set) once they fall to a
	// sixteenth: see NotifyDrained.
	burst   atomic.Bool
	drained atomic.Pointer[chan<- struct{}]
}

// NewBudget returns a budget of limit bytes (at least 1).
func NewBudget(limit int64) *Budget {
	return &Budget{limit: max(limit, 1), wake: make(chan struct{})}
}

// Limit is the budget's size in bytes.
func (b *Budget) Limit() int64 { return b.limit }

// InUse is the number of bytes reserved now.
func (b *Budget) InUse() int64 { return b.used.Load() }

// Refused is the number of refusals for reason so far.
func (b *Budget) Refused(r Reason) int64 { return b.refused[r].Load() }

// TryReserve reserves n bytes if they fit, without waiting; a refusal is
// counted under reason r.
func (b *Budget) TryReserve(n int64, r Reason) bool {
	if b.tryReserve(n) {
		return true
	}
	b.refused[r].Add(1)
	return false
}

func (b *Budget) tryReserve(n int64) bool {
	if n <= 0 {
		return true
	}
	for {
		used := b.used.Load()
		if used+n > b.limit || used+n < used {
			return false
		}
		if b.used.CompareAndSwap(used, used+n) {
			if used+n >= b.limit/2 && !b.burst.Load() {
				b.burst.Store(true)
			}
			return true
		}
	}
}

// Reserve waits until n bytes fit, or ctx ends. n is cut to the limit, so
// that a request larger than the whole budget runs alone instead of never;
// it returns the bytes reserved, which the caller releases.
func (b *Budget) Reserve(ctx context.Context, n int64) (int64, error) {
	n = min(n, b.limit)
	for {
		if b.tryReserve(n) {
			return n, nil
		}
		b.mu.Lock()
		// Re-check under the lock: a Release between the failed attempt
		// and here would otherwise be missed.
		if b.tryReserve(n) {
			b.mu.Unlock()
			return n, nil
		}
		b.waiters++
		wake := b.wake
		b.mu.Unlock()
		select {
		case <-wake:
			b.mu.Lock()
			b.waiters--
			b.mu.Unlock()
		case <-ctx.Done():
			b.mu.Lock()
			b.waiters--
			b.mu.Unlock()
			return 0, ctx.Err()
		}
	}
}

// Release returns n reserved bytes and wakes the Reserve calls waiting.
func (b *Budget) Release(n int64) {
	if n <= 0 {
		return
	}
	if b.used.Add(-n) <= b.limit/16 && b.burst.Load() && b.burst.CompareAndSwap(true, false) {
		if c := b.drained.Load(); c != nil {
			select {
			case *c <- struct{}{}:
			default: // a note is already waiting
			}
		}
	}
	b.mu.Lock()
	if b.waiters > 0 {
		close(b.wake)
		b.wake = make(chan struct{})
	}
	b.mu.Unlock()
}

// NotifyDrained makes the budget send on c, without blocking, each time a
// burst ends: the bytes reserved reached half the limit and have fallen
// back to a sixteenth of it. A Reclaimer listens.
func (b *Budget) NotifyDrained(c chan<- struct{}) { b.drained.Store(&c) }

// Reservation is the bytes one request holds in a Budget; it may grow
// while the request runs and is released once, when the request is done.
// Its methods are safe for concurrent use.
type Reservation struct {
	budget *Budget
	mu     sync.Mutex
	held   int64
	done   bool
}

// reserve returns a reservation of n bytes if they fit, else nil; a
// refusal is counted under reason r.
func (b *Budget) reserve(n int64, r Reason) *Reservation {
	if !b.TryReserve(n, r) {
		return nil
	}
	return &Reservation{budget: b, held: n}
}

// Held is the number of bytes the reservation holds.
func (rv *Reservation) Held() int64 {
	rv.mu.Lock()
	defer rv.mu.Unlock()
	return rv.held
}

// TryGrow adds n bytes to the reservation if they fit, without waiting; a
// refusal is counted under reason r. A released reservation cannot grow.
func (rv *Reservation) TryGrow(n int64, r Reason) bool {
	rv.mu.Lock()
	defer rv.mu.Unlock()
	if rv.done || !rv.budget.TryReserve(n, r) {
		return false
	}
	rv.held += max(n, 0)
	return true
}

// Release returns every byte held; later calls do nothing.
func (rv *Reservation) Release() {
	rv.mu.Lock()
	defer rv.mu.Unlock()
	if rv.done {
		return
	}
	rv.done = true
	rv.budget.Release(rv.held)
	rv.held = 0
}

type reservationKey struct{}

// NewContext returns ctx carrying rv, for handlers that grow it.
func NewContext(ctx context.Context, rv *Reservation) context.Context {
	return context.WithValue(ctx, reservationKey{}, rv)
}

// FromContext returns the reservation of the request ctx belongs to, or
// nil when it has none.
func FromContext(ctx context.Context) *Reservation {
	rv, _ := ctx.Value(reservationKey{}).(*Reservation)
	return rv
}
