// Package httpapi is pred's HTTP front end: the Open Inference Protocol
// health endpoints, Prometheus metrics, and the mount points of the
// protocols' REST endpoints (packages oiprest and ortserver), each request
// to those logged once with its request ID.
package httpapi

import (
	"encoding/json"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/prepred/prepred/pred/internal/requestlog"
)

// requestIDHeader carries a request ID in and out (the gRPC metadata key,
// as an HTTP header).
const requestIDHeader = "X-Request-ID"

// Options configure the handler.
type Options struct {
	// Ready reports whether pred serves inference requests: its models are
	// loaded and it is not shutting down.
	Ready func() bool
	// Gatherer is what /metrics exposes.
	Gatherer prometheus.Gatherer
	// OIP, if set, serves the Open Inference Protocol's REST endpoints
	// (GET /v2 and everything under /v2/models/).
	OIP http.Handler
	// ORTServer, if set, serves ONNX Runtime Server's endpoint under
	// /v1/models/.
	ORTServer http.Handler
	// Logger logs the requests to OIP and ORTServer; nil logs nothing.
	Logger *zap.Logger
}

// Handler returns the HTTP handler:
//
//	GET /v2/health/live   200 {"live":true} while the process serves HTTP
//	GET /v2/health/ready  200 {"ready":true}, or 503 {"ready":false}
//	GET /metrics          Prometheus text exposition
//	GET /v2, /v2/models/...  Options.OIP
//	/v1/models/...           Options.ORTServer
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
	log := o.Logger
	if log == nil {
		log = zap.NewNop()
	}
	if o.OIP != nil {
		h := logRequests(log, o.OIP)
		mux.Handle("/v2", h)
		mux.Handle("/v2/models/", h)
	}
	if o.ORTServer != nil {
		mux.Handle("/v1/models/", logRequests(log, o.ORTServer))
	}
	return mux
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

// statusRecorder remembers the status a handler wrote.
type statusRecorder struct {
	http.ResponseWriter
	code int
}

func (s *statusRecorder) WriteHeader(code int) {
	if s.code == 0 {
		s.code = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Write(b []byte) (int, error) {
	if s.code == 0 {
		s.code = http.StatusOK
	}
	return s.ResponseWriter.Write(b)
}

// logRequests gives each request its request ID (X-Request-ID from the
// request, or a new one, echoed in the response) and logs it once it ends,
// as the gRPC server does: debug for success, info for a client's error,
// error for a server fault.
func logRequests(log *zap.Logger, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		ctx, id := requestlog.NewContext(r.Context(), r.Header.Get(requestIDHeader))
		w.Header().Set(requestIDHeader, id)
		rec := &statusRecorder{ResponseWriter: w}
		next.ServeHTTP(rec, r.WithContext(ctx))
		level := zapcore.DebugLevel
		switch {
		case rec.code >= 500:
			level = zapcore.ErrorLevel
		case rec.code >= 400:
			level = zapcore.InfoLevel
		}
		if ce := log.Check(level, "http request"); ce != nil {
			ce.Write(append(requestlog.Fields(ctx),
				zap.String("method", r.Method),
				zap.String("path", r.URL.Path),
				zap.Int("status", rec.code),
				zap.Duration("duration", time.Since(start)))...)
		}
	})
}
