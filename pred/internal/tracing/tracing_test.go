package tracing

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/prepred/prepred/api/otelsetup"
	"github.com/prepred/prepred/pred/internal/batcher"
)

// handler is a comparable http.Handler, so that a test can tell whether
// HTTPHandler wrapped it.
type handler struct{ called bool }

func (h *handler) ServeHTTP(http.ResponseWriter, *http.Request) { h.called = true }

func TestOffInstallsNothing(t *testing.T) {
	p, err := otelsetup.New(context.Background(), otelsetup.Config{})
	if err != nil {
		t.Fatal(err)
	}
	tr := New(p)
	if tr != nil {
		t.Fatalf("New(disabled provider) = %v, want nil", tr)
	}
	if opts := tr.ServerOptions(); len(opts) != 0 {
		t.Errorf("ServerOptions with tracing off = %d options, want none", len(opts))
	}
	h := &handler{}
	if got := tr.HTTPHandler(h); got != http.Handler(h) {
		t.Errorf("HTTPHandler with tracing off wrapped the handler (%T)", got)
	}
	if hook := tr.BatchHook("m", 1, "fp"); hook != nil {
		t.Error("BatchHook with tracing off returned a hook")
	}
}

func newRecorded(t *testing.T) (*Tracing, *tracetest.SpanRecorder) {
	t.Helper()
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	return newTracing(tp, propagation.TraceContext{}), rec
}

func attr(s sdktrace.ReadOnlySpan, key string) (attribute.Value, bool) {
	for _, kv := range s.Attributes() {
		if string(kv.Key) == key {
			return kv.Value, true
		}
	}
	return attribute.Value{}, false
}

func TestBatchSpans(t *testing.T) {
	tr, rec := newRecorded(t)
	tracer := tr.provider.Tracer("test")
	ctxA, serverA := tracer.Start(context.Background(), "server A")
	ctxB, serverB := tracer.Start(context.Background(), "server B")
	// A request whose trace is not sampled gets no spans, and no link.
	ctxC, _ := sdktrace.NewTracerProvider(sdktrace.WithSampler(sdktrace.NeverSample())).Tracer("x").Start(context.Background(), "off")

	t0 := time.Now()
	b := batcher.BatchTrace{
		Requests: []batcher.TracedRequest{{Ctx: ctxA, Enqueued: t0}, {Ctx: ctxB, Enqueued: t0.Add(time.Millisecond)}, {Ctx: ctxC, Enqueued: t0}},
		Items:    5,
		Start:    t0.Add(2 * time.Millisecond),
		Gathered: t0.Add(3 * time.Millisecond),
		Ran:      t0.Add(10 * time.Millisecond),
		End:      t0.Add(11 * time.Millisecond),
	}
	tr.BatchHook("resnet50", 2, "sha256:abc")(b)
	serverA.End()
	serverB.End()

	byTrace := map[trace.TraceID]map[string]sdktrace.ReadOnlySpan{}
	for _, s := range rec.Ended() {
		id := s.SpanContext().TraceID()
		if byTrace[id] == nil {
			byTrace[id] = map[string]sdktrace.ReadOnlySpan{}
		}
		byTrace[id][s.Name()] = s
	}
	if len(byTrace) != 2 {
		t.Fatalf("spans in %d traces, want 2 (the sampled requests')", len(byTrace))
	}
	for i, server := range []trace.Span{serverA, serverB} {
		spans := byTrace[server.SpanContext().TraceID()]
		queue, batch, run, srv := spans[SpanQueue], spans[SpanBatch], spans[SpanRun], spans["server "+string(rune('A'+i))]
		if queue == nil || batch == nil || run == nil || srv == nil {
			t.Fatalf("request %d: spans %v, want server, queue, batch and ort.run", i, spans)
		}
		if queue.Parent().SpanID() != server.SpanContext().SpanID() || batch.Parent().SpanID() != server.SpanContext().SpanID() {
			t.Errorf("request %d: queue and batch are not children of the server span", i)
		}
		if run.Parent().SpanID() != batch.SpanContext().SpanID() {
			t.Errorf("request %d: ort.run is not a child of batch", i)
		}
		if !queue.StartTime().Equal(b.Requests[i].Enqueued) || !queue.EndTime().Equal(b.Start) ||
			!batch.StartTime().Equal(b.Start) || !batch.EndTime().Equal(b.End) ||
			!run.StartTime().Equal(b.Gathered) || !run.EndTime().Equal(b.Ran) {
			t.Errorf("request %d: span times differ from the batch's", i)
		}
		for _, s := range []sdktrace.ReadOnlySpan{srv, queue, batch, run} {
			if v, _ := attr(s, otelsetup.AttrModel); v.AsString() != "resnet50" {
				t.Errorf("request %d: span %s has model %q", i, s.Name(), v.AsString())
			}
			if v, _ := attr(s, otelsetup.AttrVersion); v.AsInt64() != 2 {
				t.Errorf("request %d: span %s has version %d", i, s.Name(), v.AsInt64())
			}
			if v, _ := attr(s, otelsetup.AttrFingerprint); v.AsString() != "sha256:abc" {
				t.Errorf("request %d: span %s has fingerprint %q", i, s.Name(), v.AsString())
			}
		}
		if v, _ := attr(batch, otelsetup.AttrBatchSize); v.AsInt64() != 5 {
			t.Errorf("batch size %d, want 5", v.AsInt64())
		}
		if v, _ := attr(batch, otelsetup.AttrBatchRequests); v.AsInt64() != 3 {
			t.Errorf("batch requests %d, want 3", v.AsInt64())
		}
		other := []trace.Span{serverB, serverA}[i]
		// The unsampled request's span context is valid, so it is linked.
		if l := batch.Links(); len(l) != 2 || l[0].SpanContext.SpanID() != other.SpanContext().SpanID() {
			t.Errorf("request %d: batch links %v, want the other requests' spans", i, l)
		}
	}
}

func TestBatchErrorStatus(t *testing.T) {
	tr, rec := newRecorded(t)
	ctx, server := tr.provider.Tracer("test").Start(context.Background(), "server")
	now := time.Now()
	tr.BatchHook("m", 1, "")(batcher.BatchTrace{
		Requests: []batcher.TracedRequest{{Ctx: ctx, Enqueued: now}},
		Items:    1, Start: now, Gathered: now, Ran: now, End: now,
		Err: errors.New("boom"),
	})
	server.End()
	for _, s := range rec.Ended() {
		if (s.Name() == SpanRun || s.Name() == SpanBatch) && s.Status().Description != "boom" {
			t.Errorf("span %s status %v, want the run's error", s.Name(), s.Status())
		}
	}
}

func TestHTTPHandler(t *testing.T) {
	tr, rec := newRecorded(t)
	mux := http.NewServeMux()
	var inner trace.SpanContext
	mux.HandleFunc("/v2/models/", func(w http.ResponseWriter, r *http.Request) {
		inner = trace.SpanContextFromContext(r.Context())
		w.WriteHeader(http.StatusServiceUnavailable)
	})
	mux.HandleFunc("GET /v2/health/ready", func(http.ResponseWriter, *http.Request) {})
	h := tr.HTTPHandler(mux)

	const parent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
	req := httptest.NewRequest("POST", "/v2/models/colors/infer", nil)
	req.Header.Set("traceparent", parent)
	h.ServeHTTP(httptest.NewRecorder(), req)
	h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/v2/health/ready", nil))

	spans := rec.Ended()
	if len(spans) != 1 {
		t.Fatalf("%d spans, want 1 (probes are not traced)", len(spans))
	}
	s := spans[0]
	if s.Name() != "POST /v2/models/" || s.SpanKind() != trace.SpanKindServer {
		t.Errorf("span %q kind %v, want server span POST /v2/models/", s.Name(), s.SpanKind())
	}
	if s.SpanContext().TraceID().String() != "0af7651916cd43dd8448eb211c80319c" || s.Parent().SpanID().String() != "b7ad6b7169203331" {
		t.Errorf("span does not continue the traceparent's trace: %v parent %v", s.SpanContext(), s.Parent())
	}
	if inner.SpanID() != s.SpanContext().SpanID() {
		t.Error("the handler's context does not carry the server span")
	}
	if v, _ := attr(s, "http.response.status_code"); v.AsInt64() != 503 {
		t.Errorf("status code attribute %d, want 503", v.AsInt64())
	}
	if s.Status().Code.String() != "Error" {
		t.Errorf("span status %v, want Error for a 503", s.Status())
	}
}
