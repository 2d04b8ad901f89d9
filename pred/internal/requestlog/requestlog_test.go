package requestlog

import (
	"context"
	"strings"
	"testing"

	"go.opentelemetry.io/otel/trace"
	"go.uber.org/zap"
)

func TestNewContext(t *testing.T) {
	tests := []struct {
		id   string
		keep bool
	}{
		{"abc-123", true},
		{"0123456789abcdef0123456789abcdef", true},
		{"", false},
		{"has space", false},
		{"new\nline", false},
		{strings.Repeat("x", maxIDLength), true},
		{strings.Repeat("x", maxIDLength+1), false},
	}
	for _, tt := range tests {
		ctx, got := NewContext(context.Background(), tt.id)
		if tt.keep && got != tt.id {
			t.Errorf("NewContext(%q) used %q, want it kept", tt.id, got)
		}
		if !tt.keep && (got == tt.id || len(got) != 32) {
			t.Errorf("NewContext(%q) used %q, want a fresh 32-character ID", tt.id, got)
		}
		if ID(ctx) != got {
			t.Errorf("ID = %q, want %q", ID(ctx), got)
		}
	}
	_, a := NewContext(context.Background(), "")
	_, b := NewContext(context.Background(), "")
	if a == b {
		t.Error("two fresh IDs are equal")
	}
}

func TestFields(t *testing.T) {
	if Fields(context.Background()) != nil || ID(context.Background()) != "" {
		t.Error("a context without a request has fields")
	}
	AddFields(context.Background(), zap.String("ignored", "x")) // no request: no effect, no panic

	ctx, id := NewContext(context.Background(), "r1")
	AddFields(ctx, zap.String("model", "colors"))
	AddFields(ctx, zap.Int64("version", 1))
	got := Fields(ctx)
	want := []zap.Field{zap.String("request_id", id), zap.String("model", "colors"), zap.Int64("version", 1)}
	if len(got) != len(want) {
		t.Fatalf("Fields = %v, want %v", got, want)
	}
	for i := range want {
		if !got[i].Equals(want[i]) {
			t.Errorf("Fields[%d] = %v, want %v", i, got[i], want[i])
		}
	}
}

func TestFieldsTraceIDs(t *testing.T) {
	ctx, _ := NewContext(context.Background(), "r1")
	for _, f := range Fields(ctx) {
		if f.Key == "trace_id" || f.Key == "span_id" {
			t.Errorf("field %s without a span context", f.Key)
		}
	}
	tid, _ := trace.TraceIDFromHex("0af7651916cd43dd8448eb211c80319c")
	sid, _ := trace.SpanIDFromHex("b7ad6b7169203331")
	sc := trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: sid, TraceFlags: trace.FlagsSampled})
	got := map[string]string{}
	for _, f := range Fields(trace.ContextWithSpanContext(ctx, sc)) {
		got[f.Key] = f.String
	}
	if got["trace_id"] != tid.String() || got["span_id"] != sid.String() || got["request_id"] != "r1" {
		t.Errorf("Fields = %v, want request_id r1, trace_id %s, span_id %s", got, tid, sid)
	}
}
