package httpapi

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"io"
	"math"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"net/textproto"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gin-gonic/gin"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	predv1 "github.com/prepred/prepred/api/gen/prepred/pred/v1"
	"github.com/prepred/prepred/prep/internal/fakepred"
	"github.com/prepred/prepred/prep/internal/imageprep"
	"github.com/prepred/prepred/prep/internal/predclient"
)

// Colors of the feature tests and the label the colors model gives them.
var (
	red   = color.RGBA{230, 10, 10, 255}
	green = color.RGBA{10, 220, 10, 255}
	blue  = color.RGBA{10, 10, 230, 255}
	white = color.RGBA{250, 250, 250, 255}
)

// featureAPI is the API in front of a fake pred serving the colors model
// (the default) and "inverse", the colors model with its labels reversed.
type featureAPI struct {
	*testAPI
	engine  *gin.Engine
	srv     *server
	inverse *predv1.ModelMetadataResponse
}

// startFeatureAPI starts the API with the contract of colors loaded; edit,
// if not nil, changes the Config first.
func startFeatureAPI(t *testing.T, edit func(*Config)) *featureAPI {
	t.Helper()
	md := fakepred.ColorsMetadata()
	pred := fakepred.Start(t, md)
	inv := inverseMetadata()
	pred.AddModel(inv)
	colors, inverse := fakepred.ColorsModel(md), fakepred.ColorsModel(inv)
	pred.SetPredict(func(ctx context.Context, req *predv1.PredictRequest) (*predv1.PredictResponse, error) {
		if req.GetModel() == "inverse" {
			return inverse(ctx, req)
		}
		return colors(ctx, req)
	})
	client, err := predclient.New(predclient.Config{Target: pred.Addr, Model: "colors", Limits: imageprep.Limits{MaxPixels: testMaxPixels}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = client.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	if _, err := client.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	cfg := Config{Client: client, RequestTimeout: testTimeout, MaxBodyBytes: testMaxBody}
	if edit != nil {
		edit(&cfg)
	}
	r, s := newEngine(cfg)
	srv := httptest.NewServer(r)
	t.Cleanup(srv.Close)
	return &featureAPI{testAPI: &testAPI{url: srv.URL, pred: pred, md: md, client: client}, engine: r, srv: s, inverse: inv}
}

// inverseMetadata is the colors model under the name "inverse", with its
// labels in reverse order: red comes out as "cyan" (label 8-2 = 6).
func inverseMetadata() *predv1.ModelMetadataResponse {
	md := fakepred.ColorsMetadata()
	md.Model = "inverse"
	md.Version, md.Versions = 3, []int64{3}
	slices.Reverse(md.Labels)
	return md
}

// part is one part of a multipart body: a file when filename is set.
type part struct {
	field, filename, contentType string
	data                         []byte
}

// multipartBody encodes parts and returns the body and its Content-Type.
func multipartBody(t *testing.T, parts ...part) (*bytes.Buffer, string) {
	t.Helper()
	var b bytes.Buffer
	w := multipart.NewWriter(&b)
	for _, p := range parts {
		h := textproto.MIMEHeader{}
		disp := fmt.Sprintf(`form-data; name=%q`, p.field)
		if p.filename != "" {
			disp += fmt.Sprintf(`; filename=%q`, p.filename)
		}
		h.Set("Content-Disposition", disp)
		if p.contentType != "" {
			h.Set("Content-Type", p.contentType)
		}
		pw, err := w.CreatePart(h)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := pw.Write(p.data); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return &b, w.FormDataContentType()
}

func solidPNG(t *testing.T, w, h int, c color.Color) []byte {
	t.Helper()
	img := image.NewNRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			img.Set(x, y, c)
		}
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestImageInputForms(t *testing.T) {
	api := startFeatureAPI(t, nil)
	redJPEG, greenJPEG := solidJPEG(t, 64, 48, red), solidJPEG(t, 64, 48, green)
	jpegFile := func(field string, data []byte) part { return part{field, field + ".jpg", "image/jpeg", data} }
	tests := []struct {
		name  string
		body  func() (io.Reader, string)
		label string
	}{
		{"JSON base64", func() (io.Reader, string) { return strings.NewReader(jsonBody(redJPEG)), "application/json" }, "red"},
		{"multipart file", func() (io.Reader, string) { return multipartBody(t, jpegFile("file", redJPEG)) }, "red"},
		{"multipart image", func() (io.Reader, string) { return multipartBody(t, jpegFile("image", greenJPEG)) }, "green"},
		{"multipart other file field", func() (io.Reader, string) {
			return multipartBody(t, part{"note", "", "", []byte("hello")}, jpegFile("upload", greenJPEG))
		}, "green"},
		{"multipart named part wins over an earlier file", func() (io.Reader, string) {
			return multipartBody(t, jpegFile("thumbnail", redJPEG), jpegFile("file", greenJPEG))
		}, "green"},
		{"multipart first file part when none is named", func() (io.Reader, string) {
			return multipartBody(t, jpegFile("a", greenJPEG), jpegFile("b", redJPEG))
		}, "green"},
		{"multipart file without Content-Type", func() (io.Reader, string) {
			return multipartBody(t, part{"file", "x", "", redJPEG})
		}, "red"},
		{"multipart base64 data field", func() (io.Reader, string) {
			return multipartBody(t, part{"data", "", "", []byte(base64.StdEncoding.EncodeToString(greenJPEG))})
		}, "green"},
		{"multipart file wins over a data field", func() (io.Reader, string) {
			return multipartBody(t, part{"data", "", "", []byte(base64.StdEncoding.EncodeToString(greenJPEG))}, jpegFile("pic", redJPEG))
		}, "red"},
		{"raw image/jpeg", func() (io.Reader, string) { return bytes.NewReader(redJPEG), "image/jpeg" }, "red"},
		{"raw image/png", func() (io.Reader, string) { return bytes.NewReader(solidPNG(t, 20, 20, blue)), "image/png" }, "blue"},
		{"raw application/octet-stream", func() (io.Reader, string) { return bytes.NewReader(greenJPEG), "application/octet-stream" }, "green"},
		{"raw with a wrong image type (sniffed)", func() (io.Reader, string) { return bytes.NewReader(redJPEG), "image/png" }, "red"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body, ct := tt.body()
			r := do(t, http.MethodPost, api.url+"/predict/label", ct, body)
			if want := `{"prediction":"` + tt.label + `"}`; r.status != http.StatusOK || string(r.body) != want {
				t.Errorf("got %d %s, want %s", r.status, r.body, want)
			}
		})
	}
}

func TestImageInputErrors(t *testing.T) {
	api := startFeatureAPI(t, nil)
	jpg := solidJPEG(t, 32, 32, red)
	big := make([]byte, testMaxBody+1)
	tests := []struct {
		name   string
		body   func() (io.Reader, string)
		status int
		code   string
		msg    string
	}{
		{"unsupported type names the accepted ones", func() (io.Reader, string) { return bytes.NewReader(jpg), "text/plain" },
			415, codeUnsupportedMediaType, "multipart/form-data"},
		{"multipart without a file", func() (io.Reader, string) { return multipartBody(t, part{"note", "", "", []byte("hi")}) },
			400, "missing_data", "file"},
		{"multipart without boundary", func() (io.Reader, string) { return strings.NewReader("x"), "multipart/form-data" },
			400, codeBadRequest, "multipart"},
		{"multipart empty file", func() (io.Reader, string) { return multipartBody(t, part{"file", "x.jpg", "", nil}) },
			400, "missing_data", "empty"},
		{"multipart bad base64 field", func() (io.Reader, string) { return multipartBody(t, part{"data", "", "", []byte("**")}) },
			400, "invalid_base64", `"data"`},
		{"multipart over the body limit", func() (io.Reader, string) {
			b, ct := multipartBody(t, part{"file", "big.jpg", "", big})
			return chunkedReader{b}, ct // no Content-Length: the limit applies while reading
		}, 413, codeBodyTooLarge, "65536"},
		{"multipart not an image", func() (io.Reader, string) { return multipartBody(t, part{"file", "a.txt", "", []byte("plain text")}) },
			415, imageprep.CodeUnsupportedFormat, ""},
		{"raw empty", func() (io.Reader, string) { return bytes.NewReader(nil), "image/jpeg" }, 400, "missing_data", "empty"},
		{"raw over the body limit", func() (io.Reader, string) { return chunkedReader{bytes.NewReader(big)}, "image/jpeg" },
			413, codeBodyTooLarge, ""},
		{"raw truncated", func() (io.Reader, string) { return bytes.NewReader(jpg[:len(jpg)/2]), "image/jpeg" },
			400, imageprep.CodeInvalidImage, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body, ct := tt.body()
			r := do(t, http.MethodPost, api.url+"/predict/label", ct, body)
			if msg := wantError(t, r, tt.status, tt.code); !strings.Contains(msg, tt.msg) {
				t.Errorf("message %q does not contain %q", msg, tt.msg)
			}
		})
	}
	if reqs, _ := api.pred.Requests(); len(reqs) != 0 {
		t.Errorf("bad input reached pred %d times", len(reqs))
	}
}

// decodeTopK decodes a top-k answer and checks its invariants: k entries,
// sorted, each a valid probability with the model's label at its index,
// summing to at most 1.
func decodeTopK(t *testing.T, r response, k int, labels []string) topKBody {
	t.Helper()
	var body topKBody
	dec := json.NewDecoder(bytes.NewReader(r.body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&body); err != nil || r.status != http.StatusOK {
		t.Fatalf("%d %s: %v", r.status, r.body, err)
	}
	checkScores(t, body.Prediction, k, labels)
	return body
}

func checkScores(t *testing.T, scores []classScore, k int, labels []string) {
	t.Helper()
	if len(scores) != k {
		t.Fatalf("%d classes, want %d", len(scores), k)
	}
	var sum float64
	for i, s := range scores {
		if s.Probability < 0 || s.Probability > 1 || math.IsNaN(s.Probability) {
			t.Errorf("class %d probability %v", i, s.Probability)
		}
		if i > 0 && s.Probability > scores[i-1].Probability {
			t.Errorf("not sorted: %+v", scores)
		}
		if s.Index < 0 || s.Index >= len(labels) || labels[s.Index] != s.Label {
			t.Errorf("class %d: label %q at index %d", i, s.Label, s.Index)
		}
		sum += s.Probability
	}
	if sum > 1+1e-9 {
		t.Errorf("top-%d probabilities sum to %v > 1", k, sum)
	}
}

func TestTopK(t *testing.T) {
	api := startFeatureAPI(t, nil)
	img := jsonBody(solidJPEG(t, 40, 30, red))
	tests := []struct {
		path string
		k    int
	}{
		{"/predict?top_k=3", 3},
		{"/predict/topk", defaultTopK},
		{"/predict/topk?k=2", 2},
		{"/predict/topk?top_k=4", 4},
		{"/predict/topk?k=100", len(fakepred.ColorLabels)}, // clamped to the classes
		{"/v1/models/colors/predict?top_k=1", 1},
		{"/v1/models/colors/predict/topk?k=9", 9},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			body := decodeTopK(t, api.postJSON(t, tt.path, img), tt.k, fakepred.ColorLabels)
			if body.Prediction[0].Label != "red" || body.Prediction[0].Index != 2 || body.Model != "colors" || body.Version != 1 {
				t.Errorf("answer %+v", body)
			}
		})
	}
	// The classic answer is unchanged without top_k.
	if r := api.postJSON(t, "/predict", img); !strings.HasPrefix(string(r.body), `{"prediction":[[`) {
		t.Errorf("/predict without top_k: %s", r.body)
	}
	for _, path := range []string{"/predict?top_k=0", "/predict?top_k=x", "/predict/topk?k=-1", "/predict/batch?top_k=1.5"} {
		wantError(t, api.postJSON(t, path, img), http.StatusBadRequest, codeBadRequest)
	}
}

// batchAnswer decodes a batch answer.
func batchAnswer(t *testing.T, r response) batchBody {
	t.Helper()
	var body struct {
		Model       string `json:"model"`
		Version     int64  `json:"version"`
		Predictions []struct {
			Label       *string      `json:"label"`
			Index       *int         `json:"index"`
			Probability *float64     `json:"probability"`
			TopK        []classScore `json:"top_k"`
			Error       *errorDetail `json:"error"`
		} `json:"predictions"`
	}
	dec := json.NewDecoder(bytes.NewReader(r.body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&body); err != nil || r.status != http.StatusOK {
		t.Fatalf("%d %s: %v", r.status, r.body, err)
	}
	out := batchBody{Model: body.Model, Version: body.Version}
	for i, p := range body.Predictions {
		item := batchItem{TopK: p.TopK, Error: p.Error}
		switch {
		case p.Error != nil && p.Label == nil:
		case p.Error == nil && p.Label != nil && p.Index != nil && p.Probability != nil:
			item.classScore = &classScore{Label: *p.Label, Index: *p.Index, Probability: *p.Probability}
		default:
			t.Fatalf("item %d has neither a complete class nor only an error: %s", i, r.body)
		}
		out.Predictions = append(out.Predictions, item)
	}
	return out
}

// labelsOfBatch returns each item's label, or "error:<code>".
func labelsOfBatch(b batchBody) []string {
	var out []string
	for _, p := range b.Predictions {
		if p.Error != nil {
			out = append(out, "error:"+p.Error.Code)
		} else {
			out = append(out, p.Label)
		}
	}
	return out
}

func TestBatch(t *testing.T) {
	r, g, b := solidJPEG(t, 48, 32, red), solidJPEG(t, 40, 40, green), solidPNG(t, 16, 24, blue)
	b64 := base64.StdEncoding.EncodeToString
	file := func(data []byte) part { return part{"file", "img", "", data} }
	tests := []struct {
		name   string
		path   string
		body   func() (io.Reader, string)
		labels []string
		sent   int64 // images in the one pred call
	}{
		{"JSON data", "/predict/batch", func() (io.Reader, string) {
			return strings.NewReader(fmt.Sprintf(`{"data": [%q, %q, %q]}`, b64(r), b64(g), b64(b))), "application/json"
		}, []string{"red", "green", "blue"}, 3},
		{"JSON instances with b64 objects and a data URI", "/predict/batch", func() (io.Reader, string) {
			return strings.NewReader(fmt.Sprintf(`{"instances": [{"b64": %q}, %q, {"data": %q}]}`, b64(b), "data:image/jpeg;base64,"+b64(r), b64(g))), ""
		}, []string{"blue", "red", "green"}, 3},
		{"multipart files", "/predict/batch", func() (io.Reader, string) {
			return multipartBody(t, file(g), part{"note", "", "", []byte("x")}, file(g), part{"image", "b.png", "image/png", b})
		}, []string{"green", "green", "blue"}, 3},
		{"JSON single data string", "/predict/batch", func() (io.Reader, string) {
			return strings.NewReader(fmt.Sprintf(`{"data": %q}`, b64(r))), "application/json"
		}, []string{"red"}, 1},
		{"raw image", "/predict/batch", func() (io.Reader, string) { return bytes.NewReader(b), "image/png" }, []string{"blue"}, 1},
		{"a broken image fails alone", "/predict/batch", func() (io.Reader, string) {
			return strings.NewReader(fmt.Sprintf(`{"data": [%q, %q, %q]}`, b64(r), b64([]byte("not an image")), b64(b))), "application/json"
		}, []string{"red", "error:" + imageprep.CodeUnsupportedFormat, "blue"}, 2},
		{"by model name", "/v1/models/inverse/predict/batch", func() (io.Reader, string) {
			return strings.NewReader(fmt.Sprintf(`{"data": [%q, %q]}`, b64(r), b64(b))), "application/json"
		}, []string{"cyan", "blue"}, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			api := startFeatureAPI(t, nil)
			body, ct := tt.body()
			ans := batchAnswer(t, do(t, http.MethodPost, api.url+tt.path, ct, body))
			if got := labelsOfBatch(ans); !slices.Equal(got, tt.labels) {
				t.Errorf("labels %q, want %q", got, tt.labels)
			}
			reqs, _ := api.pred.Requests()
			if len(reqs) != 1 {
				t.Fatalf("pred got %d requests, want 1", len(reqs))
			}
			if shape := reqs[0].GetInputs()[0].GetShape(); !slices.Equal(shape, []int64{tt.sent, 3, 32, 32}) {
				t.Errorf("pred got shape %v, want [%d 3 32 32]", shape, tt.sent)
			}
		})
	}

	t.Run("top_k", func(t *testing.T) {
		api := startFeatureAPI(t, nil)
		ans := batchAnswer(t, api.postJSON(t, "/predict/batch?top_k=3", fmt.Sprintf(`{"data": [%q, %q]}`, b64(r), b64(g))))
		for i, p := range ans.Predictions {
			checkScores(t, p.TopK, 3, fakepred.ColorLabels)
			if p.TopK[0] != *p.classScore {
				t.Errorf("item %d: top_k[0] %+v differs from the class %+v", i, p.TopK[0], *p.classScore)
			}
		}
	})
}

func TestBatchLimits(t *testing.T) {
	img := base64.StdEncoding.EncodeToString(solidJPEG(t, 8, 8, white))
	items := func(n int) string {
		return `{"data": [` + strings.TrimSuffix(strings.Repeat(`"`+img+`",`, n), ",") + `]}`
	}
	files := func(n int) (io.Reader, string) {
		var parts []part
		for range n {
			parts = append(parts, part{"file", "w.jpg", "", []byte(solidJPEG(t, 8, 8, white))})
		}
		return multipartBody(t, parts...)
	}
	tests := []struct {
		name     string
		maxBatch int
		body     func() (io.Reader, string)
		status   int
		code     string
		msg      string
	}{
		{"model max_batch_size", 0, func() (io.Reader, string) { return strings.NewReader(items(9)), "" }, 400, "too_many_images", "max_batch_size 8"},
		{"model max_batch_size, multipart", 0, func() (io.Reader, string) { return files(9) }, 400, "too_many_images", "max_batch_size 8"},
		{"prep's cap", 2, func() (io.Reader, string) { return strings.NewReader(items(3)), "" }, 400, "too_many_images", "prep at most 2"},
		{"at the limit", 0, func() (io.Reader, string) { return strings.NewReader(items(8)), "" }, 200, "", ""},
		{"empty", 0, func() (io.Reader, string) { return strings.NewReader(`{"data": []}`), "" }, 400, "missing_data", "empty"},
		{"neither field", 0, func() (io.Reader, string) { return strings.NewReader(`{"images": []}`), "" }, 400, "missing_data", "instances"},
		{"both fields", 0, func() (io.Reader, string) { return strings.NewReader(`{"data": [], "instances": []}`), "" }, 400, "invalid_json", "both"},
		{"item not a string", 0, func() (io.Reader, string) { return strings.NewReader(`{"data": [1]}`), "" }, 400, "invalid_json", "data[0]"},
		{"item bad base64", 0, func() (io.Reader, string) { return strings.NewReader(`{"instances": ["` + img + `", "#"]}`), "" }, 400, "invalid_base64", "instances[1]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			api := startFeatureAPI(t, func(c *Config) { c.MaxBatchImages = tt.maxBatch })
			body, ct := tt.body()
			r := do(t, http.MethodPost, api.url+"/predict/batch", ct, body)
			if tt.status == http.StatusOK {
				if got := labelsOfBatch(batchAnswer(t, r)); len(got) != 8 || got[7] != "white" {
					t.Errorf("labels %q", got)
				}
				return
			}
			if msg := wantError(t, r, tt.status, tt.code); !strings.Contains(msg, tt.msg) {
				t.Errorf("message %q does not contain %q", msg, tt.msg)
			}
			if reqs, _ := api.pred.Requests(); len(reqs) != 0 {
				t.Errorf("a refused batch reached pred")
			}
		})
	}
}

func TestModelSelection(t *testing.T) {
	api := startFeatureAPI(t, nil)
	img := jsonBody(solidJPEG(t, 32, 32, red))
	calls := api.pred.MetadataCalls()
	tests := []struct {
		path, label string
		model       string
		version     int64
	}{
		{"/predict/label", "red", "colors", 1},
		{"/predict/label?model=colors", "red", "colors", 1},
		{"/predict/label?model=colors&version=1", "red", "colors", 1},
		{"/predict/label?model=inverse", "cyan", "inverse", 3},
		{"/predict/label?model=inverse&version=3", "cyan", "inverse", 3},
		{"/v1/models/inverse/predict/label", "cyan", "inverse", 3},
		{"/v1/models/inverse/predict/label?version=0", "cyan", "inverse", 3},
		{"/v1/models/colors/predict/label", "red", "colors", 1},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			r := api.postJSON(t, tt.path, img)
			if want := `{"prediction":"` + tt.label + `"}`; r.status != http.StatusOK || string(r.body) != want {
				t.Fatalf("got %d %s, want %s", r.status, r.body, want)
			}
			reqs, _ := api.pred.Requests()
			last := reqs[len(reqs)-1]
			if last.GetModel() != tt.model || last.GetVersion() != tt.version {
				t.Errorf("pred got model %q version %d, want %q %d", last.GetModel(), last.GetVersion(), tt.model, tt.version)
			}
			fp := api.md.GetSpecFingerprint()
			if tt.model == "inverse" {
				fp = api.inverse.GetSpecFingerprint()
			}
			if last.GetSpecFingerprint() != fp {
				t.Errorf("fingerprint %q, want %q", last.GetSpecFingerprint(), fp)
			}
		})
	}
	// Each other model version is read once: inverse (latest), colors 1,
	// inverse 3.
	if n := api.pred.MetadataCalls() - calls; n != 3 {
		t.Errorf("%d contract reads for %d requests, want 3 (one per model version key)", n, len(tests))
	}

	t.Run("metadata and labels", func(t *testing.T) {
		r := do(t, http.MethodGet, api.url+"/v1/models/inverse/label", "", nil)
		var labels []string
		if err := json.Unmarshal(r.body, &labels); err != nil || labels[0] != "gray" {
			t.Errorf("/v1/models/inverse/label: %d %s", r.status, r.body)
		}
		r = do(t, http.MethodGet, api.url+"/metadata?model=inverse", "", nil)
		var md metadataBody
		if err := json.Unmarshal(r.body, &md); err != nil || md.Model != "inverse" || md.Version != 3 || md.SpecFingerprint != api.inverse.GetSpecFingerprint() || md.MaxBatchSize != 8 {
			t.Errorf("/metadata?model=inverse: %d %s", r.status, r.body)
		}
	})

	t.Run("list", func(t *testing.T) {
		r := do(t, http.MethodGet, api.url+"/v1/models", "", nil)
		var body modelsBody
		if err := json.Unmarshal(r.body, &body); err != nil || r.status != http.StatusOK {
			t.Fatalf("%d %s", r.status, r.body)
		}
		want := []modelState{{"colors", 1, "READY", ""}, {"inverse", 3, "READY", ""}}
		if body.DefaultModel != "colors" || !slices.Equal(body.Models, want) {
			t.Errorf("/v1/models = %+v", body)
		}
	})

	t.Run("errors", func(t *testing.T) {
		n := len(mustRequests(api.pred))
		for _, tt := range []struct {
			path   string
			status int
			code   string
		}{
			{"/v1/models/nothing/predict/label", 404, codeModelNotFound},
			{"/predict/label?model=nothing", 404, codeModelNotFound},
			{"/predict/label?model=inverse&version=4", 404, codeModelNotFound},
			{"/predict/label?version=-1", 400, codeBadRequest},
			{"/predict/label?version=latest", 400, codeBadRequest},
			{"/predict/label?model=" + strings.Repeat("m", maxModelNameLen+1), 400, codeBadRequest},
		} {
			if msg := wantError(t, api.postJSON(t, tt.path, img), tt.status, tt.code); tt.status == 404 && !strings.Contains(msg, "nothing") && !strings.Contains(msg, "version 4") {
				t.Errorf("%s: message %q does not name what is missing", tt.path, msg)
			}
		}
		if len(mustRequests(api.pred)) != n {
			t.Error("a request for an unknown model reached Predict")
		}
	})
}

func mustRequests(p *fakepred.Server) []*predv1.PredictRequest {
	reqs, _ := p.Requests()
	return reqs
}

func TestParseTimeouts(t *testing.T) {
	tests := []struct {
		in   string
		grpc bool
		want time.Duration // 0: an error
	}{
		{"250ms", false, 250 * time.Millisecond},
		{"2s", false, 2 * time.Second},
		{"1m30s", false, 90 * time.Second},
		{"2.5", false, 2500 * time.Millisecond},
		{"0", false, 0},
		{"-1s", false, 0},
		{"soon", false, 0},
		{"NaN", false, 0},
		{"1e300", false, 0},
		{"500m", true, 500 * time.Millisecond},
		{"2S", true, 2 * time.Second},
		{"1H", true, time.Hour},
		{"3M", true, 3 * time.Minute},
		{"100u", true, 100 * time.Microsecond},
		{"7n", true, 7},
		{"99999999H", true, 1 << 62},
		{"123456789S", true, 0}, // 9 digits
		{"0S", true, 0},
		{"5s", true, 0},
		{"S", true, 0},
		{"-5S", true, 0},
	}
	for _, tt := range tests {
		parse := parseTimeout
		if tt.grpc {
			parse = parseGRPCTimeout
		}
		got, err := parse(tt.in)
		if tt.want == 0 && err == nil {
			t.Errorf("%q: %v, want an error", tt.in, got)
		}
		if tt.want != 0 && (err != nil || got != tt.want) {
			t.Errorf("%q: %v, %v, want %v", tt.in, got, err, tt.want)
		}
	}
}

func TestRequestTimeoutHeader(t *testing.T) {
	const maxTimeout = 3 * time.Second
	api := startFeatureAPI(t, func(c *Config) { c.RequestTimeout, c.MaxRequestTimeout = 2*time.Second, maxTimeout })
	img := jsonBody(solidJPEG(t, 16, 16, white))
	colors := fakepred.ColorsModel(api.md)
	api.pred.SetPredict(func(ctx context.Context, req *predv1.PredictRequest) (*predv1.PredictResponse, error) {
		if slowRequest(ctx) {
			<-ctx.Done()
			return nil, status.FromContextError(ctx.Err()).Err()
		}
		return colors(ctx, req)
	})
	// Within bounds a header sets pred's deadline; above the cap it is cut
	// to the cap; without one the default applies.
	tests := []struct {
		name         string
		header       []string
		wantDeadline time.Duration
	}{
		{"default", nil, 2 * time.Second},
		{"X-Request-Timeout", []string{TimeoutHeader, "700ms"}, 700 * time.Millisecond},
		{"seconds", []string{TimeoutHeader, "1.5"}, 1500 * time.Millisecond},
		{"Grpc-Timeout", []string{GRPCTimeoutHeader, "900m"}, 900 * time.Millisecond},
		{"X-Request-Timeout wins", []string{TimeoutHeader, "600ms", GRPCTimeoutHeader, "2S"}, 600 * time.Millisecond},
		{"capped", []string{TimeoutHeader, "1h"}, maxTimeout},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := api.postJSON(t, "/predict/label", img, tt.header...)
			if r.status != http.StatusOK {
				t.Fatalf("%d %s", r.status, r.body)
			}
			dl := api.pred.Deadlines()
			left := dl[len(dl)-1]
			// What is left when pred receives the call: the deadline minus
			// preprocessing and transport, well under 500ms here.
			if left > tt.wantDeadline || left < tt.wantDeadline-500*time.Millisecond {
				t.Errorf("pred's deadline was %v away, want about %v", left, tt.wantDeadline)
			}
		})
	}

	t.Run("expires at pred", func(t *testing.T) {
		start := time.Now()
		r := api.postJSON(t, "/predict/label", img, TimeoutHeader, "300ms", RequestIDHeader, "slow-1")
		if msg := wantError(t, r, http.StatusGatewayTimeout, codeDeadlineExceeded); !strings.Contains(msg, "300ms") {
			t.Errorf("message %q does not give the timeout", msg)
		}
		if d := time.Since(start); d > 2*time.Second {
			t.Errorf("answered after %v", d)
		}
	})
	for _, h := range [][]string{{TimeoutHeader, "soon"}, {TimeoutHeader, "0s"}, {GRPCTimeoutHeader, "1x"}} {
		msg := wantError(t, api.postJSON(t, "/predict/label", img, h...), http.StatusBadRequest, codeInvalidTimeout)
		if !strings.Contains(msg, h[0]) {
			t.Errorf("message %q does not name the header", msg)
		}
	}
}

// slowRequest reports whether a call to the fake pred carries a request ID
// starting with "slow": the test's way to ask it to wait for the deadline.
func slowRequest(ctx context.Context) bool {
	md, _ := metadata.FromIncomingContext(ctx)
	ids := md.Get(predclient.RequestIDKey)
	return len(ids) > 0 && strings.HasPrefix(ids[0], "slow")
}

// benchHandler is the API in front of a fake pred that answers at once,
// for benchmarks of prep's own work.
func benchHandler(b *testing.B) http.Handler {
	b.Helper()
	md := fakepred.ColorsMetadata()
	pred := fakepred.Start(b, md)
	pred.SetPredict(func(_ context.Context, req *predv1.PredictRequest) (*predv1.PredictResponse, error) {
		n := int(req.GetInputs()[0].GetShape()[0])
		return fakepred.AnswerBatch(md, n, make([]float32, n*len(fakepred.ColorLabels))), nil
	})
	client, err := predclient.New(predclient.Config{Target: pred.Addr, Model: "colors", Limits: imageprep.Limits{MaxPixels: testMaxPixels}})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = client.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	if _, err := client.Refresh(ctx); err != nil {
		b.Fatal(err)
	}
	return New(Config{Client: client, RequestTimeout: testTimeout, MaxBodyBytes: 32 << 20})
}

// BenchmarkPredictMultipart measures one upload of the 500x375 sample JPEG
// as multipart/form-data (curl -F file=@...) through the handler.
func BenchmarkPredictMultipart(b *testing.B) {
	h := benchHandler(b)
	var body bytes.Buffer
	w := multipart.NewWriter(&body)
	fw, _ := w.CreateFormFile("file", "cat.jpg")
	_, _ = fw.Write(sampleImage)
	_ = w.Close()
	b.ReportAllocs()
	b.SetBytes(int64(body.Len()))
	for b.Loop() {
		req := httptest.NewRequest(http.MethodPost, "/predict/label", bytes.NewReader(body.Bytes()))
		req.Header.Set("Content-Type", w.FormDataContentType())
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != http.StatusOK {
			b.Fatalf("%d %s", rec.Code, rec.Body)
		}
	}
}

// BenchmarkPredictBatch measures a batch of 8 sample JPEGs in one JSON
// request: decoding in parallel, one pred call; reported per image.
func BenchmarkPredictBatch(b *testing.B) {
	const images = 8
	h := benchHandler(b)
	items := make([]string, images)
	for i := range items {
		items[i] = base64.StdEncoding.EncodeToString(sampleImage)
	}
	body, _ := json.Marshal(map[string][]string{"data": items})
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		req := httptest.NewRequest(http.MethodPost, "/predict/batch", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != http.StatusOK {
			b.Fatalf("%d %s", rec.Code, rec.Body)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*images), "ns/image")
}
