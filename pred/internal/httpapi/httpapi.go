// Package httpapi is pred's HTTP front end: the Open Inference Protocol
// health endpoints and Prometheus metrics. It is the place for the
// protocol's REST inference endpoints as well.
package httpapi

import (
	"encoding/json"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Options configure the handler.
type Options struct {
	// Ready reports whether pred serves inference requests: its models are
	// loaded and it is not shutting down.
	Ready func() bool
	// Gatherer is what /metrics exposes.
	Gatherer prometheus.Gatherer
}

// Handler returns the HTTP handler:
//
//	GET /v2/health/live   200 {"live":true} while the process serves HTTP
//	GET /v2/health/ready  200 {"ready":true}, or 503 {"ready":false}
//	GET /metrics          Prometheus text exposition
func Handler(o Options) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v2/health/live", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]bool{"live": true})
	})
	mux.HandleFunc("GET /v2/health/ready", func(w http.ResponseWriter, _ *http.Request) {
		ready := o.Ready()
		code := http.StatusOK
		if !ready {
			code = http.StatusServiceUnavailable
		}
		writeJSON(w, code, map[string]bool{"ready": ready})
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(o.Gatherer, promhttp.HandlerOpts{}))
	return mux
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}
