package batcher

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	predv1 "github.com/prepred/prepred/api/gen/prepred/pred/v1"
	"github.com/prepred/prepred/pred/internal/tensor"
)

// testTimeout bounds every wait of a test on an event.
const testTimeout = time.Minute

// model is a fake model: every item is a row of rowBytes bytes, and the
// output row is the input row with each byte incremented. It records the
// batches it runs and can hold them at a gate.
type model struct {
	t *testing.T

	mu      sync.Mutex
	batches [][]byte // the first byte of every item, per run
	gate    chan struct{}
	started chan context.Context // receives each run's context when gated
	err     error
}

const rowBytes = 4

func newModel(t *testing.T) *model {
	return &model{t: t, started: make(chan context.Context, 100)}
}

// hold makes runs wait until release.
func (m *model) hold() {
	m.mu.Lock()
	m.gate = make(chan struct{})
	m.mu.Unlock()
}

func (m *model) release() {
	m.mu.Lock()
	close(m.gate)
	m.gate = nil
	m.mu.Unlock()
}

func (m *model) run(ctx context.Context, inputs []tensor.Tensor, items int64) ([]tensor.Tensor, error) {
	m.mu.Lock()
	gate := m.gate
	err := m.err
	var firsts []byte
	row := int64(len(inputs[0].Data)) / items
	for i := range items {
		firsts = append(firsts, inputs[0].Data[i*row])
	}
	m.batches = append(m.batches, firsts)
	m.mu.Unlock()
	if gate != nil {
		m.started <- ctx
		<-gate
	}
	if err != nil {
		return nil, err
	}
	in := inputs[0]
	if int64(len(in.Data)) != items*row || in.Shape[0] != items {
		return nil, fmt.Errorf("input %v with %d bytes for %d items", in.Shape, len(in.Data), items)
	}
	out := make([]byte, len(in.Data))
	for i, c := range in.Data {
		out[i] = c + 1
	}
	return []tensor.Tensor{{Name: "out", DType: in.DType, Shape: slices.Clone(in.Shape), Data: out}}, nil
}

// runs returns the first byte of every item of every run so far.
func (m *model) runs() [][]byte {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.batches)
}

// awaitStart waits for a gated run to start and returns its context.
func (m *model) awaitStart() context.Context {
	m.t.Helper()
	select {
	case ctx := <-m.started:
		return ctx
	case <-time.After(testTimeout):
		m.t.Fatal("no run started")
		return nil
	}
}

// queueWatch records the queue lengths a batcher reports.
type queueWatch struct {
	ch chan int
}

func newQueueWatch() *queueWatch { return &queueWatch{ch: make(chan int, 1000)} }

func (q *queueWatch) hook(n int) { q.ch <- n }

// await waits until the queue holds n requests.
func (q *queueWatch) await(t *testing.T, n int) {
	t.Helper()
	timer := time.NewTimer(testTimeout)
	defer timer.Stop()
	for {
		select {
		case got := <-q.ch:
			if got == n {
				return
			}
		case <-timer.C:
			t.Fatalf("the queue never held %d requests", n)
		}
	}
}

// item returns a request of n items whose rows start with tag, tag+1, ...
func item(tag byte, n int) []tensor.Tensor {
	data := make([]byte, 0, n*rowBytes)
	for i := range n {
		data = append(data, tag+byte(i), 7, 8, 9)
	}
	return []tensor.Tensor{{Name: "in", DType: predv1.DataType_DATA_TYPE_FLOAT32, Shape: []int64{int64(n), 1}, Data: data}}
}

func start(t *testing.T, cfg Config, m *model, hooks Hooks) *Batcher {
	t.Helper()
	if cfg.Name == "" {
		cfg.Name = `model "fake" version 1`
	}
	if cfg.MaxQueueSize == 0 {
		cfg.MaxQueueSize = 16
	}
	if cfg.Instances == 0 {
		cfg.Instances = 1
	}
	b, err := New(cfg, m.run, hooks)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	return b
}

type result struct {
	outs []tensor.Tensor
	err  error
}

// submit runs Submit in a goroutine.
func submit(ctx context.Context, b *Batcher, inputs []tensor.Tensor) <-chan result {
	ch := make(chan result, 1)
	go func() {
		outs, err := b.Submit(ctx, inputs, inputs[0].Shape[0])
		ch <- result{outs, err}
	}()
	return ch
}

func wait(t *testing.T, ch <-chan result) result {
	t.Helper()
	select {
	case r := <-ch:
		return r
	case <-time.After(testTimeout):
		t.Fatal("Submit did not return")
		return result{}
	}
}

func wantCode(t *testing.T, err error, code codes.Code, substr string) {
	t.Helper()
	if status.Code(err) != code || !bytes.Contains([]byte(status.Convert(err).Message()), []byte(substr)) {
		t.Errorf("error = %v, want %v containing %q", err, code, substr)
	}
}

// TestMergesQueuedRequests holds the only worker, queues requests while it
// is busy and checks that they then run as one batch whose split outputs
// equal those of running each request alone, byte for byte.
func TestMergesQueuedRequests(t *testing.T) {
	m := newModel(t)
	q := newQueueWatch()
	var mu sync.Mutex
	var stats []BatchStats
	b := start(t, Config{MaxBatchSize: 8, Dynamic: true}, m, Hooks{
		QueueLength: q.hook,
		Executed: func(s BatchStats) {
			mu.Lock()
			stats = append(stats, s)
			mu.Unlock()
		},
	})
	m.hold()
	first := submit(context.Background(), b, item(0, 1))
	m.awaitStart()
	q.await(t, 0) // the queue is empty once the held run has started

	requests := [][]tensor.Tensor{item(10, 1), item(20, 3), item(30, 2), item(40, 1)}
	results := make([]<-chan result, len(requests))
	for i, in := range requests {
		results[i] = submit(context.Background(), b, in)
		q.await(t, i+1) // keeps the queue order deterministic
	}
	m.release()
	if r := wait(t, first); r.err != nil {
		t.Fatal(r.err)
	}
	for i, ch := range results {
		r := wait(t, ch)
		if r.err != nil {
			t.Fatalf("request %d: %v", i, r.err)
		}
		alone, err := m.run(context.Background(), requests[i], requests[i][0].Shape[0])
		if err != nil {
			t.Fatal(err)
		}
		if len(r.outs) != 1 || !bytes.Equal(r.outs[0].Data, alone[0].Data) || !slices.Equal(r.outs[0].Shape, alone[0].Shape) {
			t.Errorf("request %d: batched output %v %v, alone %v %v", i, r.outs[0].Shape, r.outs[0].Data, alone[0].Shape, alone[0].Data)
		}
		if cap(r.outs[0].Data) != len(r.outs[0].Data) {
			t.Errorf("request %d: output capacity %d reaches into its neighbour's rows", i, cap(r.outs[0].Data))
		}
	}
	// Runs: the held one, then one batch of all four requests (7 items) in
	// queue order, then the four direct runs above.
	want := [][]byte{{0}, {10, 20, 21, 22, 30, 31, 40}}
	if got := m.runs()[:2]; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("runs = %v, want %v", got, want)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(stats) != 2 || stats[1].Requests != 4 || stats[1].Items != 7 || stats[0].Items != 1 {
		t.Errorf("stats = %+v", stats)
	}
}

// TestBatchLimits checks that a batch never exceeds the max batch size,
// that requests of different item shapes do not share a batch and that a
// preferred batch size runs without waiting for the queue delay.
func TestBatchLimits(t *testing.T) {
	tests := []struct {
		name     string
		cfg      Config
		requests [][]tensor.Tensor
		want     [][]byte
	}{
		{
			name:     "max batch size",
			cfg:      Config{MaxBatchSize: 8, Dynamic: true},
			requests: [][]tensor.Tensor{item(10, 3), item(20, 3), item(30, 3), item(40, 2), item(50, 1)},
			// 3+3 = 6; 3 would make 9, so 2 joins; then the rest.
			want: [][]byte{{10, 11, 12, 20, 21, 22, 40, 41}, {30, 31, 32, 50}},
		},
		{
			name: "incompatible shapes",
			cfg:  Config{MaxBatchSize: 8, Dynamic: true},
			requests: [][]tensor.Tensor{item(10, 1), {{Name: "in", Shape: []int64{1, 2}, Data: []byte{20, 0, 0, 0, 0, 0, 0, 0}}},
				item(30, 1)},
			want: [][]byte{{10, 30}, {20}},
		},
		{
			name:     "preferred size cuts the batch",
			cfg:      Config{MaxBatchSize: 8, Dynamic: true, PreferredBatchSizes: []int64{2, 4}},
			requests: [][]tensor.Tensor{item(10, 1), item(20, 3), item(30, 1)},
			// 1, 4, 5 items: 4 is the largest preferred size.
			want: [][]byte{{10, 20, 21, 22}, {30}},
		},
		{
			name:     "without dynamic batching",
			cfg:      Config{MaxBatchSize: 8},
			requests: [][]tensor.Tensor{item(10, 2), item(20, 1), item(30, 1)},
			want:     [][]byte{{10, 11}, {20}, {30}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := newModel(t)
			q := newQueueWatch()
			tt.cfg.MaxQueueDelay = time.Hour
			b := start(t, tt.cfg, m, Hooks{QueueLength: q.hook})
			// Hold the worker on a first request of a full batch.
			m.hold()
			first := submit(context.Background(), b, item(0, 8))
			m.awaitStart()
			q.await(t, 0) // the queue is empty once the held run has started
			var results []<-chan result
			for i, in := range tt.requests {
				results = append(results, submit(context.Background(), b, in))
				q.await(t, i+1)
			}
			m.release()
			wait(t, first)
			// What cannot form a full or preferred batch waits for the
			// queue delay; closing runs it without waiting.
			b.Close()
			for i, ch := range results {
				if r := wait(t, ch); r.err != nil {
					t.Errorf("request %d: %v", i, r.err)
				}
			}
			got := m.runs()[1:]
			if fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Errorf("runs = %v, want %v", got, tt.want)
			}
		})
	}
}

// TestFullBatchRunsWithoutDelay: a batch that reaches the max batch size
// runs at once even with a long queue delay.
func TestFullBatchRunsWithoutDelay(t *testing.T) {
	m := newModel(t)
	b := start(t, Config{MaxBatchSize: 4, Dynamic: true, MaxQueueDelay: time.Hour}, m, Hooks{})
	var results []<-chan result
	for i := range 4 {
		results = append(results, submit(context.Background(), b, item(byte(10*i), 1)))
	}
	for _, ch := range results {
		if r := wait(t, ch); r.err != nil {
			t.Fatal(r.err)
		}
	}
	if got := m.runs(); len(got) != 1 || len(got[0]) != 4 {
		t.Errorf("runs = %v, want one batch of 4", got)
	}
}

func TestQueueFull(t *testing.T) {
	m := newModel(t)
	q := newQueueWatch()
	b := start(t, Config{MaxBatchSize: 8, Dynamic: true, MaxQueueSize: 2}, m, Hooks{QueueLength: q.hook})
	m.hold()
	first := submit(context.Background(), b, item(0, 1))
	m.awaitStart()
	q.await(t, 0) // the queue is empty once the held run has started
	queued := []<-chan result{submit(context.Background(), b, item(10, 1))}
	q.await(t, 1)
	queued = append(queued, submit(context.Background(), b, item(20, 1)))
	q.await(t, 2)

	_, err := b.Submit(context.Background(), item(30, 1), 1)
	wantCode(t, err, codes.ResourceExhausted, `model "fake" version 1 is overloaded: its queue holds 2 requests`)

	m.release()
	wait(t, first)
	for _, ch := range queued {
		if r := wait(t, ch); r.err != nil {
			t.Error(r.err)
		}
	}
	for _, run := range m.runs() {
		if slices.Contains(run, 30) {
			t.Errorf("the refused request ran: %v", m.runs())
		}
	}
}

// TestContextEndsInQueue: a request whose deadline passes, or whose
// caller cancels, while it waits is answered at once and never runs.
func TestContextEndsInQueue(t *testing.T) {
	m := newModel(t)
	q := newQueueWatch()
	b := start(t, Config{MaxBatchSize: 8, Dynamic: true}, m, Hooks{QueueLength: q.hook})
	m.hold()
	first := submit(context.Background(), b, item(0, 1))
	m.awaitStart()
	q.await(t, 0) // the queue is empty once the held run has started

	deadline := newDeadlineContext()
	expired := submit(deadline, b, item(10, 1))
	q.await(t, 1)
	cancelled, cancel := context.WithCancel(context.Background())
	aborted := submit(cancelled, b, item(20, 1))
	q.await(t, 2)
	kept := submit(context.Background(), b, item(30, 1))
	q.await(t, 3)
	deadline.expire()
	cancel()

	wantCode(t, wait(t, expired).err, codes.DeadlineExceeded, "while it waited in the queue")
	wantCode(t, wait(t, aborted).err, codes.Canceled, "while it waited in the queue")
	q.await(t, 1)
	m.release()
	wait(t, first)
	if r := wait(t, kept); r.err != nil {
		t.Fatal(r.err)
	}
	if got := fmt.Sprint(m.runs()); got != "[[0] [30]]" {
		t.Errorf("runs = %s, want the expired and cancelled requests never to run", got)
	}

	// A call cancelled before it is queued is not run either.
	_, err := b.Submit(cancelled, item(40, 1), 1)
	wantCode(t, err, codes.Canceled, "before it was queued")
	if len(m.runs()) != 2 {
		t.Errorf("runs = %v", m.runs())
	}
}

// deadlineContext is a context whose deadline passes when the test says.
type deadlineContext struct {
	context.Context
	done chan struct{}
}

func newDeadlineContext() *deadlineContext {
	return &deadlineContext{Context: context.Background(), done: make(chan struct{})}
}

func (c *deadlineContext) expire()                     { close(c.done) }
func (c *deadlineContext) Done() <-chan struct{}       { return c.done }
func (c *deadlineContext) Deadline() (time.Time, bool) { return time.Now().Add(time.Hour), true }
func (c *deadlineContext) Err() error {
	select {
	case <-c.done:
		return context.DeadlineExceeded
	default:
		return nil
	}
}

// TestBatchContext: a merged batch runs on until every one of its
// requests is cancelled; a single request's run ends with its context.
func TestBatchContext(t *testing.T) {
	m := newModel(t)
	q := newQueueWatch()
	b := start(t, Config{MaxBatchSize: 8, Dynamic: true}, m, Hooks{QueueLength: q.hook})
	m.hold()
	first := submit(context.Background(), b, item(0, 1))
	m.awaitStart()
	q.await(t, 0) // the queue is empty once the held run has started
	ctx1, cancel1 := context.WithCancel(context.Background())
	ctx2, cancel2 := context.WithCancel(context.Background())
	r1 := submit(ctx1, b, item(10, 1))
	q.await(t, 1)
	r2 := submit(ctx2, b, item(20, 1))
	q.await(t, 2)

	// Let the held run finish and hold the merged batch.
	m.mu.Lock()
	gate := m.gate
	m.gate = make(chan struct{})
	m.mu.Unlock()
	close(gate)
	wait(t, first)
	runCtx := m.awaitStart()
	cancel1()
	if runCtx.Err() != nil {
		t.Fatal("the batch was cancelled with one of its two requests still waiting")
	}
	cancel2()
	select {
	case <-runCtx.Done():
	case <-time.After(testTimeout):
		t.Fatal("the batch ran on after both its requests were cancelled")
	}
	m.release()
	wantCode(t, wait(t, r1).err, codes.Canceled, "while it ran")
	wantCode(t, wait(t, r2).err, codes.Canceled, "while it ran")
}

func TestRunErrorReachesEveryRequest(t *testing.T) {
	m := newModel(t)
	q := newQueueWatch()
	b := start(t, Config{MaxBatchSize: 8, Dynamic: true}, m, Hooks{QueueLength: q.hook})
	m.hold()
	first := submit(context.Background(), b, item(0, 1))
	m.awaitStart()
	q.await(t, 0) // the queue is empty once the held run has started
	boom := status.Error(codes.Internal, "boom")
	m.mu.Lock()
	m.err = boom
	m.mu.Unlock()
	r1 := submit(context.Background(), b, item(10, 1))
	r2 := submit(context.Background(), b, item(20, 1))
	q.await(t, 2)
	m.release()
	wait(t, first) // it started before the error was set
	for _, ch := range []<-chan result{r1, r2} {
		if err := wait(t, ch).err; !errors.Is(err, boom) {
			t.Errorf("error = %v, want %v", err, boom)
		}
	}
}

// TestInstancesRunConcurrently: with two instances two runs are under way
// at once, and no more.
func TestInstancesRunConcurrently(t *testing.T) {
	m := newModel(t)
	q := newQueueWatch()
	b := start(t, Config{Instances: 2}, m, Hooks{QueueLength: q.hook})
	m.hold()
	var results []<-chan result
	for i := range 2 {
		results = append(results, submit(context.Background(), b, item(byte(10*i), 1)))
	}
	m.awaitStart()
	m.awaitStart()
	q.await(t, 0)
	results = append(results, submit(context.Background(), b, item(20, 1)))
	q.await(t, 1) // the third waits for a free instance
	if n := len(m.runs()); n != 2 {
		t.Errorf("%d runs under way, want 2", n)
	}
	m.release()
	for _, ch := range results {
		if r := wait(t, ch); r.err != nil {
			t.Fatal(r.err)
		}
	}
	if n := len(m.runs()); n != 3 {
		t.Errorf("%d runs, want 3", n)
	}
}

func TestCloseRefusesNewRequests(t *testing.T) {
	m := newModel(t)
	b := start(t, Config{MaxBatchSize: 8, Dynamic: true}, m, Hooks{})
	b.Close()
	b.Close() // idempotent
	_, err := b.Submit(context.Background(), item(0, 1), 1)
	wantCode(t, err, codes.Unavailable, "is being unloaded")
}

func TestNewRejectsBadConfig(t *testing.T) {
	tests := []Config{
		{MaxBatchSize: -1, MaxQueueSize: 1, Instances: 1},
		{Dynamic: true, MaxQueueSize: 1, Instances: 1},
		{MaxBatchSize: 8, MaxQueueSize: 0, Instances: 1},
		{MaxBatchSize: 8, MaxQueueSize: 1, Instances: 0},
		{MaxBatchSize: 8, Dynamic: true, MaxQueueSize: 1, Instances: 1, PreferredBatchSizes: []int64{9}},
		{MaxBatchSize: 8, Dynamic: true, MaxQueueSize: 1, Instances: 1, MaxQueueDelay: -1},
	}
	for _, cfg := range tests {
		if b, err := New(cfg, nil, Hooks{}); err == nil {
			b.Close()
			t.Errorf("New(%+v) succeeded", cfg)
		}
	}
}

// TestDrainRunsWithoutDelay: a draining batcher (its model version leaves
// service) runs what is queued without waiting out the queue delay.
func TestDrainRunsWithoutDelay(t *testing.T) {
	m := newModel(t)
	q := newQueueWatch()
	b := start(t, Config{MaxBatchSize: 8, Dynamic: true, MaxQueueDelay: time.Hour}, m, Hooks{QueueLength: q.hook})
	r1 := submit(context.Background(), b, item(10, 1))
	q.await(t, 1)
	r2 := submit(context.Background(), b, item(20, 2))
	q.await(t, 2)
	if n := len(m.runs()); n != 0 {
		t.Fatalf("%d runs before the delay passed", n)
	}
	b.Drain()
	for _, ch := range []<-chan result{r1, r2} {
		if r := wait(t, ch); r.err != nil {
			t.Fatal(r.err)
		}
	}
	if got := fmt.Sprint(m.runs()); got != "[[10 20 21]]" {
		t.Errorf("runs = %s, want one batch", got)
	}
	// A draining batcher still takes requests and runs them at once.
	if _, err := b.Submit(context.Background(), item(30, 1), 1); err != nil {
		t.Fatal(err)
	}
}

// TestSequentialTrafficSkipsQueueDelay: once a batch of one request has run
// and nothing else is running or queued, a lone request runs at once instead
// of waiting MaxQueueDelay for company that sequential traffic never brings.
// Without that rule every request below would wait the full delay.
func TestSequentialTrafficSkipsQueueDelay(t *testing.T) {
	const delay = time.Second
	m := newModel(t)
	var mu sync.Mutex
	var waits []time.Duration
	b := start(t, Config{MaxBatchSize: 8, Dynamic: true, MaxQueueDelay: delay}, m, Hooks{
		Dequeued: func(w time.Duration) {
			mu.Lock()
			waits = append(waits, w)
			mu.Unlock()
		},
	})
	for i := range 4 {
		if r := wait(t, submit(context.Background(), b, item(byte(10*i), 1))); r.err != nil {
			t.Fatal(r.err)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if len(waits) != 4 {
		t.Fatalf("%d dequeues, want 4", len(waits))
	}
	// The first request has no history and waits for company.
	if waits[0] < delay {
		t.Errorf("first request waited %v, want the queue delay %v", waits[0], delay)
	}
	for i, w := range waits[1:] {
		if w >= delay {
			t.Errorf("sequential request %d waited %v, the full queue delay", i+1, w)
		}
	}
}

// TestMergesStringRequests batches STRING requests, whose rows differ in
// byte size, and checks that every request gets back exactly its own
// strings, transformed, with outputs longer than the inputs.
func TestMergesStringRequests(t *testing.T) {
	str := predv1.DataType_DATA_TYPE_STRING
	gate := make(chan struct{})
	started := make(chan struct{}, 10)
	var mu sync.Mutex
	var sizes []int64
	run := func(ctx context.Context, inputs []tensor.Tensor, items int64) ([]tensor.Tensor, error) {
		mu.Lock()
		sizes = append(sizes, items)
		first := len(sizes) == 1
		mu.Unlock()
		if first {
			started <- struct{}{}
			<-gate
		}
		in := inputs[0]
		n, err := tensor.ElementCount(in.Shape)
		if err != nil {
			return nil, err
		}
		elems, err := tensor.Strings(in.Data, n)
		if err != nil {
			return nil, err
		}
		var out []byte
		for _, e := range elems {
			out = tensor.AppendString(out, "<"+string(e)+">")
		}
		return []tensor.Tensor{{Name: "out", DType: str, Shape: slices.Clone(in.Shape), Data: out}}, nil
	}
	q := newQueueWatch()
	b, err := New(Config{Name: "strings", MaxBatchSize: 8, Dynamic: true, MaxQueueSize: 16, Instances: 1}, run, Hooks{QueueLength: q.hook})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)

	req := func(rows ...[]string) []tensor.Tensor {
		var flat []string
		for _, r := range rows {
			flat = append(flat, r...)
		}
		return []tensor.Tensor{{Name: "in", DType: str, Shape: []int64{int64(len(rows)), 2}, Data: tensor.FromStrings(flat)}}
	}
	held := submit(context.Background(), b, req([]string{"x", "y"}))
	select {
	case <-started:
	case <-time.After(testTimeout):
		t.Fatal("the first run did not start")
	}
	q.await(t, 0)
	requests := [][]tensor.Tensor{
		req([]string{"", "a"}),
		req([]string{"long string", "b"}, []string{"c", ""}),
		req([]string{"日本", "ünï"}),
	}
	results := make([]<-chan result, len(requests))
	for i, in := range requests {
		results[i] = submit(context.Background(), b, in)
		q.await(t, i+1)
	}
	close(gate)
	if r := wait(t, held); r.err != nil {
		t.Fatal(r.err)
	}
	for i, ch := range results {
		r := wait(t, ch)
		if r.err != nil {
			t.Fatalf("request %d: %v", i, r.err)
		}
		in := requests[i][0]
		n, _ := tensor.ElementCount(in.Shape)
		elems, _ := tensor.Strings(in.Data, n)
		var want []byte
		for _, e := range elems {
			want = tensor.AppendString(want, "<"+string(e)+">")
		}
		if got := r.outs[0]; !bytes.Equal(got.Data, want) || !slices.Equal(got.Shape, in.Shape) {
			t.Errorf("request %d: output %v %q, want %v %q", i, got.Shape, got.Data, in.Shape, want)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if !slices.Equal(sizes, []int64{1, 4}) {
		t.Errorf("runs of %v items, want [1 4] (the three queued requests merged)", sizes)
	}
}

// ctxKey tags a request's context in TestTraceHook.
type ctxKey struct{}

func TestTraceHook(t *testing.T) {
	m := newModel(t)
	q := newQueueWatch()
	traces := make(chan BatchTrace, 10)
	b := start(t, Config{MaxBatchSize: 8, Dynamic: true}, m, Hooks{QueueLength: q.hook, Trace: func(bt BatchTrace) { traces <- bt }})
	m.hold()
	first := submit(context.Background(), b, item(0, 1))
	m.awaitStart()
	q.await(t, 0)
	before := time.Now()
	var results []<-chan result
	for i := range 2 {
		ctx := context.WithValue(context.Background(), ctxKey{}, i)
		results = append(results, submit(ctx, b, item(byte(10*i), 2)))
		q.await(t, i+1)
	}
	m.release()
	for _, ch := range append(results, first) {
		if r := wait(t, ch); r.err != nil {
			t.Fatal(r.err)
		}
	}
	<-traces // the first, held run
	bt := <-traces
	if len(bt.Requests) != 2 || bt.Items != 4 || bt.Err != nil {
		t.Fatalf("trace of the merged run: %d requests, %d items, err %v; want 2, 4, nil", len(bt.Requests), bt.Items, bt.Err)
	}
	for i, r := range bt.Requests {
		if r.Ctx.Value(ctxKey{}) != i {
			t.Errorf("request %d of the trace carries the context of request %v", i, r.Ctx.Value(ctxKey{}))
		}
		if r.Enqueued.Before(before) || r.Enqueued.After(bt.Start) {
			t.Errorf("request %d: enqueued %v, not between its submission and the run's start", i, r.Enqueued)
		}
	}
	if bt.Gathered.Before(bt.Start) || bt.Ran.Before(bt.Gathered) || bt.End.Before(bt.Ran) {
		t.Errorf("run times out of order: start %v gathered %v ran %v end %v", bt.Start, bt.Gathered, bt.Ran, bt.End)
	}
}
