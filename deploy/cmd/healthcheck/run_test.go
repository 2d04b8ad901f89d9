package main

import (
	"bytes"
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// startHealthServer serves grpc.health.v1 on a loopback port with the given
// statuses and returns its address.
func startHealthServer(t *testing.T, statuses map[string]healthpb.HealthCheckResponse_ServingStatus) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := health.NewServer()
	for svc, st := range statuses {
		hs.SetServingStatus(svc, st)
	}
	srv := grpc.NewServer()
	healthpb.RegisterHealthServer(srv, hs)
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)
	return lis.Addr().String()
}

// closedAddr returns a loopback address on which nothing listens.
func closedAddr(t *testing.T) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := lis.Addr().String()
	if err := lis.Close(); err != nil {
		t.Fatal(err)
	}
	return addr
}

// portOnly turns "127.0.0.1:1234" into the listen-style ":1234".
func portOnly(t *testing.T, addr string) string {
	t.Helper()
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	return ":" + port
}

func TestRunGRPC(t *testing.T) {
	serving := startHealthServer(t, map[string]healthpb.HealthCheckResponse_ServingStatus{
		"":        healthpb.HealthCheckResponse_SERVING,
		"loading": healthpb.HealthCheckResponse_NOT_SERVING,
	})
	notServing := startHealthServer(t, map[string]healthpb.HealthCheckResponse_ServingStatus{
		"": healthpb.HealthCheckResponse_NOT_SERVING,
	})
	tests := []struct {
		name    string
		args    []string
		healthy bool
		want    string
	}{
		{"serving", []string{"-grpc", serving}, true, "SERVING"},
		{"listen-style address probes loopback", []string{"-grpc", portOnly(t, serving)}, true, "SERVING"},
		{"unspecified IPv4 host probes loopback", []string{"-grpc", "0.0.0.0" + portOnly(t, serving)}, true, "SERVING"},
		{"unspecified IPv6 host probes loopback", []string{"-grpc", "[::]" + portOnly(t, serving)}, true, "SERVING"},
		{"not serving", []string{"-grpc", notServing}, false, "NOT_SERVING"},
		{"named service not serving", []string{"-grpc", serving, "-service", "loading"}, false, "NOT_SERVING"},
		{"unknown service", []string{"-grpc", serving, "-service", "nope"}, false, "NotFound"},
		{"nothing listening", []string{"-grpc", closedAddr(t), "-timeout", "2s"}, false, "Unavailable"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkRun(t, tt.args, tt.healthy, tt.want)
		})
	}
}

func TestRunHTTP(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /ready", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok")) })
	mux.HandleFunc("GET /notready", func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "model metadata not loaded", http.StatusServiceUnavailable)
	})
	mux.HandleFunc("GET /hang", func(_ http.ResponseWriter, r *http.Request) { <-r.Context().Done() })
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	addr := srv.Listener.Addr().String()

	tests := []struct {
		name    string
		args    []string
		healthy bool
		want    string
	}{
		{"ready", []string{"-http", addr}, true, "200 OK"},
		{"listen-style address probes loopback", []string{"-http", portOnly(t, addr), "-path", "/ready"}, true, "200 OK"},
		{"not ready reports status and body", []string{"-http", addr, "-path", "/notready"}, false, "503 Service Unavailable: model metadata not loaded"},
		{"unknown path", []string{"-http", addr, "-path", "/missing"}, false, "404"},
		{"hung server times out", []string{"-http", addr, "-path", "/hang", "-timeout", "200ms"}, false, "deadline exceeded"},
		{"nothing listening", []string{"-http", closedAddr(t)}, false, "connection refused"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkRun(t, tt.args, tt.healthy, tt.want)
		})
	}
}

func TestRunUsage(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"no target", nil, "exactly one of -grpc and -http"},
		{"two targets", []string{"-grpc", ":1", "-http", ":2"}, "exactly one of -grpc and -http"},
		{"stray argument", []string{"-grpc", ":1", "extra"}, "unexpected arguments"},
		{"unknown flag", []string{"-port", "1"}, "flag provided but not defined"},
		{"address without port", []string{"-grpc", "localhost"}, "missing port"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkRun(t, tt.args, false, tt.want)
		})
	}
}

func checkRun(t *testing.T, args []string, healthy bool, want string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var out bytes.Buffer
	err := run(ctx, args, &out)
	if healthy && err != nil {
		t.Fatalf("run(%q) = %v, want healthy; output:\n%s", args, err, out.String())
	}
	if !healthy && err == nil {
		t.Fatalf("run(%q) succeeded, want unhealthy; output:\n%s", args, out.String())
	}
	if !strings.Contains(out.String(), want) {
		t.Fatalf("run(%q) output %q does not contain %q", args, out.String(), want)
	}
	if healthy != strings.HasPrefix(out.String(), "healthy: ") {
		t.Fatalf("run(%q) output %q: want a line starting with healthy=%v", args, out.String(), healthy)
	}
}
