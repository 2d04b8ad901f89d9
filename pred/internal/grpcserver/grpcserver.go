// Package grpcserver is pred's gRPC transport: a grpc.Server with the
// protocol services, grpc.health.v1 (overall, per service and per model),
// server reflection, request IDs, per-request logging and panic recovery,
// and a bounded graceful shutdown.
package grpcserver

import (
	"context"
	"net"
	"runtime/debug"
	"sync"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/reflection"
	"google.golang.org/grpc/status"

	"github.com/prepred/prepred/api/inflight"
	"github.com/prepred/prepred/pred/internal/requestlog"
)

// MaxRecvMsgBytes bounds a request message. A batch of 8 ResNet-50 inputs
// is 8·3·224·224 float32 = 4,816,896 bytes; 32 MiB also admits the largest
// tensor pred accepts (tensor.MaxElements float32 elements) plus framing.
const MaxRecvMsgBytes = 32<<20 + 64<<10

// HTTP/2 flow control and socket buffers. gRPC starts a stream's window at
// 64 KiB and grows it by estimating the link's bandwidth-delay product, so
// the first requests of a connection, and any after an idle spell, cross
// in window-sized steps that each wait for a WINDOW_UPDATE: a 600 KB
// ResNet-50 tensor took ten. Fixed windows let a whole tensor cross at
// once, and 256 KiB buffers write it in a few system calls instead of one
// per 32 KiB. ConnWindowBytes bounds what one connection may have in
// flight unread, as the estimator's own ceiling (16 MiB) did.
const (
	StreamWindowBytes    = 8 << 20
	ConnWindowBytes      = 16 << 20
	TransportBufferBytes = 256 << 10
)

// DefaultMaxConcurrentStreams bounds the RPCs of one connection at once
// (grpc-go's own default is unbounded); a client beyond it waits for a
// stream on its side.
const DefaultMaxConcurrentStreams = 256

// Service is a gRPC service to serve: its description and implementation.
type Service struct {
	Desc *grpc.ServiceDesc
	Impl any
}

// Server is pred's gRPC server.
type Server struct {
	grpc     *grpc.Server
	health   *healthService
	log      *zap.Logger
	services []string
}

// Connection lifetime defaults. Clients that resolve pred's address once
// and keep the connection would never see replicas added after they
// connected (compose --scale, a Kubernetes autoscaler): closing each
// connection after a while makes them reconnect and resolve again.
const (
	// DefaultMaxConnectionAge is how long a connection serves before the
	// server asks the client to reconnect (GOAWAY); gRPC adds ±10% jitter.
	DefaultMaxConnectionAge = 5 * time.Minute
	// DefaultMaxConnectionAgeGrace is how long RPCs running at that moment
	// may take to finish before the connection is closed.
	DefaultMaxConnectionAgeGrace = 30 * time.Second
	// minClientPingInterval is the shortest keepalive ping interval a client
	// may use without being disconnected for abuse.
	minClientPingInterval = 10 * time.Second
)

// Options configure a Server.
type Options struct {
	// MaxConnectionAge and MaxConnectionAgeGrace bound a connection's life
	// (see DefaultMaxConnectionAge); 0 means unbounded.
	MaxConnectionAge      time.Duration
	MaxConnectionAgeGrace time.Duration
	// Budget, if set, bounds the request messages in flight: new streams
	// are refused with RESOURCE_EXHAUSTED while it is spent, and each
	// received message is reserved while its handler runs (see
	// inflight.GRPCGuard).
	Budget *inflight.Budget
	// MaxConcurrentStreams bounds the RPCs of one connection at once; 0
	// means DefaultMaxConcurrentStreams.
	MaxConcurrentStreams uint32
	// Extra are further server options, e.g. tracing's stats handler.
	Extra []grpc.ServerOption
}

// New returns a server with the given services registered and the default
// options, every health status NOT_SERVING until SetServing.
func New(log *zap.Logger, services ...Service) *Server {
	return NewWithOptions(log, Options{MaxConnectionAge: DefaultMaxConnectionAge, MaxConnectionAgeGrace: DefaultMaxConnectionAgeGrace}, services...)
}

// NewWithOptions returns a server with the given options and services
// registered, every health status NOT_SERVING until SetServing.
func NewWithOptions(log *zap.Logger, o Options, services ...Service) *Server {
	guard := inflight.NewGRPCGuard(o.Budget, MaxRecvMsgBytes)
	if o.MaxConcurrentStreams == 0 {
		o.MaxConcurrentStreams = DefaultMaxConcurrentStreams
	}
	s := &Server{
		health: &healthService{Server: health.NewServer(), stopping: make(chan struct{})},
		log:    log,
	}
	s.grpc = grpc.NewServer(append([]grpc.ServerOption{
		grpc.MaxRecvMsgSize(MaxRecvMsgBytes),
		grpc.MaxConcurrentStreams(o.MaxConcurrentStreams),
		grpc.InitialWindowSize(StreamWindowBytes), grpc.InitialConnWindowSize(ConnWindowBytes),
		grpc.WriteBufferSize(TransportBufferBytes), grpc.ReadBufferSize(TransportBufferBytes),
		grpc.InTapHandle(guard.Tap),
		grpc.StatsHandler(guard),
		grpc.ChainUnaryInterceptor(guard.Unary),
		grpc.ChainStreamInterceptor(guard.Stream),
		grpc.KeepaliveParams(keepalive.ServerParameters{
			MaxConnectionAge:      o.MaxConnectionAge,
			MaxConnectionAgeGrace: o.MaxConnectionAgeGrace,
		}),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: minClientPingInterval, PermitWithoutStream: true}),
		grpc.ChainUnaryInterceptor(s.unaryInterceptor),
		grpc.ChainStreamInterceptor(s.streamInterceptor),
	}, o.Extra...)...)
	for _, svc := range services {
		s.grpc.RegisterService(svc.Desc, svc.Impl)
		s.services = append(s.services, svc.Desc.ServiceName)
	}
	healthpb.RegisterHealthServer(s.grpc, s.health)
	reflection.Register(s.grpc)
	s.health.SetServingStatus("", healthpb.HealthCheckResponse_NOT_SERVING)
	for _, name := range s.services {
		s.health.SetServingStatus(name, healthpb.HealthCheckResponse_NOT_SERVING)
	}
	return s
}

// Serve accepts connections on lis until Shutdown.
func (s *Server) Serve(lis net.Listener) error { return s.grpc.Serve(lis) }

// SetServing sets the overall health status and that of every registered
// service.
func (s *Server) SetServing(serving bool) {
	st := servingStatus(serving)
	s.health.SetServingStatus("", st)
	for _, name := range s.services {
		s.health.SetServingStatus(name, st)
	}
}

// SetModelServing sets the health status of the service named like a
// model, so that probes can check one model.
func (s *Server) SetModelServing(model string, serving bool) {
	s.health.SetServingStatus(model, servingStatus(serving))
}

func servingStatus(serving bool) healthpb.HealthCheckResponse_ServingStatus {
	if serving {
		return healthpb.HealthCheckResponse_SERVING
	}
	return healthpb.HealthCheckResponse_NOT_SERVING
}

// Shutdown marks every health status NOT_SERVING (ending health watches
// with that news), stops accepting RPCs and waits up to timeout for the
// running ones; then it cancels whatever still runs. It reports whether
// the stop was graceful.
func (s *Server) Shutdown(timeout time.Duration) bool {
	s.health.stop()
	done := make(chan struct{})
	go func() {
		s.grpc.GracefulStop()
		close(done)
	}()
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case <-done:
		return true
	case <-timer.C:
		s.grpc.Stop()
		<-done
		return false
	}
}

// unaryInterceptor gives each RPC its request ID (x-request-id from the
// metadata, or a new one, echoed back in the response header), recovers
// from panics and logs the RPC once it ends: at debug level when it
// succeeded, info for a caller's error, error for a server fault.
func (s *Server) unaryInterceptor(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (resp any, err error) {
	start := time.Now()
	var id string
	if md, ok := metadata.FromIncomingContext(ctx); ok {
		if ids := md.Get(requestlog.MetadataKey); len(ids) > 0 {
			id = ids[0]
		}
	}
	ctx, id = requestlog.NewContext(ctx, id)
	_ = grpc.SetHeader(ctx, metadata.Pairs(requestlog.MetadataKey, id))
	defer func() {
		if p := recover(); p != nil {
			s.log.Error("panic in RPC handler", zap.String("method", info.FullMethod), zap.Any("panic", p),
				zap.ByteString("stack", debug.Stack()), zap.String("request_id", id))
			resp, err = nil, status.Error(codes.Internal, "internal error; see the server log for request "+id)
		}
		code := status.Code(err)
		if ce := s.log.Check(logLevel(code), "rpc"); ce != nil {
			fields := append(requestlog.Fields(ctx),
				zap.String("method", info.FullMethod),
				zap.String("code", code.String()),
				zap.Duration("duration", time.Since(start)))
			if err != nil {
				fields = append(fields, zap.String("error", status.Convert(err).Message()))
			}
			ce.Write(fields...)
		}
	}()
	return handler(ctx, req)
}

// streamInterceptor recovers from panics in streaming handlers (health
// watches, reflection).
func (s *Server) streamInterceptor(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) (err error) {
	defer func() {
		if p := recover(); p != nil {
			s.log.Error("panic in stream handler", zap.String("method", info.FullMethod), zap.Any("panic", p), zap.ByteString("stack", debug.Stack()))
			err = status.Error(codes.Internal, "internal error")
		}
	}()
	return handler(srv, ss)
}

func logLevel(c codes.Code) zapcore.Level {
	switch c {
	case codes.OK:
		return zapcore.DebugLevel
	case codes.Internal, codes.Unknown, codes.DataLoss, codes.Unimplemented:
		return zapcore.ErrorLevel
	default:
		return zapcore.InfoLevel
	}
}

// healthService is grpc-go's health server whose Watch streams end when
// the server stops: GracefulStop waits for every running RPC, and a watch
// would otherwise hold it until the timeout.
type healthService struct {
	*health.Server
	stopping chan struct{}
	stopOnce sync.Once
}

func (h *healthService) stop() {
	h.stopOnce.Do(func() {
		h.Server.Shutdown() // every status NOT_SERVING, watchers notified
		close(h.stopping)
	})
}

// Watch implements grpc.health.v1.Health.Watch. Once the server stops, it
// sends NOT_SERVING as the stream's last message and ends the stream.
func (h *healthService) Watch(req *healthpb.HealthCheckRequest, stream healthpb.Health_WatchServer) error {
	ctx, cancel := context.WithCancel(stream.Context())
	defer cancel()
	go func() {
		select {
		case <-h.stopping:
			cancel()
		case <-ctx.Done():
		}
	}()
	err := h.Server.Watch(req, &watchStream{Health_WatchServer: stream, ctx: ctx})
	select {
	case <-h.stopping:
		if stream.Context().Err() == nil {
			_ = stream.Send(&healthpb.HealthCheckResponse{Status: healthpb.HealthCheckResponse_NOT_SERVING})
			return nil
		}
	default:
	}
	return err
}

// watchStream is a watch stream whose context also ends at shutdown.
type watchStream struct {
	healthpb.Health_WatchServer
	ctx context.Context
}

func (w *watchStream) Context() context.Context { return w.ctx }
