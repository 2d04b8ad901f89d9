// Package metrics defines pred's Prometheus metrics on a registry of its
// own (never the global one), so that every server instance, including
// those tests start side by side, counts separately.
package metrics

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// durationBuckets span inference latencies from a tiny model on a fast CPU
// (about a millisecond) to a large batch on a slow one (seconds).
var durationBuckets = []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}

// Metrics are the collectors the protocol front ends update.
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
}

// New creates the collectors and registers them on a new registry.
func New() *Metrics {
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
		}, []string{"model", "version"}),
		InFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "pred_inference_in_flight",
			Help: "Inference requests being handled.",
		}),
	}
	m.Registry.MustRegister(
		m.Requests, m.Duration, m.InFlight,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return m
}
