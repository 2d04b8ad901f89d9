package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	predv1 "github.com/prepred/prepred/api/gen/prepred/pred/v1"
	"github.com/prepred/prepred/pred/internal/grpcserver"
	"github.com/prepred/prepred/pred/internal/httpapi"
	"github.com/prepred/prepred/pred/internal/metrics"
	"github.com/prepred/prepred/pred/internal/ortrt"
	"github.com/prepred/prepred/pred/internal/predservice"
	"github.com/prepred/prepred/pred/internal/registry"
)

// Shutdown bounds. Kubernetes sends SIGKILL 30 s after SIGTERM by default;
// together these stay below that.
const (
	// gracefulStopTimeout is how long in-flight RPCs may run after SIGTERM
	// before they are cancelled.
	gracefulStopTimeout = 20 * time.Second
	// httpShutdownTimeout bounds the HTTP server's drain.
	httpShutdownTimeout = 2 * time.Second
	// sessionCloseTimeout bounds the wait for cancelled inferences to leave
	// ONNX Runtime before the sessions are closed.
	sessionCloseTimeout = 5 * time.Second
)

// readHeaderTimeout bounds how long a client may take to send request
// headers to the HTTP server.
const readHeaderTimeout = 10 * time.Second

// projectORTLibrary is where scripts/install-onnxruntime.sh puts the ONNX
// Runtime library, relative to the repository root.
const projectORTLibrary = ".cache/onnxruntime/1.24.3/libonnxruntime.so.1"

// systemORTLibrary is the library name the system loader resolves.
const systemORTLibrary = "libonnxruntime.so.1"

type config struct {
	grpcAddr  string
	httpAddr  string
	modelRepo string
	ortLib    string
	logLevel  zapcore.Level
}

// parseConfig reads flags, each of which has an environment variable:
// an explicit flag wins, the variable overrides the default.
func parseConfig(args []string, getenv func(string) string, usage io.Writer) (config, error) {
	defaultLib := systemORTLibrary
	if _, err := os.Stat(projectORTLibrary); err == nil {
		defaultLib = projectORTLibrary
	}
	var c config
	var level string
	fs := flag.NewFlagSet("pred", flag.ContinueOnError)
	fs.SetOutput(usage)
	flags := []struct {
		dst       *string
		name, env string
		def, help string
	}{
		{&c.grpcAddr, "grpc-addr", "PRED_GRPC_ADDR", ":50051", "gRPC listen address"},
		{&c.httpAddr, "http-addr", "PRED_HTTP_ADDR", ":8001", "HTTP listen address (health, metrics)"},
		{&c.modelRepo, "model-repository", "PRED_MODEL_REPOSITORY", "models", "model repository directory"},
		{&c.ortLib, "ort-lib", "ONNXRUNTIME_LIB", defaultLib, "ONNX Runtime shared library (default: " + projectORTLibrary + " if present, else " + systemORTLibrary + " from the system loader)"},
		{&level, "log-level", "PRED_LOG_LEVEL", "info", "log level: debug, info, warn or error"},
	}
	for _, f := range flags {
		fs.StringVar(f.dst, f.name, f.def, f.help+" (env "+f.env+")")
	}
	for _, f := range flags {
		if v := getenv(f.env); v != "" {
			if err := fs.Set(f.name, v); err != nil {
				return c, fmt.Errorf("%s: %w", f.env, err)
			}
		}
	}
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	lvl, err := zapcore.ParseLevel(level)
	if err != nil {
		return c, fmt.Errorf("log level: %w", err)
	}
	c.logLevel = lvl
	return c, nil
}

// newLogger logs production-style JSON to w.
func newLogger(w io.Writer, level zapcore.Level) *zap.Logger {
	sink := zapcore.Lock(zapcore.AddSync(w))
	core := zapcore.NewCore(zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig()), sink, level)
	// As zap's production config: per second and message, log the first
	// 100 entries, then every 100th.
	core = zapcore.NewSamplerWithOptions(core, time.Second, 100, 100)
	return zap.New(core, zap.AddCaller(), zap.ErrorOutput(sink))
}

// run starts pred and serves until ctx is cancelled, then shuts down
// gracefully and returns nil. It returns an error if pred cannot start or a
// server fails.
func run(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	cfg, err := parseConfig(args, getenv, stdout)
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	if err != nil {
		return err
	}
	log := newLogger(stdout, cfg.logLevel)
	defer log.Sync()

	if info, err := os.Stat(cfg.modelRepo); err != nil {
		return fmt.Errorf("model repository: %w", err)
	} else if !info.IsDir() {
		return fmt.Errorf("model repository %s is not a directory", cfg.modelRepo)
	}
	rt, err := ortrt.New(cfg.ortLib)
	if err != nil {
		return err
	}
	log.Info("onnx runtime loaded", zap.String("version", rt.Version()), zap.String("library", cfg.ortLib))

	runErr := serve(ctx, cfg, log, rt)
	if err := rt.Close(); err != nil {
		return errors.Join(runErr, err)
	}
	if runErr == nil {
		log.Info("stopped")
	}
	return runErr
}

// serve runs the servers on rt until ctx is cancelled or a server fails,
// and leaves no session open when it returns without error.
func serve(ctx context.Context, cfg config, log *zap.Logger, rt *ortrt.Runtime) error {
	m := metrics.New()
	var ready atomic.Bool
	var grpcSrv *grpcserver.Server
	reg := registry.New(rt, registry.Options{
		Logger:       log,
		OnModelState: func(model string, ok bool) { grpcSrv.SetModelServing(model, ok) },
	})
	grpcSrv = grpcserver.New(log, grpcserver.Service{Desc: &predv1.PredService_ServiceDesc, Impl: predservice.New(reg, m)})
	httpSrv := &http.Server{
		Handler:           httpapi.Handler(httpapi.Options{Ready: ready.Load, Gatherer: m.Registry}),
		ReadHeaderTimeout: readHeaderTimeout,
	}

	grpcLis, err := net.Listen("tcp", cfg.grpcAddr)
	if err != nil {
		return fmt.Errorf("grpc listen: %w", err)
	}
	httpLis, err := net.Listen("tcp", cfg.httpAddr)
	if err != nil {
		grpcLis.Close()
		return fmt.Errorf("http listen: %w", err)
	}
	serveErr := make(chan error, 2)
	go func() {
		if err := grpcSrv.Serve(grpcLis); err != nil {
			serveErr <- fmt.Errorf("grpc server: %w", err)
		}
	}()
	go func() {
		if err := httpSrv.Serve(httpLis); !errors.Is(err, http.ErrServerClosed) {
			serveErr <- fmt.Errorf("http server: %w", err)
		}
	}()
	log.Info("listening", zap.String("grpc_addr", grpcLis.Addr().String()), zap.String("http_addr", httpLis.Addr().String()))

	var runErr error
	if err := reg.Load(ctx, cfg.modelRepo); err != nil {
		runErr = err
	} else if ctx.Err() == nil {
		grpcSrv.SetServing(true)
		ready.Store(true)
		log.Info("serving", zap.Any("models", reg.List()))
		select {
		case <-ctx.Done():
		case runErr = <-serveErr:
		}
	}

	log.Info("shutting down")
	ready.Store(false)
	if !grpcSrv.Shutdown(gracefulStopTimeout) {
		log.Warn("graceful stop timed out; cancelled the remaining RPCs", zap.Duration("timeout", gracefulStopTimeout))
	}
	httpCtx, cancel := context.WithTimeout(context.Background(), httpShutdownTimeout)
	defer cancel()
	if err := httpSrv.Shutdown(httpCtx); err != nil {
		httpSrv.Close()
	}
	closeCtx, cancelClose := context.WithTimeout(context.Background(), sessionCloseTimeout)
	defer cancelClose()
	if err := reg.Close(closeCtx); err != nil {
		return errors.Join(runErr, err)
	}
	return runErr
}
