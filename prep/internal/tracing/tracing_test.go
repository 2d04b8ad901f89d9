package tracing

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/gin-gonic/gin"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/prepred/prepred/api/otelsetup"
)

func TestOffInstallsNothing(t *testing.T) {
	p, err := otelsetup.New(context.Background(), otelsetup.Config{})
	if err != nil {
		t.Fatal(err)
	}
	tr := New(p)
	if tr != nil {
		t.Fatalf("New(disabled provider) = %v, want nil", tr)
	}
	if tr.Middleware() != nil {
		t.Error("Middleware with tracing off is not nil")
	}
	if len(tr.DialOptions()) != 0 {
		t.Error("DialOptions with tracing off are not empty")
	}
	tr.Preprocess(context.Background(), Stages{}) // no effect, no panic
}

func newRecorded(t *testing.T) (*Tracing, *tracetest.SpanRecorder) {
	t.Helper()
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	return newTracing(tp, propagation.TraceContext{}), rec
}

func TestPreprocessSpans(t *testing.T) {
	t0 := time.Now()
	tests := []struct {
		name   string
		stages Stages
		want   []string // children of preprocess, in order
	}{
		{"separate", Stages{Queued: t0, Started: t0.Add(1), Decoded: t0.Add(2), Ended: t0.Add(3)}, []string{SpanDecode, SpanResizeNormalize}},
		{"fused", Stages{Queued: t0, Started: t0.Add(1), Decoded: t0.Add(3), Ended: t0.Add(3), Fused: true}, []string{SpanFused}},
		{"decode failed", Stages{Queued: t0, Started: t0.Add(1), Ended: t0.Add(2), Err: errors.New("bad")}, []string{SpanDecode}},
		{"no slot", Stages{Queued: t0, Ended: t0.Add(2), Err: errors.New("busy")}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr, rec := newRecorded(t)
			ctx, req := tr.tracer.Start(context.Background(), "request")
			tr.Preprocess(ctx, tt.stages)
			req.End()
			var pre sdktrace.ReadOnlySpan
			var children []sdktrace.ReadOnlySpan
			for _, s := range rec.Ended() {
				if s.Name() == SpanPreprocess {
					pre = s
				}
			}
			if pre == nil || pre.Parent().SpanID() != req.SpanContext().SpanID() {
				t.Fatal("no preprocess span under the request's")
			}
			for _, s := range rec.Ended() {
				if s.Parent().SpanID() == pre.SpanContext().SpanID() {
					children = append(children, s)
				}
			}
			if len(children) != len(tt.want) {
				t.Fatalf("%d children, want %v", len(children), tt.want)
			}
			for i, s := range children {
				if s.Name() != tt.want[i] {
					t.Errorf("child %d is %s, want %s", i, s.Name(), tt.want[i])
				}
			}
			if !pre.StartTime().Equal(tt.stages.Queued) || !pre.EndTime().Equal(tt.stages.Ended) {
				t.Error("preprocess span times differ from the stages'")
			}
			if (tt.stages.Err != nil) != (pre.Status().Description != "") {
				t.Errorf("preprocess status %v with error %v", pre.Status(), tt.stages.Err)
			}
		})
	}
}

func TestMiddleware(t *testing.T) {
	tr, rec := newRecorded(t)
	gin.SetMode(gin.ReleaseMode)
	r := gin.New()
	r.Use(tr.Middleware())
	var inner trace.SpanContext
	r.POST("/v1/models/:model/predict", func(c *gin.Context) {
		inner = trace.SpanContextFromContext(c.Request.Context())
		SetModel(c.Request.Context(), "colors", 3, "sha256:f")
		c.Status(http.StatusBadRequest)
	})
	r.GET("/health", func(c *gin.Context) { c.Status(http.StatusOK) })

	req := httptest.NewRequest("POST", "/v1/models/colors/predict", nil)
	req.Header.Set("traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
	r.ServeHTTP(httptest.NewRecorder(), req)
	r.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/health", nil))

	spans := rec.Ended()
	if len(spans) != 1 {
		t.Fatalf("%d spans, want 1 (probes are not traced)", len(spans))
	}
	s := spans[0]
	if s.Name() != "POST /v1/models/:model/predict" || s.SpanKind() != trace.SpanKindServer {
		t.Errorf("span %q kind %v", s.Name(), s.SpanKind())
	}
	if s.SpanContext().TraceID().String() != "0af7651916cd43dd8448eb211c80319c" || s.Parent().SpanID().String() != "b7ad6b7169203331" {
		t.Error("the span does not continue the traceparent's trace")
	}
	if inner.SpanID() != s.SpanContext().SpanID() {
		t.Error("the handler's request context does not carry the span")
	}
	got := map[string]any{}
	for _, kv := range s.Attributes() {
		got[string(kv.Key)] = kv.Value.AsInterface()
	}
	if got[otelsetup.AttrModel] != "colors" || got[otelsetup.AttrVersion] != int64(3) || got[otelsetup.AttrFingerprint] != "sha256:f" || got["http.response.status_code"] != int64(400) {
		t.Errorf("attributes %v", got)
	}
}
