// Package otelsetup builds the OpenTelemetry tracing that prep and pred
// share, from the standard OTEL_* environment variables: the tracer
// provider with its OTLP exporter, sampler and resource, and the W3C
// propagator (traceparent, tracestate, baggage) that carries a trace from
// the client over prep's HTTP API and the gRPC hop into pred.
//
// Tracing is off unless configured: without an OTLP endpoint or
// OTEL_TRACES_EXPORTER=otlp, New returns a Provider whose Enabled is
// false and whose tracer provider is OpenTelemetry's no-op one, and the
// services then install no instrumentation at all.
//
// The variables are read through the getenv function the services' run
// takes, so that tests configure each process explicitly; the few the SDK
// reads by itself (OTEL_BSP_*, OTEL_EXPORTER_OTLP_CERTIFICATE and the other
// TLS files, compression) come from the process environment, which is the
// same thing in production.
package otelsetup

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
)

// Protocols of OTEL_EXPORTER_OTLP_PROTOCOL that the Go SDK implements.
const (
	ProtocolGRPC = "grpc"
	ProtocolHTTP = "http/protobuf"
)

// Default OTLP endpoints (the specification's), by protocol.
const (
	defaultHTTPEndpoint = "http://localhost:4318"
	defaultGRPCEndpoint = "http://localhost:4317"
	// httpTracesPath is appended to OTEL_EXPORTER_OTLP_ENDPOINT for
	// OTLP/HTTP; OTEL_EXPORTER_OTLP_TRACES_ENDPOINT is used as it is.
	httpTracesPath = "/v1/traces"
)

// maxEnvValueLen bounds the value of a variable this package parses
// (headers, resource attributes): configuration, not data.
const maxEnvValueLen = 8 << 10

// Config is the tracing configuration the OTEL_* variables describe.
type Config struct {
	// Enabled is false when nothing asks for tracing, or
	// OTEL_SDK_DISABLED=true or OTEL_TRACES_EXPORTER=none says not to.
	Enabled bool
	// Protocol is ProtocolGRPC or ProtocolHTTP; Endpoint the URL spans go
	// to (for OTLP/HTTP with its path).
	Protocol string
	Endpoint string
	// Headers are sent with every export (OTEL_EXPORTER_OTLP_HEADERS,
	// OTEL_EXPORTER_OTLP_TRACES_HEADERS), e.g. an authorization token.
	Headers map[string]string
	// Timeout bounds one export; 0 is the exporter's default (10 s).
	Timeout time.Duration
	// Sampler decides which traces are recorded; SamplerName names it as
	// OTEL_TRACES_SAMPLER did, for the log.
	Sampler     sdktrace.Sampler
	SamplerName string
	// Resource describes the service: service.name (OTEL_SERVICE_NAME, else
	// OTEL_RESOURCE_ATTRIBUTES's, else the service's own name) and the
	// attributes of OTEL_RESOURCE_ATTRIBUTES.
	ServiceName string
	Attributes  []attribute.KeyValue
}

// ParseEnv reads the configuration from getenv; defaultService is
// service.name when no variable sets one.
func ParseEnv(getenv func(string) string, defaultService string) (Config, error) {
	c := Config{ServiceName: defaultService}
	env := func(key string) string { return strings.TrimSpace(getenv(key)) }
	if v := env("OTEL_SDK_DISABLED"); v != "" {
		disabled, err := strconv.ParseBool(v)
		if err != nil {
			return c, fmt.Errorf("OTEL_SDK_DISABLED %q: want true or false", v)
		}
		if disabled {
			return c, nil
		}
	}
	switch exp := strings.ToLower(env("OTEL_TRACES_EXPORTER")); exp {
	case "none":
		return c, nil
	case "otlp":
		c.Enabled = true
	case "":
		c.Enabled = env("OTEL_EXPORTER_OTLP_ENDPOINT") != "" || env("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") != ""
	default:
		return c, fmt.Errorf("OTEL_TRACES_EXPORTER %q: want otlp or none", exp)
	}
	if !c.Enabled {
		return c, nil
	}

	var errs []error
	c.Protocol = firstOf(env, "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL")
	switch c.Protocol {
	case "":
		c.Protocol = ProtocolHTTP
	case ProtocolHTTP, ProtocolGRPC:
	default:
		errs = append(errs, fmt.Errorf("OTEL_EXPORTER_OTLP_PROTOCOL %q: want %s or %s", c.Protocol, ProtocolHTTP, ProtocolGRPC))
	}
	var err error
	if c.Endpoint, err = endpoint(env, c.Protocol); err != nil {
		errs = append(errs, err)
	}
	if c.Headers, err = headers(env); err != nil {
		errs = append(errs, err)
	}
	if v := firstOf(env, "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", "OTEL_EXPORTER_OTLP_TIMEOUT"); v != "" {
		ms, err := strconv.ParseUint(v, 10, 31)
		if err != nil {
			errs = append(errs, fmt.Errorf("OTEL_EXPORTER_OTLP_TIMEOUT %q: want milliseconds", v))
		}
		c.Timeout = time.Duration(ms) * time.Millisecond
	}
	if c.Sampler, c.SamplerName, err = sampler(env("OTEL_TRACES_SAMPLER"), env("OTEL_TRACES_SAMPLER_ARG")); err != nil {
		errs = append(errs, err)
	}
	if c.Attributes, err = keyValues("OTEL_RESOURCE_ATTRIBUTES", env("OTEL_RESOURCE_ATTRIBUTES")); err != nil {
		errs = append(errs, err)
	}
	for _, kv := range c.Attributes {
		if kv.Key == "service.name" {
			c.ServiceName = kv.Value.AsString()
		}
	}
	if v := env("OTEL_SERVICE_NAME"); v != "" {
		c.ServiceName = v
	}
	return c, errors.Join(errs...)
}

func firstOf(env func(string) string, keys ...string) string {
	for _, k := range keys {
		if v := env(k); v != "" {
			return v
		}
	}
	return ""
}

// endpoint is the URL to export to: the traces endpoint as given, else
// the general endpoint (plus /v1/traces for OTLP/HTTP), else the default.
func endpoint(env func(string) string, protocol string) (string, error) {
	key, raw := "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", env("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
	signal := raw != ""
	if !signal {
		key, raw = "OTEL_EXPORTER_OTLP_ENDPOINT", env("OTEL_EXPORTER_OTLP_ENDPOINT")
	}
	if raw == "" {
		raw = defaultHTTPEndpoint
		if protocol == ProtocolGRPC {
			raw = defaultGRPCEndpoint
		}
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", fmt.Errorf("%s %q: want a URL such as http://localhost:4318 (OTLP/HTTP) or http://localhost:4317 (gRPC); https means TLS", key, raw)
	}
	if protocol == ProtocolHTTP && !signal {
		u.Path = strings.TrimSuffix(u.Path, "/") + httpTracesPath
	}
	return u.String(), nil
}

// headers merges the general and the traces-only export headers.
func headers(env func(string) string) (map[string]string, error) {
	h := map[string]string{}
	for _, key := range []string{"OTEL_EXPORTER_OTLP_HEADERS", "OTEL_EXPORTER_OTLP_TRACES_HEADERS"} {
		kvs, err := keyValues(key, env(key))
		if err != nil {
			return nil, err
		}
		for _, kv := range kvs {
			h[string(kv.Key)] = kv.Value.AsString()
		}
	}
	return h, nil
}

// keyValues parses the W3C-baggage-like list "k1=v1,k2=v2" of
// OTEL_RESOURCE_ATTRIBUTES and the header variables, values
// percent-encoded.
func keyValues(key, v string) ([]attribute.KeyValue, error) {
	if v == "" {
		return nil, nil
	}
	if len(v) > maxEnvValueLen {
		return nil, fmt.Errorf("%s is %d bytes long, more than the %d accepted", key, len(v), maxEnvValueLen)
	}
	var kvs []attribute.KeyValue
	for item := range strings.SplitSeq(v, ",") {
		if strings.TrimSpace(item) == "" {
			continue
		}
		k, val, ok := strings.Cut(item, "=")
		k = strings.TrimSpace(k)
		if !ok || k == "" {
			return nil, fmt.Errorf("%s: %q is not key=value", key, item)
		}
		dec, err := url.PathUnescape(strings.TrimSpace(val))
		if err != nil {
			return nil, fmt.Errorf("%s: value of %q: %v", key, k, err)
		}
		kvs = append(kvs, attribute.String(k, dec))
	}
	return kvs, nil
}

// sampler is OTEL_TRACES_SAMPLER's sampler; the default, as the
// specification says, is parentbased_always_on: a trace the caller
// samples is recorded, and so is every trace that starts here.
func sampler(name, arg string) (sdktrace.Sampler, string, error) {
	name = strings.ToLower(name)
	if name == "" {
		name = "parentbased_always_on"
	}
	ratio := func() (float64, error) {
		if arg == "" {
			return 1, nil
		}
		r, err := strconv.ParseFloat(arg, 64)
		if err != nil || r < 0 || r > 1 {
			return 0, fmt.Errorf("OTEL_TRACES_SAMPLER_ARG %q: want a ratio in [0, 1]", arg)
		}
		return r, nil
	}
	switch name {
	case "always_on":
		return sdktrace.AlwaysSample(), name, nil
	case "always_off":
		return sdktrace.NeverSample(), name, nil
	case "parentbased_always_on":
		return sdktrace.ParentBased(sdktrace.AlwaysSample()), name, nil
	case "parentbased_always_off":
		return sdktrace.ParentBased(sdktrace.NeverSample()), name, nil
	case "traceidratio", "parentbased_traceidratio":
		r, err := ratio()
		if err != nil {
			return nil, name, err
		}
		s := sdktrace.TraceIDRatioBased(r)
		if name == "parentbased_traceidratio" {
			s = sdktrace.ParentBased(s)
		}
		return s, name + "(" + strconv.FormatFloat(r, 'g', -1, 64) + ")", nil
	}
	return nil, name, fmt.Errorf("OTEL_TRACES_SAMPLER %q: want always_on, always_off, traceidratio, parentbased_always_on, parentbased_always_off or parentbased_traceidratio", name)
}

// Provider is a service's tracing: a tracer provider and the propagator,
// both no-ops when tracing is off.
type Provider struct {
	cfg        Config
	sdk        *sdktrace.TracerProvider // nil when off
	tp         trace.TracerProvider
	propagator propagation.TextMapPropagator
}

// New builds the provider cfg describes. Exporting starts lazily: an
// unreachable endpoint delays nothing, its export errors go to
// OpenTelemetry's error handler.
func New(ctx context.Context, cfg Config) (*Provider, error) {
	if !cfg.Enabled {
		return &Provider{cfg: cfg, tp: noop.NewTracerProvider(), propagator: propagation.NewCompositeTextMapPropagator()}, nil
	}
	var exp sdktrace.SpanExporter
	var err error
	switch cfg.Protocol {
	case ProtocolGRPC:
		opts := []otlptracegrpc.Option{otlptracegrpc.WithEndpointURL(cfg.Endpoint), otlptracegrpc.WithHeaders(cfg.Headers)}
		if cfg.Timeout > 0 {
			opts = append(opts, otlptracegrpc.WithTimeout(cfg.Timeout))
		}
		exp, err = otlptracegrpc.New(ctx, opts...)
	default:
		opts := []otlptracehttp.Option{otlptracehttp.WithEndpointURL(cfg.Endpoint), otlptracehttp.WithHeaders(cfg.Headers)}
		if cfg.Timeout > 0 {
			opts = append(opts, otlptracehttp.WithTimeout(cfg.Timeout))
		}
		exp, err = otlptracehttp.New(ctx, opts...)
	}
	if err != nil {
		return nil, fmt.Errorf("OTLP trace exporter for %s: %w", cfg.Endpoint, err)
	}
	attrs := append([]attribute.KeyValue{}, cfg.Attributes...)
	attrs = append(attrs, attribute.String("service.name", cfg.ServiceName))
	res, err := resource.Merge(resource.Default(), resource.NewSchemaless(attrs...))
	if err != nil {
		return nil, fmt.Errorf("trace resource: %w", err)
	}
	sdk := sdktrace.NewTracerProvider(
		sdktrace.WithBatcher(exp),
		sdktrace.WithSampler(cfg.Sampler),
		sdktrace.WithResource(res),
	)
	return &Provider{
		cfg:        cfg,
		sdk:        sdk,
		tp:         sdk,
		propagator: propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{}),
	}, nil
}

// Enabled reports whether spans are recorded and exported.
func (p *Provider) Enabled() bool { return p.sdk != nil }

// Config returns the configuration the provider was built from.
func (p *Provider) Config() Config { return p.cfg }

// TracerProvider returns the tracer provider: the SDK's, or a no-op one.
func (p *Provider) TracerProvider() trace.TracerProvider { return p.tp }

// Propagator returns the W3C trace context and baggage propagator; when
// tracing is off it propagates nothing.
func (p *Provider) Propagator() propagation.TextMapPropagator { return p.propagator }

// ShutdownTimeout bounds Close: the spans still queued get this long to
// reach the collector when a service stops. It fits in the services'
// shutdown budgets (below Kubernetes' 30 s grace period).
const ShutdownTimeout = 2 * time.Second

// Close exports the spans still queued and stops the exporter, within
// ShutdownTimeout.
func (p *Provider) Close() error {
	if p.sdk == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), ShutdownTimeout)
	defer cancel()
	if err := p.sdk.Shutdown(ctx); err != nil {
		return fmt.Errorf("flush traces to %s: %w", p.cfg.Endpoint, err)
	}
	return nil
}

// Start reads the OTEL_* variables from getenv and builds the provider
// they describe; service is service.name unless they set one. When
// tracing is on, onError, if set, receives the SDK's errors (failed
// exports), which OpenTelemetry reports through a process-wide handler.
func Start(ctx context.Context, getenv func(string) string, service string, onError func(error)) (*Provider, error) {
	cfg, err := ParseEnv(getenv, service)
	if err != nil {
		return nil, fmt.Errorf("tracing: %w", err)
	}
	p, err := New(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("tracing: %w", err)
	}
	if p.Enabled() && onError != nil {
		otel.SetErrorHandler(otel.ErrorHandlerFunc(onError))
	}
	return p, nil
}

// IDs returns the trace and span IDs of the span ctx carries, hex-encoded,
// and false when it carries no valid span context.
func IDs(ctx context.Context) (traceID, spanID string, ok bool) {
	sc := trace.SpanContextFromContext(ctx)
	if !sc.IsValid() {
		return "", "", false
	}
	return sc.TraceID().String(), sc.SpanID().String(), true
}

// Span attributes both services set, so that a trace can be searched by
// model (Jaeger: tags prepred.model=resnet50).
const (
	// AttrModel, AttrVersion and AttrFingerprint identify the model
	// version and its preprocessing contract.
	AttrModel       = "prepred.model"
	AttrVersion     = "prepred.model.version"
	AttrFingerprint = "prepred.spec_fingerprint"
	// AttrBatchSize is the number of items (first dimension) a run held,
	// AttrBatchRequests the number of requests merged into it.
	AttrBatchSize     = "prepred.batch.size"
	AttrBatchRequests = "prepred.batch.requests"
	// AttrImages is the number of images of a prep request sent to pred.
	AttrImages = "prepred.images"
)

// ModelAttributes are the attributes of a model version.
func ModelAttributes(model string, version int64, fingerprint string) []attribute.KeyValue {
	return []attribute.KeyValue{
		attribute.String(AttrModel, model),
		attribute.Int64(AttrVersion, version),
		attribute.String(AttrFingerprint, fingerprint),
	}
}
