// Package predclient is prep's client of pred: it reads and keeps the model
// contracts pred announces (preprocess spec, fingerprint, labels, output
// kind), one per model version requests use, and sends preprocessed tensors
// of one image or a batch to pred as raw float32 bytes.
package predclient

import (
	"cmp"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/metadata"
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
// so that pred replicas behind one DNS name share the load, and retries a
// call that failed with UNAVAILABLE (a replica stopping or restarting, a
// model loading) on the next replica, up to twice, after 10 to 100 ms:
// every PredService call is idempotent.
const serviceConfig = `{
  "loadBalancingConfig": [{"round_robin": {}}],
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

// Predict runs the model on one preprocessed image: input holds
// ct.Preprocessor.TensorLen() values and is sent as raw bytes without
// conversion (it must not be modified until Predict returns). It returns
// the model's first output for the image. requestID, if not empty, travels
// as gRPC metadata. A contract pred no longer accepts yields a
// *ContractError after the contract has been re-read once.
func (c *Client) Predict(ctx context.Context, ct *Contract, requestID string, input []float32) (*predv1.Tensor, error) {
	return c.PredictBatch(ctx, ct, requestID, 1, input)
}

// PredictBatch runs the model on n preprocessed images in one call: input
// holds n*ct.Preprocessor.TensorLen() values, image after image, sent as
// one tensor [n, 3, H, W]. n must be 1 or at most ct.MaxBatchSize. The
// output holds the model's first output for the n images, in order.
func (c *Client) PredictBatch(ctx context.Context, ct *Contract, requestID string, n int, input []float32) (*predv1.Tensor, error) {
	if n < 1 || (n > 1 && n > ct.MaxBatch()) {
		return nil, fmt.Errorf("predclient: batch of %d images, model %q version %d takes 1 to %d", n, ct.Model, ct.Version, ct.MaxBatch())
	}
	if want := n * ct.Preprocessor.TensorLen(); len(input) != want {
		return nil, fmt.Errorf("predclient: input has %d values, %d images need %d", len(input), n, want)
	}
	shape := ct.requestShape
	if n > 1 {
		shape = slices.Clone(shape)
		shape[0] = int64(n)
	}
	if requestID != "" {
		ctx = metadata.AppendToOutgoingContext(ctx, RequestIDKey, requestID)
	}
	resp, err := c.rpc.Predict(ctx, &predv1.PredictRequest{
		Model:           ct.Model,
		Version:         ct.Version,
		SpecFingerprint: ct.Fingerprint,
		Inputs: []*predv1.Tensor{{
			Name:    ct.Input.GetName(),
			Dtype:   predv1.DataType_DATA_TYPE_FLOAT32,
			Shape:   shape,
			RawData: float32Bytes(input),
		}},
	})
	if err != nil {
		return nil, c.predictError(ctx, ct, err)
	}
	for _, out := range resp.GetOutputs() {
		if out.GetName() == ct.Output.GetName() {
			return out, nil
		}
	}
	return nil, status.Errorf(codes.Internal, "pred's answer for model %q version %d lacks output %q", ct.Model, ct.Version, ct.Output.GetName())
}

// predictError explains a failed Predict call.
func (c *Client) predictError(ctx context.Context, ct *Contract, err error) error {
	switch status.Code(err) {
	case codes.FailedPrecondition, codes.NotFound:
		// pred no longer serves this contract (fingerprint mismatch, or the
		// version is gone): re-read it once, so the next request uses the
		// new one, and say what changed.
		cerr := &ContractError{Model: ct.Model, Version: ct.Version, Fingerprint: ct.Fingerprint, Code: status.Code(err), Reason: status.Convert(err).Message()}
		cerr.Current, cerr.RefreshErr = c.refreshAfter(ctx, ct)
		if cerr.RefreshErr != nil && ct.key == c.def.key {
			c.wakeRun()
		}
		return cerr
	case codes.DeadlineExceeded:
		if s := c.conn.GetState(); s != connectivity.Ready {
			return status.Errorf(codes.Unavailable, "pred at %s is not reachable (connection %s when the request deadline passed)", c.cfg.Target, s)
		}
	}
	return fmt.Errorf("pred Predict (model %q version %d): %w", ct.Model, ct.Version, err)
}

// refreshAfter re-reads the contract of stale's model unless it has already
// been replaced since stale was current (many requests fail together when
// it changes).
func (c *Client) refreshAfter(ctx context.Context, stale *Contract) (*Contract, error) {
	e := c.entryOf(stale.key)
	e.refreshMu.Lock()
	defer e.refreshMu.Unlock()
	if cur := e.contract.Load(); cur != stale && cur != nil {
		return cur, nil
	}
	ct, err := c.refreshLocked(ctx, e)
	if status.Code(err) == codes.NotFound && e != c.def {
		c.forget(e)
	}
	return ct, err
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

// ContractError is a Predict that pred refused because the contract prep
// used no longer holds (FAILED_PRECONDITION or NOT_FOUND).
type ContractError struct {
	Model       string
	Version     int64
	Fingerprint string
	// Code is pred's answer: FailedPrecondition or NotFound.
	Code codes.Code
	// Reason is pred's message.
	Reason string
	// Current is the contract read after the refusal, nil if the read
	// failed with RefreshErr.
	Current    *Contract
	RefreshErr error
}

// Changed reports whether the re-read found a different contract, so that
// the same request, sent again, is expected to succeed.
func (e *ContractError) Changed() bool {
	return e.Current != nil && (e.Current.Fingerprint != e.Fingerprint || e.Current.Version != e.Version)
}

func (e *ContractError) Error() string {
	msg := fmt.Sprintf("pred refused the contract prep used for model %q version %d (spec fingerprint %s): %s", e.Model, e.Version, e.Fingerprint, e.Reason)
	switch {
	case e.RefreshErr != nil:
		return msg + "; re-reading the contract failed: " + e.RefreshErr.Error()
	case e.Changed():
		return fmt.Sprintf("%s; the contract has been re-read (now version %d, spec fingerprint %s): retry the request", msg, e.Current.Version, e.Current.Fingerprint)
	default:
		return msg + "; re-reading the contract gave the same one, so prep and pred disagree about it"
	}
}

// nativeLittleEndian reports whether float32 values are stored in memory
// in the byte order of the wire format.
var nativeLittleEndian = binary.NativeEndian.Uint16([]byte{1, 0}) == 1

// float32Bytes returns v as little-endian bytes: a view of v's memory on
// little-endian hosts (no copy, no conversion), a converted copy elsewhere.
func float32Bytes(v []float32) []byte {
	if len(v) == 0 {
		return nil
	}
	if nativeLittleEndian {
		return unsafe.Slice((*byte)(unsafe.Pointer(&v[0])), 4*len(v))
	}
	b := make([]byte, 4*len(v))
	for i, f := range v {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(f))
	}
	return b
}
