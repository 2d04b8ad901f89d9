package batcher

import (
	"context"
	"slices"
	"sync/atomic"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/prepred/prepred/pred/internal/tensor"
)

// execute runs one batch and hands each request its outputs.
func (b *Batcher) execute(batch []*request) {
	start := time.Now()
	if b.hooks.Dequeued != nil {
		for _, r := range batch {
			b.hooks.Dequeued(start.Sub(r.enqueued))
		}
	}
	stats := BatchStats{Requests: len(batch)}
	for _, r := range batch {
		stats.Items += r.items
	}

	ctx, stop := batchContext(batch)
	defer stop()
	inputs, buffers := b.gather(batch, stats.Items)
	gathered := time.Now()
	outputs, err := b.run(ctx, inputs, stats.Items)
	ran := time.Now()
	for _, buf := range buffers {
		b.buffers.Put(buf)
	}
	if err == nil {
		err = b.scatter(batch, outputs, stats.Items)
	}
	stats.Input, stats.Infer, stats.Output = gathered.Sub(start), ran.Sub(gathered), time.Since(ran)
	stats.Err = err
	// Reported before the requests are answered, so that what a caller
	// observes after its answer includes its execution.
	if b.hooks.Executed != nil {
		b.hooks.Executed(stats)
	}
	if b.hooks.Trace != nil {
		b.hooks.Trace(traceOf(batch, stats.Items, start, gathered, ran, err))
	}
	for _, r := range batch {
		if err != nil {
			r.outputs, r.err = nil, err
		}
		close(r.done)
	}
}

// traceOf is the BatchTrace of a finished run.
func traceOf(batch []*request, items int64, start, gathered, ran time.Time, err error) BatchTrace {
	t := BatchTrace{Requests: make([]TracedRequest, len(batch)), Items: items, Start: start, Gathered: gathered, Ran: ran, End: time.Now(), Err: err}
	for i, r := range batch {
		t.Requests[i] = TracedRequest{Ctx: r.ctx, Enqueued: r.enqueued}
	}
	return t
}

// batchContext returns the context a batch runs under: the request's own
// for a single request, else one that ends once every request's has.
func batchContext(batch []*request) (context.Context, func()) {
	if len(batch) == 1 {
		return batch[0].ctx, func() {}
	}
	ctx, cancel := context.WithCancel(context.Background())
	var live atomic.Int64
	live.Store(int64(len(batch)))
	stops := make([]func() bool, len(batch))
	for i, r := range batch {
		stops[i] = context.AfterFunc(r.ctx, func() {
			if live.Add(-1) == 0 {
				cancel()
			}
		})
	}
	return ctx, func() {
		for _, s := range stops {
			s()
		}
		cancel()
	}
}

// gather concatenates the inputs of a batch along the first dimension into
// one buffer per input, copying each request's bytes once. A single
// request runs on its own bytes. It returns the buffers to recycle after
// the run.
func (b *Batcher) gather(batch []*request, items int64) ([]tensor.Tensor, []*[]byte) {
	if len(batch) == 1 {
		return batch[0].inputs, nil
	}
	first := batch[0].inputs
	inputs := make([]tensor.Tensor, len(first))
	buffers := make([]*[]byte, len(first))
	for i, in := range first {
		size := 0
		for _, r := range batch {
			size += len(r.inputs[i].Data)
		}
		buf := b.buffer(size)
		data := (*buf)[:0]
		for _, r := range batch {
			data = append(data, r.inputs[i].Data...)
		}
		shape := slices.Clone(in.Shape)
		shape[0] = items
		inputs[i] = tensor.Tensor{Name: in.Name, DType: in.DType, Shape: shape, Data: data}
		buffers[i] = buf
	}
	return inputs, buffers
}

// buffer returns a recycled buffer of at least size bytes, or a new one.
func (b *Batcher) buffer(size int) *[]byte {
	if p, ok := b.buffers.Get().(*[]byte); ok && cap(*p) >= size {
		return p
	}
	buf := make([]byte, 0, size)
	return &buf
}

// scatter hands each request of a batch its rows of every output, as
// sub-slices of the output's bytes.
func (b *Batcher) scatter(batch []*request, outputs []tensor.Tensor, items int64) error {
	if len(batch) == 1 {
		batch[0].outputs = outputs
		return nil
	}
	rows := make([]int64, len(batch))
	for i, r := range batch {
		rows[i] = r.items
		r.outputs = make([]tensor.Tensor, len(outputs))
	}
	for j, out := range outputs {
		if len(out.Shape) == 0 || out.Shape[0] != items {
			return status.Errorf(codes.Internal, "%s: output %q has shape %v for a batch of %d; its first dimension must be the batch", b.cfg.Name, out.Name, out.Shape, items)
		}
		parts, err := tensor.SplitRows(out, rows)
		if err != nil {
			return status.Errorf(codes.Internal, "%s: split the batch's outputs: %v", b.cfg.Name, err)
		}
		for i, r := range batch {
			r.outputs[j] = parts[i]
		}
	}
	return nil
}
