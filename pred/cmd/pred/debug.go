package main

import (
	"go.uber.org/zap"

	"github.com/prepred/prepred/api/debugserver"
)

// startDebug serves the profiling endpoints on addr, warning when the
// address is reachable beyond loopback.
func startDebug(addr string, log *zap.Logger) (*debugserver.Server, error) {
	s, err := debugserver.Start(addr)
	if err != nil {
		return nil, err
	}
	if s.Public() {
		log.Warn("the profiling endpoints are reachable beyond loopback: keep --debug-addr away from clients", zap.String("debug_addr", s.Addr().String()))
	}
	log.Info("profiling endpoints", zap.String("debug_addr", s.Addr().String()), zap.String("path", "/debug/pprof/"))
	return s, nil
}
