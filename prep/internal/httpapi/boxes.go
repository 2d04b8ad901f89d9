package httpapi

import (
	"bytes"
	"context"
	"fmt"
	"image/jpeg"
	"image/png"
	"math"
	"net/http"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"

	predv1 "github.com/prepred/prepred/api/gen/prepred/pred/v1"
	"github.com/prepred/prepred/api/spec"
	"github.com/prepred/prepred/prep/internal/detect"
	"github.com/prepred/prepred/prep/internal/postprocess"
	"github.com/prepred/prepred/prep/internal/predclient"
)

// codeModelKindMismatch answers a request for what the model's kind does
// not produce: boxes from a classifier, class probabilities or an
// explanation from a detector.
const codeModelKindMismatch = "model_kind_mismatch"

// Formats of a boxes answer (?format=).
const (
	formatJSON = "json"
	formatPNG  = "png"
	formatJPEG = "jpeg"
)

// boxesJPEGQuality is the quality of a ?format=jpeg answer: boxes and
// their labels stay crisp.
const boxesJPEGQuality = 90

// boxCountHeader says how many boxes a picture answer shows.
const boxCountHeader = "X-Box-Count"

// boxQuery is what a boxes request's query asks for: overrides of the
// model's detection defaults, and the answer's format.
type boxQuery struct {
	conf, iou       float32
	confSet, iouSet bool
	// maxDet is 0 when not set.
	maxDet int
	format string
}

// parseBoxQuery reads conf, iou, max_det and format, each within its
// range, before anything else of the request is read.
func parseBoxQuery(c *gin.Context) (boxQuery, *apiError) {
	q := boxQuery{format: formatJSON}
	if v, ok := c.GetQuery("conf"); ok {
		f, err := strconv.ParseFloat(v, 32)
		if err != nil || math.IsNaN(f) || f < 0 || f > 1 {
			return q, newError(http.StatusBadRequest, codeBadRequest, "query parameter conf=%q must be a number from 0 to 1 (the confidence threshold: boxes scoring above it are kept)", v)
		}
		q.conf, q.confSet = float32(f), true
	}
	if v, ok := c.GetQuery("iou"); ok {
		f, err := strconv.ParseFloat(v, 32)
		if err != nil || math.IsNaN(f) || f <= 0 || f > 1 {
			return q, newError(http.StatusBadRequest, codeBadRequest, "query parameter iou=%q must be a number above 0 and at most 1 (the overlap above which the weaker of two boxes of a class is dropped)", v)
		}
		q.iou, q.iouSet = float32(f), true
	}
	if v, ok := c.GetQuery("max_det"); ok {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > spec.MaxDetectionsLimit {
			return q, newError(http.StatusBadRequest, codeBadRequest, "query parameter max_det=%q must be an integer from 1 to %d (the most boxes answered)", v, spec.MaxDetectionsLimit)
		}
		q.maxDet = n
	}
	switch f := c.DefaultQuery("format", formatJSON); f {
	case formatJSON, formatPNG, formatJPEG:
		q.format = f
	case "jpg":
		q.format = formatJPEG
	default:
		return q, newError(http.StatusBadRequest, codeBadRequest, "query parameter format=%q is not one of json, png, jpeg", f)
	}
	return q, nil
}

// params are the thresholds q asks for on a detector of ct: the model's
// defaults where q sets none.
func (q *boxQuery) params(ct *predclient.Contract) detect.Params {
	d := ct.Detector.Defaults
	p := detect.Params{Confidence: d.GetConfidenceThreshold(), IoU: d.GetIouThreshold(), MaxDetections: int(d.GetMaxDetections())}
	if q.confSet {
		p.Confidence = q.conf
	}
	if q.iouSet {
		p.IoU = q.iou
	}
	if q.maxDet > 0 {
		p.MaxDetections = q.maxDet
	}
	return p
}

// kindError is the answer to a request for boxes (boxes true) or class
// probabilities from a model of ct's kind, nil when the kind fits.
func kindError(ct *predclient.Contract, boxes bool) *apiError {
	if ct.IsDetector() == boxes {
		return nil
	}
	if ct.IsDetector() {
		return newError(http.StatusUnprocessableEntity, codeModelKindMismatch, "model %q version %d is a detector (output_kind %v): it answers POST /v1/models/%s/predict/boxes, not class probabilities, labels or explanations", ct.Model, ct.Version, ct.OutputKind, ct.Model)
	}
	return newError(http.StatusUnprocessableEntity, codeModelKindMismatch, "model %q version %d is a classifier (output_kind %v): it answers POST /v1/models/%s/predict/label (and /predict, /predict/topk, /predict/batch, /explain), not boxes", ct.Model, ct.Version, ct.OutputKind, ct.Model)
}

// boxJSON is one box of a boxes answer, in pixels of the original image
// (after EXIF orientation).
type boxJSON struct {
	Label      string  `json:"label"`
	ClassIndex int     `json:"class_index"`
	Score      float32 `json:"score"`
	X1         float32 `json:"x1"`
	Y1         float32 `json:"y1"`
	X2         float32 `json:"x2"`
	Y2         float32 `json:"y2"`
}

// imageJSON is the size of the original image, after EXIF orientation.
type imageJSON struct {
	Width  int `json:"width"`
	Height int `json:"height"`
}

// thresholdsJSON are the thresholds a boxes answer was made with.
type thresholdsJSON struct {
	Confidence    float32 `json:"conf"`
	IoU           float32 `json:"iou"`
	MaxDetections int     `json:"max_det"`
}

// boxesBody is the JSON answer of /predict/boxes.
type boxesBody struct {
	// Boxes are sorted by score, highest first.
	Boxes      []boxJSON      `json:"boxes"`
	Model      string         `json:"model"`
	Version    int64          `json:"version"`
	Image      imageJSON      `json:"image"`
	Thresholds thresholdsJSON `json:"thresholds"`
}

// predictBoxes implements POST /predict/boxes and
// /v1/models/{model}/predict/boxes: a detector's boxes on the image, as
// JSON or, with ?format=png or jpeg, drawn on it.
func (s *server) predictBoxes(c *gin.Context) {
	o, ok := s.parseOptions(c, false)
	if !ok {
		return
	}
	q, aerr := parseBoxQuery(c)
	if aerr != nil {
		writeError(c, aerr)
		return
	}
	buf := s.buffers.get(0)
	defer s.buffers.put(buf)
	r, ct, ok := s.runOne(c, o, nil, buf, &q)
	if !ok {
		return
	}
	s.metrics.DetectBoxes.WithLabelValues(ct.Model).Observe(float64(len(r.boxes)))
	if q.format != formatJSON {
		ctx, cancel := context.WithTimeout(c.Request.Context(), o.timeout)
		defer cancel()
		s.drawBoxes(ctx, c, ct, *buf, r, q.format)
		return
	}
	p := q.params(ct)
	body := boxesBody{
		Boxes:      make([]boxJSON, len(r.boxes)),
		Model:      ct.Model,
		Version:    ct.Version,
		Image:      imageJSON{Width: r.size.w, Height: r.size.h},
		Thresholds: thresholdsJSON{Confidence: p.Confidence, IoU: p.IoU, MaxDetections: p.MaxDetections},
	}
	for i, b := range r.boxes {
		body.Boxes[i] = boxJSON{Label: postprocess.Label(ct.Labels, b.Class), ClassIndex: b.Class, Score: b.Score, X1: b.X1, Y1: b.Y1, X2: b.X2, Y2: b.Y2}
	}
	respond(c, body)
}

// decodeBoxes turns out, pred's output for the images sent (results[i]
// for i in sent, in order), into each image's boxes.
func (s *server) decodeBoxes(ct *predclient.Contract, out *predv1.Tensor, sent []int, results []itemResult, q *boxQuery) *apiError {
	o := detect.Output{Classes: ct.Detector.Classes, Boxes: ct.Detector.Boxes}
	switch ct.OutputKind {
	case predv1.OutputKind_OUTPUT_KIND_YOLO:
		o.Layout = detect.LayoutYOLO
	case predv1.OutputKind_OUTPUT_KIND_DETECTIONS:
		o.Layout = detect.LayoutDetections
	}
	switch out.GetDtype() {
	case predv1.DataType_DATA_TYPE_FLOAT32:
	case predv1.DataType_DATA_TYPE_FLOAT64:
		o.Float64 = true
	default:
		return outputError(&postprocess.OutputError{Message: fmt.Sprintf("model output %q has data type %v; only FLOAT32 and FLOAT64 outputs are supported", out.GetName(), out.GetDtype())})
	}
	raw, per := out.GetRawData(), o.Bytes()
	if len(raw) != len(sent)*per {
		return outputError(&postprocess.OutputError{Message: fmt.Sprintf("model output %q has %d bytes (shape %v), want %d images of %d bytes", out.GetName(), len(raw), out.GetShape(), len(sent), per)})
	}
	p := q.params(ct)
	for j, i := range sent {
		start := time.Now()
		boxes, err := detect.Decode(nil, raw[j*per:(j+1)*per], o, p, boxGeometry(ct, results[i].size))
		s.metrics.NMSDuration.Observe(time.Since(start).Seconds())
		if err != nil {
			return outputError(err)
		}
		results[i].boxes = boxes
	}
	return nil
}

// boxGeometry maps ct's tensor pixels back to an image of size sz (after
// EXIF orientation), as ct's preprocessing placed it on the tensor: the
// resized image at (-cx, -cy), which for a letterbox is its padding
// (left, top), for a center crop minus the crop's corner.
func boxGeometry(ct *predclient.Contract, sz imageSize) detect.Geometry {
	if sz.w <= 0 || sz.h <= 0 {
		return detect.Geometry{} // no size read: no boxes
	}
	rw, rh, cx, cy := ct.Preprocessor.Geometry(sz.w, sz.h)
	return detect.Geometry{
		Width: sz.w, Height: sz.h,
		ScaleX: float64(rw) / float64(sz.w), ScaleY: float64(rh) / float64(sz.h),
		OffsetX: -float64(cx), OffsetY: -float64(cy),
	}
}

// drawBoxes answers with the original image (EXIF orientation applied)
// and r's boxes drawn on it, in format; its decoded pixels wait for room
// in the decode budget, as an image being preprocessed does.
func (s *server) drawBoxes(ctx context.Context, c *gin.Context, ct *predclient.Contract, img []byte, r itemResult, format string) {
	n, err := s.decode.Reserve(ctx, int64(r.size.w)*int64(r.size.h)*decodedBytesPerPixel*overlayCopies)
	if err != nil {
		writeError(c, newError(http.StatusServiceUnavailable, codeOverloaded, "no memory to draw the boxes within the request timeout: %v", err))
		return
	}
	defer s.decode.Release(n)
	pic, err := ct.Preprocessor.Picture(img)
	if err != nil {
		aerr, _ := imageError(err)
		writeError(c, aerr)
		return
	}
	detect.Draw(pic, r.boxes, ct.Labels)
	var out bytes.Buffer
	contentType := "image/png"
	if format == formatJPEG {
		contentType = "image/jpeg"
		err = jpeg.Encode(&out, pic, &jpeg.Options{Quality: boxesJPEGQuality})
	} else {
		err = (&png.Encoder{CompressionLevel: png.BestSpeed}).Encode(&out, pic)
	}
	if err != nil {
		writeError(c, newError(http.StatusInternalServerError, codeInternal, "encode the boxes' %s: %v", format, err))
		return
	}
	c.Header(boxCountHeader, strconv.Itoa(len(r.boxes)))
	setServerTiming(c)
	c.Data(http.StatusOK, contentType, out.Bytes())
}
