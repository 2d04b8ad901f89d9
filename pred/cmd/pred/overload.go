package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"time"

	"go.uber.org/zap"

	"github.com/prepred/prepred/api/inflight"
	"github.com/prepred/prepred/pred/internal/grpcserver"
	"github.com/prepred/prepred/pred/internal/metrics"
)

// Bounds of the HTTP server besides the in-flight budget.
const (
	// defaultHTTPReadTimeout bounds reading a whole request, body included
	// (a 64 MiB OIP body at about 1 MB/s), so that a slow client holds its
	// share of the budget no longer than this.
	defaultHTTPReadTimeout = 60 * time.Second
	// httpIdleTimeout closes keep-alive connections idle this long.
	httpIdleTimeout = 120 * time.Second
	// maxHeaderBytes bounds a request's headers, which no budget counts.
	maxHeaderBytes = 64 << 10
	// defaultMaxConnections bounds the open connections of each listener.
	defaultMaxConnections = 1024
	// retryAfterSeconds is the Retry-After of an overload refusal.
	retryAfterSeconds = "1"
)

// overloadConfig bounds the memory and connections of requests in flight.
type overloadConfig struct {
	maxInflightBytes         int64
	maxConnections           int
	httpReadTimeout          time.Duration
	grpcMaxConcurrentStreams uint32
}

// overloadFlags are the overload settings as given.
type overloadFlags struct {
	maxInflightBytes, maxConnections, httpReadTimeout, grpcMaxConcurrentStreams string
}

// overloadFlagDefaults are the defaults of overloadFlags.
func overloadFlagDefaults() overloadFlags {
	return overloadFlags{
		maxInflightBytes:         strconv.FormatInt(inflight.DefaultLimit(), 10),
		maxConnections:           strconv.Itoa(defaultMaxConnections),
		httpReadTimeout:          defaultHTTPReadTimeout.String(),
		grpcMaxConcurrentStreams: strconv.Itoa(grpcserver.DefaultMaxConcurrentStreams),
	}
}

func (f overloadFlags) parse() (overloadConfig, error) {
	var c overloadConfig
	var errs []error
	n, err := strconv.ParseInt(f.maxInflightBytes, 10, 64)
	if err != nil || n <= 0 {
		errs = append(errs, fmt.Errorf("--max-inflight-bytes %q: want a positive number of bytes", f.maxInflightBytes))
	}
	c.maxInflightBytes = n
	if c.maxConnections, err = strconv.Atoi(f.maxConnections); err != nil || c.maxConnections < 0 {
		errs = append(errs, fmt.Errorf("--max-connections %q: want a whole number, 0 for no limit", f.maxConnections))
	}
	if c.httpReadTimeout, err = time.ParseDuration(f.httpReadTimeout); err != nil || c.httpReadTimeout <= 0 {
		errs = append(errs, fmt.Errorf("--http-read-timeout %q: want a positive duration such as 60s", f.httpReadTimeout))
	}
	streams, err := strconv.ParseUint(f.grpcMaxConcurrentStreams, 10, 32)
	if err != nil || streams == 0 {
		errs = append(errs, fmt.Errorf("--grpc-max-concurrent-streams %q: want a positive whole number", f.grpcMaxConcurrentStreams))
	}
	c.grpcMaxConcurrentStreams = uint32(streams)
	return c, errors.Join(errs...)
}

// guardListeners caps the open connections of both listeners and reports
// them, the budget and the reclaimer's returns in m. httpTLS says the HTTP listener serves TLS, so
// that a refused connection is closed without a plaintext answer.
func guardListeners(cfg overloadConfig, log *zap.Logger, m *metrics.Metrics, budget *inflight.Budget, reclaimer *inflight.Reclaimer, grpcLis, httpLis net.Listener, httpTLS bool) (net.Listener, net.Listener) {
	onRefused := func(listener string) func(int64) {
		return func(n int64) {
			log.Warn("connections refused: the listener has its maximum open", zap.String("listener", listener), zap.Int64("refused", n), zap.Int("max_connections", cfg.maxConnections))
		}
	}
	// gRPC clients get the connection closed (they retry with backoff); a
	// plaintext HTTP client gets a 503 first.
	g := inflight.Limit(grpcLis, cfg.maxConnections, inflight.ListenerOptions{OnRefused: onRefused("grpc")})
	refusal := inflight.HTTPRefusal(cfg.maxConnections)
	if httpTLS {
		refusal = nil
	}
	h := inflight.Limit(httpLis, cfg.maxConnections, inflight.ListenerOptions{Refusal: refusal, OnRefused: onRefused("http")})
	m.RegisterOverload(metrics.Overload{
		Budgets:   map[string]*inflight.Budget{"requests": budget},
		Listeners: map[string]*inflight.Listener{"grpc": g, "http": h},
		Reclaimer: reclaimer,
	})
	return g, h
}

// refuseHTTP answers an HTTP request the budget refused in the Open
// Inference Protocol's error format, {"error": "<message>"}.
func refuseHTTP(w http.ResponseWriter, _ *http.Request, status int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	if status == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", retryAfterSeconds)
	}
	w.WriteHeader(status)
	body, _ := json.Marshal(map[string]string{"error": msg})
	_, _ = w.Write(body)
}
