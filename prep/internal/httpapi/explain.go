package httpapi

import (
	"bytes"
	"context"
	"errors"
	"image/png"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"
	"go.uber.org/zap"

	"github.com/prepred/prepred/api/inflight"
	"github.com/prepred/prepred/prep/internal/metrics"
	"github.com/prepred/prepred/prep/internal/occlusion"
	"github.com/prepred/prepred/prep/internal/postprocess"
	"github.com/prepred/prepred/prep/internal/predclient"
)

// maxExplainInferences bounds the inferences of one explanation (its
// occluded copies and the unoccluded image): 1024 is a 32x32 grid of
// patches, a few seconds of ResNet-50 on a CPU.
const maxExplainInferences = 1024

// explainQuery is what an explanation's query asks for.
type explainQuery struct {
	// window and stride are in tensor pixels; 0 takes the default.
	window, stride int
	baseline       occlusion.Baseline
	// label or classIndex (>= 0) names the class; neither: the top one.
	label      string
	classIndex int
	png        bool
}

// parseExplainQuery reads window, stride, baseline, label, class_index and
// format.
func parseExplainQuery(c *gin.Context) (explainQuery, *apiError) {
	q := explainQuery{classIndex: -1}
	for name, dst := range map[string]*int{"window": &q.window, "stride": &q.stride} {
		v, ok := c.GetQuery(name)
		if !ok {
			continue
		}
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			return q, newError(http.StatusBadRequest, codeBadRequest, "query parameter %s=%q must be a positive integer (tensor pixels)", name, v)
		}
		*dst = n
	}
	if v, ok := c.GetQuery("baseline"); ok {
		b, err := occlusion.ParseBaseline(v)
		if err != nil {
			return q, newError(http.StatusBadRequest, codeBadRequest, "query parameter %v", err)
		}
		q.baseline = b
	}
	label, hasLabel := c.GetQuery("label")
	if v, ok := c.GetQuery("class_index"); ok {
		if hasLabel {
			return q, newError(http.StatusBadRequest, codeBadRequest, "query parameters label and class_index both name the class; give one")
		}
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return q, newError(http.StatusBadRequest, codeBadRequest, "query parameter class_index=%q must be a class index (an integer from 0)", v)
		}
		q.classIndex = n
	}
	if hasLabel && label == "" {
		return q, newError(http.StatusBadRequest, codeBadRequest, "query parameter label is empty; name a class of the model (GET /label lists them)")
	}
	q.label = label
	switch f := c.DefaultQuery("format", "json"); f {
	case "json":
	case "png":
		q.png = true
	default:
		return q, newError(http.StatusBadRequest, codeBadRequest, "query parameter format=%q is not one of json, png", f)
	}
	return q, nil
}

// plan returns the explanation's patches on ct's tensor, within
// maxExplainInferences.
func (q explainQuery) plan(ct *predclient.Contract) (*occlusion.Plan, *apiError) {
	shape := ct.Preprocessor.Shape() // [3, H, W]
	w, h := int(shape[2]), int(shape[1])
	p := occlusion.Defaults(w, h)
	if q.window > 0 {
		p.Window = q.window
		if q.stride == 0 {
			p.Stride = max(1, q.window/2)
		}
	}
	if q.stride > 0 {
		p.Stride = q.stride
	}
	p.Baseline = q.baseline
	pl, err := occlusion.NewPlan(w, h, p, maxExplainInferences)
	if err != nil {
		return nil, newError(http.StatusBadRequest, codeBadRequest, "%v", err)
	}
	return pl, nil
}

// class returns the class q names on ct, -1 for the top one.
func (q explainQuery) class(ct *predclient.Contract) (int, *apiError) {
	switch {
	case q.label != "":
		if i := slices.Index(ct.Labels, q.label); i >= 0 {
			return i, nil
		}
		return 0, newError(http.StatusBadRequest, codeBadRequest, "label=%q is not a class of model %q version %d (GET /label lists its %d classes)", q.label, ct.Model, ct.Version, ct.Classes)
	case q.classIndex >= 0:
		if q.classIndex >= ct.Classes {
			return 0, newError(http.StatusBadRequest, codeBadRequest, "class_index=%d is out of range: model %q version %d has classes 0 to %d", q.classIndex, ct.Model, ct.Version, ct.Classes-1)
		}
		return q.classIndex, nil
	}
	return -1, nil
}

// explainBody is the JSON answer of /explain.
type explainBody struct {
	Label       string  `json:"label"`
	ClassIndex  int     `json:"class_index"`
	Probability float64 `json:"probability"`
	// Grid is rows top to bottom of cells tiling the original image; a
	// cell is the mean probability drop of the patches covering it.
	Grid       [][]float64 `json:"grid"`
	Inferences int         `json:"inferences"`
	Window     int         `json:"window"`
	Stride     int         `json:"stride"`
	Baseline   string      `json:"baseline"`
	// Width and Height are the original image's, after EXIF orientation.
	Width           int    `json:"width"`
	Height          int    `json:"height"`
	Model           string `json:"model"`
	Version         int64  `json:"version"`
	SpecFingerprint string `json:"spec_fingerprint"`
}

// explain implements POST /explain and /v1/models/{model}/explain:
// occlusion sensitivity of the model's answer for one image, as JSON or,
// with ?format=png, as the image with the heat map over it. An
// explanation runs up to maxExplainInferences inferences under one
// deadline: the request's timeout header, else MaxRequestTimeout, not the
// RequestTimeout of one prediction.
func (s *server) explain(c *gin.Context) {
	o, ok := s.parseOptions(c, false)
	if !ok {
		return
	}
	if !o.timeoutSet {
		o.timeout = s.maxTimeout
	}
	q, aerr := parseExplainQuery(c)
	if aerr != nil {
		writeError(c, aerr)
		return
	}
	ct, ok := s.lookupFor(c, o, false)
	if !ok {
		return
	}
	// Every limit is checked before the body is read.
	if _, aerr := q.plan(ct); aerr != nil {
		writeError(c, aerr)
		return
	}
	if _, aerr := q.class(ct); aerr != nil {
		writeError(c, aerr)
		return
	}
	buf := s.buffers.get(0)
	defer s.buffers.put(buf)
	start := time.Now()
	*buf, aerr = s.readImage(c, *buf)
	s.stage(c, metrics.StagePayload, time.Since(start))
	if aerr != nil {
		writeError(c, aerr)
		return
	}
	c.Set(imagesKey, 1)
	ctx, cancel := context.WithTimeout(c.Request.Context(), o.timeout)
	defer cancel()
	body, ct, aerr := s.explainImage(ctx, c, ct, o.timeout, *buf, q)
	if body != nil {
		s.metrics.ExplainInferences.Add(float64(body.Inferences))
	}
	if aerr != nil {
		writeError(c, aerr)
		return
	}
	s.metrics.Explanations.Inc()
	if q.png {
		s.explainPNG(ctx, c, ct, *buf, body)
		return
	}
	respond(c, body)
}

// explainImage explains img with ct, and again from the start with the new
// contract when pred's model changes meanwhile (once, as infer does): the
// answer never mixes versions. The body, when not nil, counts the
// inferences run, failed attempts included.
func (s *server) explainImage(ctx context.Context, c *gin.Context, ct *predclient.Contract, timeout time.Duration, img []byte, q explainQuery) (*explainBody, *predclient.Contract, *apiError) {
	spent := 0
	for retried := false; ; retried = true {
		body, n, aerr, err := s.explainOnce(ctx, c, ct, timeout, img, q)
		spent += n
		if body == nil {
			body = &explainBody{}
		}
		body.Inferences = spent
		if err == nil {
			return body, ct, aerr
		}
		s.metrics.PredErrors.WithLabelValues(predErrorCode(err).String()).Inc()
		var ce *predclient.ContractError
		if retried || !errors.As(err, &ce) || !ce.Changed() || ctx.Err() != nil {
			return body, ct, predError(err, timeout)
		}
		s.metrics.ContractRetries.Inc()
		s.log.Info("model changed during an explanation; explaining again with the new contract",
			zap.String("request_id", requestIDOf(c)), zap.String("model", ct.Model),
			zap.Int64("version", ct.Version), zap.String("spec_fingerprint", ct.Fingerprint),
			zap.Int64("new_version", ce.Current.Version), zap.String("new_spec_fingerprint", ce.Current.Fingerprint))
		ct = ce.Current
		c.Set(versionKey, ct.Version)
	}
}

// explainOnce is one attempt of explainImage, all with ct: it returns the
// answer, the inferences pred ran, and pred's failure (err) or any other
// (aerr).
func (s *server) explainOnce(ctx context.Context, c *gin.Context, ct *predclient.Contract, timeout time.Duration, img []byte, q explainQuery) (_ *explainBody, sent int, aerr *apiError, err error) {
	reqID := requestIDOf(c)
	plan, aerr := q.plan(ct)
	if aerr != nil {
		return nil, 0, aerr, nil
	}
	cls, aerr := q.class(ct)
	if aerr != nil {
		return nil, 0, aerr, nil
	}
	imgW, imgH, ierr := ct.Preprocessor.ImageSize(img)
	if ierr != nil {
		aerr, _ := imageError(ierr)
		return nil, 0, aerr, nil
	}
	size := ct.Preprocessor.TensorLen()
	batch := min(s.maxBatch, ct.MaxBatch())
	// The image's tensor, the fill, and one batch of occluded copies join
	// the request's reservation (preprocess adds the image's own).
	if rv := inflight.FromContext(ctx); rv != nil && !rv.TryGrow(int64((2+batch)*size)*float32Bytes, inflight.ReasonWork) {
		return nil, 0, s.overloaded("the explanation's tensors"), nil
	}
	base := s.tensors.get(size)
	defer s.tensors.put(base)
	start := time.Now()
	if _, aerr := s.preprocess(ctx, reqID, ct.Preprocessor, img, *base, timeout); aerr != nil {
		return nil, 0, aerr, nil
	}
	s.timing(c, metrics.StageDecodePreprocess, time.Since(start))
	fill := plan.Fill(*base)
	tensor := s.tensors.get(batch * size)
	defer s.tensors.put(tensor)

	// Item 0 is the image itself, item k > 0 its copy with patch k-1
	// occluded.
	var p0 float64
	drops := make([]float64, plan.Patches())
	for first := 0; first < plan.Inferences(); first += batch {
		n := min(batch, plan.Inferences()-first)
		for j := range n {
			dst := (*tensor)[j*size : (j+1)*size]
			if k := first + j; k == 0 {
				copy(dst, *base)
			} else {
				plan.Occlude(dst, *base, fill, k-1)
			}
		}
		start := time.Now()
		s.metrics.BatchImages.Observe(float64(n))
		out, err := s.client.PredictBatch(ctx, ct, reqID, n, (*tensor)[:n*size])
		s.stage(c, metrics.StagePred, time.Since(start))
		if err != nil {
			return nil, sent, nil, err
		}
		sent += n
		scores, perr := postprocess.Scores(out, n*ct.Classes)
		if perr != nil {
			return nil, sent, outputError(perr), nil
		}
		for j := range n {
			probs, perr := postprocess.Probabilities(ct.OutputKind, scores[j*ct.Classes:(j+1)*ct.Classes:(j+1)*ct.Classes])
			if perr != nil {
				return nil, sent, outputError(perr), nil
			}
			if k := first + j; k == 0 {
				if cls < 0 {
					cls = postprocess.Argmax(probs)
				}
				p0 = probs[cls]
			} else {
				drops[k-1] = p0 - probs[cls]
			}
		}
	}
	rw, rh, cx, cy := ct.Preprocessor.Geometry(imgW, imgH)
	grid := plan.Grid(drops, occlusion.Geometry{ImageW: imgW, ImageH: imgH, ResizedW: rw, ResizedH: rh, CropX: cx, CropY: cy})
	return &explainBody{
		Label:           postprocess.Label(ct.Labels, cls),
		ClassIndex:      cls,
		Probability:     p0,
		Grid:            grid,
		Window:          plan.Params.Window,
		Stride:          plan.Params.Stride,
		Baseline:        plan.Params.Baseline.String(),
		Width:           imgW,
		Height:          imgH,
		Model:           ct.Model,
		Version:         ct.Version,
		SpecFingerprint: ct.Fingerprint,
	}, sent, nil, nil
}

// Headers of a PNG explanation, saying what the picture explains.
const (
	explainLabelHeader       = "X-Explanation-Label" // URL query-escaped
	explainClassHeader       = "X-Explanation-Class-Index"
	explainProbabilityHeader = "X-Explanation-Probability"
	explainInferencesHeader  = "X-Explanation-Inferences"
)

// overlayCopies is the decoded pictures a PNG explanation holds at once:
// the picture and its overlay.
const overlayCopies = 2

// explainPNG answers with the original image and body's grid over it as a
// heat map, PNG-encoded; its decoded pixels wait for room in the decode
// budget, as an image being preprocessed does.
func (s *server) explainPNG(ctx context.Context, c *gin.Context, ct *predclient.Contract, img []byte, body *explainBody) {
	n, err := s.decode.Reserve(ctx, int64(body.Width)*int64(body.Height)*decodedBytesPerPixel*overlayCopies)
	if err != nil {
		writeError(c, newError(http.StatusServiceUnavailable, codeOverloaded, "no memory to draw the explanation within the request timeout: %v", err))
		return
	}
	defer s.decode.Release(n)
	pic, err := ct.Preprocessor.Picture(img)
	if err != nil {
		aerr, _ := imageError(err)
		writeError(c, aerr)
		return
	}
	var out bytes.Buffer
	if err := png.Encode(&out, occlusion.Overlay(pic, body.Grid)); err != nil {
		writeError(c, newError(http.StatusInternalServerError, codeInternal, "encode the explanation's PNG: %v", err))
		return
	}
	c.Header(explainLabelHeader, url.QueryEscape(body.Label))
	c.Header(explainClassHeader, strconv.Itoa(body.ClassIndex))
	c.Header(explainProbabilityHeader, strconv.FormatFloat(body.Probability, 'g', -1, 64))
	c.Header(explainInferencesHeader, strconv.Itoa(body.Inferences))
	setServerTiming(c)
	c.Data(http.StatusOK, "image/png", out.Bytes())
}
