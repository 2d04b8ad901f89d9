package inflight

import (
	"context"
	"fmt"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/tap"
	"google.golang.org/protobuf/proto"
)

// grpc-go reads a whole request message before any interceptor sees it,
// so the budget acts at two points:
//
//   - TapHandle runs when a stream's headers arrive, before a byte of its
//     message is read: while the budget is all but spent (less than
//     TapMinFree left) it refuses new streams with RESOURCE_EXHAUSTED.
//   - UnaryServerInterceptor reserves the received message's size for as
//     long as the handler runs, refusing with RESOURCE_EXHAUSTED when it
//     does not fit, so that the memory requests hold while they queue and
//     run stays within the budget.
//
// What is read between the two is bounded by the transport: at most
// MaxConcurrentStreams messages per connection, each of at most the
// server's maximum message size, on at most the listener's connections.

// TapMinFree is the room a new gRPC stream needs left in the budget to be
// admitted by TapHandle: one HTTP/2 flow-control window (64 KiB).
const TapMinFree = 64 << 10

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

// TapHandle returns a grpc.InTapHandle that refuses new streams while less
// than TapMinFree of b is left.
func TapHandle(b *Budget) tap.ServerInHandle {
	return func(ctx context.Context, info *tap.Info) (context.Context, error) {
		if exempt(info.FullMethodName) || b.Limit()-b.InUse() >= TapMinFree {
			return ctx, nil
		}
		b.refused[ReasonGRPCStream].Add(1)
		return ctx, status.Error(codes.ResourceExhausted, overloadedMessage(b))
	}
}

// UnaryServerInterceptor reserves in b the size of each request message
// while its handler runs.
func UnaryServerInterceptor(b *Budget) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		m, ok := req.(proto.Message)
		if !ok || exempt(info.FullMethod) {
			return handler(ctx, req)
		}
		n := int64(proto.Size(m))
		rv := b.reserve(n, ReasonGRPCMessage)
		if rv == nil {
			_ = grpc.SetTrailer(ctx, metadata.Pairs(retryPushbackMetadata, retryPushbackMs))
			return nil, status.Error(codes.ResourceExhausted, fmt.Sprintf("%s (this request: %d bytes)", overloadedMessage(b), n))
		}
		defer rv.Release()
		return handler(NewContext(ctx, rv), req)
	}
}
