package metrics

import (
	"cmp"
	"math"
	"slices"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// Execution describes one finished model execution.
type Execution struct {
	// Requests and Items are the requests the execution served and the
	// sum of their batch dimensions.
	Requests int
	Items    int64
	// Input, Infer and Output are the times spent gathering the inputs,
	// running the model and splitting the outputs.
	Input, Infer, Output time.Duration
	// Failed reports an execution that ended in an error.
	Failed bool
}

// RequestDone records the end of one inference request to the version:
// items is its batch dimension (1 without one), took the time from its
// arrival at the version to its answer, failure the reason it failed (its
// gRPC code name), empty when it succeeded.
func (v *Version) RequestDone(items int64, took time.Duration, failure string) {
	if failure != "" {
		v.Failure(failure).Inc()
		v.failDuration.Add(took.Seconds())
		return
	}
	v.Success.Inc()
	v.Items.Add(float64(items))
	v.RequestDuration.Observe(took.Seconds())
	v.lastInference.Store(time.Now().UnixMilli())
}

// Executed records one model execution: the per-execution histograms
// (failed executions included), and for a successful one its count, the
// per-request compute times (each request of an execution spent its whole
// compute time, as Triton counts them) and the statistics of its batch
// size.
func (v *Version) Executed(e Execution) {
	v.BatchSize.Observe(float64(e.Items))
	v.ComputeInput.Observe(e.Input.Seconds())
	v.ComputeInfer.Observe(e.Infer.Seconds())
	v.ComputeOutput.Observe(e.Output.Seconds())
	if e.Failed {
		return
	}
	// Counted as Triton counts execution_count: successful executions, so
	// that it is the sum of the executions per batch size.
	v.Execs.Inc()
	n := float64(e.Requests)
	v.execRequests.Add(n)
	v.requestInput.Add(n * e.Input.Seconds())
	v.requestInfer.Add(n * e.Infer.Seconds())
	v.requestOutput.Add(n * e.Output.Seconds())
	b := v.batch(e.Items)
	b.execs.Inc()
	b.input.Add(e.Input.Seconds())
	b.infer.Add(e.Infer.Seconds())
	b.output.Add(e.Output.Seconds())
}

// batchCounters are the collectors of one batch size of a version.
type batchCounters struct {
	execs, input, infer, output prometheus.Counter
}

func (v *Version) batch(items int64) *batchCounters {
	v.mu.Lock()
	defer v.mu.Unlock()
	b, ok := v.batches[items]
	if !ok {
		size := strconv.FormatInt(items, 10)
		b = &batchCounters{
			execs:  v.m.batchExecs.WithLabelValues(v.model, v.ver, size),
			input:  v.m.batchCompute.WithLabelValues(v.model, v.ver, size, "input"),
			infer:  v.m.batchCompute.WithLabelValues(v.model, v.ver, size, "infer"),
			output: v.m.batchCompute.WithLabelValues(v.model, v.ver, size, "output"),
		}
		v.batches[items] = b
	}
	return b
}

// Duration is a count of events and their cumulative duration.
type Duration struct {
	Count uint64
	Total time.Duration
}

// BatchStats are the executions of one batch size.
type BatchStats struct {
	Size                                      uint64
	ComputeInput, ComputeInfer, ComputeOutput Duration
}

// Stats are the cumulative statistics of a model version, in the terms of
// Triton's statistics extension. They are read from the collectors
// /metrics serves, so the two always agree. Each value is read on its
// own: a snapshot taken while requests run may count a request in one
// value and not yet in another.
type Stats struct {
	Model, Version string
	// LastInference is the end of the last successful request; zero before
	// the first.
	LastInference time.Time
	// InferenceCount counts items, ExecutionCount model executions.
	InferenceCount, ExecutionCount uint64
	// Success and Fail are requests and their durations; Queue their time
	// in the queue; Compute* the compute times of the executions that
	// served them, counted once per request.
	Success, Fail, Queue                      Duration
	ComputeInput, ComputeInfer, ComputeOutput Duration
	// Batches are per batch size, ascending.
	Batches []BatchStats
}

// Stats returns the version's statistics.
func (v *Version) Stats() Stats {
	s := Stats{
		Model: v.model, Version: v.ver,
		InferenceCount: count(v.Items),
		ExecutionCount: count(v.Execs),
		Success:        Duration{count(v.Success), histogramSum(v.RequestDuration)},
		Queue:          histogramDuration(v.QueueDuration),
	}
	if ms := v.lastInference.Load(); ms > 0 {
		s.LastInference = time.UnixMilli(ms)
	}
	requests := count(v.execRequests)
	s.ComputeInput = Duration{requests, seconds(v.requestInput)}
	s.ComputeInfer = Duration{requests, seconds(v.requestInfer)}
	s.ComputeOutput = Duration{requests, seconds(v.requestOutput)}

	v.mu.Lock()
	failures := make([]prometheus.Counter, 0, len(v.failures))
	for _, c := range v.failures {
		failures = append(failures, c)
	}
	batches := make(map[int64]*batchCounters, len(v.batches))
	for size, b := range v.batches {
		batches[size] = b
	}
	v.mu.Unlock()

	for _, c := range failures {
		s.Fail.Count += count(c)
	}
	s.Fail.Total = seconds(v.failDuration)
	for size, b := range batches {
		n := count(b.execs)
		s.Batches = append(s.Batches, BatchStats{
			Size:          uint64(size),
			ComputeInput:  Duration{n, seconds(b.input)},
			ComputeInfer:  Duration{n, seconds(b.infer)},
			ComputeOutput: Duration{n, seconds(b.output)},
		})
	}
	slices.SortFunc(s.Batches, func(a, b BatchStats) int { return cmp.Compare(a.Size, b.Size) })
	return s
}

func read(c any) *dto.Metric {
	var m dto.Metric
	_ = c.(prometheus.Metric).Write(&m) // fails only for invalid label values, which Version never binds
	return &m
}

func count(c prometheus.Counter) uint64 { return uint64(math.Round(read(c).GetCounter().GetValue())) }

func seconds(c prometheus.Counter) time.Duration { return toDuration(read(c).GetCounter().GetValue()) }

func histogramSum(o prometheus.Observer) time.Duration {
	return toDuration(read(o).GetHistogram().GetSampleSum())
}

func histogramDuration(o prometheus.Observer) Duration {
	h := read(o).GetHistogram()
	return Duration{h.GetSampleCount(), toDuration(h.GetSampleSum())}
}

func toDuration(s float64) time.Duration { return time.Duration(math.Round(s * 1e9)) }
