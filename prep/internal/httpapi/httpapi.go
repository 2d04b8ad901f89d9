// Package httpapi is prep's HTTP API, served with gin: the classic prep
// endpoints (/predict, /predict/label, /label, /metadata, /health) plus
// /ready, top-k, batches, a detector's boxes (/predict/boxes), model
// selection by name, Prometheus metrics, the OpenAPI document with its
// docs page, and a web page to try a model.
// Images come as base64 in JSON, as multipart file uploads or as the raw
// body.
package httpapi

import (
	"context"
	_ "embed"
	"encoding/json"
	"fmt"
	"net/http"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.uber.org/zap"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"

	predv1 "github.com/prepred/prepred/api/gen/prepred/pred/v1"
	"github.com/prepred/prepred/api/inflight"
	"github.com/prepred/prepred/prep/internal/apikey"
	"github.com/prepred/prepred/prep/internal/metrics"
	"github.com/prepred/prepred/prep/internal/postprocess"
	"github.com/prepred/prepred/prep/internal/predclient"
	"github.com/prepred/prepred/prep/internal/tracing"
)

// sampleImage is the image /predict/test classifies (see sample/README.md).
//
//go:embed sample/cat.jpg
var sampleImage []byte

// defaultTopK is the number of classes /predict/topk returns without ?k=.
const defaultTopK = 5

// defaultMaxBatchImages is Config.MaxBatchImages when left zero: prep's own
// bound on the images of one batch request, which the model's
// max_batch_size bounds further.
const defaultMaxBatchImages = 32

// Config configures the API.
type Config struct {
	// Client talks to pred and holds the model contracts.
	Client *predclient.Client
	Logger *zap.Logger
	// RequestTimeout bounds the work on one prediction after its body has
	// been read: waiting to preprocess, preprocessing and the pred call,
	// whose gRPC deadline it becomes. A request may set its own with the
	// X-Request-Timeout or Grpc-Timeout header, capped by
	// MaxRequestTimeout (which defaults to RequestTimeout).
	RequestTimeout    time.Duration
	MaxRequestTimeout time.Duration
	// MaxBodyBytes bounds a request body, multipart uploads included.
	MaxBodyBytes int64
	// MaxBatchImages bounds the images of one /predict/batch request
	// (default 32); the model's max_batch_size bounds it further.
	MaxBatchImages int
	// MaxConcurrentPreprocess bounds the images decoded and resized at
	// once, and so the memory decoding can take; 0 means GOMAXPROCS. The
	// work is CPU-bound, so more would not be faster.
	MaxConcurrentPreprocess int
	// Budget bounds the memory requests hold in flight: each reserves its
	// declared body before a byte of it is read, and is refused at once
	// with 503 overloaded when it does not fit; the decoded payload and
	// tensors join the reservation. nil: no budget.
	Budget *inflight.Budget
	// MaxDecodeBytes bounds the decoded pixels held at once
	// (width*height*4 per image decoding); an image waits for room within
	// its request timeout. 0 means DefaultMaxDecodeBytes.
	MaxDecodeBytes int64
	// Listener, if set, has its connections reported in the metrics.
	Listener *inflight.Listener
	// Reclaimer, if set, has its returns of memory reported in the metrics.
	Reclaimer *inflight.Reclaimer
	// Draining, if set, reports that the process is shutting down: /ready
	// answers 503 shutting_down while requests are still served.
	Draining func() bool
	// Tracing gives requests and their stages spans; nil (tracing off)
	// installs nothing.
	Tracing *tracing.Tracing
	// APIKeys, if set, are required on the data endpoints (predictions,
	// models, metadata, labels); /health, /ready, /metrics, the web page
	// and the docs stay open.
	APIKeys *apikey.Keys
}

type server struct {
	client     *predclient.Client
	log        *zap.Logger
	tracing    *tracing.Tracing
	metrics    *metrics.Metrics
	timeout    time.Duration
	maxTimeout time.Duration
	maxBody    int64
	maxBatch   int
	// slots holds one token per preprocessing in progress.
	slots   chan struct{}
	tensors slicePool[float32]
	buffers slicePool[byte]
	// budget (nil: none) and decode bound the memory in flight; see
	// Config.Budget and Config.MaxDecodeBytes.
	budget *inflight.Budget
	decode *inflight.Budget
	// draining: see Config.Draining.
	draining func() bool
}

// New returns the API's handler.
func New(cfg Config) http.Handler {
	r, s := newEngine(cfg)
	return s.withBudget(r)
}

// newEngine builds the gin engine and the server behind its routes.
func newEngine(cfg Config) (*gin.Engine, *server) {
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	n := cfg.MaxConcurrentPreprocess
	if n <= 0 {
		n = runtime.GOMAXPROCS(0)
	}
	if cfg.MaxRequestTimeout < cfg.RequestTimeout {
		cfg.MaxRequestTimeout = cfg.RequestTimeout
	}
	if cfg.MaxBatchImages <= 0 {
		cfg.MaxBatchImages = defaultMaxBatchImages
	}
	s := &server{
		client:     cfg.Client,
		log:        cfg.Logger,
		tracing:    cfg.Tracing,
		metrics:    metrics.New(cfg.Client.States),
		timeout:    cfg.RequestTimeout,
		maxTimeout: cfg.MaxRequestTimeout,
		maxBody:    cfg.MaxBodyBytes,
		maxBatch:   cfg.MaxBatchImages,
		slots:      make(chan struct{}, n),
		tensors:    slicePool[float32]{maxCap: maxPooledFloats},
		buffers:    slicePool[byte]{maxCap: maxPooledBytes},
		draining:   cfg.Draining,
	}
	s.setupOverload(cfg)

	// gin's mode is process-wide; its debug mode prints to os.Stdout, and
	// prep logs through zap only.
	gin.SetMode(gin.ReleaseMode)
	r := gin.New()
	r.HandleMethodNotAllowed = true
	// Log the peer's address, not a client-supplied X-Forwarded-For.
	_ = r.SetTrustedProxies(nil)
	if mw := cfg.Tracing.Middleware(); mw != nil {
		r.Use(mw) // first, so that the request's span covers the others
	}
	r.Use(requestID(), instrument(s.metrics), accessLog(cfg.Logger), recovery(cfg.Logger))
	r.NoRoute(func(c *gin.Context) {
		writeError(c, newError(http.StatusNotFound, codeNotFound, "no route %s %s", c.Request.Method, c.Request.URL.Path))
	})
	r.NoMethod(func(c *gin.Context) {
		writeError(c, newError(http.StatusMethodNotAllowed, codeMethodNotAllowed, "%s is not allowed on %s (allowed: %s)", c.Request.Method, c.Request.URL.Path, c.Writer.Header().Get("Allow")))
	})

	// The classic service's routes, on the default model unless ?model=
	// names another, and the same per model, by name in the path.
	data := r.Group("", s.requireAPIKey(cfg.APIKeys))
	for _, g := range []gin.IRoutes{data, data.Group("/v1/models/:model")} {
		g.GET("/metadata", s.metadata)
		g.GET("/label", s.label)
		g.POST("/predict", s.predict)
		g.POST("/predict/label", s.predictLabel)
		g.POST("/predict/topk", s.predictTopK)
		g.POST("/predict/batch", s.predictBatch)
		g.POST("/predict/boxes", s.predictBoxes)
		g.POST("/explain", s.explain)
	}
	r.GET("/health", s.health)
	r.GET("/ready", s.ready)
	data.GET("/predict/test", s.predictTest)
	data.GET("/predict/test/label", s.predictTestLabel)
	data.GET("/v1/models", s.models)

	r.GET("/metrics", gin.WrapH(promhttp.HandlerFor(s.metrics.Registry, promhttp.HandlerOpts{})))
	r.GET("/openapi.json", s.openAPI)
	r.GET("/docs", s.docs)
	r.GET("/", s.index)
	return r, s
}

// health implements GET /health: the process is alive.
func (s *server) health(c *gin.Context) {
	c.JSON(http.StatusOK, gin.H{"health": "ok"})
}

// ready implements GET /ready: 200 once the model's contract is loaded,
// pred is reachable and serves a READY version of the model; 503 with the
// reason otherwise. The model is the default one, or any that ?model= (and
// ?version=) names: 404 when pred does not have it.
func (s *server) ready(c *gin.Context) {
	if s.draining != nil && s.draining() {
		writeError(c, newError(http.StatusServiceUnavailable, codeShuttingDown, "prep is shutting down: it finishes the requests it has and takes new ones only until its shutdown delay ends"))
		return
	}
	o, ok := s.parseOptions(c, false)
	if !ok {
		return
	}
	ctx, cancel := context.WithTimeout(c.Request.Context(), o.timeout)
	defer cancel()
	ct, err := s.client.ReadyModel(ctx, o.model, o.version)
	if err != nil {
		if status.Code(err) == codes.NotFound {
			writeError(c, newError(http.StatusNotFound, codeModelNotFound, "%v", err))
			return
		}
		writeError(c, newError(http.StatusServiceUnavailable, codeNotReady, "%v", err))
		return
	}
	c.JSON(http.StatusOK, gin.H{"ready": "ok", "model": ct.Model, "version": ct.Version, "spec_fingerprint": ct.Fingerprint})
}

// metadataBody is the classic /metadata answer (its first six keys), derived
// from the announced model, plus what identifies the contract.
type metadataBody struct {
	DataType            string          `json:"data_type"`
	DataStructure       string          `json:"data_structure"`
	DataSample          string          `json:"data_sample"`
	PredictionType      string          `json:"prediction_type"`
	PredictionStructure string          `json:"prediction_structure"`
	PredictionSample    string          `json:"prediction_sample"`
	Model               string          `json:"model"`
	Version             int64           `json:"version"`
	Versions            []int64         `json:"versions"`
	MaxBatchSize        int32           `json:"max_batch_size"`
	SpecFingerprint     string          `json:"spec_fingerprint"`
	Preprocess          json.RawMessage `json:"preprocess"`
	// Kind is "classifier" or "detector"; OutputKind the model's
	// output_kind; Detection a detector's default thresholds.
	Kind       string          `json:"kind"`
	OutputKind string          `json:"output_kind"`
	Detection  *thresholdsJSON `json:"detection,omitempty"`
}

// Kinds of model in /metadata.
const (
	kindClassifier = "classifier"
	kindDetector   = "detector"
)

// metadataSampleValues is how many probabilities prediction_sample shows.
const metadataSampleValues = 3

// metadata implements GET /metadata and /v1/models/{model}/metadata.
func (s *server) metadata(c *gin.Context) {
	o, ok := s.parseOptions(c, false)
	if !ok {
		return
	}
	ct, ok := s.lookup(c, o)
	if !ok {
		return
	}
	spec, err := protojson.MarshalOptions{UseProtoNames: true}.Marshal(ct.Spec)
	if err != nil {
		writeError(c, newError(http.StatusInternalServerError, codeInternal, "encode the preprocess spec: %v", err))
		return
	}
	predType := "float32"
	if ct.Output.GetDtype() == predv1.DataType_DATA_TYPE_FLOAT64 {
		predType = "float64"
	}
	shown := make([]string, 0, metadataSampleValues+1)
	for i := 0; i < min(ct.Classes, metadataSampleValues); i++ {
		shown = append(shown, strconv.FormatFloat(1/float64(ct.Classes), 'f', 8, 64))
	}
	if ct.Classes > metadataSampleValues {
		shown = append(shown, "...")
	}
	body := metadataBody{
		DataType:            "str",
		DataStructure:       "(1,1)",
		DataSample:          "base64 encoded image file",
		PredictionType:      predType,
		PredictionStructure: fmt.Sprintf("(1,%d)", ct.Classes),
		PredictionSample:    "[" + strings.Join(shown, ", ") + "]",
		Model:               ct.Model,
		Version:             ct.Version,
		Versions:            ct.Versions,
		MaxBatchSize:        ct.MaxBatchSize,
		SpecFingerprint:     ct.Fingerprint,
		Preprocess:          spec,
		Kind:                kindClassifier,
		OutputKind:          ct.OutputKind.String(),
	}
	if ct.IsDetector() {
		d := ct.Detector.Defaults
		body.Kind = kindDetector
		body.PredictionType = "boxes"
		body.PredictionStructure = fmt.Sprintf("(0..%d boxes)", d.GetMaxDetections())
		body.PredictionSample = `[{"label": "` + postprocess.Label(ct.Labels, 0) + `", "class_index": 0, "score": 0.9, "x1": 10, "y1": 20, "x2": 110, "y2": 140}]`
		body.Detection = &thresholdsJSON{Confidence: d.GetConfidenceThreshold(), IoU: d.GetIouThreshold(), MaxDetections: int(d.GetMaxDetections())}
	}
	c.JSON(http.StatusOK, body)
}

// label implements GET /label and /v1/models/{model}/label: the model's
// labels, index = output position.
func (s *server) label(c *gin.Context) {
	o, ok := s.parseOptions(c, false)
	if !ok {
		return
	}
	ct, ok := s.lookup(c, o)
	if !ok {
		return
	}
	labels := ct.Labels
	if labels == nil {
		labels = []string{}
	}
	c.JSON(http.StatusOK, labels)
}

// modelsBody is the answer of /v1/models.
type modelsBody struct {
	// DefaultModel is the model routes without a model name use.
	DefaultModel string `json:"default_model"`
	// Models are the model versions pred serves, with their states.
	Models []modelState `json:"models"`
}

// modelState is one model version pred serves.
type modelState struct {
	Model   string `json:"model"`
	Version int64  `json:"version"`
	State   string `json:"state"`
	Reason  string `json:"reason,omitempty"`
}

// models implements GET /v1/models: the model versions pred serves.
func (s *server) models(c *gin.Context) {
	o, ok := s.parseOptions(c, false)
	if !ok {
		return
	}
	ctx, cancel := context.WithTimeout(c.Request.Context(), o.timeout)
	defer cancel()
	list, err := s.client.ListModels(ctx)
	if err != nil {
		writeError(c, predError(err, o.timeout))
		return
	}
	body := modelsBody{DefaultModel: s.client.Model(), Models: make([]modelState, len(list))}
	for i, m := range list {
		body.Models[i] = modelState{Model: m.GetModel(), Version: m.GetVersion(), State: m.GetState(), Reason: m.GetReason()}
	}
	c.JSON(http.StatusOK, body)
}
