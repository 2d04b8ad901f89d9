package grpcserver

import (
	"context"
	"errors"
	"io"
	"net"
	"slices"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	reflectionpb "google.golang.org/grpc/reflection/grpc_reflection_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/emptypb"

	predv1 "github.com/prepred/prepred/api/gen/prepred/pred/v1"
)

// panicService is a one-method service whose handler panics.
var panicService = &grpc.ServiceDesc{
	ServiceName: "test.Panicker",
	HandlerType: (*any)(nil),
	Methods: []grpc.MethodDesc{{
		MethodName: "Panic",
		Handler: func(srv any, ctx context.Context, dec func(any) error, interceptor grpc.UnaryServerInterceptor) (any, error) {
			in := new(emptypb.Empty)
			if err := dec(in); err != nil {
				return nil, err
			}
			handler := func(context.Context, any) (any, error) { panic("boom") }
			return interceptor(ctx, in, &grpc.UnaryServerInfo{Server: srv, FullMethod: "/test.Panicker/Panic"}, handler)
		},
	}},
}

type testServer struct {
	srv  *Server
	conn *grpc.ClientConn
	logs *observer.ObservedLogs
}

func start(t *testing.T) *testServer {
	t.Helper()
	core, logs := observer.New(zapcore.DebugLevel)
	srv := New(zap.New(core),
		Service{Desc: &predv1.PredService_ServiceDesc, Impl: predv1.UnimplementedPredServiceServer{}},
		Service{Desc: panicService, Impl: struct{}{}},
	)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(lis) }()
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		conn.Close()
		srv.Shutdown(time.Second)
		if err := <-served; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return &testServer{srv: srv, conn: conn, logs: logs}
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func check(t *testing.T, c healthpb.HealthClient, service string) healthpb.HealthCheckResponse_ServingStatus {
	t.Helper()
	resp, err := c.Check(testCtx(t), &healthpb.HealthCheckRequest{Service: service})
	if status.Code(err) == codes.NotFound {
		return healthpb.HealthCheckResponse_SERVICE_UNKNOWN
	}
	if err != nil {
		t.Fatalf("Check(%q): %v", service, err)
	}
	return resp.GetStatus()
}

// watch collects the statuses a Watch stream sends until it ends.
func watch(t *testing.T, c healthpb.HealthClient, service string) (<-chan healthpb.HealthCheckResponse_ServingStatus, <-chan error) {
	t.Helper()
	stream, err := c.Watch(testCtx(t), &healthpb.HealthCheckRequest{Service: service})
	if err != nil {
		t.Fatal(err)
	}
	updates := make(chan healthpb.HealthCheckResponse_ServingStatus, 16)
	end := make(chan error, 1)
	go func() {
		for {
			resp, err := stream.Recv()
			if err != nil {
				end <- err
				return
			}
			updates <- resp.GetStatus()
		}
	}()
	return updates, end
}

func next(t *testing.T, updates <-chan healthpb.HealthCheckResponse_ServingStatus) healthpb.HealthCheckResponse_ServingStatus {
	t.Helper()
	select {
	case s := <-updates:
		return s
	case <-time.After(10 * time.Second):
		t.Fatal("no health update")
		return 0
	}
}

func TestHealthLifecycle(t *testing.T) {
	ts := start(t)
	c := healthpb.NewHealthClient(ts.conn)
	const (
		serving    = healthpb.HealthCheckResponse_SERVING
		notServing = healthpb.HealthCheckResponse_NOT_SERVING
		unknown    = healthpb.HealthCheckResponse_SERVICE_UNKNOWN
	)
	for _, svc := range []string{"", "prepred.pred.v1.PredService"} {
		if got := check(t, c, svc); got != notServing {
			t.Errorf("before SetServing: Check(%q) = %v, want NOT_SERVING", svc, got)
		}
	}
	overall, overallEnd := watch(t, c, "")
	if got := next(t, overall); got != notServing {
		t.Fatalf("first watched status %v, want NOT_SERVING", got)
	}

	ts.srv.SetModelServing("colors", false)
	ts.srv.SetServing(true)
	if got := next(t, overall); got != serving {
		t.Fatalf("watched status after SetServing %v, want SERVING", got)
	}
	if got := check(t, c, "prepred.pred.v1.PredService"); got != serving {
		t.Errorf("Check(PredService) = %v, want SERVING", got)
	}
	if got := check(t, c, "colors"); got != notServing {
		t.Errorf("Check(colors) = %v, want NOT_SERVING", got)
	}
	ts.srv.SetModelServing("colors", true)
	if got := check(t, c, "colors"); got != serving {
		t.Errorf("Check(colors) = %v, want SERVING", got)
	}
	if got := check(t, c, "nosuch"); got != unknown {
		t.Errorf("Check(nosuch) = %v, want NotFound", got)
	}
	model, modelEnd := watch(t, c, "colors")
	if got := next(t, model); got != serving {
		t.Fatalf("watched colors status %v, want SERVING", got)
	}
	other, otherEnd := watch(t, c, "nosuch")
	if got := next(t, other); got != unknown {
		t.Fatalf("watched nosuch status %v, want SERVICE_UNKNOWN", got)
	}

	// Shutdown tells every watcher NOT_SERVING and ends their streams, so
	// the graceful stop does not wait for them.
	start := time.Now()
	if !ts.srv.Shutdown(20 * time.Second) {
		t.Errorf("Shutdown was not graceful (took %v): open watches held it", time.Since(start))
	}
	for name, w := range map[string]struct {
		updates <-chan healthpb.HealthCheckResponse_ServingStatus
		end     <-chan error
	}{"overall": {overall, overallEnd}, "colors": {model, modelEnd}, "nosuch": {other, otherEnd}} {
		var last healthpb.HealthCheckResponse_ServingStatus
		var err error
	drain:
		for {
			select {
			case s := <-w.updates:
				last = s
			case err = <-w.end:
				break drain
			}
		}
		for len(w.updates) > 0 {
			last = <-w.updates
		}
		if last != notServing {
			t.Errorf("%s watch: last status %v, want NOT_SERVING", name, last)
		}
		if !errors.Is(err, io.EOF) {
			t.Errorf("%s watch ended with %v, want a clean end", name, err)
		}
	}
}

func TestReflectionListsServices(t *testing.T) {
	ts := start(t)
	stream, err := reflectionpb.NewServerReflectionClient(ts.conn).ServerReflectionInfo(testCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.Send(&reflectionpb.ServerReflectionRequest{MessageRequest: &reflectionpb.ServerReflectionRequest_ListServices{}}); err != nil {
		t.Fatal(err)
	}
	resp, err := stream.Recv()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, s := range resp.GetListServicesResponse().GetService() {
		names = append(names, s.GetName())
	}
	for _, want := range []string{"prepred.pred.v1.PredService", "grpc.health.v1.Health", "grpc.reflection.v1.ServerReflection"} {
		if !slices.Contains(names, want) {
			t.Errorf("reflection lists %v, missing %s", names, want)
		}
	}
	// The service's descriptors resolve, so grpcurl can build requests.
	if err := stream.Send(&reflectionpb.ServerReflectionRequest{MessageRequest: &reflectionpb.ServerReflectionRequest_FileContainingSymbol{
		FileContainingSymbol: "prepred.pred.v1.PredService",
	}}); err != nil {
		t.Fatal(err)
	}
	if resp, err := stream.Recv(); err != nil || len(resp.GetFileDescriptorResponse().GetFileDescriptorProto()) == 0 {
		t.Errorf("file containing PredService: %v, %v", resp, err)
	}
}

func TestRequestIDAndLogging(t *testing.T) {
	ts := start(t)
	client := predv1.NewPredServiceClient(ts.conn)

	var header metadata.MD
	ctx := metadata.AppendToOutgoingContext(testCtx(t), "x-request-id", "abc-123")
	_, err := client.ListModels(ctx, &predv1.ListModelsRequest{}, grpc.Header(&header))
	if status.Code(err) != codes.Unimplemented {
		t.Fatalf("ListModels = %v, want Unimplemented", err)
	}
	if got := header.Get("x-request-id"); !slices.Equal(got, []string{"abc-123"}) {
		t.Errorf("x-request-id header = %v, want [abc-123]", got)
	}
	entries := ts.logs.FilterField(zap.String("request_id", "abc-123")).All()
	if len(entries) != 1 || entries[0].Level != zapcore.ErrorLevel || entries[0].ContextMap()["code"] != "Unimplemented" {
		t.Errorf("log entries for the request = %+v", entries)
	}

	// A missing or unusable ID is replaced with a fresh one.
	for _, id := range []string{"", "bad id with spaces"} {
		header = nil
		ctx := testCtx(t)
		if id != "" {
			ctx = metadata.AppendToOutgoingContext(ctx, "x-request-id", id)
		}
		client.ListModels(ctx, &predv1.ListModelsRequest{}, grpc.Header(&header))
		got := header.Get("x-request-id")
		if len(got) != 1 || len(got[0]) != 32 {
			t.Errorf("request ID %q: header %v, want a fresh 32-character ID", id, got)
		}
	}
}

func TestPanicBecomesInternal(t *testing.T) {
	ts := start(t)
	err := ts.conn.Invoke(testCtx(t), "/test.Panicker/Panic", &emptypb.Empty{}, &emptypb.Empty{})
	if status.Code(err) != codes.Internal {
		t.Fatalf("Invoke = %v, want Internal", err)
	}
	if n := len(ts.logs.FilterMessage("panic in RPC handler").All()); n != 1 {
		t.Errorf("%d panic log entries, want 1", n)
	}
	// The server survived.
	if _, err := healthpb.NewHealthClient(ts.conn).Check(testCtx(t), &healthpb.HealthCheckRequest{}); err != nil {
		t.Errorf("Check after the panic: %v", err)
	}
}

// countingListener counts the connections it accepts.
type countingListener struct {
	net.Listener
	accepted chan struct{}
}

func (l *countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.accepted <- struct{}{}
	}
	return c, err
}

// TestMaxConnectionAgeMakesClientsReconnect: the server ends a connection
// once it reaches its maximum age, and the client's next RPC opens a new
// one (where it would find new replicas behind the address).
func TestMaxConnectionAgeMakesClientsReconnect(t *testing.T) {
	srv := NewWithOptions(zap.NewNop(), Options{MaxConnectionAge: 50 * time.Millisecond, MaxConnectionAgeGrace: 50 * time.Millisecond})
	srv.SetServing(true)
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	lis := &countingListener{Listener: inner, accepted: make(chan struct{}, 10)}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(lis) }()
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		conn.Close()
		srv.Shutdown(time.Second)
		if err := <-served; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	health := healthpb.NewHealthClient(conn)
	if s := check(t, health, ""); s != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("status %v", s)
	}
	<-lis.accepted
	ctx := testCtx(t)
	for conn.GetState() == connectivity.Ready {
		if !conn.WaitForStateChange(ctx, connectivity.Ready) {
			t.Fatal("the connection outlived its maximum age")
		}
	}
	if s := check(t, health, ""); s != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("status after reconnecting %v", s)
	}
	select {
	case <-lis.accepted:
	case <-ctx.Done():
		t.Fatal("the client did not open a new connection")
	}
}
