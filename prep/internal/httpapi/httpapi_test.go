package httpapi

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"image"
	"image/color"
	"image/jpeg"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gin-gonic/gin"
	"go.uber.org/zap"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	predv1 "github.com/prepred/prepred/api/gen/prepred/pred/v1"
	"github.com/prepred/prepred/api/spec"
	"github.com/prepred/prepred/prep/internal/fakepred"
	"github.com/prepred/prepred/prep/internal/imageprep"
	"github.com/prepred/prepred/prep/internal/predclient"
)

// Limits of the API under test, small so that tests can exceed them cheaply.
const (
	testMaxBody   = 64 << 10
	testMaxPixels = 200_000 // above the 500x375 sample image
	testTimeout   = 10 * time.Second
)

type testAPI struct {
	url    string
	pred   *fakepred.Server
	md     *predv1.ModelMetadataResponse
	client *predclient.Client
}

// startAPI serves the API on loopback in front of a fake pred running the
// colors model; with loaded false the contract is never read.
func startAPI(t *testing.T, timeout time.Duration, loaded bool) *testAPI {
	t.Helper()
	md := fakepred.ColorsMetadata()
	pred := fakepred.Start(t, md)
	pred.SetPredict(fakepred.ColorsModel(md))
	client, err := predclient.New(predclient.Config{Target: pred.Addr, Model: "colors", Limits: imageprep.Limits{MaxPixels: testMaxPixels}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = client.Close() })
	if loaded {
		ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
		defer cancel()
		if _, err := client.Refresh(ctx); err != nil {
			t.Fatal(err)
		}
	}
	srv := httptest.NewServer(New(Config{Client: client, RequestTimeout: timeout, MaxBodyBytes: testMaxBody}))
	t.Cleanup(srv.Close)
	return &testAPI{url: srv.URL, pred: pred, md: md, client: client}
}

// solidJPEG encodes a w x h image of one color.
func solidJPEG(t testing.TB, w, h int, c color.Color) []byte {
	t.Helper()
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			img.Set(x, y, c)
		}
	}
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, img, &jpeg.Options{Quality: 95}); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func jsonBody(img []byte) string {
	return `{"data": "` + base64.StdEncoding.EncodeToString(img) + `"}`
}

type response struct {
	status int
	header http.Header
	body   []byte
}

func do(t *testing.T, method, url, contentType string, body io.Reader, header ...string) response {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return response{status: resp.StatusCode, header: resp.Header, body: b}
}

func (a *testAPI) postJSON(t *testing.T, path, body string, header ...string) response {
	t.Helper()
	return do(t, http.MethodPost, a.url+path, "application/json", strings.NewReader(body), header...)
}

// wantError checks that r is an error answer with the given status and code
// in the documented shape, and returns its message.
func wantError(t *testing.T, r response, status int, code string) string {
	t.Helper()
	if r.status != status {
		t.Errorf("status %d, want %d (body %s)", r.status, status, r.body)
	}
	if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("Content-Type %q, want JSON", ct)
	}
	var body struct {
		Error *struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	dec := json.NewDecoder(bytes.NewReader(r.body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&body); err != nil || body.Error == nil {
		t.Fatalf("body %s is not {\"error\": {...}}: %v", r.body, err)
	}
	if body.Error.Code != code || body.Error.Message == "" {
		t.Errorf("error %+v, want code %q and a message", *body.Error, code)
	}
	return body.Error.Message
}

func TestPredictLabel(t *testing.T) {
	api := startAPI(t, testTimeout, true)
	tests := []struct {
		name string
		c    color.Color
		want string
	}{
		{"red", color.RGBA{230, 10, 10, 255}, "red"},
		{"black", color.RGBA{5, 5, 5, 255}, "black"},
		{"white", color.RGBA{250, 250, 250, 255}, "white"},
		{"blue", color.RGBA{10, 10, 230, 255}, "blue"},
		{"gray", color.RGBA{128, 128, 128, 255}, "gray"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := api.postJSON(t, "/predict/label", jsonBody(solidJPEG(t, 64, 48, tt.c)))
			if r.status != http.StatusOK || string(r.body) != `{"prediction":"`+tt.want+`"}` {
				t.Errorf("got %d %s, want {\"prediction\":%q}", r.status, r.body, tt.want)
			}
		})
	}
}

func TestPredictProbabilities(t *testing.T) {
	api := startAPI(t, testTimeout, true)
	r := api.postJSON(t, "/predict", jsonBody(solidJPEG(t, 64, 48, color.RGBA{0, 200, 0, 255})))
	if r.status != http.StatusOK {
		t.Fatalf("status %d: %s", r.status, r.body)
	}
	var body struct {
		Prediction [][]float64 `json:"prediction"`
	}
	if err := json.Unmarshal(r.body, &body); err != nil {
		t.Fatal(err)
	}
	if len(body.Prediction) != 1 || len(body.Prediction[0]) != len(fakepred.ColorLabels) {
		t.Fatalf("prediction shape: %s", r.body)
	}
	var sum float64
	for _, p := range body.Prediction[0] {
		sum += p
	}
	if math.Abs(sum-1) > 1e-9 {
		t.Errorf("probabilities sum to %v", sum)
	}
	if best := slices.Index(body.Prediction[0], slices.Max(body.Prediction[0])); fakepred.ColorLabels[best] != "green" {
		t.Errorf("most probable %q, want green", fakepred.ColorLabels[best])
	}
}

func TestPredictTopK(t *testing.T) {
	api := startAPI(t, testTimeout, true)
	r := api.postJSON(t, "/predict/topk?k=3", jsonBody(solidJPEG(t, 64, 48, color.RGBA{240, 240, 0, 255})))
	var body struct {
		Prediction []classScore `json:"prediction"`
		Model      string       `json:"model"`
	}
	if err := json.Unmarshal(r.body, &body); err != nil || r.status != http.StatusOK {
		t.Fatalf("%d %s: %v", r.status, r.body, err)
	}
	if len(body.Prediction) != 3 || body.Prediction[0].Label != "yellow" || body.Prediction[0].Index != 5 || body.Model != "colors" {
		t.Fatalf("top-3 = %s", r.body)
	}
	if !(body.Prediction[0].Probability >= body.Prediction[1].Probability && body.Prediction[1].Probability >= body.Prediction[2].Probability) {
		t.Errorf("not sorted: %s", r.body)
	}
	wantError(t, api.postJSON(t, "/predict/topk?k=zero", jsonBody(solidJPEG(t, 8, 8, color.Black))), http.StatusBadRequest, codeBadRequest)
}

func TestBodyVariants(t *testing.T) {
	api := startAPI(t, testTimeout, true)
	img := solidJPEG(t, 64, 48, color.RGBA{220, 0, 0, 255})
	std := base64.StdEncoding.EncodeToString(img)
	var wrapped strings.Builder
	for s := std; len(s) > 0; {
		n := min(76, len(s))
		wrapped.WriteString(s[:n] + "\n")
		s = s[n:]
	}
	tests := []struct {
		name, contentType, body string
	}{
		{"newlines kept (curl --data-binary)", "application/json", `{"data": "` + wrapped.String() + `"}` + "\n"},
		{"url-safe unpadded", "application/json", `{"data": "` + base64.RawURLEncoding.EncodeToString(img) + `"}`},
		{"data URI", "application/json", `{"data": "data:image/jpeg;base64,` + std + `"}`},
		{"charset parameter", "application/json; charset=utf-8", jsonBody(img)},
		{"no content type", "", jsonBody(img)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := do(t, http.MethodPost, api.url+"/predict/label", tt.contentType, strings.NewReader(tt.body))
			if r.status != http.StatusOK || string(r.body) != `{"prediction":"red"}` {
				t.Errorf("got %d %s", r.status, r.body)
			}
		})
	}
}

func TestBadInput(t *testing.T) {
	api := startAPI(t, testTimeout, true)
	jpg := solidJPEG(t, 64, 48, color.White)
	tests := []struct {
		name        string
		contentType string
		body        string
		status      int
		code        string
		msg         string
	}{
		{"text/plain", "text/plain", jsonBody(jpg), 415, codeUnsupportedMediaType, "text/plain"},
		{"form (curl -d without -H)", "application/x-www-form-urlencoded", jsonBody(jpg), 415, codeUnsupportedMediaType, "application/json"},
		{"not JSON", "application/json", "data=" + base64.StdEncoding.EncodeToString(jpg), 400, "invalid_json", "not valid JSON"},
		{"empty body", "application/json", "", 400, "invalid_json", "empty"},
		{"no data", "application/json", `{"image": "abc"}`, 400, "missing_data", `"data"`},
		{"empty data", "application/json", `{"data": ""}`, 400, "missing_data", `"data" is empty`},
		{"data not a string", "application/json", `{"data": 12}`, 400, "invalid_json", "number"},
		{"bad base64", "application/json", `{"data": "/9j/4A#AQ"}`, 400, "invalid_base64", "offset 6"},
		{"not an image", "application/json", jsonBody([]byte("hello, this is text and not a picture")), 415, imageprep.CodeUnsupportedFormat, ""},
		{"truncated JPEG", "application/json", jsonBody(jpg[:len(jpg)/3]), 400, imageprep.CodeInvalidImage, ""},
		{"image too large", "application/json", jsonBody(solidJPEG(t, 600, 400, color.White)), 413, imageprep.CodeImageTooLarge, "600x400"},
		{"body too large", "application/json", `{"data": "` + strings.Repeat("A", testMaxBody) + `"}`, 413, codeBodyTooLarge, "65536 bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := do(t, http.MethodPost, api.url+"/predict/label", tt.contentType, strings.NewReader(tt.body))
			if msg := wantError(t, r, tt.status, tt.code); !strings.Contains(msg, tt.msg) {
				t.Errorf("message %q does not contain %q", msg, tt.msg)
			}
		})
	}
	if reqs, _ := api.pred.Requests(); len(reqs) != 0 {
		t.Errorf("bad input reached pred %d times", len(reqs))
	}
}

// chunkedReader hides its length, so the body is sent chunked without a
// Content-Length for the server to check up front.
type chunkedReader struct{ r io.Reader }

func (c chunkedReader) Read(p []byte) (int, error) { return c.r.Read(p) }

func TestBodyTooLargeWithoutContentLength(t *testing.T) {
	api := startAPI(t, testTimeout, true)
	body := chunkedReader{strings.NewReader(`{"data": "` + strings.Repeat("QUJD", testMaxBody) + `"}`)}
	wantError(t, do(t, http.MethodPost, api.url+"/predict", "application/json", body), http.StatusRequestEntityTooLarge, codeBodyTooLarge)
}

func TestRoutingErrors(t *testing.T) {
	api := startAPI(t, testTimeout, true)
	wantError(t, do(t, http.MethodGet, api.url+"/predict/label", "", nil), http.StatusMethodNotAllowed, codeMethodNotAllowed)
	wantError(t, do(t, http.MethodGet, api.url+"/nothing/here", "", nil), http.StatusNotFound, codeNotFound)
}

func TestPredErrors(t *testing.T) {
	img := jsonBody(solidJPEG(t, 64, 48, color.White))
	nan := float32(math.NaN())
	tests := []struct {
		name    string
		timeout time.Duration
		predict func(md *predv1.ModelMetadataResponse) fakepred.PredictFunc
		status  int
		code    string
		msg     string
	}{
		{"queue full", testTimeout, func(*predv1.ModelMetadataResponse) fakepred.PredictFunc {
			return func(context.Context, *predv1.PredictRequest) (*predv1.PredictResponse, error) {
				return nil, status.Error(codes.ResourceExhausted, "queue of model colors is full")
			}
		}, 429, codePredOverloaded, "queue of model colors is full"},
		{"unavailable", testTimeout, func(*predv1.ModelMetadataResponse) fakepred.PredictFunc {
			return func(context.Context, *predv1.PredictRequest) (*predv1.PredictResponse, error) {
				return nil, status.Error(codes.Unavailable, "model colors is loading")
			}
		}, 503, codePredUnavailable, "loading"},
		{"deadline", 300 * time.Millisecond, func(*predv1.ModelMetadataResponse) fakepred.PredictFunc {
			return func(ctx context.Context, _ *predv1.PredictRequest) (*predv1.PredictResponse, error) {
				<-ctx.Done()
				return nil, status.FromContextError(ctx.Err()).Err()
			}
		}, 504, codeDeadlineExceeded, "300ms"},
		{"tensor rejected", testTimeout, func(*predv1.ModelMetadataResponse) fakepred.PredictFunc {
			return func(context.Context, *predv1.PredictRequest) (*predv1.PredictResponse, error) {
				return nil, status.Error(codes.InvalidArgument, "input has the wrong shape")
			}
		}, 502, codePredRejectedInput, "wrong shape"},
		{"contract mismatch", testTimeout, func(*predv1.ModelMetadataResponse) fakepred.PredictFunc {
			return func(context.Context, *predv1.PredictRequest) (*predv1.PredictResponse, error) {
				return nil, status.Error(codes.FailedPrecondition, "spec fingerprint mismatch")
			}
		}, 409, codeContractMismatch, "spec fingerprint mismatch"},
		{"NaN output", testTimeout, func(md *predv1.ModelMetadataResponse) fakepred.PredictFunc {
			return func(context.Context, *predv1.PredictRequest) (*predv1.PredictResponse, error) {
				return fakepred.Answer(md, []float32{0, 1, nan, 0, 0, 0, 0, 0, 0}), nil
			}
		}, 502, codeInvalidModelOutput, "NaN at position 2"},
		{"short output", testTimeout, func(md *predv1.ModelMetadataResponse) fakepred.PredictFunc {
			return func(context.Context, *predv1.PredictRequest) (*predv1.PredictResponse, error) {
				return fakepred.Answer(md, []float32{0, 1}), nil
			}
		}, 502, codeInvalidModelOutput, "8 bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			api := startAPI(t, tt.timeout, true)
			api.pred.SetPredict(tt.predict(api.md))
			for _, path := range []string{"/predict", "/predict/label"} {
				start := time.Now()
				r := api.postJSON(t, path, img)
				if msg := wantError(t, r, tt.status, tt.code); !strings.Contains(msg, tt.msg) {
					t.Errorf("%s: message %q does not contain %q", path, msg, tt.msg)
				}
				if d := time.Since(start); d > tt.timeout+2*time.Second {
					t.Errorf("%s answered after %v", path, d)
				}
			}
		})
	}
}

// TestContractChangedIsRetried: pred switches to version 2 with another
// spec while prep holds version 1's contract. The request that meets the
// switch is refused by pred (fingerprint mismatch); prep re-reads the
// contract, preprocesses the image again with the new spec and re-sends
// it, and the client gets version 2's answer.
func TestContractChangedIsRetried(t *testing.T) {
	api := startAPI(t, testTimeout, true)
	md := changedMetadata(t, 2)
	api.pred.SetMetadata(md, nil)
	api.pred.SetPredict(checkingFingerprint(md))
	img := jsonBody(solidJPEG(t, 64, 48, color.White))
	if r := api.postJSON(t, "/predict/label", img); r.status != http.StatusOK || string(r.body) != `{"prediction":"white"}` {
		t.Fatalf("across the switch: %d %s, want white", r.status, r.body)
	}
	reqs, _ := api.pred.Requests()
	if len(reqs) != 2 {
		t.Fatalf("pred got %d requests, want the refused one and the retry", len(reqs))
	}
	if reqs[0].GetVersion() != 1 || reqs[0].GetSpecFingerprint() != api.md.GetSpecFingerprint() {
		t.Errorf("first request: version %d fingerprint %s, want version 1's", reqs[0].GetVersion(), reqs[0].GetSpecFingerprint())
	}
	if reqs[1].GetVersion() != 2 || reqs[1].GetSpecFingerprint() != md.GetSpecFingerprint() {
		t.Errorf("retry: version %d fingerprint %s, want version 2's", reqs[1].GetVersion(), reqs[1].GetSpecFingerprint())
	}
	// The tensor of the retry follows the new spec: 32x32 bicubic, not
	// the first attempt's bytes re-sent.
	if string(reqs[0].GetInputs()[0].GetRawData()) == string(reqs[1].GetInputs()[0].GetRawData()) && md.Preprocess.GetWidth() != api.md.Preprocess.GetWidth() {
		t.Error("the retry re-sent the first tensor")
	}
	if got := scrape(t, api.url, "prep_contract_retries_total"); got != "1" {
		t.Errorf("prep_contract_retries_total = %s, want 1", got)
	}
	// The next request uses the re-read contract at once.
	if r := api.postJSON(t, "/predict/label", img); r.status != http.StatusOK {
		t.Errorf("after the switch: %d %s", r.status, r.body)
	}
	if reqs, _ = api.pred.Requests(); len(reqs) != 3 {
		t.Errorf("pred got %d requests, want 3", len(reqs))
	}
}

// TestContractChangesDuringRetry: the model changes again while the retry
// is in flight; prep retries only once and answers 503 contract_changed
// with the news.
func TestContractChangesDuringRetry(t *testing.T) {
	api := startAPI(t, testTimeout, true)
	next := int64(2)
	api.pred.SetPredict(func(ctx context.Context, req *predv1.PredictRequest) (*predv1.PredictResponse, error) {
		md := changedMetadata(t, next)
		next++
		api.pred.SetMetadata(md, nil)
		return nil, status.Errorf(codes.FailedPrecondition, "spec fingerprint %q does not match the model's %q", req.GetSpecFingerprint(), md.GetSpecFingerprint())
	})
	img := jsonBody(solidJPEG(t, 64, 48, color.White))
	msg := wantError(t, api.postJSON(t, "/predict/label", img), http.StatusServiceUnavailable, codeContractChanged)
	if !strings.Contains(msg, "now version 3") {
		t.Errorf("message %q does not say what changed", msg)
	}
	if reqs, _ := api.pred.Requests(); len(reqs) != 2 {
		t.Errorf("pred got %d requests, want 2 (one retry)", len(reqs))
	}
}

// TestContractGoneWhileLoading: the version prep used is gone and pred has
// no ready version yet (a restart with a new release that is still
// loading): the answer is the 503 pred_unavailable of a model that cannot
// serve now, naming both refusals, not a contract_changed that promises a
// new contract; prep does not retry.
func TestContractGoneWhileLoading(t *testing.T) {
	api := startAPI(t, testTimeout, true)
	api.pred.SetPredict(func(ctx context.Context, req *predv1.PredictRequest) (*predv1.PredictResponse, error) {
		api.pred.SetMetadata(nil, status.Error(codes.Unavailable, `model "colors" has no ready version: 2 (LOADING)`))
		return nil, status.Error(codes.NotFound, `model "colors" has no version 1; served versions: 2 (LOADING)`)
	})
	img := jsonBody(solidJPEG(t, 64, 48, color.White))
	msg := wantError(t, api.postJSON(t, "/predict/label", img), http.StatusServiceUnavailable, codePredUnavailable)
	for _, want := range []string{"has no version 1", "no ready version: 2 (LOADING)"} {
		if !strings.Contains(msg, want) {
			t.Errorf("message %q does not say %q", msg, want)
		}
	}
	if reqs, _ := api.pred.Requests(); len(reqs) != 1 {
		t.Errorf("pred got %d requests, want 1 (no retry)", len(reqs))
	}
}

// changedMetadata is the colors model as another version with another spec
// (bicubic; a bigger input for odd versions).
func changedMetadata(t *testing.T, version int64) *predv1.ModelMetadataResponse {
	t.Helper()
	md := fakepred.ColorsMetadata()
	md.Version = version
	md.Versions = []int64{version}
	md.Preprocess.Interpolation = predv1.Interpolation_INTERPOLATION_BICUBIC
	if version%2 == 1 {
		md.Preprocess.Width, md.Preprocess.Height = 48, 48
		md.Inputs[0].Shape = []int64{-1, 3, 48, 48}
	}
	fp, err := spec.Fingerprint(md.Preprocess)
	if err != nil {
		t.Fatal(err)
	}
	md.SpecFingerprint = fp
	return md
}

// checkingFingerprint answers as the colors model of md, refusing another
// fingerprint as pred does.
func checkingFingerprint(md *predv1.ModelMetadataResponse) fakepred.PredictFunc {
	model := fakepred.ColorsModel(md)
	return func(ctx context.Context, req *predv1.PredictRequest) (*predv1.PredictResponse, error) {
		if req.GetSpecFingerprint() != md.GetSpecFingerprint() {
			return nil, status.Errorf(codes.FailedPrecondition, "spec fingerprint %q does not match the model's %q", req.GetSpecFingerprint(), md.GetSpecFingerprint())
		}
		return model(ctx, req)
	}
}

func TestNotReady(t *testing.T) {
	api := startAPI(t, testTimeout, false)
	if r := do(t, http.MethodGet, api.url+"/health", "", nil); r.status != http.StatusOK || string(r.body) != `{"health":"ok"}` {
		t.Errorf("/health: %d %s", r.status, r.body)
	}
	for _, path := range []string{"/ready", "/label", "/metadata", "/predict/test/label"} {
		msg := wantError(t, do(t, http.MethodGet, api.url+path, "", nil), http.StatusServiceUnavailable, codeNotReady)
		if !strings.Contains(msg, `"colors"`) {
			t.Errorf("%s: message %q does not name the model", path, msg)
		}
	}
	wantError(t, api.postJSON(t, "/predict/label", jsonBody(solidJPEG(t, 8, 8, color.White))), http.StatusServiceUnavailable, codeNotReady)
}

func TestInfoEndpoints(t *testing.T) {
	api := startAPI(t, testTimeout, true)
	r := do(t, http.MethodGet, api.url+"/ready", "", nil)
	if r.status != http.StatusOK || !strings.Contains(string(r.body), api.md.GetSpecFingerprint()) {
		t.Errorf("/ready: %d %s", r.status, r.body)
	}
	r = do(t, http.MethodGet, api.url+"/label", "", nil)
	var labels []string
	if err := json.Unmarshal(r.body, &labels); err != nil || !slices.Equal(labels, fakepred.ColorLabels) {
		t.Errorf("/label: %s", r.body)
	}
	r = do(t, http.MethodGet, api.url+"/metadata", "", nil)
	var md map[string]any
	if err := json.Unmarshal(r.body, &md); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"data_type":            "str",
		"data_structure":       "(1,1)",
		"data_sample":          "base64 encoded image file",
		"prediction_type":      "float32",
		"prediction_structure": "(1,9)",
		"prediction_sample":    "[0.11111111, 0.11111111, 0.11111111, ...]",
		"model":                "colors",
		"spec_fingerprint":     api.md.GetSpecFingerprint(),
	}
	for k, v := range want {
		if md[k] != v {
			t.Errorf("/metadata %s = %v, want %v", k, md[k], v)
		}
	}
	if pre, _ := md["preprocess"].(map[string]any); pre["width"] != float64(32) || pre["color_order"] != "COLOR_ORDER_RGB" {
		t.Errorf("/metadata preprocess = %v", md["preprocess"])
	}
	r = do(t, http.MethodGet, api.url+"/predict/test/label", "", nil)
	var label struct{ Prediction string }
	if err := json.Unmarshal(r.body, &label); err != nil || !slices.Contains(fakepred.ColorLabels, label.Prediction) {
		t.Errorf("/predict/test/label: %d %s", r.status, r.body)
	}
}

func TestRequestID(t *testing.T) {
	api := startAPI(t, testTimeout, true)
	img := jsonBody(solidJPEG(t, 16, 16, color.White))
	r := api.postJSON(t, "/predict/label", img, RequestIDHeader, "client-id-7")
	if got := r.header.Get(RequestIDHeader); got != "client-id-7" {
		t.Errorf("echoed request ID %q", got)
	}
	r = api.postJSON(t, "/predict/label", img, RequestIDHeader, "bad id\twith blanks")
	generated := r.header.Get(RequestIDHeader)
	if generated == "" || strings.ContainsAny(generated, " \t") {
		t.Errorf("generated request ID %q", generated)
	}
	_, ids := api.pred.Requests()
	if !slices.Equal(ids, []string{"client-id-7", generated}) {
		t.Errorf("pred saw request IDs %q, want [client-id-7 %s]", ids, generated)
	}
	// Errors carry one too.
	if r := do(t, http.MethodGet, api.url+"/nope", "", nil); r.header.Get(RequestIDHeader) == "" {
		t.Error("no request ID on a 404")
	}
}

// BenchmarkPredictLabel measures one classic request end to end through the
// handler: JSON and base64 decoding of the 500x375 sample JPEG,
// preprocessing, the gRPC call to a fake pred over loopback, postprocessing.
func BenchmarkPredictLabel(b *testing.B) {
	md := fakepred.ColorsMetadata()
	pred := fakepred.Start(b, md)
	pred.SetPredict(func(context.Context, *predv1.PredictRequest) (*predv1.PredictResponse, error) {
		return fakepred.Answer(md, make([]float32, len(fakepred.ColorLabels))), nil
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
	h := New(Config{Client: client, RequestTimeout: testTimeout, MaxBodyBytes: 32 << 20})
	body := []byte(jsonBody(sampleImage))
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		req := httptest.NewRequest(http.MethodPost, "/predict/label", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != http.StatusOK {
			b.Fatalf("%d %s", rec.Code, rec.Body)
		}
	}
}

// hugeJPEG is a small JPEG whose header claims w x h pixels.
func hugeJPEG(t *testing.T, w, h uint16) []byte {
	t.Helper()
	b := solidJPEG(t, 8, 8, color.White)
	i := bytes.Index(b, []byte{0xff, 0xc0}) // SOF0: length(2) precision(1) height(2) width(2)
	if i < 0 {
		t.Fatal("no SOF0 marker")
	}
	b[i+5], b[i+6] = byte(h>>8), byte(h)
	b[i+7], b[i+8] = byte(w>>8), byte(w)
	return b
}

func TestHugeImageHeaderRefusedFast(t *testing.T) {
	api := startAPI(t, testTimeout, true)
	start := time.Now()
	r := api.postJSON(t, "/predict/label", jsonBody(hugeJPEG(t, 50000, 50000)))
	if msg := wantError(t, r, http.StatusRequestEntityTooLarge, imageprep.CodeImageTooLarge); !strings.Contains(msg, "50000x50000") {
		t.Errorf("message %q does not name the size", msg)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("refusing a 50000x50000 header took %v", d)
	}
}

func TestRecoveryAnswersJSON(t *testing.T) {
	gin.SetMode(gin.ReleaseMode)
	r := gin.New()
	r.Use(requestID(), recovery(zap.NewNop()))
	r.GET("/bug", func(*gin.Context) { panic("index out of range") })
	srv := httptest.NewServer(r)
	t.Cleanup(srv.Close)
	res := do(t, http.MethodGet, srv.URL+"/bug", "", nil)
	if msg := wantError(t, res, http.StatusInternalServerError, codeInternal); !strings.Contains(msg, res.header.Get(RequestIDHeader)) {
		t.Errorf("message %q does not give the request ID", msg)
	}
}
