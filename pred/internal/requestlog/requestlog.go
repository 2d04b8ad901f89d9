// Package requestlog carries what pred logs about one request through its
// context: the request ID, and fields that handlers add (model, version)
// for the single line the transport logs when the request ends.
package requestlog

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"sync"

	"go.opentelemetry.io/otel/trace"
	"go.uber.org/zap"
)

// MetadataKey is the gRPC metadata key (and, lower-cased, the HTTP header)
// that carries a request ID.
const MetadataKey = "x-request-id"

// maxIDLength bounds a request ID accepted from a client; a longer or
// non-printable one is replaced, so that logs stay readable.
const maxIDLength = 128

type entryKey struct{}

// entry is the per-request state; fields is guarded by mu because a
// handler may add fields from several goroutines.
type entry struct {
	id     string
	mu     sync.Mutex
	fields []zap.Field
}

// NewContext returns a context carrying the request ID id, or a fresh one
// when id is empty or unacceptable, and the ID used.
func NewContext(ctx context.Context, id string) (context.Context, string) {
	if !validID(id) {
		id = newID()
	}
	return context.WithValue(ctx, entryKey{}, &entry{id: id}), id
}

// ID returns the request ID carried by ctx, or "".
func ID(ctx context.Context) string {
	if e, ok := ctx.Value(entryKey{}).(*entry); ok {
		return e.id
	}
	return ""
}

// AddFields records fields for the request's log line. It does nothing on a
// context without a request.
func AddFields(ctx context.Context, fields ...zap.Field) {
	if e, ok := ctx.Value(entryKey{}).(*entry); ok {
		e.mu.Lock()
		e.fields = append(e.fields, fields...)
		e.mu.Unlock()
	}
}

// Fields returns the request ID, the trace_id and span_id of the span ctx
// carries (none without a valid span context: tracing off), and the
// recorded fields.
func Fields(ctx context.Context) []zap.Field {
	e, ok := ctx.Value(entryKey{}).(*entry)
	if !ok {
		return nil
	}
	fields := []zap.Field{zap.String("request_id", e.id)}
	if sc := trace.SpanContextFromContext(ctx); sc.IsValid() {
		fields = append(fields, zap.String("trace_id", sc.TraceID().String()), zap.String("span_id", sc.SpanID().String()))
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	return append(fields, e.fields...)
}

func validID(id string) bool {
	if id == "" || len(id) > maxIDLength {
		return false
	}
	for i := 0; i < len(id); i++ {
		if id[i] < 0x21 || id[i] > 0x7e {
			return false
		}
	}
	return true
}

func newID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
	return hex.EncodeToString(b[:])
}
