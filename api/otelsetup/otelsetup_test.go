package otelsetup

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
)

func envOf(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestParseEnv(t *testing.T) {
	tests := []struct {
		name    string
		env     map[string]string
		enabled bool
		proto   string
		url     string
		sampler string
		service string
		err     string
	}{
		{name: "nothing set", env: nil},
		{name: "sdk disabled", env: map[string]string{"OTEL_SDK_DISABLED": "true", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"}},
		{name: "exporter none", env: map[string]string{"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"}},
		{name: "endpoint, http default", env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"},
			enabled: true, proto: ProtocolHTTP, url: "http://c:4318/v1/traces", sampler: "parentbased_always_on", service: "svc"},
		{name: "traces endpoint as is", env: map[string]string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "https://c/custom", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://other:1"},
			enabled: true, proto: ProtocolHTTP, url: "https://c/custom", sampler: "parentbased_always_on", service: "svc"},
		{name: "grpc", env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4317", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"},
			enabled: true, proto: ProtocolGRPC, url: "http://c:4317", sampler: "parentbased_always_on", service: "svc"},
		{name: "exporter otlp, default endpoint", env: map[string]string{"OTEL_TRACES_EXPORTER": "otlp"},
			enabled: true, proto: ProtocolHTTP, url: "http://localhost:4318/v1/traces", sampler: "parentbased_always_on", service: "svc"},
		{name: "sampler and service", env: map[string]string{"OTEL_TRACES_EXPORTER": "otlp", "OTEL_TRACES_SAMPLER": "traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0.25",
			"OTEL_RESOURCE_ATTRIBUTES": "service.name=from-attrs,deployment.environment=prod%20eu", "OTEL_SERVICE_NAME": "named"},
			enabled: true, proto: ProtocolHTTP, url: "http://localhost:4318/v1/traces", sampler: "traceidratio(0.25)", service: "named"},
		{name: "service from attributes", env: map[string]string{"OTEL_TRACES_EXPORTER": "otlp", "OTEL_RESOURCE_ATTRIBUTES": "service.name=from-attrs"},
			enabled: true, proto: ProtocolHTTP, url: "http://localhost:4318/v1/traces", sampler: "parentbased_always_on", service: "from-attrs"},
		{name: "bad exporter", env: map[string]string{"OTEL_TRACES_EXPORTER": "zipkin"}, err: "want otlp or none"},
		{name: "bad protocol", env: map[string]string{"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/json"}, err: "http/json"},
		{name: "bad endpoint", env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "c:4317"}, err: "want a URL"},
		{name: "bad sampler", env: map[string]string{"OTEL_TRACES_EXPORTER": "otlp", "OTEL_TRACES_SAMPLER": "jaeger_remote"}, err: "OTEL_TRACES_SAMPLER"},
		{name: "bad ratio", env: map[string]string{"OTEL_TRACES_EXPORTER": "otlp", "OTEL_TRACES_SAMPLER": "traceidratio", "OTEL_TRACES_SAMPLER_ARG": "2"}, err: "ratio in [0, 1]"},
		{name: "bad disabled", env: map[string]string{"OTEL_SDK_DISABLED": "yes please"}, err: "OTEL_SDK_DISABLED"},
		{name: "bad header", env: map[string]string{"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_HEADERS": "novalue"}, err: "key=value"},
		{name: "too long attributes", env: map[string]string{"OTEL_TRACES_EXPORTER": "otlp", "OTEL_RESOURCE_ATTRIBUTES": "k=" + strings.Repeat("v", maxEnvValueLen)}, err: "more than"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := ParseEnv(envOf(tt.env), "svc")
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("error %v, want one containing %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if c.Enabled != tt.enabled {
				t.Fatalf("Enabled = %v, want %v", c.Enabled, tt.enabled)
			}
			if !tt.enabled {
				return
			}
			if c.Protocol != tt.proto || c.Endpoint != tt.url || c.SamplerName != tt.sampler || c.ServiceName != tt.service {
				t.Errorf("got protocol %q endpoint %q sampler %q service %q, want %q %q %q %q",
					c.Protocol, c.Endpoint, c.SamplerName, c.ServiceName, tt.proto, tt.url, tt.sampler, tt.service)
			}
		})
	}
}

func TestParseEnvHeadersAndTimeout(t *testing.T) {
	c, err := ParseEnv(envOf(map[string]string{
		"OTEL_TRACES_EXPORTER":              "otlp",
		"OTEL_EXPORTER_OTLP_HEADERS":        "authorization=Bearer%20t,x-a=1",
		"OTEL_EXPORTER_OTLP_TRACES_HEADERS": "x-a=2",
		"OTEL_EXPORTER_OTLP_TIMEOUT":        "1500",
	}), "svc")
	if err != nil {
		t.Fatal(err)
	}
	if c.Headers["authorization"] != "Bearer t" || c.Headers["x-a"] != "2" {
		t.Errorf("headers %v, want authorization decoded and the traces value winning", c.Headers)
	}
	if c.Timeout != 1500*time.Millisecond {
		t.Errorf("timeout %v, want 1.5s", c.Timeout)
	}
}

func TestOffIsNoop(t *testing.T) {
	p, err := Start(context.Background(), envOf(nil), "svc", nil)
	if err != nil {
		t.Fatal(err)
	}
	if p.Enabled() {
		t.Fatal("tracing is on without configuration")
	}
	if _, ok := p.TracerProvider().(noop.TracerProvider); !ok {
		t.Errorf("tracer provider %T, want OpenTelemetry's no-op", p.TracerProvider())
	}
	_, span := p.TracerProvider().Tracer("t").Start(context.Background(), "x")
	if span.IsRecording() || span.SpanContext().IsValid() {
		t.Error("a span of the disabled provider records or has an ID")
	}
	// An incoming traceparent is not even read.
	h := http.Header{"Traceparent": {"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}}
	if sc := trace.SpanContextFromContext(p.Propagator().Extract(context.Background(), propagation.HeaderCarrier(h))); sc.IsValid() {
		t.Error("the disabled propagator extracted a span context")
	}
	if err := p.Close(); err != nil {
		t.Error(err)
	}
}

func TestOnRecordsAndPropagates(t *testing.T) {
	// Nothing listens there: the exporter connects lazily, and Close gives
	// up within ShutdownTimeout.
	p, err := Start(context.Background(), envOf(map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:1", "OTEL_EXPORTER_OTLP_TIMEOUT": "100"}), "svc", func(error) {})
	if err != nil {
		t.Fatal(err)
	}
	if !p.Enabled() {
		t.Fatal("tracing is off with an endpoint")
	}
	h := http.Header{"Traceparent": {"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}}
	ctx := p.Propagator().Extract(context.Background(), propagation.HeaderCarrier(h))
	ctx, span := p.TracerProvider().Tracer("t").Start(ctx, "x")
	if !span.IsRecording() {
		t.Error("a sampled caller's trace is not recorded")
	}
	tid, sid, ok := IDs(ctx)
	if !ok || tid != "0af7651916cd43dd8448eb211c80319c" || sid == "b7ad6b7169203331" || len(sid) != 16 {
		t.Errorf("IDs = %q %q %v, want the caller's trace and a new span", tid, sid, ok)
	}
	span.End()
	start := time.Now()
	_ = p.Close() // the export fails: nothing listens
	if d := time.Since(start); d > ShutdownTimeout+time.Second {
		t.Errorf("Close took %v, more than its bound %v", d, ShutdownTimeout)
	}
}
