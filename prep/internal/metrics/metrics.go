// Package metrics defines prep's Prometheus metrics on a registry of its own
// (never the global one), so that every API instance, including those
// tests start side by side, counts separately.
package metrics

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"google.golang.org/grpc/codes"

	"github.com/prepred/prepred/prep/internal/predclient"
)

// Stage names of prep_stage_duration_seconds. imageprep decodes and resizes
// in one pass (the JPEG decoder can scale while decoding), so decoding and
// preprocessing are one stage.
const (
	// StagePayload: reading the body and extracting the encoded image(s)
	// (JSON and base64, multipart or raw).
	StagePayload = "payload"
	// StageDecodePreprocess: decoding one image into its tensor.
	StageDecodePreprocess = "decode_preprocess"
	// StagePred: one call to pred.
	StagePred = "pred"
	// StagePostprocess: turning pred's output into the answer.
	StagePostprocess = "postprocess"
)

var (
	// durationBuckets span request latencies from a tiny model (about a
	// millisecond) to a large batch on a slow CPU or a timeout (seconds).
	durationBuckets = []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30}
	// stageBuckets span stages from microseconds (postprocessing) up.
	stageBuckets = []float64{.00005, .0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}
	// byteBuckets span encoded images from a tiny icon to the body limit.
	byteBuckets = prometheus.ExponentialBuckets(1<<10, 4, 10) // 1 KiB .. 256 MiB
	// pixelBuckets span images from 32x32 to the default pixel limit.
	pixelBuckets = []float64{1 << 10, 1 << 14, 1 << 16, 1 << 18, 1 << 20, 1 << 22, 1 << 24, 5e7, 1e8}
	// batchBuckets are the images per pred call.
	batchBuckets = []float64{1, 2, 4, 8, 16, 32, 64}
	// boxBuckets span the boxes of one answer, from none to the largest
	// max_detections (10000).
	boxBuckets = []float64{0, 1, 2, 5, 10, 20, 50, 100, 300, 1000, 10000}
)

// Metrics are the collectors the API updates.
type Metrics struct {
	// Registry gathers every prep metric plus the Go runtime and process
	// collectors; serve it on /metrics.
	Registry *prometheus.Registry
	// HTTPRequests counts answered requests by route (the registered
	// pattern, "unmatched" for none), method and HTTP status code.
	HTTPRequests *prometheus.CounterVec
	// HTTPDuration observes request latencies by route.
	HTTPDuration *prometheus.HistogramVec
	// Stage observes the duration of each Stage* by stage.
	Stage *prometheus.HistogramVec
	// ImageBytes and ImagePixels observe each input image's encoded size and
	// width*height (the latter for images that decoded).
	ImageBytes  prometheus.Histogram
	ImagePixels prometheus.Histogram
	// BatchImages observes the images sent in one pred call.
	BatchImages prometheus.Histogram
	// PredErrors counts failed pred calls by gRPC code name.
	PredErrors *prometheus.CounterVec
	// ContractRetries counts requests preprocessed again and re-sent
	// because pred's model changed while they were in flight.
	ContractRetries prometheus.Counter
	// Explanations counts the explanations answered, and
	// ExplainInferences the inferences they ran (every occluded copy and
	// the unoccluded image, retries included).
	Explanations      prometheus.Counter
	ExplainInferences prometheus.Counter
	// DetectBoxes observes the boxes of each detection answered, by model;
	// NMSDuration the time to turn one image's detector output into
	// boxes (threshold, non-maximum suppression, top-K, mapping back).
	DetectBoxes *prometheus.HistogramVec
	NMSDuration prometheus.Histogram
}

// New creates the collectors and registers them, with one reporting the
// contract state of models (read at every scrape), on a new registry.
func New(models func() []predclient.ModelState) *Metrics {
	m := &Metrics{
		Registry: prometheus.NewRegistry(),
		HTTPRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "prep_http_requests_total",
			Help: "HTTP requests answered, by route pattern, method and status code.",
		}, []string{"route", "method", "code"}),
		HTTPDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "prep_http_request_duration_seconds",
			Help:    "Time from receiving a request's headers to answering it, by route pattern.",
			Buckets: durationBuckets,
		}, []string{"route"}),
		Stage: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "prep_stage_duration_seconds",
			Help:    "Duration of the stages of a prediction: payload (body to encoded images), decode_preprocess (per image), pred (per call), postprocess.",
			Buckets: stageBuckets,
		}, []string{"stage"}),
		ImageBytes: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "prep_image_bytes",
			Help:    "Size of each encoded input image, in bytes.",
			Buckets: byteBuckets,
		}),
		ImagePixels: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "prep_image_pixels",
			Help:    "Width times height of each decoded input image.",
			Buckets: pixelBuckets,
		}),
		BatchImages: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "prep_pred_batch_images",
			Help:    "Images sent to pred in one call.",
			Buckets: batchBuckets,
		}),
		PredErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "prep_pred_errors_total",
			Help: "Failed calls to pred, by gRPC status code name.",
		}, []string{"code"}),
		ContractRetries: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "prep_contract_retries_total",
			Help: "Requests preprocessed again with the new contract and re-sent once, because pred's model changed while they were in flight.",
		}),
		Explanations: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "prep_explanations_total",
			Help: "Explanations (occlusion sensitivity, /explain) answered.",
		}),
		ExplainInferences: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "prep_explain_inferences_total",
			Help: "Inferences that explanations ran on pred: each occluded copy and the unoccluded image, retries included.",
		}),
		DetectBoxes: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "prep_detect_boxes",
			Help:    "Boxes in each detection answered (/predict/boxes), by model.",
			Buckets: boxBuckets,
		}, []string{"model"}),
		NMSDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "prep_detect_nms_duration_seconds",
			Help:    "Time to turn one image's detector output into boxes: confidence threshold, class-wise non-maximum suppression, top-K and mapping back to the image.",
			Buckets: stageBuckets,
		}),
	}
	// Every stage and the pred errors prep maps appear from the start, so
	// that dashboards and alerts see zeros, not gaps.
	for _, s := range []string{StagePayload, StageDecodePreprocess, StagePred, StagePostprocess} {
		m.Stage.WithLabelValues(s)
	}
	for _, c := range []codes.Code{codes.InvalidArgument, codes.NotFound, codes.FailedPrecondition, codes.ResourceExhausted, codes.Unavailable, codes.DeadlineExceeded} {
		m.PredErrors.WithLabelValues(c.String())
	}
	m.Registry.MustRegister(
		m.HTTPRequests, m.HTTPDuration, m.Stage, m.ImageBytes, m.ImagePixels, m.BatchImages, m.PredErrors, m.ContractRetries,
		m.Explanations, m.ExplainInferences, m.DetectBoxes, m.NMSDuration,
		contractCollector{models},
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return m
}

var (
	contractReadyDesc = prometheus.NewDesc("prep_model_contract_ready",
		"1 when the contract of the model (version as configured or requested, \"latest\" for the highest served) is loaded and executable, else 0.",
		[]string{"model", "version", "default"}, nil)
	contractInfoDesc = prometheus.NewDesc("prep_model_contract_info",
		"1 for each loaded contract: the version pred serves and its spec fingerprint.",
		[]string{"model", "version", "served_version", "spec_fingerprint"}, nil)
)

// contractCollector reports the contract state of the models prep serves.
type contractCollector struct {
	models func() []predclient.ModelState
}

// Describe implements prometheus.Collector.
func (cc contractCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- contractReadyDesc
	ch <- contractInfoDesc
}

// Collect implements prometheus.Collector.
func (cc contractCollector) Collect(ch chan<- prometheus.Metric) {
	for _, st := range cc.models() {
		version := "latest"
		if st.Version != 0 {
			version = strconv.FormatInt(st.Version, 10)
		}
		ready := 0.0
		if st.Contract != nil {
			ready = 1
			ch <- prometheus.MustNewConstMetric(contractInfoDesc, prometheus.GaugeValue, 1,
				st.Model, version, strconv.FormatInt(st.Contract.Version, 10), st.Contract.Fingerprint)
		}
		ch <- prometheus.MustNewConstMetric(contractReadyDesc, prometheus.GaugeValue, ready, st.Model, version, strconv.FormatBool(st.Default))
	}
}
