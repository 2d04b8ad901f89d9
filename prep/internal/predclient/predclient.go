// Package predclient is prep's client of pred: it reads and keeps the model
// contracts pred announces (preprocess spec, fingerprint, labels, output
// kind), one per model version requests use, and sends preprocessed tensors
// of one image or a batch to pred as raw float32 bytes.
package predclient

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/status"

	predv1 "github.com/prepred/prepred/api/gen/prepred/pred/v1"
	"github.com/prepred/prepred/prep/internal/imageprep"
)

// RequestIDKey is the gRPC metadata key carrying the HTTP request's ID.
const RequestIDKey = "x-request-id"

const (
	// refreshInterval is how often a loaded contract is re-read while
	// pred's model watch (WatchModels) is not streaming: an older pred
	// without it, or pred unreachable. With the watch, a contract is
	// re-read as soon as pred serves another version or spec.
	refreshInterval = 30 * time.Second
	// retryMinDelay and retryMaxDelay bound the backoff between failed
	// contract reads (pred unreachable, model not loaded yet).
	retryMinDelay = 100 * time.Millisecond
	retryMaxDelay = 5 * time.Second
	// metadataTimeout bounds one background ModelMetadata call.
	metadataTimeout = 5 * time.Second

	// reconnectMaxDelay caps gRPC's reconnect backoff (default 120s), so a
	// restarted pred is used again within about a second of listening.
	reconnectMaxDelay = time.Second
	// minConnectTimeout bounds one connection attempt.
	minConnectTimeout = 5 * time.Second
	// keepaliveTime and keepaliveTimeout detect a dead pred (no FIN, e.g. a
	// vanished node) on a connection with calls in flight. Pings are only
	// sent while calls are active, which grpc-go servers allow by default.
	keepaliveTime    = 30 * time.Second
	keepaliveTimeout = 10 * time.Second
	// maxMessageBytes bounds gRPC messages both ways; gRPC's 4 MiB default
	// is below a batch of eight 224x224 float32 images (4.8 MB).
	maxMessageBytes = 64 << 20
	// HTTP/2 windows and socket buffers of the connection to pred.
	streamWindowBytes    = 8 << 20
	connWindowBytes      = 16 << 20
	transportBufferBytes = 256 << 10
)

// serviceConfig spreads calls over every address the target resolves to,
// so that pred replicas behind one DNS name share the load (round robin
// that keeps a contract away from the replicas that refused it: see
// balancerName), and retries a
// call that failed with UNAVAILABLE (a replica stopping or restarting, a
// model loading) on the next replica, up to twice, after 10 to 100 ms:
// every PredService call is idempotent.
const serviceConfig = `{
  "loadBalancingConfig": [{"prepred_contract_aware": {}}],
  "methodConfig": [{
    "name": [{"service": "prepred.pred.v1.PredService"}],
    "retryPolicy": {
      "maxAttempts": 3,
      "initialBackoff": "0.01s",
      "maxBackoff": "0.1s",
      "backoffMultiplier": 2,
      "retryableStatusCodes": ["UNAVAILABLE"]
    }
  }]
}`

// Config says which pred and which model a Client serves.
type Config struct {
	// Target is pred's address: "host:port" (resolved through DNS, every
	// address used) or a gRPC target URI such as "dns:///pred:50051".
	Target string
	// Model and Version select the model; Version 0 is the highest version
	// pred serves.
	Model   string
	Version int64
	// Limits bound the images the contract's Preprocessor accepts.
	Limits imageprep.Limits
	Logger *zap.Logger
	// DialOptions are added to the connection's own, e.g. tracing's stats
	// handler.
	DialOptions []grpc.DialOption
	// Credentials secure the connection (TLS, mTLS); nil dials in
	// plaintext. Either way there is no fallback to the other.
	Credentials credentials.TransportCredentials
}

// Client talks to pred over one connection: it keeps the contract of the
// configured (default) model current, reads the contracts of other models
// on first use, and sends tensors. Its methods are safe for concurrent use.
type Client struct {
	cfg  Config
	log  *zap.Logger
	conn *grpc.ClientConn
	rpc  predv1.PredServiceClient

	// def holds the contract of the configured model and version.
	def *entry

	// mu guards others.
	mu sync.Mutex
	// others holds the contracts of the models requests name besides the
	// default, by the model and version asked for; only entries whose
	// contract was loaded once are kept.
	others map[modelKey]*entry

	// wake asks Run to re-read the contract now.
	wake chan struct{}

	// served is the state of pred's models from its watch; mode is how
	// it is followed (watchUnknown, watchStream, watchPoll).
	served served
	mode   atomic.Int32
}

// maxOtherModels bounds the contracts of non-default models prep keeps, so
// that requests naming many model versions cannot grow memory without
// bound; pred serves far fewer.
const maxOtherModels = 64

// modelKey is a model and version as a request names them; version 0 is
// the highest version pred serves.
type modelKey struct {
	model   string
	version int64
}

// entry keeps the contract of one modelKey.
type entry struct {
	key      modelKey
	contract atomic.Pointer[Contract]

	// refreshMu serializes contract reads.
	refreshMu sync.Mutex

	// mu guards notReady.
	mu sync.Mutex
	// notReady says why no contract is loaded; nil once one is.
	notReady error
}

// New creates a Client. It does not contact pred: call Run to load the
// contract in the background, or Refresh to load it now.
func New(cfg Config) (*Client, error) {
	if cfg.Model == "" {
		return nil, errors.New("predclient: no model name")
	}
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	target := Target(cfg.Target)
	if err := checkTarget(target); err != nil {
		return nil, fmt.Errorf("predclient: pred address %q: %w", cfg.Target, err)
	}
	creds := cfg.Credentials
	if creds == nil {
		creds = insecure.NewCredentials()
	}
	conn, err := grpc.NewClient(target, append([]grpc.DialOption{
		grpc.WithTransportCredentials(creds),
		grpc.WithResolvers(listBuilder{}),
		grpc.WithDefaultServiceConfig(serviceConfig),
		grpc.WithConnectParams(grpc.ConnectParams{
			Backoff:           backoff.Config{BaseDelay: retryMinDelay, Multiplier: 1.6, Jitter: 0.2, MaxDelay: reconnectMaxDelay},
			MinConnectTimeout: minConnectTimeout,
		}),
		grpc.WithKeepaliveParams(keepalive.ClientParameters{Time: keepaliveTime, Timeout: keepaliveTimeout}),
		// A retry resends the request kept from the first attempt; gRPC
		// keeps at most 256 KiB unless told more, less than one ResNet-50
		// image.
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(maxMessageBytes), grpc.MaxCallSendMsgSize(maxMessageBytes), grpc.MaxRetryRPCBufferSize(maxMessageBytes)),
		grpc.WithUserAgent("prep"),
		// Fixed flow-control windows and larger buffers, as pred's server
		// sets them (see grpcserver.StreamWindowBytes): a tensor crosses
		// without waiting for window updates.
		grpc.WithInitialWindowSize(streamWindowBytes), grpc.WithInitialConnWindowSize(connWindowBytes),
		grpc.WithWriteBufferSize(transportBufferBytes), grpc.WithReadBufferSize(transportBufferBytes),
	}, cfg.DialOptions...)...)
	if err != nil {
		return nil, fmt.Errorf("predclient: pred address %q: %w", cfg.Target, err)
	}
	cfg.Target = target
	def := &entry{
		key:      modelKey{cfg.Model, cfg.Version},
		notReady: fmt.Errorf("the contract of model %q has not been read from pred at %s yet", cfg.Model, target),
	}
	return &Client{
		cfg:    cfg,
		log:    cfg.Logger,
		conn:   conn,
		rpc:    predv1.NewPredServiceClient(conn),
		def:    def,
		others: make(map[modelKey]*entry),
		wake:   make(chan struct{}, 1),
	}, nil
}

// Close closes the connection to pred.
func (c *Client) Close() error { return c.conn.Close() }

// Model returns the configured model name.
func (c *Client) Model() string { return c.cfg.Model }

// Version returns the configured model version (0: the highest served).
func (c *Client) Version() int64 { return c.cfg.Version }

// Contract returns the loaded contract of the default model, or an error
// saying why there is none.
func (c *Client) Contract() (*Contract, error) { return c.def.get() }

func (e *entry) get() (*Contract, error) {
	if ct := e.contract.Load(); ct != nil {
		return ct, nil
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.notReady == nil {
		return nil, errors.New("no model contract loaded")
	}
	return nil, e.notReady
}

// Lookup returns the contract of model at version (0: the highest pred
// serves). The default model's contract is the one Run keeps; another
// model's is read from pred on first use and kept current by Run. An
// unknown model or version yields an error with gRPC code NotFound, an
// unreachable pred one with code Unavailable or DeadlineExceeded, and a
// contract prep cannot execute a *RefusedError.
func (c *Client) Lookup(ctx context.Context, model string, version int64) (*Contract, error) {
	key := modelKey{model, version}
	if key == c.def.key {
		return c.Contract()
	}
	c.mu.Lock()
	e := c.others[key]
	c.mu.Unlock()
	if e != nil {
		if ct := e.contract.Load(); ct != nil {
			return ct, nil
		}
	} else {
		e = &entry{key: key}
	}
	ct, err := c.refreshEntry(ctx, e)
	if err != nil {
		if status.Code(err) == codes.NotFound {
			c.forget(e)
		}
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if cur := c.others[key]; cur != nil {
		return ct, nil
	}
	if len(c.others) >= maxOtherModels {
		// Served without being kept; read again on the next use.
		return ct, nil
	}
	c.others[key] = e
	return ct, nil
}

// forget drops a model that pred does not serve.
func (c *Client) forget(e *entry) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.others[e.key] == e {
		delete(c.others, e.key)
	}
}

// ModelState is the contract state of one model prep serves.
type ModelState struct {
	// Model and Version are as configured or requested (0: latest).
	Model   string
	Version int64
	// Default is true for the configured model.
	Default bool
	// Contract is the loaded contract; nil with Err saying why.
	Contract *Contract
	Err      error
}

// States returns the contract state of the default model, then of every
// other model used so far, sorted by model and version.
func (c *Client) States() []ModelState {
	c.mu.Lock()
	entries := make([]*entry, 0, len(c.others))
	for _, e := range c.others {
		entries = append(entries, e)
	}
	c.mu.Unlock()
	slices.SortFunc(entries, func(a, b *entry) int {
		return cmp.Or(cmp.Compare(a.key.model, b.key.model), cmp.Compare(a.key.version, b.key.version))
	})
	states := make([]ModelState, 0, 1+len(entries))
	for i, e := range append([]*entry{c.def}, entries...) {
		ct, err := e.get()
		states = append(states, ModelState{Model: e.key.model, Version: e.key.version, Default: i == 0, Contract: ct, Err: err})
	}
	return states
}

// ListModels returns the model versions pred serves, with their states.
func (c *Client) ListModels(ctx context.Context) ([]*predv1.ModelVersionState, error) {
	resp, err := c.rpc.ListModels(ctx, &predv1.ListModelsRequest{})
	if err != nil {
		return nil, fmt.Errorf("list the models of pred at %s: %w", c.cfg.Target, err)
	}
	return resp.GetModels(), nil
}

// Ready returns the default model's contract when one is loaded, pred is
// reachable and, as far as its model watch says, serves a READY version of
// the model; else the reason why not.
func (c *Client) Ready() (*Contract, error) {
	ct, err := c.Contract()
	if err != nil {
		return nil, err
	}
	return ct, c.readyWith(context.Background(), c.cfg.Model, c.cfg.Version)
}

// ReadyModel is Ready for any model and version (0: the highest served):
// its contract is read from pred on first use, as Lookup does. A model or
// version pred does not have yields an error with code NotFound.
func (c *Client) ReadyModel(ctx context.Context, model string, version int64) (*Contract, error) {
	if (modelKey{model, version}) == c.def.key {
		return c.Ready()
	}
	if err := c.Serving(model, version); status.Code(err) == codes.NotFound {
		return nil, err
	}
	ct, err := c.Lookup(ctx, model, version)
	if err != nil {
		return nil, err
	}
	return ct, c.readyWith(ctx, model, version)
}

// probeTimeout bounds the call that asks a connection in
// TRANSIENT_FAILURE why it failed.
const probeTimeout = time.Second

// readyWith checks that pred is reachable and serves model. When it is not,
// the error says why the last connection attempt failed (a refused TLS
// handshake names its cause), which gRPC hands to a call that does not
// wait for a connection.
func (c *Client) readyWith(ctx context.Context, model string, version int64) error {
	if err := c.Serving(model, version); err != nil {
		return err
	}
	switch s := c.conn.GetState(); s {
	case connectivity.TransientFailure, connectivity.Shutdown:
		pctx, cancel := context.WithTimeout(ctx, probeTimeout)
		defer cancel()
		_, err := healthpb.NewHealthClient(c.conn).Check(pctx, &healthpb.HealthCheckRequest{})
		if err == nil {
			return nil // connected again meanwhile
		}
		return fmt.Errorf("pred at %s is not reachable (connection %s): %s", c.cfg.Target, s, status.Convert(err).Message())
	case connectivity.Idle:
		// Idle after a period without calls: reconnect, ready meanwhile.
		c.conn.Connect()
	}
	return nil
}

// Run keeps the contracts current until ctx ends: it reads the default
// model's at once, retries with backoff while that fails (pred
// unreachable, model still loading, contract refused), follows pred's
// model watch to re-read a contract as soon as pred serves another version
// or spec of its model, and re-reads the default one whenever pred becomes
// reachable again or a call reports a changed contract. While the watch is
// not streaming (an older pred, pred unreachable) it re-reads every loaded
// contract every refreshInterval.
func (c *Client) Run(ctx context.Context) {
	var watcher sync.WaitGroup
	watcher.Go(func() { c.watchConnection(ctx) })
	watcher.Go(func() { c.watchModels(ctx) })
	defer watcher.Wait()
	delay := retryMinDelay
	lastOthers := time.Now()
	for {
		wait := refreshInterval
		rctx, cancel := context.WithTimeout(ctx, metadataTimeout)
		_, err := c.Refresh(rctx)
		cancel()
		if ctx.Err() != nil {
			return
		}
		watching := c.Watching()
		if err != nil {
			wait = delay
			delay = min(2*delay, retryMaxDelay)
		} else {
			delay = retryMinDelay
		}
		if !watching && time.Since(lastOthers) >= refreshInterval {
			c.refreshOthers(ctx)
			lastOthers = time.Now()
		}
		t := time.NewTimer(wait)
		timeout := t.C
		if watching && err == nil {
			timeout = nil // the watch wakes Run when something changes
		}
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-c.wake:
			t.Stop()
		case <-timeout:
		}
	}
}

// refreshOthers re-reads the contracts of the non-default models, so that a
// new version or spec is used without a failed request first.
func (c *Client) refreshOthers(ctx context.Context) {
	c.mu.Lock()
	entries := make([]*entry, 0, len(c.others))
	for _, e := range c.others {
		entries = append(entries, e)
	}
	c.mu.Unlock()
	for _, e := range entries {
		rctx, cancel := context.WithTimeout(ctx, metadataTimeout)
		_, err := c.refreshEntry(rctx, e)
		cancel()
		if status.Code(err) == codes.NotFound {
			c.forget(e)
		}
		if ctx.Err() != nil {
			return
		}
	}
}

// watchConnection wakes Run when the connection to pred becomes ready after
// having been lost: pred may have restarted with other models.
func (c *Client) watchConnection(ctx context.Context) {
	state := c.conn.GetState()
	lost := false
	for c.conn.WaitForStateChange(ctx, state) {
		state = c.conn.GetState()
		switch state {
		case connectivity.TransientFailure, connectivity.Idle:
			lost = true
		case connectivity.Ready:
			if lost {
				c.wakeRun()
			}
			lost = false
		}
	}
}

func (c *Client) wakeRun() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// Refresh reads the default model's contract from pred now and returns it.
// A contract pred announces but prep cannot execute is refused: the client
// becomes not ready with the reason. When pred cannot be reached a loaded
// contract is kept.
func (c *Client) Refresh(ctx context.Context) (*Contract, error) { return c.refreshEntry(ctx, c.def) }

func (c *Client) refreshEntry(ctx context.Context, e *entry) (*Contract, error) {
	e.refreshMu.Lock()
	defer e.refreshMu.Unlock()
	return c.refreshLocked(ctx, e)
}

func (c *Client) refreshLocked(ctx context.Context, e *entry) (*Contract, error) {
	md, err := c.rpc.ModelMetadata(ctx, &predv1.ModelMetadataRequest{Model: e.key.model, Version: e.key.version})
	if err == nil {
		var ct *Contract
		ct, err = newContract(md, e.key.model, e.key.version, c.cfg.Limits)
		if err == nil {
			ct.key = e.key
			c.setContract(e, ct)
			return ct, nil
		}
		err = &RefusedError{Model: md.GetModel(), Version: md.GetVersion(), Err: err}
	} else {
		err = fmt.Errorf("read the contract of model %q from pred at %s: %w", e.key.model, c.cfg.Target, c.explain(err))
	}
	if transient(err) && e.contract.Load() != nil {
		// pred is unreachable for now; what it announced still holds.
		c.log.Warn("model contract re-read failed; keeping the loaded one", zap.String("model", e.key.model), zap.Error(err))
		return nil, err
	}
	c.setNotReady(e, err)
	return nil, err
}

// RefusedError is a contract pred announces that prep cannot execute.
type RefusedError struct {
	Model   string
	Version int64
	Err     error
}

func (e *RefusedError) Error() string {
	return fmt.Sprintf("prep cannot serve model %q version %d as pred announces it: %v", e.Model, e.Version, e.Err)
}

func (e *RefusedError) Unwrap() error { return e.Err }

// transient reports whether err says nothing about the model (pred could not
// be reached or did not answer in time).
func transient(err error) bool {
	switch status.Code(err) {
	case codes.Unavailable, codes.DeadlineExceeded, codes.Canceled:
		return true
	}
	return false
}

func (c *Client) setContract(e *entry, ct *Contract) {
	old := e.contract.Swap(ct)
	e.mu.Lock()
	e.notReady = nil
	e.mu.Unlock()
	if old == nil || old.Fingerprint != ct.Fingerprint || old.Version != ct.Version {
		c.log.Info("model contract loaded",
			zap.String("model", ct.Model), zap.Int64("version", ct.Version),
			zap.Bool("default", e == c.def),
			zap.String("spec_fingerprint", ct.Fingerprint), zap.Int("labels", len(ct.Labels)),
			zap.Int64s("input_shape", ct.requestShape), zap.Int32("max_batch_size", ct.MaxBatchSize),
			zap.Stringer("output_kind", ct.OutputKind))
	}
}

func (c *Client) setNotReady(e *entry, err error) {
	e.contract.Store(nil)
	e.mu.Lock()
	changed := e.notReady == nil || e.notReady.Error() != err.Error()
	e.notReady = err
	e.mu.Unlock()
	if changed {
		c.log.Warn("model contract not loaded", zap.String("model", e.key.model), zap.Int64("version", e.key.version), zap.Error(err))
	}
}

// entryOf returns the entry of key: the default, a kept one, or a fresh
// one for a contract that was served without being kept.
func (c *Client) entryOf(key modelKey) *entry {
	if key == c.def.key {
		return c.def
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if e := c.others[key]; e != nil {
		return e
	}
	return &entry{key: key}
}
