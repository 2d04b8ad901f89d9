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
	"strconv"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/prepred/prepred/api/debugserver"
	inferencepb "github.com/prepred/prepred/api/gen/inference"
	ortserverpb "github.com/prepred/prepred/api/gen/onnxruntime/server"
	predv1 "github.com/prepred/prepred/api/gen/prepred/pred/v1"
	"github.com/prepred/prepred/api/inflight"
	"github.com/prepred/prepred/api/otelsetup"
	"github.com/prepred/prepred/pred/internal/grpcserver"
	"github.com/prepred/prepred/pred/internal/httpapi"
	"github.com/prepred/prepred/pred/internal/infer"
	"github.com/prepred/prepred/pred/internal/management"
	"github.com/prepred/prepred/pred/internal/metrics"
	"github.com/prepred/prepred/pred/internal/oip"
	"github.com/prepred/prepred/pred/internal/oiprest"
	"github.com/prepred/prepred/pred/internal/ortrt"
	"github.com/prepred/prepred/pred/internal/ortserver"
	"github.com/prepred/prepred/pred/internal/predservice"
	"github.com/prepred/prepred/pred/internal/registry"
	"github.com/prepred/prepred/pred/internal/repository"
	"github.com/prepred/prepred/pred/internal/tracing"
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
	// defaultModel is the model ONNX Runtime Server requests run when
	// they name none; empty means the only model served.
	defaultModel string
	serving      servingConfig
	overload     overloadConfig
	tls          tlsFiles
	// debugAddr, if set, serves Go's profiling endpoints.
	debugAddr string
}

// servingConfig holds the settings of model lifecycle, batching,
// execution and connection management.
type servingConfig struct {
	// pollInterval is how often the model repository is re-read; 0 never.
	pollInterval time.Duration
	// managementAPI enables the repository API (/v2/repository/...);
	// managementToken, if set, is the bearer token it requires.
	managementAPI   bool
	managementToken string
	// instanceCount is the number of concurrent executions per model
	// version; maxQueueSize the queue bound of models whose config has none.
	instanceCount int
	maxQueueSize  int
	// executionProvider is the default of models whose config names none;
	// cudaFallback says what happens when CUDA is asked for but missing.
	executionProvider string
	cudaFallback      string
	// maxConnectionAge bounds a gRPC connection's life (0: unbounded).
	maxConnectionAge time.Duration
}

// Limits of the serving flags.
const (
	// maxQueueSizeLimit bounds --max-queue-size: a queue this long already
	// holds minutes of ResNet-50 work.
	maxQueueSizeLimit = 1 << 16
)

// parseConfig reads flags, each of which has an environment variable:
// an explicit flag wins, the variable overrides the default.
func parseConfig(args []string, getenv func(string) string, usage io.Writer) (config, error) {
	defaultLib := systemORTLibrary
	if _, err := os.Stat(projectORTLibrary); err == nil {
		defaultLib = projectORTLibrary
	}
	var c config
	var level string
	var serving servingFlags
	over := overloadFlagDefaults()
	fs := flag.NewFlagSet("pred", flag.ContinueOnError)
	fs.SetOutput(usage)
	flags := []struct {
		dst       *string
		name, env string
		def, help string
	}{
		{&c.grpcAddr, "grpc-addr", "PRED_GRPC_ADDR", ":50051", "gRPC listen address"},
		{&c.httpAddr, "http-addr", "PRED_HTTP_ADDR", ":8001", "HTTP listen address (health, metrics, Open Inference Protocol and ONNX Runtime Server REST)"},
		{&c.modelRepo, "model-repository", "PRED_MODEL_REPOSITORY", "models", "model repository directory"},
		{&c.ortLib, "ort-lib", "ONNXRUNTIME_LIB", defaultLib, "ONNX Runtime shared library (default: " + projectORTLibrary + " if present, else " + systemORTLibrary + " from the system loader)"},
		{&level, "log-level", "PRED_LOG_LEVEL", "info", "log level: debug, info, warn or error"},
		{&c.debugAddr, "debug-addr", "PRED_DEBUG_ADDR", "", "address of a listener of its own for Go's profiling endpoints, /debug/pprof/ (e.g. 127.0.0.1:6061; empty: none). Keep it reachable by operators only"},
		{&c.defaultModel, "default-model", "PRED_DEFAULT_MODEL", "", "model that ONNX Runtime Server protocol requests naming none run (default: the only model served)"},
		{&serving.pollInterval, "repository-poll-interval", "PRED_REPOSITORY_POLL_INTERVAL", "0s", "re-read the model repository this often and load, replace or unload what changed (0: never)"},
		{&serving.managementToken, "management-token", "PRED_MANAGEMENT_TOKEN", "", "bearer token the repository API requires; without one it answers only loopback callers (prefer the variable: a flag shows in the process list)"},
		{&serving.instanceCount, "instance-count", "PRED_INSTANCE_COUNT", "1", "executions of one model version that may run at once, for models whose config sets no instance_count"},
		{&serving.maxQueueSize, "max-queue-size", "PRED_MAX_QUEUE_SIZE", strconv.Itoa(registry.DefaultMaxQueueSize), "queue bound of model versions whose config sets no dynamic_batching.max_queue_size; beyond it requests fail with RESOURCE_EXHAUSTED"},
		{&serving.executionProvider, "execution-provider", "PRED_EXECUTION_PROVIDER", "cpu", "execution provider of models whose config names none: cpu, cuda or tensorrt"},
		{&serving.cudaFallback, "cuda-fallback", "PRED_CUDA_FALLBACK", registry.FallbackCPU, "when a model asks for cuda or tensorrt and ONNX Runtime cannot provide it: cpu (log a warning, run on the CPU) or fail (the model version is UNAVAILABLE)"},
		{&serving.maxConnectionAge, "grpc-max-connection-age", "PRED_GRPC_MAX_CONNECTION_AGE", grpcserver.DefaultMaxConnectionAge.String(), "close gRPC connections after this long, so clients reconnect and find new replicas (0: never)"},
		{&over.maxInflightBytes, "max-inflight-bytes", "PRED_MAX_INFLIGHT_BYTES", over.maxInflightBytes, "memory all requests in flight may hold, in bytes (HTTP bodies reserved by Content-Length before they are read, received gRPC messages); beyond it HTTP requests get 503 and gRPC calls RESOURCE_EXHAUSTED at once (default: 1/8 of the cgroup or machine memory, 64 MiB to 2 GiB)"},
		{&over.maxConnections, "max-connections", "PRED_MAX_CONNECTIONS", over.maxConnections, "most open connections of each listener (gRPC, HTTP); beyond it new ones are closed at once, HTTP ones after a 503 (0: no limit)"},
		{&over.httpReadTimeout, "http-read-timeout", "PRED_HTTP_READ_TIMEOUT", over.httpReadTimeout, "time an HTTP client has to send a whole request, body included"},
		{&over.grpcMaxConcurrentStreams, "grpc-max-concurrent-streams", "PRED_GRPC_MAX_CONCURRENT_STREAMS", over.grpcMaxConcurrentStreams, "most RPCs of one gRPC connection at once; a client beyond it waits for a stream"},
		{&c.tls.certFile, "tls-cert-file", "PRED_TLS_CERT_FILE", "", "PEM certificate (chain) to serve gRPC and HTTP over TLS with; re-read when it changes"},
		{&c.tls.keyFile, "tls-key-file", "PRED_TLS_KEY_FILE", "", "PEM private key of --tls-cert-file"},
		{&c.tls.clientCAFile, "tls-client-ca-file", "PRED_TLS_CLIENT_CA_FILE", "", "PEM bundle of the CAs whose client certificates pred accepts; set, every call needs a verified client certificate (mTLS), but /v2/health/live, /v2/health/ready and /metrics on the HTTP port"},
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
	serving.managementAPI = "false"
	if v := getenv("PRED_MANAGEMENT_API"); v != "" {
		serving.managementAPI = v
	}
	fs.Var(boolFlag{&serving.managementAPI}, "management-api", "serve the model repository API (POST /v2/repository/index, /v2/repository/models/{model}/load and /unload) on the HTTP port, and Triton's RepositoryIndex, RepositoryModelLoad and RepositoryModelUnload on the gRPC port (env PRED_MANAGEMENT_API)")
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
	if c.serving, err = serving.parse(); err != nil {
		return c, err
	}
	if c.overload, err = over.parse(); err != nil {
		return c, err
	}
	if err := c.tls.check(); err != nil {
		return c, err
	}
	return c, nil
}

// boolFlag is a flag holding "true" or "false" that may be given bare
// (--management-api); parse checks the value.
type boolFlag struct{ s *string }

func (b boolFlag) String() string {
	if b.s == nil {
		return "false"
	}
	return *b.s
}

func (b boolFlag) Set(v string) error { *b.s = v; return nil }
func (b boolFlag) IsBoolFlag() bool   { return true }

// servingFlags are the serving settings as given.
type servingFlags struct {
	pollInterval, managementAPI, managementToken, instanceCount, maxQueueSize,
	executionProvider, cudaFallback, maxConnectionAge string
}

func (f servingFlags) parse() (servingConfig, error) {
	c := servingConfig{managementToken: f.managementToken, executionProvider: f.executionProvider, cudaFallback: f.cudaFallback}
	var errs []error
	duration := func(name, v string) time.Duration {
		d, err := time.ParseDuration(v)
		if err != nil || d < 0 {
			errs = append(errs, fmt.Errorf("--%s %q: want a duration such as 30s, 0 to turn it off", name, v))
		}
		return d
	}
	count := func(name, v string, lo, hi int) int {
		n, err := strconv.Atoi(v)
		if err != nil || n < lo || n > hi {
			errs = append(errs, fmt.Errorf("--%s %q: want a whole number in [%d, %d]", name, v, lo, hi))
		}
		return n
	}
	c.pollInterval = duration("repository-poll-interval", f.pollInterval)
	c.maxConnectionAge = duration("grpc-max-connection-age", f.maxConnectionAge)
	c.instanceCount = count("instance-count", f.instanceCount, 1, repository.MaxInstanceCount)
	c.maxQueueSize = count("max-queue-size", f.maxQueueSize, 1, maxQueueSizeLimit)
	var err error
	if c.managementAPI, err = strconv.ParseBool(f.managementAPI); err != nil {
		errs = append(errs, fmt.Errorf("--management-api %q: want true or false", f.managementAPI))
	}
	if c.executionProvider != "cpu" && !ortrt.IsGPU(c.executionProvider) {
		errs = append(errs, fmt.Errorf("--execution-provider %q: want cpu, cuda or tensorrt", c.executionProvider))
	}
	if c.cudaFallback != registry.FallbackCPU && c.cudaFallback != registry.FallbackFail {
		errs = append(errs, fmt.Errorf("--cuda-fallback %q: want %s or %s", c.cudaFallback, registry.FallbackCPU, registry.FallbackFail))
	}
	return c, errors.Join(errs...)
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
	if mallocConfigured {
		log.Debug("C allocator", zap.Int("malloc_arenas", mallocArenas), zap.Int("malloc_trim_threshold_bytes", mallocTrimBytes))
	}

	traces, err := otelsetup.Start(ctx, getenv, "pred", func(err error) { log.Warn("opentelemetry", zap.Error(err)) })
	if err != nil {
		return errors.Join(err, rt.Close())
	}
	logTracing(log, traces)
	runErr := serve(ctx, cfg, log, rt, tracing.New(traces))
	if err := traces.Close(); err != nil {
		log.Warn("tracing", zap.Error(err))
	}
	if err := rt.Close(); err != nil {
		return errors.Join(runErr, err)
	}
	if runErr == nil {
		log.Info("stopped")
	}
	return runErr
}

// logTracing logs where traces go, when they do.
func logTracing(log *zap.Logger, p *otelsetup.Provider) {
	if !p.Enabled() {
		return
	}
	c := p.Config()
	log.Info("tracing", zap.String("otlp_endpoint", c.Endpoint), zap.String("otlp_protocol", c.Protocol),
		zap.String("sampler", c.SamplerName), zap.String("service_name", c.ServiceName))
}

// serve runs the servers on rt until ctx is cancelled or a server fails,
// and leaves no session open when it returns without error. tr traces
// requests; nil when tracing is off.
func serve(ctx context.Context, cfg config, log *zap.Logger, rt *ortrt.Runtime, tr *tracing.Tracing) error {
	srvTLS, err := newServerTLS(cfg.tls, log)
	if err != nil {
		return err
	}
	m := metrics.New()
	budget := inflight.NewBudget(cfg.overload.maxInflightBytes)
	reclaimer := inflight.NewReclaimer(inflight.DefaultReclaimInterval, budget)
	reclaimCtx, stopReclaim := context.WithCancel(context.Background())
	defer stopReclaim()
	go reclaimer.Run(reclaimCtx, func(released uint64, took time.Duration) {
		log.Info("returned the memory of a burst to the operating system", zap.Uint64("released_bytes", released), zap.Duration("took", took))
	})
	var ready atomic.Bool
	var grpcSrv *grpcserver.Server
	reg := registry.New(rt, registry.Options{
		Logger:            log,
		OnModelState:      func(model string, ok bool) { grpcSrv.SetModelServing(model, ok) },
		Metrics:           m,
		ExecutionProvider: cfg.serving.executionProvider,
		CUDAFallback:      cfg.serving.cudaFallback,
		InstanceCount:     cfg.serving.instanceCount,
		MaxQueueSize:      cfg.serving.maxQueueSize,
		Tracing:           tr,
	})
	runner := infer.New(reg, m)
	predSvc := predservice.New(reg, m)
	version := oip.ServerVersion()
	ortSrv := ortserver.New(runner, ortserver.Options{DefaultModel: cfg.defaultModel})
	grpcSrv = grpcserver.NewWithOptions(log, grpcserver.Options{MaxConnectionAge: cfg.serving.maxConnectionAge, MaxConnectionAgeGrace: grpcserver.DefaultMaxConnectionAgeGrace,
		Budget: budget, MaxConcurrentStreams: cfg.overload.grpcMaxConcurrentStreams, Extra: append(tr.ServerOptions(), srvTLS.grpcOptions()...)},
		grpcserver.Service{Desc: &predv1.PredService_ServiceDesc, Impl: predSvc},
		grpcserver.Service{Desc: &inferencepb.GRPCInferenceService_ServiceDesc, Impl: oip.New(runner, oip.Options{
			Ready: ready.Load, Version: version,
			Repository: management.NewGRPC(reg, management.Options{
				Enabled: cfg.serving.managementAPI,
				Token:   cfg.serving.managementToken,
				Logger:  log,
			}),
		})},
		grpcserver.Service{Desc: &ortserverpb.PredictionService_ServiceDesc, Impl: ortSrv},
	)
	httpSrv := &http.Server{
		Handler: httpapi.Handler(httpapi.Options{
			Ready:     ready.Load,
			Gatherer:  m.Registry,
			OIP:       oiprest.New(runner, oiprest.Options{Version: version}),
			ORTServer: ortSrv.HTTPHandler(),
			Logger:    log,
		}),
		ReadHeaderTimeout: readHeaderTimeout,
		ReadTimeout:       cfg.overload.httpReadTimeout,
		IdleTimeout:       httpIdleTimeout,
		MaxHeaderBytes:    maxHeaderBytes,
		ErrorLog:          srvTLS.httpErrorLog(log),
	}
	httpSrv.Handler = tr.HTTPHandler(withRepositoryAPI(httpSrv.Handler, management.Handler(reg, management.Options{
		Enabled: cfg.serving.managementAPI,
		Token:   cfg.serving.managementToken,
		Logger:  log,
	})))
	httpSrv.Handler = srvTLS.requireClientCert(inflight.Handler(budget, httpSrv.Handler, refuseHTTP))

	if cfg.debugAddr != "" {
		dbg, err := debugserver.Start(cfg.debugAddr, log)
		if err != nil {
			return err
		}
		defer func() { _ = dbg.Close() }()
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
	grpcLis, httpLis = guardListeners(cfg.overload, log, m, budget, reclaimer, grpcLis, httpLis, srvTLS != nil)
	httpLis = srvTLS.httpListener(httpLis)
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
	pollCtx, stopPolling := context.WithCancel(ctx)
	polling := make(chan struct{})
	if err := reg.Load(ctx, cfg.modelRepo); err != nil {
		runErr = err
		close(polling)
	} else if ctx.Err() == nil {
		if cfg.serving.pollInterval > 0 {
			go func() {
				defer close(polling)
				reg.Poll(pollCtx, cfg.serving.pollInterval)
			}()
		} else {
			close(polling)
		}
		grpcSrv.SetServing(true)
		ready.Store(true)
		log.Info("serving", zap.Any("models", reg.List()),
			zap.Duration("repository_poll_interval", cfg.serving.pollInterval),
			zap.Bool("management_api", cfg.serving.managementAPI))
		select {
		case <-ctx.Done():
		case runErr = <-serveErr:
		}
	} else {
		close(polling)
	}

	log.Info("shutting down")
	stopPolling()
	<-polling
	ready.Store(false)
	predSvc.StopWatches() // model watches would hold the graceful stop
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

// withRepositoryAPI serves the model repository API's paths with mgmt and
// every other path with api.
func withRepositoryAPI(api, mgmt http.Handler) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/v2/repository/", mgmt)
	mux.Handle("/", api)
	return mux
}
