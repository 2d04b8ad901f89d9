// Package tracing is prep's OpenTelemetry instrumentation: a server span
// for each HTTP request that continues the client's trace (W3C
// traceparent and tracestate, baggage) or starts one, the spans of an
// image's preprocessing, and the gRPC client's stats handler (otelgrpc)
// that makes the call to pred a span and carries the trace to pred.
//
// A nil *Tracing is tracing off: its methods install nothing, so that prep
// without an OTLP endpoint runs the code it runs without this package.
//
// A request's trace in prep:
//
//	POST /predict                       server span (model, version, spec fingerprint)
//	├── preprocess                      one per image: waiting for a slot, then
//	│   ├── decode                      decoding, orienting, converting to RGB
//	│   └── resize_normalize            resampling and normalizing into the tensor
//	└── prepred.pred.v1.PredService/Predict   the call to pred (client span)
//
// For JPEGs without EXIF rotation and most PNGs the decoder streams rows
// into the resampler, so decoding and resizing are one pass: preprocess
// then has a single child, decode_resize_normalize.
package tracing

import (
	"context"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"
	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc"
	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc/filters"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"

	"github.com/prepred/prepred/api/otelsetup"
)

// instrumentationName names prep's tracer.
const instrumentationName = "github.com/prepred/prepred/prep"

// Span names of an image's preprocessing.
const (
	SpanPreprocess      = "preprocess"
	SpanDecode          = "decode"
	SpanResizeNormalize = "resize_normalize"
	SpanFused           = "decode_resize_normalize"
)

// Tracing holds prep's tracer and propagator; nil means tracing is off.
type Tracing struct {
	provider   trace.TracerProvider
	propagator propagation.TextMapPropagator
	tracer     trace.Tracer
}

// New returns prep's instrumentation on p, or nil when p is not enabled.
func New(p *otelsetup.Provider) *Tracing {
	if p == nil || !p.Enabled() {
		return nil
	}
	return newTracing(p.TracerProvider(), p.Propagator())
}

func newTracing(tp trace.TracerProvider, prop propagation.TextMapPropagator) *Tracing {
	return &Tracing{provider: tp, propagator: prop, tracer: tp.Tracer(instrumentationName)}
}

// untracedMethods are RPCs to pred that get no span: health checks and
// the long-lived model watch stream, which belong to no request.
var untracedMethods = filters.Not(filters.Any(filters.HealthCheck(), filters.MethodName("WatchModels")))

// DialOptions returns the gRPC dial options that make each call to pred a
// client span and send the trace context along; none when t is nil.
func (t *Tracing) DialOptions() []grpc.DialOption {
	if t == nil {
		return nil
	}
	return []grpc.DialOption{grpc.WithStatsHandler(otelgrpc.NewClientHandler(
		otelgrpc.WithTracerProvider(t.provider),
		otelgrpc.WithPropagators(t.propagator),
		otelgrpc.WithMeterProvider(metricnoop.NewMeterProvider()), // prep's metrics are Prometheus'
		otelgrpc.WithFilter(untracedMethods),
	))}
}

// untracedRoutes are probes and scrapes, which get no span.
var untracedRoutes = map[string]bool{"/health": true, "/ready": true, "/metrics": true}

// Middleware returns the gin middleware that gives each request (but
// probes and scrapes) a server span, continuing the trace of the
// request's traceparent header or starting one, and puts it in the
// request's context; nil when t is nil.
func (t *Tracing) Middleware() gin.HandlerFunc {
	if t == nil {
		return nil
	}
	return func(c *gin.Context) {
		route := c.FullPath()
		if untracedRoutes[route] {
			c.Next()
			return
		}
		if route == "" {
			route = "unmatched"
		}
		r := c.Request
		ctx := t.propagator.Extract(r.Context(), propagation.HeaderCarrier(r.Header))
		ctx, span := t.tracer.Start(ctx, r.Method+" "+route, trace.WithSpanKind(trace.SpanKindServer), trace.WithAttributes(
			attribute.String("http.request.method", r.Method),
			attribute.String("http.route", route),
			attribute.String("url.path", r.URL.Path),
		))
		defer span.End()
		c.Request = r.WithContext(ctx)
		c.Next()
		code := c.Writer.Status()
		span.SetAttributes(attribute.Int("http.response.status_code", code))
		if code >= http.StatusInternalServerError {
			span.SetStatus(codes.Error, http.StatusText(code))
		}
	}
}

// SetModel records the model version and contract a request runs on its
// span; nothing when the request is not traced.
func SetModel(ctx context.Context, model string, version int64, fingerprint string) {
	if span := trace.SpanFromContext(ctx); span.IsRecording() {
		span.SetAttributes(otelsetup.ModelAttributes(model, version, fingerprint)...)
	}
}

// Stages are the times of one image's preprocessing.
type Stages struct {
	// Queued is when the image waited for a preprocessing slot, Started
	// when it got one, Decoded when decoding ended (zero if it failed) and
	// Ended when the tensor was written or the work failed.
	Queued, Started, Decoded, Ended time.Time
	// Fused says decoding and resizing were one pass.
	Fused bool
	// Bytes is the encoded image's size.
	Bytes int
	// Err is why the image could not be preprocessed.
	Err error
}

// Preprocess records the spans of one image's preprocessing, as children
// of the request's span in ctx, once it is done; nothing when t is nil or
// the request is not traced.
func (t *Tracing) Preprocess(ctx context.Context, s Stages) {
	if t == nil || !trace.SpanFromContext(ctx).IsRecording() {
		return
	}
	ctx, pre := t.tracer.Start(ctx, SpanPreprocess, trace.WithTimestamp(s.Queued),
		trace.WithAttributes(attribute.Int("image.bytes", s.Bytes)))
	child := func(name string, from, to time.Time, err error) {
		_, span := t.tracer.Start(ctx, name, trace.WithTimestamp(from))
		if err != nil {
			span.RecordError(err)
			span.SetStatus(codes.Error, err.Error())
		}
		span.End(trace.WithTimestamp(to))
	}
	switch {
	case s.Started.IsZero():
		// No slot within the deadline: nothing ran.
	case s.Decoded.IsZero():
		child(SpanDecode, s.Started, s.Ended, s.Err)
	case s.Fused:
		child(SpanFused, s.Started, s.Ended, s.Err)
	default:
		child(SpanDecode, s.Started, s.Decoded, nil)
		child(SpanResizeNormalize, s.Decoded, s.Ended, s.Err)
	}
	if s.Err != nil {
		pre.SetStatus(codes.Error, s.Err.Error())
	}
	pre.End(trace.WithTimestamp(s.Ended))
}
