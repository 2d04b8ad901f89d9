package e2e

import (
	"context"
	"net"
	"sync"
	"sync/atomic"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"

	predv1 "github.com/prepred/prepred/api/gen/prepred/pred/v1"
)

// proxy is a PredService on loopback that forwards every call to a real
// pred and can change calls in transit: what a faulty network, a
// misbehaving middlebox or a pred of another release would do to prep.
type proxy struct {
	predv1.UnimplementedPredServiceServer
	// Addr is the "host:port" the proxy listens on.
	Addr string

	up predv1.PredServiceClient

	// tamper, when set, replaces the spec_fingerprint of every Predict
	// request on its way to pred.
	tamper atomic.Pointer[string]
	// announce, when set, rewrites every ModelMetadata answer on its way
	// to prep.
	announce atomic.Pointer[func(*predv1.ModelMetadataResponse)]
	// forwarded counts the Predict calls sent on to pred.
	forwarded atomic.Int64

	// mu guards gate and arrived.
	mu sync.Mutex
	// gate, when not nil, holds Predict calls until it is closed.
	gate chan struct{}
	// arrived receives one value per Predict call held at the gate.
	arrived chan struct{}
}

// startProxy starts a proxy in front of the pred at upstream; it stops when
// the test ends.
func startProxy(t *testing.T, upstream string) *proxy {
	t.Helper()
	conn, err := grpc.NewClient(upstream, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{Addr: ln.Addr().String(), up: predv1.NewPredServiceClient(conn)}
	srv := grpc.NewServer(grpc.MaxRecvMsgSize(64 << 20))
	predv1.RegisterPredServiceServer(srv, p)
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(srv.Stop)
	return p
}

// hold makes Predict calls wait at the proxy until the returned function is
// called; each held call sends on arrived.
func (p *proxy) hold(capacity int) (arrived <-chan struct{}, release func()) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.gate = make(chan struct{})
	p.arrived = make(chan struct{}, capacity)
	gate := p.gate
	return p.arrived, sync.OnceFunc(func() { close(gate) })
}

// outgoing carries the caller's metadata (the request ID) on to pred.
func outgoing(ctx context.Context) context.Context {
	if md, ok := metadata.FromIncomingContext(ctx); ok {
		return metadata.NewOutgoingContext(ctx, md.Copy())
	}
	return ctx
}

// Predict implements PredService.Predict.
func (p *proxy) Predict(ctx context.Context, req *predv1.PredictRequest) (*predv1.PredictResponse, error) {
	p.mu.Lock()
	gate, arrived := p.gate, p.arrived
	p.mu.Unlock()
	if gate != nil {
		select {
		case arrived <- struct{}{}:
		default:
		}
		select {
		case <-gate:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	if fp := p.tamper.Load(); fp != nil {
		req.SpecFingerprint = *fp
	}
	p.forwarded.Add(1)
	return p.up.Predict(outgoing(ctx), req)
}

// ModelMetadata implements PredService.ModelMetadata.
func (p *proxy) ModelMetadata(ctx context.Context, req *predv1.ModelMetadataRequest) (*predv1.ModelMetadataResponse, error) {
	md, err := p.up.ModelMetadata(outgoing(ctx), req)
	if err != nil {
		return nil, err
	}
	if f := p.announce.Load(); f != nil {
		(*f)(md)
	}
	return md, nil
}

// ListModels implements PredService.ListModels.
func (p *proxy) ListModels(ctx context.Context, req *predv1.ListModelsRequest) (*predv1.ListModelsResponse, error) {
	return p.up.ListModels(outgoing(ctx), req)
}
