package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"net/http"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	predv1 "github.com/prepred/prepred/api/gen/prepred/pred/v1"
	"github.com/prepred/prepred/api/spec"
	"github.com/prepred/prepred/pred/predtest"
	"github.com/prepred/prepred/prep/internal/detect"
	"github.com/prepred/prepred/prep/internal/fakepred"
)

// The "marks" test detector: a 64x64 letterbox, OUTPUT_KIND_YOLO with 2
// classes on markAnchors anchors.
const (
	markSide    = 64
	markAnchors = 8
	// markDark is the value below which all three channels of a tensor
	// pixel make it dark (scale 1/255: below 51 of 255).
	markDark = 0.2
)

var markLabels = []string{"dark", "echo"}

// marksMetadata announces the marks detector.
func marksMetadata() *predv1.ModelMetadataResponse {
	s := &predv1.PreprocessSpec{
		SchemaVersion: spec.SchemaVersion,
		Input:         "images",
		ColorOrder:    predv1.ColorOrder_COLOR_ORDER_RGB,
		ResizeMode:    predv1.ResizeMode_RESIZE_MODE_LETTERBOX,
		Interpolation: predv1.Interpolation_INTERPOLATION_BILINEAR,
		Width:         markSide,
		Height:        markSide,
		Scale:         1.0 / 255,
		Mean:          []float32{0, 0, 0},
		Std:           []float32{1, 1, 1},
		Layout:        predv1.Layout_LAYOUT_NCHW,
		Dtype:         predv1.DataType_DATA_TYPE_FLOAT32,
	}
	fp, err := spec.Fingerprint(s)
	if err != nil {
		panic(err)
	}
	return &predv1.ModelMetadataResponse{
		Model:           "marks",
		Version:         1,
		Versions:        []int64{1},
		Inputs:          []*predv1.TensorSpec{{Name: "images", Dtype: predv1.DataType_DATA_TYPE_FLOAT32, Shape: []int64{-1, 3, markSide, markSide}}},
		Outputs:         []*predv1.TensorSpec{{Name: "output0", Dtype: predv1.DataType_DATA_TYPE_FLOAT32, Shape: []int64{-1, 4 + int64(len(markLabels)), markAnchors}}},
		Labels:          append([]string(nil), markLabels...),
		Preprocess:      s,
		SpecFingerprint: fp,
		MaxBatchSize:    4,
		OutputKind:      predv1.OutputKind_OUTPUT_KIND_YOLO,
		Detection:       spec.Detection(nil),
	}
}

// marksModel finds, in each letterboxed image, the bounding box of its
// dark pixels and answers it as anchor 0 ("dark", 0.9), again shifted by a
// pixel as anchor 1 ("dark", 0.8: NMS merges it), and as anchor 2
// ("echo", 0.5: another class, kept). An image without dark pixels has
// no anchor above 0.
func marksModel(md *predv1.ModelMetadataResponse) fakepred.PredictFunc {
	return func(_ context.Context, req *predv1.PredictRequest) (*predv1.PredictResponse, error) {
		in := predtest.Float32s(req.GetInputs()[0].GetRawData())
		plane := markSide * markSide
		items := len(in) / (3 * plane)
		rows := 4 + len(markLabels)
		out := make([]float32, items*rows*markAnchors)
		for i := range items {
			img, o := in[i*3*plane:(i+1)*3*plane], out[i*rows*markAnchors:(i+1)*rows*markAnchors]
			x1, y1, x2, y2 := markSide, markSide, -1, -1
			for y := range markSide {
				for x := range markSide {
					p := y*markSide + x
					if img[p] < markDark && img[plane+p] < markDark && img[2*plane+p] < markDark {
						x1, y1, x2, y2 = min(x1, x), min(y1, y), max(x2, x+1), max(y2, y+1)
					}
				}
			}
			if x2 < 0 {
				continue
			}
			set := func(a int, dx, score float32, class int) {
				o[a] = float32(x1+x2)/2 + dx
				o[markAnchors+a] = float32(y1+y2) / 2
				o[2*markAnchors+a], o[3*markAnchors+a] = float32(x2-x1), float32(y2-y1)
				o[(4+class)*markAnchors+a] = score
			}
			set(0, 0, 0.9, 0)
			set(1, 1, 0.8, 0)
			set(2, 0, 0.5, 1)
		}
		return fakepred.AnswerBatch(md, items, out), nil
	}
}

// startBoxesAPI is the feature API (colors by default) with the marks
// detector beside it.
func startBoxesAPI(t *testing.T) *featureAPI {
	t.Helper()
	api := startFeatureAPI(t, nil)
	md := marksMetadata()
	api.pred.AddModel(md)
	marks, colors := marksModel(md), fakepred.ColorsModel(api.md)
	api.pred.SetPredict(func(ctx context.Context, req *predv1.PredictRequest) (*predv1.PredictResponse, error) {
		if req.GetModel() == "marks" {
			return marks(ctx, req)
		}
		return colors(ctx, req)
	})
	return api
}

// markedPNG is a w x h white image with a black rectangle r.
func markedPNG(t *testing.T, w, h int, r image.Rectangle) []byte {
	t.Helper()
	img := image.NewNRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			c := color.NRGBA{255, 255, 255, 255}
			if (image.Point{x, y}).In(r) {
				c = color.NRGBA{0, 0, 0, 255}
			}
			img.SetNRGBA(x, y, c)
		}
	}
	var b bytes.Buffer
	if err := png.Encode(&b, img); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func boxesAnswer(t *testing.T, r response) boxesBody {
	t.Helper()
	if r.status != http.StatusOK {
		t.Fatalf("status %d: %s", r.status, r.body)
	}
	var b boxesBody
	if err := json.Unmarshal(r.body, &b); err != nil {
		t.Fatalf("%s: %v", r.body, err)
	}
	return b
}

// wantMarks checks that b holds the dark rectangle r (IoU >= 0.85: the
// 64-pixel tensor blurs its edges by up to a tensor pixel), labelled, and
// its echo in the second class, and nothing else.
func wantMarks(t *testing.T, b boxesBody, w, h int, r image.Rectangle) {
	t.Helper()
	if b.Image != (imageJSON{w, h}) || b.Model != "marks" || b.Version != 1 {
		t.Errorf("image %+v, model %q version %d; want %dx%d, marks 1", b.Image, b.Model, b.Version, w, h)
	}
	if len(b.Boxes) != 2 {
		t.Fatalf("boxes %+v, want the dark one and its echo", b.Boxes)
	}
	want := detect.Box{X1: float32(r.Min.X), Y1: float32(r.Min.Y), X2: float32(r.Max.X), Y2: float32(r.Max.Y)}
	for i, wantLabel := range []string{"dark", "echo"} {
		g := b.Boxes[i]
		got := detect.Box{X1: g.X1, Y1: g.Y1, X2: g.X2, Y2: g.Y2}
		if iou := detect.IoU(got, want); g.Label != wantLabel || g.ClassIndex != i || iou < 0.85 {
			t.Errorf("box %d = %+v (IoU %.3f with %v), want %q class %d with IoU >= 0.85", i, g, iou, r, wantLabel, i)
		}
		if g.X1 < 0 || g.Y1 < 0 || g.X2 > float32(w) || g.Y2 > float32(h) {
			t.Errorf("box %d = %+v is not clipped to %dx%d", i, g, w, h)
		}
	}
	if b.Boxes[0].Score != 0.9 || b.Boxes[1].Score != 0.5 {
		t.Errorf("scores %v, %v; want 0.9 then 0.5", b.Boxes[0].Score, b.Boxes[1].Score)
	}
}

func TestPredictBoxes(t *testing.T) {
	api := startBoxesAPI(t)
	// Letterboxed with padding above and below, then left and right.
	for _, c := range []struct {
		w, h int
		r    image.Rectangle
	}{{200, 100, image.Rect(40, 20, 120, 70)}, {100, 200, image.Rect(10, 120, 90, 190)}} {
		img := markedPNG(t, c.w, c.h, c.r)
		body, ctype := multipartBody(t, part{field: "file", filename: "marks.png", data: img})
		for name, r := range map[string]response{
			"json":                 api.postJSON(t, "/v1/models/marks/predict/boxes", jsonBody(img)),
			"raw":                  do(t, http.MethodPost, api.url+"/predict/boxes?model=marks", "image/png", bytes.NewReader(img)),
			"multipart":            do(t, http.MethodPost, api.url+"/v1/models/marks/predict/boxes", ctype, body),
			"version in the query": api.postJSON(t, "/v1/models/marks/predict/boxes?version=1", jsonBody(img)),
		} {
			t.Run(fmt.Sprintf("%dx%d/%s", c.w, c.h, name), func(t *testing.T) {
				b := boxesAnswer(t, r)
				wantMarks(t, b, c.w, c.h, c.r)
				if b.Thresholds != (thresholdsJSON{spec.DefaultConfidenceThreshold, spec.DefaultIoUThreshold, spec.DefaultMaxDetections}) {
					t.Errorf("thresholds %+v, want the defaults", b.Thresholds)
				}
			})
		}
	}
	// No dark pixel: no box, and "boxes" is an empty list.
	r := api.postJSON(t, "/v1/models/marks/predict/boxes", jsonBody(solidPNG(t, 50, 50, white)))
	if b := boxesAnswer(t, r); b.Boxes == nil || len(b.Boxes) != 0 || !strings.Contains(string(r.body), `"boxes":[]`) {
		t.Errorf("an image without marks: %s", r.body)
	}
}

func TestPredictBoxesOverrides(t *testing.T) {
	api := startBoxesAPI(t)
	rect := image.Rect(40, 20, 120, 70)
	img := markedPNG(t, 200, 100, rect)
	for _, c := range []struct {
		query  string
		labels []string
		scores []float32
	}{
		{"conf=0.6", []string{"dark"}, []float32{0.9}},
		{"conf=0.95", nil, nil},
		{"conf=0", []string{"dark", "echo"}, []float32{0.9, 0.5}},
		{"max_det=1", []string{"dark"}, []float32{0.9}},
		// IoU 1 suppresses nothing but identical boxes: the shifted
		// anchor stays.
		{"iou=1", []string{"dark", "dark", "echo"}, []float32{0.9, 0.8, 0.5}},
		{"iou=1&max_det=2&conf=0.4", []string{"dark", "dark"}, []float32{0.9, 0.8}},
	} {
		b := boxesAnswer(t, api.postJSON(t, "/v1/models/marks/predict/boxes?"+c.query, jsonBody(img)))
		var labels []string
		var scores []float32
		for _, bx := range b.Boxes {
			labels, scores = append(labels, bx.Label), append(scores, bx.Score)
		}
		if strings.Join(labels, ",") != strings.Join(c.labels, ",") || len(scores) != len(c.scores) {
			t.Errorf("?%s: boxes %+v, want labels %v scores %v", c.query, b.Boxes, c.labels, c.scores)
			continue
		}
		for i := range scores {
			if scores[i] != c.scores[i] {
				t.Errorf("?%s: scores %v, want %v", c.query, scores, c.scores)
			}
		}
	}
	b := boxesAnswer(t, api.postJSON(t, "/v1/models/marks/predict/boxes?conf=0.3&iou=0.5&max_det=7", jsonBody(img)))
	if b.Thresholds != (thresholdsJSON{0.3, 0.5, 7}) {
		t.Errorf("thresholds %+v, want the overrides", b.Thresholds)
	}
}

func TestPredictBoxesParameterErrors(t *testing.T) {
	api := startBoxesAPI(t)
	for _, q := range []string{"conf=2", "conf=-0.1", "conf=NaN", "conf=abc", "iou=0", "iou=1.5", "iou=", "max_det=0", "max_det=10001", "max_det=2.5", "format=gif"} {
		// The body is not even JSON: the query is refused before it is read.
		r := api.postJSON(t, "/v1/models/marks/predict/boxes?"+q, "not json")
		msg := wantError(t, r, http.StatusBadRequest, codeBadRequest)
		if name := q[:strings.Index(q, "=")]; !strings.Contains(msg, "query parameter "+name) {
			t.Errorf("?%s: message %q does not name %s", q, msg, name)
		}
	}
	if reqs := mustRequests(api.pred); len(reqs) != 0 {
		t.Errorf("pred got %d requests for refused queries", len(reqs))
	}
}

func TestModelKindMismatch(t *testing.T) {
	api := startBoxesAPI(t)
	img := jsonBody(solidPNG(t, 40, 40, red))
	// A classifier asked for boxes, by default and by name.
	for _, path := range []string{"/predict/boxes", "/v1/models/colors/predict/boxes", "/predict/boxes?model=inverse"} {
		msg := wantError(t, api.postJSON(t, path, img), http.StatusUnprocessableEntity, codeModelKindMismatch)
		if !strings.Contains(msg, "is a classifier (output_kind OUTPUT_KIND_LOGITS)") {
			t.Errorf("%s: %q does not name the model's kind", path, msg)
		}
	}
	// A detector asked for what classifiers answer.
	for _, path := range []string{"/predict/label", "/predict", "/predict/topk", "/predict/batch", "/explain"} {
		for _, p := range []string{"/v1/models/marks" + path, path + "?model=marks"} {
			msg := wantError(t, api.postJSON(t, p, img), http.StatusUnprocessableEntity, codeModelKindMismatch)
			if !strings.Contains(msg, `model "marks" version 1 is a detector (output_kind OUTPUT_KIND_YOLO)`) || !strings.Contains(msg, "/v1/models/marks/predict/boxes") {
				t.Errorf("%s: %q does not name the model's kind and its endpoint", p, msg)
			}
		}
	}
	if reqs := mustRequests(api.pred); len(reqs) != 0 {
		t.Errorf("pred got %d requests for the wrong kind", len(reqs))
	}
	// Metadata says which kind a model is.
	var md metadataBody
	if err := json.Unmarshal(do(t, http.MethodGet, api.url+"/v1/models/marks/metadata", "", nil).body, &md); err != nil {
		t.Fatal(err)
	}
	if md.Kind != kindDetector || md.OutputKind != "OUTPUT_KIND_YOLO" || md.Detection == nil || md.Detection.MaxDetections != spec.DefaultMaxDetections {
		t.Errorf("marks metadata: kind %q, output_kind %q, detection %+v", md.Kind, md.OutputKind, md.Detection)
	}
	if err := json.Unmarshal(do(t, http.MethodGet, api.url+"/metadata", "", nil).body, &md); err != nil {
		t.Fatal(err)
	}
	if md.Kind != kindClassifier || md.OutputKind != "OUTPUT_KIND_LOGITS" {
		t.Errorf("colors metadata: kind %q, output_kind %q", md.Kind, md.OutputKind)
	}
}

func TestPredictBoxesPicture(t *testing.T) {
	api := startBoxesAPI(t)
	const w, h = 200, 100
	rect := image.Rect(40, 30, 120, 80)
	img := markedPNG(t, w, h, rect)
	jb := boxesAnswer(t, api.postJSON(t, "/v1/models/marks/predict/boxes", jsonBody(img)))
	for _, format := range []string{"png", "jpeg", "jpg"} {
		r := do(t, http.MethodPost, api.url+"/v1/models/marks/predict/boxes?format="+format, "image/png", bytes.NewReader(img))
		if r.status != http.StatusOK {
			t.Fatalf("format=%s: %d %s", format, r.status, r.body)
		}
		wantType := map[string]string{"png": "image/png", "jpeg": "image/jpeg", "jpg": "image/jpeg"}[format]
		if ct := r.header.Get("Content-Type"); ct != wantType || r.header.Get(boxCountHeader) != "2" {
			t.Errorf("format=%s: Content-Type %q, %s %q; want %s and 2", format, ct, boxCountHeader, r.header.Get(boxCountHeader), wantType)
		}
		decode := png.Decode
		if wantType == "image/jpeg" {
			decode = jpeg.Decode
		}
		pic, err := decode(bytes.NewReader(r.body))
		if err != nil {
			t.Fatalf("format=%s: %v", format, err)
		}
		if pic.Bounds() != image.Rect(0, 0, w, h) {
			t.Fatalf("format=%s: picture %v, want the original %dx%d", format, pic.Bounds(), w, h)
		}
		if format != "png" {
			continue // lossy: the size is what is checked
		}
		// The echo box (class 1) is drawn last, over the dark one: its
		// color is on the box's left and right edges; far from the box the
		// image is unchanged.
		b := jb.Boxes[1]
		my := int(b.Y1+b.Y2) / 2
		for _, x := range []int{int(b.X1), ceilInt(b.X2) - 1} {
			if got := color.NRGBAModel.Convert(pic.At(x, my)).(color.NRGBA); got != detect.Color(1) {
				t.Errorf("edge pixel (%d,%d) = %v, want the echo class color %v", x, my, got, detect.Color(1))
			}
		}
		if got := color.NRGBAModel.Convert(pic.At(190, 90)).(color.NRGBA); got != (color.NRGBA{255, 255, 255, 255}) {
			t.Errorf("(190,90) = %v, want the original white", got)
		}
	}
}

func ceilInt(v float32) int {
	i := int(v)
	if float32(i) < v {
		i++
	}
	return i
}

func TestBoxesMetrics(t *testing.T) {
	api := startBoxesAPI(t)
	img := markedPNG(t, 200, 100, image.Rect(40, 20, 120, 70))
	boxesAnswer(t, api.postJSON(t, "/v1/models/marks/predict/boxes", jsonBody(img)))
	boxesAnswer(t, api.postJSON(t, "/v1/models/marks/predict/boxes?conf=0.6", jsonBody(img)))
	text := string(do(t, http.MethodGet, api.url+"/metrics", "", nil).body)
	for _, want := range []string{
		`prep_detect_boxes_sum{model="marks"} 3`,
		`prep_detect_boxes_count{model="marks"} 2`,
		`prep_detect_boxes_bucket{model="marks",le="1"} 1`,
		`prep_detect_nms_duration_seconds_count 2`,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
}

// TestKindChangesDuringRequest: pred's model "colors" is replaced by a
// detector while a /predict/label request is in flight; the request is
// not retried as a classification of the detector's output but answered
// model_kind_mismatch, and the next request for boxes works.
func TestKindChangesDuringRequest(t *testing.T) {
	api := startAPI(t, testTimeout, true)
	det := marksMetadata()
	det.Model, det.Version, det.Versions = "colors", 2, []int64{2}
	marks := marksModel(det)
	api.pred.SetMetadata(det, nil)
	api.pred.SetPredict(func(ctx context.Context, req *predv1.PredictRequest) (*predv1.PredictResponse, error) {
		if req.GetSpecFingerprint() != det.GetSpecFingerprint() {
			return nil, status.Errorf(codes.FailedPrecondition, "spec fingerprint %q does not match the model's %q", req.GetSpecFingerprint(), det.GetSpecFingerprint())
		}
		return marks(ctx, req)
	})
	img := jsonBody(markedPNG(t, 200, 100, image.Rect(40, 20, 120, 70)))
	msg := wantError(t, api.postJSON(t, "/predict/label", img), http.StatusUnprocessableEntity, codeModelKindMismatch)
	if !strings.Contains(msg, `model "colors" version 2 is a detector`) {
		t.Errorf("message %q does not name the new version's kind", msg)
	}
	if reqs, _ := api.pred.Requests(); len(reqs) != 1 {
		t.Errorf("pred got %d requests, want the refused one only", len(reqs))
	}
	b := boxesAnswer(t, api.postJSON(t, "/predict/boxes", img))
	if b.Version != 2 || len(b.Boxes) != 2 {
		t.Errorf("boxes after the switch: %+v", b)
	}
}
