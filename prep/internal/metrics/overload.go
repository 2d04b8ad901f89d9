package metrics

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/prepred/prepred/api/inflight"
)

var (
	inflightBytesDesc = prometheus.NewDesc("prep_inflight_bytes",
		"Bytes reserved now in a memory budget: requests (bodies, decoded payloads, tensors) or decode (decoded pixels).",
		[]string{"budget"}, nil)
	inflightLimitDesc = prometheus.NewDesc("prep_inflight_limit_bytes",
		"Size of a memory budget (--max-inflight-bytes, --max-decode-bytes).",
		[]string{"budget"}, nil)
	overloadRefusalsDesc = prometheus.NewDesc("prep_overload_refusals_total",
		"Requests refused because a memory budget was spent, by reason: body (declared Content-Length), body_stream (chunked body outgrew it), work (tensors and decoded payloads).",
		[]string{"reason"}, nil)
	openConnectionsDesc = prometheus.NewDesc("prep_open_connections",
		"Open connections of a listener.", []string{"listener"}, nil)
	maxConnectionsDesc = prometheus.NewDesc("prep_max_connections",
		"Connection limit of a listener (--max-connections; 0: none).", []string{"listener"}, nil)
	refusedConnectionsDesc = prometheus.NewDesc("prep_refused_connections_total",
		"Connections closed at once because the listener had its maximum open.", []string{"listener"}, nil)
	memoryReturnsDesc = prometheus.NewDesc("prep_memory_returns_total",
		"Times the heap freed after a burst (the in-flight budget at least half full, then drained) was returned to the operating system at once.", nil, nil)
	memoryReturnedDesc = prometheus.NewDesc("prep_memory_returned_bytes_total",
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
		for _, r := range []inflight.Reason{inflight.ReasonBody, inflight.ReasonBodyStream, inflight.ReasonWork} {
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
