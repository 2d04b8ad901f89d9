package inflight

import (
	"context"
	"fmt"
	"strings"
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/stats"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/tap"
	"google.golang.org/protobuf/proto"
)

// grpc-go reads a whole request message before any interceptor sees it,
// so GRPCGuard acts at three points:
//
//   - its tap (grpc.InTapHandle) runs when a stream's headers arrive,
//     before a byte of its message is read. It admits the stream only with
//     a read slot: at most ReadSlots streams are being read at once, so
//     what is read before it is counted is at most ReadSlots times the
//     largest message. With no slot, or while the budget is all but spent
//     (less than TapMinFree left), the stream is refused with
//     RESOURCE_EXHAUSTED at once.
//   - its unary interceptor, which runs once the message is read, gives the
//     slot back and reserves the message's size for as long as the handler
//     runs, refusing with RESOURCE_EXHAUSTED when it does not fit.
//   - as a stats handler it gives back the slot of a stream that never
//     reached the interceptor (a message too large, a cancelled call); its
//     stream interceptor gives it back when a streaming RPC starts.

// TapMinFree is the room a new gRPC stream needs left in the budget to be
// admitted: one HTTP/2 flow-control window (64 KiB).
const TapMinFree = 64 << 10

// minReadSlots is the fewest read slots a GRPCGuard has: a slot is taken
// for every stream, small messages included, from its headers until its
// message is read, so a busy server needs dozens even on a small budget.
const minReadSlots = 64

// retryPushbackMetadata is gRPC's retry pushback trailer: clients with a
// retry policy wait this many milliseconds before retrying.
const retryPushbackMetadata = "grpc-retry-pushback-ms"

// retryPushbackMs is the pushback of a refusal, as prep's Retry-After.
const retryPushbackMs = "1000"

// exempt reports whether an RPC bypasses the budget: health checks, which
// must answer under load, and server reflection; their messages are tiny.
func exempt(method string) bool {
	return strings.HasPrefix(method, "/grpc.health.v1.Health/") || strings.HasPrefix(method, "/grpc.reflection.")
}

// GRPCGuard applies a Budget to a gRPC server; see the comment above.
// Its methods are also safe on a guard without budget (NewGRPCGuard(nil,
// 0)), which lets everything through.
type GRPCGuard struct {
	b     *Budget
	slots chan struct{}
}

// NewGRPCGuard returns a guard of b for a server whose largest request
// message is maxMsg bytes: it has limit/maxMsg read slots (at least 64),
// so that messages being read stay within about one more budget (or
// within minReadSlots messages on a budget smaller than that).
func NewGRPCGuard(b *Budget, maxMsg int) *GRPCGuard {
	if b == nil {
		return &GRPCGuard{}
	}
	n := minReadSlots
	if maxMsg > 0 {
		n = max(n, int(b.Limit()/int64(maxMsg)))
	}
	return &GRPCGuard{b: b, slots: make(chan struct{}, n)}
}

// ReadSlots is the number of streams that may be read at once (0: no
// limit).
func (g *GRPCGuard) ReadSlots() int { return cap(g.slots) }

// readSlot is a stream's read slot, given back once.
type readSlot struct {
	g    *GRPCGuard
	once sync.Once
}

func (rs *readSlot) release() { rs.once.Do(func() { <-rs.g.slots }) }

type readSlotKey struct{}

func releaseSlot(ctx context.Context) {
	if rs, ok := ctx.Value(readSlotKey{}).(*readSlot); ok {
		rs.release()
	}
}

// Tap implements grpc.InTapHandle: it admits a stream with a read slot, or
// refuses it.
func (g *GRPCGuard) Tap(ctx context.Context, info *tap.Info) (context.Context, error) {
	if g.b == nil || exempt(info.FullMethodName) {
		return ctx, nil
	}
	if g.b.Limit()-g.b.InUse() >= TapMinFree {
		select {
		case g.slots <- struct{}{}:
			return context.WithValue(ctx, readSlotKey{}, &readSlot{g: g}), nil
		default:
		}
	}
	g.b.refused[ReasonGRPCStream].Add(1)
	return ctx, status.Error(codes.ResourceExhausted, overloadedMessage(g.b))
}

// Unary is a grpc.UnaryServerInterceptor: it gives back the read slot and
// reserves the request message's size while the handler runs.
func (g *GRPCGuard) Unary(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	releaseSlot(ctx)
	m, ok := req.(proto.Message)
	if g.b == nil || !ok || exempt(info.FullMethod) {
		return handler(ctx, req)
	}
	n := int64(proto.Size(m))
	rv := g.b.reserve(n, ReasonGRPCMessage)
	if rv == nil {
		_ = grpc.SetTrailer(ctx, metadata.Pairs(retryPushbackMetadata, retryPushbackMs))
		return nil, status.Error(codes.ResourceExhausted, fmt.Sprintf("%s (this request: %d bytes)", overloadedMessage(g.b), n))
	}
	defer rv.Release()
	return handler(NewContext(ctx, rv), req)
}

// Stream is a grpc.StreamServerInterceptor: a streaming RPC gives back its
// read slot when it starts (its messages are small and read later).
func (g *GRPCGuard) Stream(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	releaseSlot(ss.Context())
	return handler(srv, ss)
}

// TagRPC implements stats.Handler.
func (g *GRPCGuard) TagRPC(ctx context.Context, _ *stats.RPCTagInfo) context.Context { return ctx }

// HandleRPC implements stats.Handler: an RPC's end gives back its read
// slot if the interceptors did not.
func (g *GRPCGuard) HandleRPC(ctx context.Context, s stats.RPCStats) {
	if _, ok := s.(*stats.End); ok {
		releaseSlot(ctx)
	}
}

// TagConn implements stats.Handler.
func (g *GRPCGuard) TagConn(ctx context.Context, _ *stats.ConnTagInfo) context.Context { return ctx }

// HandleConn implements stats.Handler.
func (g *GRPCGuard) HandleConn(context.Context, stats.ConnStats) {}
