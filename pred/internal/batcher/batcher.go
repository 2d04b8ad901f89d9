// Package batcher queues the inference requests of one model version and
// runs them on a bounded number of workers. When the model allows it
// (dynamic batching), requests of compatible shape are concatenated along
// the batch dimension into one buffer, run once, and the outputs handed
// back to each request as sub-slices of the batch's outputs.
//
// The queue is bounded: a request that finds it full is refused at once
// with ResourceExhausted. A request whose context ends while it waits is
// taken out of the queue and never runs. Errors carry gRPC status codes.
package batcher

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/prepred/prepred/pred/internal/tensor"
)

// Config configures a Batcher.
type Config struct {
	// Name names the model version in error messages, e.g.
	// `model "resnet50" version 1`.
	Name string
	// MaxBatchSize is the largest number of items (first dimension) one run
	// may hold; 0 means the model has no batch dimension pred handles, so
	// every request runs alone.
	MaxBatchSize int64
	// Dynamic merges queued requests into one run; it needs MaxBatchSize > 0.
	Dynamic bool
	// MaxQueueDelay is how long the oldest queued request may wait for
	// others to join its batch when no preferred or full batch can be
	// formed; 0 runs whatever is queued as soon as a worker is free.
	MaxQueueDelay time.Duration
	// PreferredBatchSizes are batch sizes that run without waiting for
	// MaxQueueDelay once the queue can form one.
	PreferredBatchSizes []int64
	// MaxQueueSize bounds the requests waiting for a worker; at least 1.
	MaxQueueSize int
	// Instances is how many runs may execute at once; at least 1.
	Instances int
}

// RunFunc runs the model once. inputs are in the model's input order and,
// when MaxBatchSize > 0, all have items as their first dimension. Outputs
// must then have items as their first dimension too. ctx ends when every
// request of the batch has been cancelled.
type RunFunc func(ctx context.Context, inputs []tensor.Tensor, items int64) ([]tensor.Tensor, error)

// BatchStats describes one run.
type BatchStats struct {
	// Requests and Items are the number of requests and of items (the sum
	// of their first dimensions) the run held.
	Requests int
	Items    int64
	// Input is the time spent concatenating the inputs, Infer the run
	// itself and Output the time spent splitting the outputs.
	Input, Infer, Output time.Duration
	// Err is the run's error.
	Err error
}

// Hooks observe a Batcher; every field is optional. They are called from
// the batcher's goroutines, QueueLength with its lock held, so none may
// block.
type Hooks struct {
	// QueueLength reports the number of waiting requests whenever it
	// changes.
	QueueLength func(n int)
	// Dequeued reports how long a request waited before a worker took it.
	Dequeued func(wait time.Duration)
	// Executed reports each run once it has finished.
	Executed func(BatchStats)
	// Trace, if set, receives each run once it has finished, before its
	// requests are answered, with each request's context and the times a
	// trace shows. Left nil (tracing off), the batcher records no times
	// beyond those of Executed.
	Trace func(BatchTrace)
}

// BatchTrace describes one run for tracing: the requests it held, in
// queue order, and when it started (the requests left the queue), had its
// inputs gathered, ran and ended (outputs split).
type BatchTrace struct {
	Requests             []TracedRequest
	Items                int64
	Start, Gathered, Ran time.Time
	End                  time.Time
	Err                  error
}

// TracedRequest is one request of a BatchTrace: its context (which
// carries its span) and when it was queued.
type TracedRequest struct {
	Ctx      context.Context
	Enqueued time.Time
}

// Batcher queues requests and runs them on its workers.
type Batcher struct {
	cfg   Config
	run   RunFunc
	hooks Hooks

	// wake holds a token when the queue has changed since a worker last
	// looked; workers wait on it.
	wake chan struct{}
	quit chan struct{}
	wg   sync.WaitGroup

	// mu guards the fields below and the state of every queued request.
	mu     sync.Mutex
	queue  []*request
	closed bool
	// draining runs queued requests without waiting for others to join
	// their batch: no more are coming.
	draining bool

	// executing counts batches being run; lastSingle records whether the
	// last batch to finish held a single request. Both guarded by mu: when
	// the last batch held one request and nothing runs, traffic is
	// sequential and waiting MaxQueueDelay for company would only add
	// latency, so a lone request runs at once.
	executing  int
	lastSingle bool

	// buffers recycles the batch buffers inputs are concatenated into.
	buffers sync.Pool
}

// Request states; a request moves from queued to taken (a worker runs it)
// or abandoned (its context ended first), never back.
const (
	queued = iota
	taken
	abandoned
)

type request struct {
	ctx      context.Context
	inputs   []tensor.Tensor
	items    int64
	enqueued time.Time
	state    int // guarded by Batcher.mu

	// done is closed once outputs and err are set.
	done    chan struct{}
	outputs []tensor.Tensor
	err     error
}

// New starts a batcher with cfg.Instances workers that run batches with run.
func New(cfg Config, run RunFunc, hooks Hooks) (*Batcher, error) {
	switch {
	case cfg.MaxBatchSize < 0:
		return nil, fmt.Errorf("batcher: max batch size %d is negative", cfg.MaxBatchSize)
	case cfg.Dynamic && cfg.MaxBatchSize == 0:
		return nil, fmt.Errorf("batcher: dynamic batching needs a max batch size")
	case cfg.MaxQueueSize < 1:
		return nil, fmt.Errorf("batcher: max queue size %d must be at least 1", cfg.MaxQueueSize)
	case cfg.Instances < 1:
		return nil, fmt.Errorf("batcher: instance count %d must be at least 1", cfg.Instances)
	case cfg.MaxQueueDelay < 0:
		return nil, fmt.Errorf("batcher: max queue delay %v is negative", cfg.MaxQueueDelay)
	}
	for _, p := range cfg.PreferredBatchSizes {
		if p < 1 || p > cfg.MaxBatchSize {
			return nil, fmt.Errorf("batcher: preferred batch size %d is outside [1, %d]", p, cfg.MaxBatchSize)
		}
	}
	b := &Batcher{
		cfg:   cfg,
		run:   run,
		hooks: hooks,
		wake:  make(chan struct{}, 1),
		quit:  make(chan struct{}),
		queue: make([]*request, 0, cfg.MaxQueueSize),
	}
	b.cfg.PreferredBatchSizes = slices.Clone(cfg.PreferredBatchSizes)
	b.wg.Add(cfg.Instances)
	for range cfg.Instances {
		go b.worker()
	}
	return b, nil
}

// Submit queues one request and waits for its outputs. inputs must be
// valid for the model (in input order, each with items as its first
// dimension when MaxBatchSize > 0, and compatible dtypes); Submit does not
// check them again. Outputs of a merged batch share its buffers and must
// not be appended to.
//
// A request finding the queue full fails at once with ResourceExhausted;
// one whose context ends while it waits fails with DeadlineExceeded or
// Canceled and never runs. Once a request runs, Submit waits for the run
// to finish (it is terminated early when every request in it has been
// cancelled), so that the inputs are not in use when it returns.
func (b *Batcher) Submit(ctx context.Context, inputs []tensor.Tensor, items int64) ([]tensor.Tensor, error) {
	if err := ctx.Err(); err != nil {
		return nil, b.contextError(err, "before it was queued")
	}
	r := &request{ctx: ctx, inputs: inputs, items: items, enqueued: time.Now(), done: make(chan struct{})}
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil, status.Errorf(codes.Unavailable, "%s is being unloaded", b.cfg.Name)
	}
	if len(b.queue) >= b.cfg.MaxQueueSize {
		b.mu.Unlock()
		return nil, status.Errorf(codes.ResourceExhausted, "%s is overloaded: its queue holds %d requests, the most it takes (max_queue_size); retry later", b.cfg.Name, b.cfg.MaxQueueSize)
	}
	b.queue = append(b.queue, r)
	if len(b.queue) == 1 && b.executing < b.cfg.Instances {
		// An idle instance and nothing queued ahead: when the plan would
		// run this request now anyway, run it here instead of handing it
		// to a worker and waiting to be handed the result back; the two
		// goroutine wake-ups cost more than a small model's whole run.
		if picked, _ := b.plan(b.draining); picked != nil {
			r.state = taken
			b.queue = b.queue[:0]
			b.queueLengthLocked()
			b.executing++
			b.wg.Add(1) // Close waits for this run as for the workers'
			b.mu.Unlock()
			b.execute([]*request{r})
			b.finished(1)
			b.wg.Done()
			return b.answer(ctx, r)
		}
	}
	b.queueLengthLocked()
	b.mu.Unlock()
	b.signal()
	return b.answer(ctx, r)
}

// finished records that a batch of n requests has run, and wakes a worker
// for what queued meanwhile.
func (b *Batcher) finished(n int) {
	b.mu.Lock()
	b.executing--
	b.lastSingle = n == 1
	more := len(b.queue) > 0
	b.mu.Unlock()
	if more {
		b.signal()
	}
}

// answer waits for r to be run or for ctx to end, whichever comes first,
// and returns r's outputs or why it has none.
func (b *Batcher) answer(ctx context.Context, r *request) ([]tensor.Tensor, error) {
	select {
	case <-r.done:
		return r.outputs, r.err
	case <-ctx.Done():
	}
	b.mu.Lock()
	if r.state == queued {
		b.removeLocked(r)
		r.state = abandoned
		b.mu.Unlock()
		return nil, b.contextError(ctx.Err(), "while it waited in the queue")
	}
	b.mu.Unlock()
	<-r.done
	if r.err != nil {
		return nil, r.err
	}
	return nil, b.contextError(ctx.Err(), "while it ran")
}

// contextError is the status error of a request whose context ended.
func (b *Batcher) contextError(err error, when string) error {
	st := status.FromContextError(err)
	return status.Errorf(st.Code(), "request for %s ended %s: %v", b.cfg.Name, when, err)
}

// Drain makes the workers run queued requests without waiting for others
// to join their batch, for a model version that is leaving service. It
// still accepts requests.
func (b *Batcher) Drain() {
	b.mu.Lock()
	b.draining = true
	b.mu.Unlock()
	b.signal()
}

// Close stops accepting requests, lets the workers run what is queued and
// waits for them to exit.
func (b *Batcher) Close() {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		b.wg.Wait()
		return
	}
	b.closed, b.draining = true, true
	b.mu.Unlock()
	close(b.quit)
	b.wg.Wait()
}

// signal wakes a waiting worker.
func (b *Batcher) signal() {
	select {
	case b.wake <- struct{}{}:
	default:
	}
}

func (b *Batcher) queueLengthLocked() {
	if b.hooks.QueueLength != nil {
		b.hooks.QueueLength(len(b.queue))
	}
}

func (b *Batcher) removeLocked(r *request) {
	if i := slices.Index(b.queue, r); i >= 0 {
		b.queue = slices.Delete(b.queue, i, i+1)
		b.queueLengthLocked()
	}
}

func (b *Batcher) worker() {
	defer b.wg.Done()
	var timer *time.Timer
	quit := b.quit // nil once closed: a wait then ends only by wake or timer
	for {
		batch, more, wait, exit := b.next()
		if exit {
			return
		}
		if batch != nil {
			if more {
				b.signal() // another worker may form the next batch
			}
			b.execute(batch)
			b.finished(len(batch))
			continue
		}
		var expire <-chan time.Time
		if wait > 0 {
			if timer == nil {
				timer = time.NewTimer(wait)
			} else {
				timer.Reset(wait)
			}
			expire = timer.C
		}
		select {
		case <-b.wake:
		case <-expire:
		case <-quit:
			quit = nil
		}
		if timer != nil {
			timer.Stop()
		}
	}
}

// next takes the next batch off the queue and reports whether requests
// remain. When no batch is ready it returns how long to wait for one (0:
// until the queue changes); exit is true once the batcher is closed and
// the queue empty.
func (b *Batcher) next() (batch []*request, more bool, wait time.Duration, exit bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	// Requests whose context has ended leave the queue without running.
	n := len(b.queue)
	b.queue = slices.DeleteFunc(b.queue, func(r *request) bool {
		if r.ctx.Err() == nil {
			return false
		}
		r.state = abandoned
		r.err = b.contextError(r.ctx.Err(), "while it waited in the queue")
		close(r.done)
		return true
	})
	if len(b.queue) != n {
		b.queueLengthLocked()
	}
	if len(b.queue) == 0 {
		return nil, false, 0, b.closed
	}
	if b.executing >= b.cfg.Instances {
		// Every instance is busy, one with a request Submit runs itself:
		// finished wakes a worker when one is free.
		return nil, false, 0, false
	}
	picked, wait := b.plan(b.draining)
	if picked == nil {
		return nil, false, wait, false
	}
	batch = make([]*request, len(picked))
	for i, j := range picked {
		batch[i] = b.queue[j]
		batch[i].state = taken
	}
	b.queue = slices.DeleteFunc(b.queue, func(r *request) bool { return r.state == taken })
	b.queueLengthLocked()
	b.executing++
	return batch, len(b.queue) > 0, 0, false
}

// plan picks the queue positions of the next batch: the oldest request,
// then every later one of compatible shape that still fits. It returns nil
// and how long to wait when the batch should wait for more requests, which
// it never does while draining.
func (b *Batcher) plan(draining bool) (picked []int, wait time.Duration) {
	if !b.cfg.Dynamic {
		return []int{0}, 0
	}
	head := b.queue[0]
	items := head.items
	picked = []int{0}
	sizes := []int64{items} // sizes[i]: items of the first i+1 picked requests
	for j := 1; j < len(b.queue) && items < b.cfg.MaxBatchSize; j++ {
		r := b.queue[j]
		if items+r.items > b.cfg.MaxBatchSize || !compatible(head, r) {
			continue
		}
		items += r.items
		picked = append(picked, j)
		sizes = append(sizes, items)
	}
	if items == b.cfg.MaxBatchSize {
		return picked, 0
	}
	// The largest preferred size the picked requests can form runs now.
	for i := len(sizes) - 1; i >= 0; i-- {
		if slices.Contains(b.cfg.PreferredBatchSizes, sizes[i]) {
			return picked[:i+1], 0
		}
	}
	if len(b.queue) == 1 && b.executing == 0 && b.lastSingle {
		return picked, 0 // sequential traffic: no one to wait for
	}
	if waited := time.Since(head.enqueued); waited < b.cfg.MaxQueueDelay && !draining {
		return nil, b.cfg.MaxQueueDelay - waited
	}
	return picked, 0
}

// compatible reports whether two requests can share a batch: every input
// has the same dimensions after the batch dimension. Dtypes are those of
// the model's configuration, so they always match.
func compatible(a, b *request) bool {
	for i, in := range a.inputs {
		if !slices.Equal(in.Shape[1:], b.inputs[i].Shape[1:]) {
			return false
		}
	}
	return true
}
