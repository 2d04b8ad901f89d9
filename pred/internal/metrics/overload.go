package metrics

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/prepred/prepred/api/inflight"
)

var (
	inflightBytesDesc = prometheus.NewDesc("pred_inflight_bytes",
		"Bytes reserved now in the in-flight budget by HTTP bodies and gRPC messages.",
		[]string{"budget"}, nil)
	inflightLimitDesc = prometheus.NewDesc("pred_inflight_limit_bytes",
		"Size of the in-flight budget (--max-inflight-bytes).",
		[]string{"budget"}, nil)
	overloadRefusalsDesc = prometheus.NewDesc("pred_overload_refusals_total",
		"Requests refused because the in-flight budget was spent, by reason: body (HTTP Content-Length), body_stream (chunked HTTP body outgrew it), grpc_stream (no read slot or budget for a new gRPC stream), grpc_message (a received gRPC message did not fit).",
		[]string{"reason"}, nil)
	openConnectionsDesc = prometheus.NewDesc("pred_open_connections",
		"Open connections of a listener.", []string{"listener"}, nil)
	maxConnectionsDesc = prometheus.NewDesc("pred_max_connections",
		"Connection limit of a listener (--max-connections; 0: none).", []string{"listener"}, nil)
	refusedConnectionsDesc = prometheus.NewDesc("pred_refused_connections_total",
		"Connections closed at once because the listener had its maximum open.", []string{"listener"}, nil)
	memoryReturnsDesc = prometheus.NewDesc("pred_memory_returns_total",
		"Times the heap freed after a burst (the in-flight budget at least half full, then drained) was returned to the operating system at once.", nil, nil)
	memoryReturnedDesc = prometheus.NewDesc("pred_memory_returned_bytes_total",
		"Bytes of heap those returns gave back to the operating system.", nil, nil)
)

// Overload is what RegisterOverload reports: named memory budgets (their
// refusals are summed by reason) and listeners.
type Overload struct {
	Budgets   map[string]*inflight.Budget
	Listeners map[string]*inflight.Listener
	// Reclaimer, when not nil, is reported by its returns.
	Reclaimer *inflight.Reclaimer
}

// RegisterOverload adds o's budgets and listeners to the registry, read at
// every scrape.
func (m *Metrics) RegisterOverload(o Overload) {
	m.Registry.MustRegister(overloadCollector(o))
}

type overloadCollector Overload

// Describe implements prometheus.Collector.
func (oc overloadCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{inflightBytesDesc, inflightLimitDesc, overloadRefusalsDesc, openConnectionsDesc, maxConnectionsDesc, refusedConnectionsDesc, memoryReturnsDesc, memoryReturnedDesc} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (oc overloadCollector) Collect(ch chan<- prometheus.Metric) {
	refused := map[inflight.Reason]int64{}
	for name, b := range oc.Budgets {
		ch <- prometheus.MustNewConstMetric(inflightBytesDesc, prometheus.GaugeValue, float64(b.InUse()), name)
		ch <- prometheus.MustNewConstMetric(inflightLimitDesc, prometheus.GaugeValue, float64(b.Limit()), name)
		for _, r := range []inflight.Reason{inflight.ReasonBody, inflight.ReasonBodyStream, inflight.ReasonGRPCStream, inflight.ReasonGRPCMessage} {
			refused[r] += b.Refused(r)
		}
	}
	for r, n := range refused {
		ch <- prometheus.MustNewConstMetric(overloadRefusalsDesc, prometheus.CounterValue, float64(n), r.String())
	}
	for name, l := range oc.Listeners {
		ch <- prometheus.MustNewConstMetric(openConnectionsDesc, prometheus.GaugeValue, float64(l.Open()), name)
		ch <- prometheus.MustNewConstMetric(maxConnectionsDesc, prometheus.GaugeValue, float64(l.Max()), name)
		ch <- prometheus.MustNewConstMetric(refusedConnectionsDesc, prometheus.CounterValue, float64(l.Refused()), name)
	}
	if r := oc.Reclaimer; r != nil {
		ch <- prometheus.MustNewConstMetric(memoryReturnsDesc, prometheus.CounterValue, float64(r.Returns()))
		ch <- prometheus.MustNewConstMetric(memoryReturnedDesc, prometheus.CounterValue, float64(r.ReleasedBytes()))
	}
}
