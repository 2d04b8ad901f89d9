// Package metrics defines pred's Prometheus metrics on a registry of its
// own (never the global one), so that every server instance, including
// those tests start side by side, counts separately.
//
// Names follow Triton's inference server metrics (nv_inference_*), with
// the pred_ prefix, seconds instead of microseconds and histograms.
package metrics

import (
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// durationBuckets span inference latencies from a tiny model on a fast CPU
// (about a millisecond) to a large batch on a slow one (seconds).
var durationBuckets = []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}

// stageBuckets span the parts of one execution: copying a batch in or out
// takes microseconds, queueing and running up to seconds.
var stageBuckets = []float64{.00001, .000025, .00005, .0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}

// batchSizeBuckets cover batch sizes up to a few hundred items.
var batchSizeBuckets = []float64{1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 128, 256}

// States are the values of the state label of pred_model_state.
var States = []string{"LOADING", "READY", "UNLOADING", "UNAVAILABLE"}

// Metrics are the collectors the protocol front ends and the model
// registry update.
type Metrics struct {
	// Registry gathers every pred metric plus the Go runtime and process
	// collectors; serve it on /metrics.
	Registry *prometheus.Registry
	// Requests counts inference requests by model, version and gRPC code
	// name ("OK", "InvalidArgument", ...). model and version are empty
	// when the request did not name a served model version.
	Requests *prometheus.CounterVec
	// Duration observes the latency of successful inference requests, from
	// receipt of the decoded request to the response, by model and version.
	Duration *prometheus.HistogramVec
	// InFlight is the number of inference requests being handled.
	InFlight prometheus.Gauge

	success         *prometheus.CounterVec
	failure         *prometheus.CounterVec
	items           *prometheus.CounterVec
	execs           *prometheus.CounterVec
	pending         *prometheus.GaugeVec
	requestDuration *prometheus.HistogramVec
	queueDuration   *prometheus.HistogramVec
	computeInput    *prometheus.HistogramVec
	computeInfer    *prometheus.HistogramVec
	computeOutput   *prometheus.HistogramVec
	batchSize       *prometheus.HistogramVec
	failDuration    *prometheus.CounterVec
	execRequests    *prometheus.CounterVec
	requestCompute  *prometheus.CounterVec
	batchExecs      *prometheus.CounterVec
	batchCompute    *prometheus.CounterVec
	states          *stateCollector

	// versionsMu guards versions, the collectors handed out by Version, so
	// that a version reloaded under its number keeps its statistics.
	versionsMu sync.Mutex
	versions   map[[2]string]*Version
}

// New creates the collectors and registers them on a new registry.
func New() *Metrics {
	modelVersion := []string{"model", "version"}
	histogram := func(name, help string, buckets []float64) *prometheus.HistogramVec {
		return prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: name, Help: help, Buckets: buckets}, modelVersion)
	}
	counter := func(name, help string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, modelVersion)
	}
	m := &Metrics{
		Registry: prometheus.NewRegistry(),
		Requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pred_inference_requests_total",
			Help: "Inference requests by model, version and gRPC status code; model and version are empty when the request did not name a served model version.",
		}, []string{"model", "version", "code"}),
		Duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "pred_inference_duration_seconds",
			Help:    "Latency of successful inference requests, validation and model run included, by model and version.",
			Buckets: durationBuckets,
		}, modelVersion),
		InFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "pred_inference_in_flight",
			Help: "Inference requests being handled.",
		}),

		success: counter("pred_inference_request_success_total",
			"Inference requests a model version answered successfully, any protocol."),
		failure: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pred_inference_request_failure_total",
			Help: "Inference requests to a model version that failed, by reason: the gRPC status code name (InvalidArgument, ResourceExhausted, DeadlineExceeded, Canceled, Unavailable, Internal).",
		}, []string{"model", "version", "reason"}),
		items: counter("pred_inference_count_total",
			"Items (the batch dimension of each request, 1 without one) inferred successfully."),
		execs: counter("pred_inference_exec_count_total",
			"Successful model executions: a dynamically batched execution serves several requests at once."),
		pending: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "pred_inference_pending_request_count",
			Help: "Requests waiting in the queue of a model version for an execution.",
		}, modelVersion),
		requestDuration: histogram("pred_inference_request_duration_seconds",
			"Time from a request reaching the model version (after decoding) to its outputs, successful requests only.", durationBuckets),
		queueDuration: histogram("pred_inference_queue_duration_seconds",
			"Time a request waited in the queue of a model version before its execution began.", stageBuckets),
		computeInput: histogram("pred_inference_compute_input_duration_seconds",
			"Time per execution to gather the inputs of its requests into one batch.", stageBuckets),
		computeInfer: histogram("pred_inference_compute_infer_duration_seconds",
			"Time per execution spent running the model in ONNX Runtime.", stageBuckets),
		computeOutput: histogram("pred_inference_compute_output_duration_seconds",
			"Time per execution to split the outputs back to its requests.", stageBuckets),
		batchSize: histogram("pred_inference_batch_size",
			"Items per model execution.", batchSizeBuckets),
		failDuration: counter("pred_inference_request_failure_duration_seconds_total",
			"Cumulative time of the inference requests to a model version that failed."),
		execRequests: counter("pred_inference_exec_request_count_total",
			"Requests served by successful model executions (an execution of a dynamic batch serves several)."),
		requestCompute: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pred_inference_request_compute_seconds_total",
			Help: "Cumulative compute time per request, as Triton's nv_inference_compute_*_duration_us: each request of a successful execution counts the execution's time of the stage (input, infer, output).",
		}, []string{"model", "version", "stage"}),
		batchExecs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pred_inference_batch_exec_count_total",
			Help: "Successful model executions by batch size (items).",
		}, []string{"model", "version", "batch_size"}),
		batchCompute: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pred_inference_batch_compute_seconds_total",
			Help: "Cumulative time of successful model executions by batch size (items) and stage (input, infer, output).",
		}, []string{"model", "version", "batch_size", "stage"}),
		versions: map[[2]string]*Version{},
		states: &stateCollector{desc: prometheus.NewDesc("pred_model_state",
			"1 for the state a model version is in (LOADING, READY, UNLOADING, UNAVAILABLE), 0 for the others; version is empty for a model that failed as a whole.",
			[]string{"model", "version", "state"}, nil)},
	}
	m.Registry.MustRegister(
		m.Requests, m.Duration, m.InFlight,
		m.success, m.failure, m.items, m.execs, m.pending,
		m.requestDuration, m.queueDuration, m.computeInput, m.computeInfer, m.computeOutput, m.batchSize,
		m.failDuration, m.execRequests, m.requestCompute, m.batchExecs, m.batchCompute,
		m.states,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return m
}

// Version holds the collectors of one model version, labels bound, so that
// the hot path updates them without a label lookup.
type Version struct {
	m     *Metrics
	model string
	ver   string

	Success         prometheus.Counter
	Items           prometheus.Counter
	Execs           prometheus.Counter
	Pending         prometheus.Gauge
	RequestDuration prometheus.Observer
	QueueDuration   prometheus.Observer
	ComputeInput    prometheus.Observer
	ComputeInfer    prometheus.Observer
	ComputeOutput   prometheus.Observer
	BatchSize       prometheus.Observer

	failDuration  prometheus.Counter
	execRequests  prometheus.Counter
	requestInput  prometheus.Counter
	requestInfer  prometheus.Counter
	requestOutput prometheus.Counter
	// lastInference is the end of the last successful request in
	// milliseconds since the epoch, for Stats; /metrics does not serve it.
	lastInference atomic.Int64

	// mu guards failures, the failure counters by reason, and batches,
	// the counters by batch size.
	mu       sync.Mutex
	failures map[string]prometheus.Counter
	batches  map[int64]*batchCounters
}

// Version returns the collectors of a model version, the same each time.
func (m *Metrics) Version(model, version string) *Version {
	m.versionsMu.Lock()
	defer m.versionsMu.Unlock()
	key := [2]string{model, version}
	if v, ok := m.versions[key]; ok {
		return v
	}
	v := &Version{
		m: m, model: model, ver: version,
		Success:         m.success.WithLabelValues(model, version),
		Items:           m.items.WithLabelValues(model, version),
		Execs:           m.execs.WithLabelValues(model, version),
		Pending:         m.pending.WithLabelValues(model, version),
		RequestDuration: m.requestDuration.WithLabelValues(model, version),
		QueueDuration:   m.queueDuration.WithLabelValues(model, version),
		ComputeInput:    m.computeInput.WithLabelValues(model, version),
		ComputeInfer:    m.computeInfer.WithLabelValues(model, version),
		ComputeOutput:   m.computeOutput.WithLabelValues(model, version),
		BatchSize:       m.batchSize.WithLabelValues(model, version),
		failDuration:    m.failDuration.WithLabelValues(model, version),
		execRequests:    m.execRequests.WithLabelValues(model, version),
		requestInput:    m.requestCompute.WithLabelValues(model, version, "input"),
		requestInfer:    m.requestCompute.WithLabelValues(model, version, "infer"),
		requestOutput:   m.requestCompute.WithLabelValues(model, version, "output"),
		failures:        map[string]prometheus.Counter{},
		batches:         map[int64]*batchCounters{},
	}
	m.versions[key] = v
	return v
}

// Failure returns the failure counter of the version for a reason.
func (v *Version) Failure(reason string) prometheus.Counter {
	v.mu.Lock()
	defer v.mu.Unlock()
	c, ok := v.failures[reason]
	if !ok {
		c = v.m.failure.WithLabelValues(v.model, v.ver, reason)
		v.failures[reason] = c
	}
	return c
}

// ModelState is the state of one model version for pred_model_state.
type ModelState struct {
	Model, Version, State string
}

// SetModelStates makes pred_model_state report what f returns at each
// scrape.
func (m *Metrics) SetModelStates(f func() []ModelState) {
	m.states.mu.Lock()
	m.states.source = f
	m.states.mu.Unlock()
}

// stateCollector reports pred_model_state from the registry's current
// states, so the metric never lags behind them.
type stateCollector struct {
	desc *prometheus.Desc

	// mu guards source.
	mu     sync.Mutex
	source func() []ModelState
}

func (c *stateCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *stateCollector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	source := c.source
	c.mu.Unlock()
	if source == nil {
		return
	}
	seen := map[[2]string]bool{}
	for _, s := range source() {
		key := [2]string{s.Model, s.Version}
		if seen[key] {
			continue // a series appears once; the source lists the current entry first
		}
		seen[key] = true
		for _, state := range States {
			v := 0.0
			if state == s.State {
				v = 1
			}
			ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, v, s.Model, s.Version, state)
		}
	}
}
