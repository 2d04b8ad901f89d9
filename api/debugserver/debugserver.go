// Package debugserver serves Go's profiling endpoints (net/http/pprof) on
// a listener of their own, apart from a service's API: profiles reveal
// the code and cost CPU while they are taken, so they are off unless an
// address is given, and that address should be loopback or otherwise
// reachable by operators only.
package debugserver

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
	"time"

	"go.uber.org/zap"
)

// Timeouts of the debug listener. A CPU profile or trace streams for the
// ?seconds= its request asks for (30 s by default), so writes may take
// that long and more.
const (
	readHeaderTimeout = 10 * time.Second
	writeTimeout      = 5 * time.Minute
	shutdownTimeout   = 5 * time.Second
)

// Handler is the debug API: /debug/pprof/ (the index and every runtime
// profile: heap, goroutine, allocs, block, mutex, threadcreate), and
// /debug/pprof/profile (CPU), /trace, /cmdline, /symbol.
func Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return mux
}

// Server is a running debug listener.
type Server struct {
	srv  *http.Server
	ln   net.Listener
	done chan error
}

// Start listens on addr and serves Handler until Close, and logs where,
// with a warning when the address is reachable beyond loopback.
func Start(addr string, log *zap.Logger) (*Server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("debug listener on %s: %w", addr, err)
	}
	s := &Server{
		srv:  &http.Server{Handler: Handler(), ReadHeaderTimeout: readHeaderTimeout, WriteTimeout: writeTimeout},
		ln:   ln,
		done: make(chan error, 1),
	}
	go func() { s.done <- s.srv.Serve(ln) }()
	if s.Public() {
		log.Warn("the profiling endpoints are reachable beyond loopback: keep --debug-addr away from clients", zap.String("debug_addr", s.Addr().String()))
	}
	log.Info("profiling endpoints", zap.String("debug_addr", s.Addr().String()), zap.String("path", "/debug/pprof/"))
	return s, nil
}

// Addr is the address the listener is bound to.
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// Public reports whether the listener is reachable beyond loopback, which
// a service should warn about.
func (s *Server) Public() bool {
	tcp, ok := s.ln.Addr().(*net.TCPAddr)
	return ok && !tcp.IP.IsLoopback()
}

// Close stops the listener, letting requests in flight finish for a few
// seconds (a profile being taken is cut off after that).
func (s *Server) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	err := s.srv.Shutdown(ctx)
	if err != nil {
		err = errors.Join(err, s.srv.Close())
	}
	if serveErr := <-s.done; !errors.Is(serveErr, http.ErrServerClosed) {
		err = errors.Join(err, serveErr)
	}
	return err
}
