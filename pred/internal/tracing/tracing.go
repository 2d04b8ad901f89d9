// Package tracing is pred's OpenTelemetry instrumentation: the gRPC
// server's stats handler (otelgrpc), a server span for each HTTP request
// to the inference endpoints, and the spans of a request's way through the
// batcher: queue wait, batch and ONNX Runtime run.
//
// A nil *Tracing is tracing off: its methods install nothing, so that pred
// without an OTLP endpoint runs exactly the code it runs without this
// package.
//
// # Batches and traces
//
// The batcher merges requests of different traces into one run. Each
// request's trace gets the whole story of its request: a "queue" span
// (enqueued until a worker took it), then a "batch" span (the run, from
// leaving the queue until its outputs were split) with an "ort.run" child
// (ONNX Runtime's execution), all children of the request's server span.
// A merged run thus appears once in the trace of every request it held,
// with the same times; its batch span links to the server spans of the
// other requests (at most maxLinks), and carries the batch size and the
// number of requests, so a trace shows with whom its request ran. The
// spans are recorded once the run has finished, with the times the batcher
// measured, so the hot path starts no span.
package tracing

import (
	"net/http"
	"strings"

	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc"
	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc/filters"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"

	"github.com/prepred/prepred/api/otelsetup"
	"github.com/prepred/prepred/pred/internal/batcher"
)

// instrumentationName names pred's tracer.
const instrumentationName = "github.com/prepred/prepred/pred"

// maxLinks bounds the links of a batch span to the other requests of its
// run, so that a large batch does not make every span of it large.
const maxLinks = 16

// Span names of the batcher's stages.
const (
	SpanQueue = "queue"
	SpanBatch = "batch"
	SpanRun   = "ort.run"
)

// Tracing holds pred's tracer and propagator; nil means tracing is off.
type Tracing struct {
	provider   trace.TracerProvider
	propagator propagation.TextMapPropagator
	tracer     trace.Tracer
}

// New returns pred's instrumentation on p, or nil when p is not enabled.
func New(p *otelsetup.Provider) *Tracing {
	if p == nil || !p.Enabled() {
		return nil
	}
	return newTracing(p.TracerProvider(), p.Propagator())
}

func newTracing(tp trace.TracerProvider, prop propagation.TextMapPropagator) *Tracing {
	return &Tracing{provider: tp, propagator: prop, tracer: tp.Tracer(instrumentationName)}
}

// untracedMethods are RPCs that get no span: health checks (probes every
// few seconds) and the long-lived model watch stream.
var untracedMethods = filters.Not(filters.Any(filters.HealthCheck(), filters.MethodName("WatchModels")))

// ServerOptions returns the gRPC server options that trace each RPC and
// continue the caller's trace (W3C traceparent in the metadata); none
// when t is nil.
func (t *Tracing) ServerOptions() []grpc.ServerOption {
	if t == nil {
		return nil
	}
	return []grpc.ServerOption{grpc.StatsHandler(otelgrpc.NewServerHandler(
		otelgrpc.WithTracerProvider(t.provider),
		otelgrpc.WithPropagators(t.propagator),
		otelgrpc.WithMeterProvider(metricnoop.NewMeterProvider()), // pred's metrics are Prometheus'
		otelgrpc.WithFilter(untracedMethods),
	))}
}

// untracedPath reports whether an HTTP path is a probe or a scrape, which
// gets no span.
func untracedPath(path string) bool {
	return path == "/metrics" || strings.HasPrefix(path, "/v2/health/")
}

// HTTPHandler returns next with a server span for each request (but
// probes and metric scrapes) that continues the caller's trace; next
// itself when t is nil.
func (t *Tracing) HTTPHandler(next http.Handler) http.Handler {
	if t == nil {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if untracedPath(r.URL.Path) {
			next.ServeHTTP(w, r)
			return
		}
		ctx := t.propagator.Extract(r.Context(), propagation.HeaderCarrier(r.Header))
		ctx, span := t.tracer.Start(ctx, r.Method, trace.WithSpanKind(trace.SpanKindServer), trace.WithAttributes(
			attribute.String("http.request.method", r.Method),
			attribute.String("url.path", r.URL.Path),
		))
		defer span.End()
		rec := &statusWriter{ResponseWriter: w, code: http.StatusOK}
		r = r.WithContext(ctx)
		next.ServeHTTP(rec, r)
		// The mux recorded the matched pattern on r: a name of bounded
		// cardinality, unlike the path.
		if p := r.Pattern; p != "" {
			_, route, found := strings.Cut(p, " ")
			if !found {
				route = p
			}
			span.SetName(r.Method + " " + route)
			span.SetAttributes(attribute.String("http.route", route))
		}
		span.SetAttributes(attribute.Int("http.response.status_code", rec.code))
		if rec.code >= http.StatusInternalServerError {
			span.SetStatus(codes.Error, http.StatusText(rec.code))
		}
	})
}

// statusWriter remembers the status a handler wrote.
type statusWriter struct {
	http.ResponseWriter
	code  int
	wrote bool
}

func (s *statusWriter) WriteHeader(code int) {
	if !s.wrote {
		s.code, s.wrote = code, true
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusWriter) Write(b []byte) (int, error) {
	s.wrote = true
	return s.ResponseWriter.Write(b)
}

// BatchHook returns the batcher hook that records the queue, batch and
// ONNX Runtime spans of a model version's requests; nil when t is nil.
func (t *Tracing) BatchHook(model string, version int64, fingerprint string) func(batcher.BatchTrace) {
	if t == nil {
		return nil
	}
	attrs := otelsetup.ModelAttributes(model, version, fingerprint)
	return func(b batcher.BatchTrace) { t.recordBatch(attrs, b) }
}

func (t *Tracing) recordBatch(attrs []attribute.KeyValue, b batcher.BatchTrace) {
	batchAttrs := append(attrs[:len(attrs):len(attrs)],
		attribute.Int64(otelsetup.AttrBatchSize, b.Items),
		attribute.Int(otelsetup.AttrBatchRequests, len(b.Requests)))
	for i, r := range b.Requests {
		server := trace.SpanFromContext(r.Ctx)
		if !server.IsRecording() {
			continue // not sampled, or an untraced caller
		}
		server.SetAttributes(attrs...)

		_, queue := t.tracer.Start(r.Ctx, SpanQueue, trace.WithTimestamp(r.Enqueued), trace.WithAttributes(attrs...))
		queue.End(trace.WithTimestamp(b.Start))

		ctx, batch := t.tracer.Start(r.Ctx, SpanBatch, trace.WithTimestamp(b.Start),
			trace.WithAttributes(batchAttrs...), trace.WithLinks(links(b.Requests, i)...))
		_, run := t.tracer.Start(ctx, SpanRun, trace.WithTimestamp(b.Gathered), trace.WithAttributes(attrs...))
		if b.Err != nil {
			run.RecordError(b.Err)
			run.SetStatus(codes.Error, b.Err.Error())
			batch.SetStatus(codes.Error, b.Err.Error())
		}
		run.End(trace.WithTimestamp(b.Ran))
		batch.End(trace.WithTimestamp(b.End))
	}
}

// links are links to the spans of the requests a run held besides the
// i-th, at most maxLinks.
func links(reqs []batcher.TracedRequest, i int) []trace.Link {
	if len(reqs) == 1 {
		return nil
	}
	out := make([]trace.Link, 0, min(len(reqs)-1, maxLinks))
	for j, r := range reqs {
		if j == i {
			continue
		}
		if len(out) == maxLinks {
			break
		}
		if sc := trace.SpanContextFromContext(r.Ctx); sc.IsValid() {
			out = append(out, trace.Link{SpanContext: sc})
		}
	}
	return out
}
