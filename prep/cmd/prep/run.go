package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/prepred/prepred/api/debugserver"
	"github.com/prepred/prepred/api/inflight"
	"github.com/prepred/prepred/api/otelsetup"
	"github.com/prepred/prepred/prep/internal/httpapi"
	"github.com/prepred/prepred/prep/internal/imageprep"
	"github.com/prepred/prepred/prep/internal/predclient"
	"github.com/prepred/prepred/prep/internal/tracing"
)

const (
	// readHeaderTimeout bounds how long a client may take to send its
	// request headers.
	readHeaderTimeout = 10 * time.Second
	// defaultReadTimeout bounds reading a whole request, body included (a
	// 32 MiB body at 1 MB/s), so that a slow client holds its share of the
	// in-flight budget no longer than this.
	defaultReadTimeout = 60 * time.Second
	// maxHeaderBytes bounds a request's headers, which no budget counts.
	maxHeaderBytes = 64 << 10
	// defaultMaxConnections bounds open connections: an idle keep-alive
	// connection costs about 20 KiB (buffers and a goroutine).
	defaultMaxConnections = 1024
	// idleTimeout closes keep-alive connections idle this long.
	idleTimeout = 120 * time.Second
	// drainGrace is added to the longest request timeout to bound a
	// graceful shutdown: requests in flight get their full timeout, plus
	// this.
	drainGrace = 5 * time.Second
)

// config is prep's configuration: flags, each with an environment variable
// that replaces its default.
type config struct {
	httpAddr          string
	predAddress       string
	model             string
	modelVersion      int64
	requestTimeout    time.Duration
	maxRequestTimeout time.Duration
	maxBodyBytes      int64
	maxPixels         int64
	maxBatchImages    int
	logLevel          zapcore.Level
	// shutdownDelay is how long prep goes on serving, not ready, after
	// SIGTERM before it stops accepting connections.
	shutdownDelay time.Duration
	// debugAddr, if set, serves Go's profiling endpoints.
	debugAddr string
	overload  overloadConfig
	tls       tlsConfig
	// apiKeys (comma-separated) and apiKeysFile are the API keys the data
	// endpoints require; none: no key required.
	apiKeys, apiKeysFile string
}

// overloadConfig bounds the memory and connections of requests in flight.
type overloadConfig struct {
	maxInflightBytes int64
	maxDecodeBytes   int64
	maxConnections   int
	readTimeout      time.Duration
}

// flagEnv names the environment variable of each flag, in flag order.
var flagEnv = []struct{ flag, env string }{
	{"http-addr", "PREP_HTTP_ADDR"},
	{"pred-address", "PRED_ADDRESS"},
	{"model", "PREP_MODEL"},
	{"model-version", "PREP_MODEL_VERSION"},
	{"request-timeout", "PREP_REQUEST_TIMEOUT"},
	{"max-request-timeout", "PREP_MAX_REQUEST_TIMEOUT"},
	{"max-body-bytes", "PREP_MAX_BODY_BYTES"},
	{"max-pixels", "PREP_MAX_PIXELS"},
	{"max-batch-images", "PREP_MAX_BATCH_IMAGES"},
	{"max-inflight-bytes", "PREP_MAX_INFLIGHT_BYTES"},
	{"max-decode-bytes", "PREP_MAX_DECODE_BYTES"},
	{"max-connections", "PREP_MAX_CONNECTIONS"},
	{"read-timeout", "PREP_READ_TIMEOUT"},
	{"shutdown-delay", "PREP_SHUTDOWN_DELAY"},
	{"tls-cert-file", "PREP_TLS_CERT_FILE"},
	{"tls-key-file", "PREP_TLS_KEY_FILE"},
	{"pred-tls", "PRED_TLS"},
	{"pred-tls-ca-file", "PRED_TLS_CA_FILE"},
	{"pred-tls-client-cert-file", "PRED_TLS_CLIENT_CERT_FILE"},
	{"pred-tls-client-key-file", "PRED_TLS_CLIENT_KEY_FILE"},
	{"pred-tls-server-name", "PRED_TLS_SERVER_NAME"},
	{"api-keys", "PREP_API_KEYS"},
	{"api-keys-file", "PREP_API_KEYS_FILE"},
	{"log-level", "PREP_LOG_LEVEL"},
	{"debug-addr", "PREP_DEBUG_ADDR"},
}

// parseConfig reads flags from args over environment variables from getenv
// over defaults. For -h it writes the usage to usage and returns
// flag.ErrHelp.
func parseConfig(args []string, getenv func(string) string, usage io.Writer) (config, error) {
	cfg := config{logLevel: zapcore.InfoLevel}
	fs := flag.NewFlagSet("prep", flag.ContinueOnError)
	fs.SetOutput(io.Discard) // errors are returned, not printed
	fs.StringVar(&cfg.httpAddr, "http-addr", ":8000", "address the HTTP API listens on")
	fs.StringVar(&cfg.predAddress, "pred-address", "localhost:50051", `pred's gRPC address: "host:port" (every address of the name is used), a list of replicas "host1:port1,host2:port2", or a gRPC target such as "dns:///pred:50051"`)
	fs.StringVar(&cfg.model, "model", "resnet50", "model to serve")
	fs.Int64Var(&cfg.modelVersion, "model-version", 0, "model version to serve; 0 is the highest version pred serves")
	fs.DurationVar(&cfg.requestTimeout, "request-timeout", 10*time.Second, "deadline of one prediction (preprocessing and the pred call) unless the request sets one with X-Request-Timeout or Grpc-Timeout")
	fs.DurationVar(&cfg.maxRequestTimeout, "max-request-timeout", 60*time.Second, "largest deadline a request may set with X-Request-Timeout or Grpc-Timeout; longer ones are cut to it")
	fs.Int64Var(&cfg.maxBodyBytes, "max-body-bytes", 32<<20, "largest request body accepted, in bytes (JSON, multipart or raw image)")
	fs.Int64Var(&cfg.maxPixels, "max-pixels", 50_000_000, "largest image accepted, in pixels (width*height), checked before decoding")
	fs.IntVar(&cfg.maxBatchImages, "max-batch-images", 32, "most images one /predict/batch request may carry; the model's max_batch_size bounds it further")
	fs.Int64Var(&cfg.overload.maxInflightBytes, "max-inflight-bytes", inflight.DefaultLimit(), "memory all requests in flight may hold, in bytes: bodies (reserved by Content-Length before they are read), decoded payloads and tensors; beyond it requests get 503 overloaded at once (default: 1/8 of the cgroup or machine memory, 64 MiB to 2 GiB)")
	fs.Int64Var(&cfg.overload.maxDecodeBytes, "max-decode-bytes", httpapi.DefaultMaxDecodeBytes, "memory of the images being decoded at once, in bytes (width*height*4 each); an image waits for room within its request timeout")
	fs.IntVar(&cfg.overload.maxConnections, "max-connections", defaultMaxConnections, "most open connections; beyond it new ones get 503 overloaded and are closed (0: no limit)")
	fs.DurationVar(&cfg.overload.readTimeout, "read-timeout", defaultReadTimeout, "time a client has to send a whole request, body included")
	fs.DurationVar(&cfg.shutdownDelay, "shutdown-delay", 0, "after SIGTERM, go on serving this long with /ready answering 503 before closing the listener, so that load balancers (a Kubernetes Service's endpoints) stop sending first")
	fs.StringVar(&cfg.tls.certFile, "tls-cert-file", "", "PEM certificate (chain) to serve HTTPS with; re-read when it changes")
	fs.StringVar(&cfg.tls.keyFile, "tls-key-file", "", "PEM private key of -tls-cert-file")
	fs.BoolVar(&cfg.tls.predTLS, "pred-tls", false, "dial pred over TLS, verifying it with the system roots unless -pred-tls-ca-file is set (implied by any -pred-tls-* flag); never falls back to plaintext")
	fs.StringVar(&cfg.tls.predCAFile, "pred-tls-ca-file", "", "PEM bundle of the CAs pred's certificate is verified with; re-read when it changes")
	fs.StringVar(&cfg.tls.predCertFile, "pred-tls-client-cert-file", "", "PEM client certificate prep presents to pred (mTLS); re-read when it changes")
	fs.StringVar(&cfg.tls.predKeyFile, "pred-tls-client-key-file", "", "PEM private key of -pred-tls-client-cert-file")
	fs.StringVar(&cfg.tls.predServerName, "pred-tls-server-name", "", "name pred's certificate must hold (default: the host of -pred-address; set it for dns:/// targets and IP addresses the certificate does not name)")
	fs.StringVar(&cfg.apiKeys, "api-keys", "", "comma-separated API keys the prediction and model endpoints require as Authorization: Bearer KEY or X-API-Key: KEY (prefer the variable or -api-keys-file: a flag shows in the process list)")
	fs.StringVar(&cfg.apiKeysFile, "api-keys-file", "", "file of API keys, one a line (# comments), re-read when it changes; adds to -api-keys")
	fs.Var(&cfg.logLevel, "log-level", "log level: debug, info, warn or error")
	fs.StringVar(&cfg.debugAddr, "debug-addr", "", "address of a listener of its own for Go's profiling endpoints, /debug/pprof/ (e.g. 127.0.0.1:6060; empty: none). Keep it reachable by operators only")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "Usage: prep [flags]\n\nEach flag can also be set by its environment variable; a flag given on the command line wins.")
		for _, fe := range flagEnv {
			f := fs.Lookup(fe.flag)
			fmt.Fprintf(fs.Output(), "  -%s (%s, default %q)\n    \t%s\n", f.Name, fe.env, f.DefValue, f.Usage)
		}
	}
	for _, fe := range flagEnv {
		if v := getenv(fe.env); v != "" {
			if err := fs.Set(fe.flag, v); err != nil {
				return cfg, fmt.Errorf("environment variable %s=%q: %w", fe.env, v, err)
			}
		}
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fs.SetOutput(usage)
			fs.Usage()
		}
		return cfg, err
	}
	switch {
	case fs.NArg() > 0:
		return cfg, fmt.Errorf("unexpected arguments %q", fs.Args())
	case cfg.model == "":
		return cfg, errors.New("-model must not be empty")
	case cfg.modelVersion < 0:
		return cfg, fmt.Errorf("-model-version %d must be 0 (latest) or positive", cfg.modelVersion)
	case cfg.requestTimeout <= 0:
		return cfg, fmt.Errorf("-request-timeout %v must be positive", cfg.requestTimeout)
	case cfg.maxRequestTimeout < cfg.requestTimeout:
		return cfg, fmt.Errorf("-max-request-timeout %v must not be below -request-timeout %v", cfg.maxRequestTimeout, cfg.requestTimeout)
	case cfg.maxBatchImages <= 0:
		return cfg, fmt.Errorf("-max-batch-images %d must be positive", cfg.maxBatchImages)
	case cfg.maxBodyBytes <= 0:
		return cfg, fmt.Errorf("-max-body-bytes %d must be positive", cfg.maxBodyBytes)
	case cfg.maxPixels <= 0:
		return cfg, fmt.Errorf("-max-pixels %d must be positive", cfg.maxPixels)
	case cfg.overload.maxInflightBytes < cfg.maxBodyBytes:
		return cfg, fmt.Errorf("-max-inflight-bytes %d must be at least -max-body-bytes %d, or the largest bodies could never be served", cfg.overload.maxInflightBytes, cfg.maxBodyBytes)
	case cfg.overload.maxDecodeBytes <= 0:
		return cfg, fmt.Errorf("-max-decode-bytes %d must be positive", cfg.overload.maxDecodeBytes)
	case cfg.overload.maxConnections < 0:
		return cfg, fmt.Errorf("-max-connections %d must be 0 (no limit) or positive", cfg.overload.maxConnections)
	case cfg.overload.readTimeout <= 0:
		return cfg, fmt.Errorf("-read-timeout %v must be positive", cfg.overload.readTimeout)
	}
	if err := cfg.tls.check(); err != nil {
		return cfg, err
	}
	return cfg, nil
}

// newLogger logs JSON lines (zap's production encoding) to w.
func newLogger(w io.Writer, level zapcore.Level) *zap.Logger {
	sink := zapcore.Lock(zapcore.AddSync(w))
	core := zapcore.NewCore(zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig()), sink, level)
	return zap.New(core, zap.AddCaller(), zap.ErrorOutput(sink)).Named("prep")
}

// run starts prep and serves until ctx ends, then drains requests in flight
// and returns nil. Logs go to stdout; once the API listens, one line with
// msg "listening" gives its address as http_addr.
func run(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	cfg, err := parseConfig(args, getenv, stdout)
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	if err != nil {
		return err
	}
	log := newLogger(stdout, cfg.logLevel)
	defer func() { _ = log.Sync() }()

	traces, err := otelsetup.Start(ctx, getenv, "prep", func(err error) { log.Warn("opentelemetry", zap.Error(err)) })
	if err != nil {
		return err
	}
	defer func() {
		if err := traces.Close(); err != nil {
			log.Warn("tracing", zap.Error(err))
		}
	}()
	if traces.Enabled() {
		tc := traces.Config()
		log.Info("tracing", zap.String("otlp_endpoint", tc.Endpoint), zap.String("otlp_protocol", tc.Protocol),
			zap.String("sampler", tc.SamplerName), zap.String("service_name", tc.ServiceName))
	}
	tr := tracing.New(traces)

	predCreds, err := cfg.tls.predCredentials(log)
	if err != nil {
		return err
	}
	client, err := predclient.New(predclient.Config{
		Credentials: predCreds,
		Target:      cfg.predAddress,
		Model:       cfg.model,
		Version:     cfg.modelVersion,
		Limits:      imageprep.Limits{MaxPixels: cfg.maxPixels},
		Logger:      log.Named("predclient"),
		DialOptions: tr.DialOptions(),
	})
	if err != nil {
		return err
	}
	defer func() { _ = client.Close() }()
	// The contract is read in the background: prep serves /health at once
	// and /ready explains what it waits for while pred is unreachable.
	refreshCtx, stopRefresh := context.WithCancel(ctx)
	var refresh sync.WaitGroup
	refresh.Go(func() { client.Run(refreshCtx) })
	defer refresh.Wait()
	defer stopRefresh()

	keys, err := apiKeys(cfg, log.Named("apikey"))
	if err != nil {
		return err
	}
	var draining atomic.Bool
	budget := inflight.NewBudget(cfg.overload.maxInflightBytes)
	setMemoryLimit(cfg.overload, getenv, log)
	reclaimer := inflight.NewReclaimer(inflight.DefaultReclaimInterval, budget)
	reclaimCtx, stopReclaim := context.WithCancel(ctx)
	var reclaim sync.WaitGroup
	reclaim.Go(func() { reclaimer.Run(reclaimCtx, logReturn(log)) })
	defer reclaim.Wait()
	defer stopReclaim()
	// A plaintext listener answers connections beyond the limit with a
	// 503; behind TLS it can only close them.
	refusal := inflight.HTTPRefusal(cfg.overload.maxConnections)
	if cfg.tls.certFile != "" {
		refusal = nil
	}
	conns := inflight.Limit(nil, cfg.overload.maxConnections, inflight.ListenerOptions{
		Refusal: refusal,
		OnRefused: func(n int64) {
			log.Warn("connections refused: the listener has its maximum open", zap.Int64("refused", n), zap.Int("max_connections", cfg.overload.maxConnections))
		},
	})
	srv := &http.Server{
		Handler: httpapi.New(httpapi.Config{
			Budget:            budget,
			MaxDecodeBytes:    cfg.overload.maxDecodeBytes,
			Listener:          conns,
			Reclaimer:         reclaimer,
			Draining:          draining.Load,
			Client:            client,
			Logger:            log.Named("http"),
			RequestTimeout:    cfg.requestTimeout,
			MaxRequestTimeout: cfg.maxRequestTimeout,
			MaxBodyBytes:      cfg.maxBodyBytes,
			MaxBatchImages:    cfg.maxBatchImages,
			Tracing:           tr,
			APIKeys:           keys,
		}),
		ReadHeaderTimeout: readHeaderTimeout,
		ReadTimeout:       cfg.overload.readTimeout,
		MaxHeaderBytes:    maxHeaderBytes,
		IdleTimeout:       idleTimeout,
		ErrorLog:          zap.NewStdLog(log.Named("http")),
	}
	ln, err := net.Listen("tcp", cfg.httpAddr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", cfg.httpAddr, err)
	}
	ln = conns.Attach(ln)
	tlsLn, err := cfg.tls.listener(log, ln)
	if err != nil {
		_ = ln.Close()
		return err
	}
	ln = tlsLn
	log.Info("listening",
		zap.String("http_addr", ln.Addr().String()), zap.Bool("https", cfg.tls.certFile != ""),
		zap.Bool("pred_tls", cfg.tls.predTLS),
		zap.String("pred_address", predclient.Target(cfg.predAddress)),
		zap.String("model", cfg.model), zap.Int64("model_version", cfg.modelVersion))

	if cfg.debugAddr != "" {
		dbg, err := debugserver.Start(cfg.debugAddr, log)
		if err != nil {
			return err
		}
		defer func() { _ = dbg.Close() }()
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	select {
	case err := <-served:
		return fmt.Errorf("serve HTTP on %s: %w", ln.Addr(), err)
	case <-ctx.Done():
	}

	if cfg.shutdownDelay > 0 {
		draining.Store(true)
		log.Info("shutting down: not ready, still serving", zap.Duration("shutdown_delay", cfg.shutdownDelay))
		select {
		case err := <-served:
			return fmt.Errorf("serve HTTP on %s: %w", ln.Addr(), err)
		case <-time.After(cfg.shutdownDelay):
		}
	}
	timeout := cfg.maxRequestTimeout + drainGrace
	log.Info("shutting down", zap.Duration("drain_timeout", timeout))
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), timeout)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		log.Warn("requests still in flight after the drain timeout were cut off", zap.Error(err))
		_ = srv.Close()
	}
	<-served
	log.Info("stopped")
	return nil
}
