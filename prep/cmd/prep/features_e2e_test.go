package main

// End-to-end tests of the features beyond the classic API: multipart and
// raw uploads, batches, model selection, top-k, request timeouts, request
// IDs and metrics, against the real pred.

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"image/color"
	"math"
	"mime/multipart"
	"net/http"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/prepred/prepred/pred/predtest"
)

// multipartFiles encodes images as file parts named field.
func multipartFiles(t *testing.T, field string, imgs ...[]byte) ([]byte, string) {
	t.Helper()
	var b bytes.Buffer
	w := multipart.NewWriter(&b)
	for i, img := range imgs {
		fw, err := w.CreateFormFile(field, fmt.Sprintf("image-%d.jpg", i))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := fw.Write(img); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes(), w.FormDataContentType()
}

// callWith is call with extra request headers (name, value pairs).
func callWith(t *testing.T, method, url, contentType string, body []byte, header ...string) httpResponse {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, url, bytes.NewReader(body))
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
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var buf bytes.Buffer
	if _, err := buf.ReadFrom(resp.Body); err != nil {
		t.Fatal(err)
	}
	return httpResponse{status: resp.StatusCode, header: resp.Header, body: buf.Bytes()}
}

// scrape reads a Prometheus text endpoint.
func scrape(t *testing.T, url string) map[string]*dto.MetricFamily {
	t.Helper()
	r := call(t, http.MethodGet, url, "", nil)
	if r.status != http.StatusOK {
		t.Fatalf("%s: %d", url, r.status)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(bytes.NewReader(r.body))
	if err != nil {
		t.Fatalf("%s: %v", url, err)
	}
	return fams
}

// predOKRequests is pred's count of successful Predict calls for model.
func predOKRequests(t *testing.T, pred *predtest.Server, modelName string) float64 {
	t.Helper()
	var n float64
	fam := scrape(t, "http://"+pred.HTTPAddr+"/metrics")["pred_inference_requests_total"]
	for _, m := range fam.GetMetric() {
		labels := map[string]string{}
		for _, l := range m.GetLabel() {
			labels[l.GetName()] = l.GetValue()
		}
		if labels["model"] == modelName && labels["code"] == "OK" {
			n += m.GetCounter().GetValue()
		}
	}
	return n
}

type topKAnswer struct {
	Prediction []struct {
		Label       string  `json:"label"`
		Index       int     `json:"index"`
		Probability float64 `json:"probability"`
	} `json:"prediction"`
	Model   string `json:"model"`
	Version int64  `json:"version"`
}

// checkTopK decodes a top-k answer and checks that it has k classes, most
// probable first, with the model's labels, summing to at most 1.
func checkTopK(t *testing.T, r httpResponse, k int, labels []string) topKAnswer {
	t.Helper()
	var a topKAnswer
	if err := json.Unmarshal(r.body, &a); err != nil || r.status != http.StatusOK {
		t.Fatalf("%d %.300s: %v", r.status, r.body, err)
	}
	if len(a.Prediction) != k {
		t.Fatalf("%d classes, want %d: %s", len(a.Prediction), k, r.body)
	}
	var sum float64
	for i, c := range a.Prediction {
		if c.Probability < 0 || c.Probability > 1 || math.IsNaN(c.Probability) || (i > 0 && c.Probability > a.Prediction[i-1].Probability) {
			t.Errorf("class %d probability %v (not a sorted probability): %s", i, c.Probability, r.body)
		}
		if c.Index < 0 || c.Index >= len(labels) || labels[c.Index] != c.Label {
			t.Errorf("class %d: label %q at index %d", i, c.Label, c.Index)
		}
		sum += c.Probability
	}
	if sum > 1+1e-9 {
		t.Errorf("top-%d probabilities sum to %v > 1", k, sum)
	}
	return a
}

func TestEndToEndFeatures(t *testing.T) {
	// Debug level: pred logs every RPC, with its request ID.
	pred := predtest.Start(t, "--log-level", "debug")
	p := startPrep(t, "--http-addr", "127.0.0.1:0", "--pred-address", pred.GRPCAddr, "--model", "colors")
	p.waitContract(t)
	colorLabels := labelsOf(t, p)

	t.Run("multipart upload", func(t *testing.T) {
		for _, c := range solidColors {
			body, ct := multipartFiles(t, "file", readFile(t, testImage(t, c.name, c.rgb)))
			if r := call(t, http.MethodPost, p.URL+"/predict/label", ct, body); string(r.body) != `{"prediction":"`+c.name+`"}` {
				t.Errorf("%s.jpg: %d %s", c.name, r.status, r.body)
			}
		}
	})

	t.Run("raw body", func(t *testing.T) {
		for _, c := range solidColors {
			img := readFile(t, testImage(t, c.name, c.rgb))
			if r := call(t, http.MethodPost, p.URL+"/predict/label", "image/jpeg", img); string(r.body) != `{"prediction":"`+c.name+`"}` {
				t.Errorf("%s.jpg: %d %s", c.name, r.status, r.body)
			}
		}
	})

	t.Run("README curl", func(t *testing.T) {
		if _, err := exec.LookPath("curl"); err != nil {
			t.Skip("curl is not installed")
		}
		img := testImage(t, "green", color.RGBA{0, 255, 0, 255})
		for _, args := range [][]string{
			{"-s", "-F", "file=@" + img, p.URL + "/predict/label"},
			{"-s", "--data-binary", "@" + img, "-H", "Content-Type: image/jpeg", p.URL + "/predict/label"},
		} {
			ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
			out, err := exec.CommandContext(ctx, "curl", args...).Output()
			cancel()
			if err != nil || string(out) != `{"prediction":"green"}` {
				t.Errorf("curl %q: %q, %v", args, out, err)
			}
		}
	})

	t.Run("batch is one pred call", func(t *testing.T) {
		names := []string{"red", "green", "blue"}
		var imgs []string
		for _, n := range names {
			imgs = append(imgs, base64.StdEncoding.EncodeToString(colorImage(t, n)))
		}
		body, _ := json.Marshal(map[string][]string{"data": imgs})
		before := predOKRequests(t, pred, "colors")
		const id = "e2e-batch-3"
		r := callWith(t, http.MethodPost, p.URL+"/predict/batch", "application/json", body, "X-Request-ID", id)
		if got := batchLabels(t, r); !slices.Equal(got, names) {
			t.Errorf("labels %q, want %q", got, names)
		}
		if n := predOKRequests(t, pred, "colors") - before; n != 1 {
			t.Errorf("pred counted %v Predict calls for the batch, want 1", n)
		}
		// pred logged the call under prep's request ID.
		pred.WaitLog(t, callTimeout, func(line string) bool {
			var m map[string]any
			return json.Unmarshal([]byte(line), &m) == nil && m["request_id"] == id && strings.HasSuffix(fmt.Sprint(m["method"]), "/Predict")
		})
	})

	t.Run("batch multipart", func(t *testing.T) {
		names := []string{"black", "yellow", "white", "cyan"}
		var imgs [][]byte
		for _, n := range names {
			imgs = append(imgs, colorImage(t, n))
		}
		body, ct := multipartFiles(t, "file", imgs...)
		before := predOKRequests(t, pred, "colors")
		r := call(t, http.MethodPost, p.URL+"/predict/batch?top_k=2", ct, body)
		if got := batchLabels(t, r); !slices.Equal(got, names) || strings.Count(string(r.body), `"top_k":[`) != len(names) {
			t.Errorf("labels %q, want %q: %s", got, names, r.body)
		}
		if n := predOKRequests(t, pred, "colors") - before; n != 1 {
			t.Errorf("pred counted %v Predict calls for the batch, want 1", n)
		}
	})

	t.Run("top-k", func(t *testing.T) {
		red := colorImage(t, "red")
		a := checkTopK(t, call(t, http.MethodPost, p.URL+"/predict/topk?k=5", "image/jpeg", red), 5, colorLabels)
		if a.Prediction[0].Label != "red" || a.Model != "colors" {
			t.Errorf("top-5 %+v", a)
		}
		a = checkTopK(t, call(t, http.MethodPost, p.URL+"/predict?top_k=9", "image/jpeg", red), 9, colorLabels)
		var sum float64
		for _, c := range a.Prediction {
			sum += c.Probability
		}
		if math.Abs(sum-1) > 1e-6 {
			t.Errorf("all 9 probabilities sum to %v", sum)
		}
	})

	t.Run("model selection", func(t *testing.T) {
		photo := readFile(t, filepath.Join(predtest.RepoRoot(t), "testdata", "images", "photo-500x375.jpg"))
		r := call(t, http.MethodGet, p.URL+"/v1/models/resnet50/label", "", nil)
		var resnetLabels []string
		if err := json.Unmarshal(r.body, &resnetLabels); err != nil || len(resnetLabels) != 1000 {
			t.Fatalf("/v1/models/resnet50/label: %d %.200s", r.status, r.body)
		}
		a := checkTopK(t, call(t, http.MethodPost, p.URL+"/v1/models/resnet50/predict/topk?k=5", "image/jpeg", photo), 5, resnetLabels)
		if a.Model != "resnet50" || a.Version < 1 {
			t.Errorf("answered by %s version %d", a.Model, a.Version)
		}
		// The same prep answers both models, each with its own contract.
		red := colorImage(t, "red")
		for _, tt := range []struct{ path, want string }{
			{"/predict/label", `{"prediction":"red"}`},
			{"/v1/models/colors/predict/label", `{"prediction":"red"}`},
			{"/predict/label?model=resnet50", `{"prediction":"class_`},
			{"/v1/models/resnet50/predict/label", `{"prediction":"class_`},
			{"/predict/label?model=colors&version=1", `{"prediction":"red"}`},
		} {
			if r := call(t, http.MethodPost, p.URL+tt.path, "image/jpeg", red); !strings.HasPrefix(string(r.body), tt.want) {
				t.Errorf("%s: %d %s, want %s...", tt.path, r.status, r.body, tt.want)
			}
		}
		var fps []string
		for _, path := range []string{"/metadata", "/metadata?model=resnet50"} {
			var md struct {
				Model           string `json:"model"`
				Structure       string `json:"prediction_structure"`
				SpecFingerprint string `json:"spec_fingerprint"`
			}
			r := call(t, http.MethodGet, p.URL+path, "", nil)
			if err := json.Unmarshal(r.body, &md); err != nil || r.status != http.StatusOK {
				t.Fatalf("%s: %d %s", path, r.status, r.body)
			}
			fps = append(fps, md.SpecFingerprint)
		}
		if fps[0] == fps[1] || fps[0] == "" {
			t.Errorf("colors and resnet50 have spec fingerprints %q", fps)
		}
		r = call(t, http.MethodGet, p.URL+"/v1/models", "", nil)
		for _, want := range []string{`"default_model":"colors"`, `"model":"colors"`, `"model":"resnet50"`} {
			if !strings.Contains(string(r.body), want) {
				t.Errorf("/v1/models lacks %s: %s", want, r.body)
			}
		}
		r = call(t, http.MethodPost, p.URL+"/v1/models/nothing/predict/label", "image/jpeg", red)
		if code, _ := errorOf(t, r); r.status != http.StatusNotFound || code != "model_not_found" {
			t.Errorf("unknown model: %d %s", r.status, r.body)
		}
	})

	t.Run("request timeout header", func(t *testing.T) {
		img := colorImage(t, "white")
		if r := callWith(t, http.MethodPost, p.URL+"/predict/label", "image/jpeg", img, "X-Request-Timeout", "20s"); string(r.body) != `{"prediction":"white"}` {
			t.Errorf("X-Request-Timeout 20s: %d %s", r.status, r.body)
		}
		if r := callWith(t, http.MethodPost, p.URL+"/predict/label", "image/jpeg", img, "Grpc-Timeout", "20S"); string(r.body) != `{"prediction":"white"}` {
			t.Errorf("Grpc-Timeout 20S: %d %s", r.status, r.body)
		}
		r := callWith(t, http.MethodPost, p.URL+"/predict/label", "image/jpeg", img, "X-Request-Timeout", "whenever")
		if code, _ := errorOf(t, r); r.status != http.StatusBadRequest || code != "invalid_timeout" {
			t.Errorf("bad header: %d %s", r.status, r.body)
		}
	})

	t.Run("metrics", func(t *testing.T) {
		fams := scrape(t, p.URL+"/metrics")
		for _, name := range []string{
			"prep_http_requests_total", "prep_http_request_duration_seconds", "prep_stage_duration_seconds",
			"prep_image_bytes", "prep_image_pixels", "prep_pred_errors_total", "prep_pred_batch_images",
			"prep_model_contract_ready", "prep_model_contract_info", "go_goroutines", "process_resident_memory_bytes",
		} {
			if fams[name] == nil {
				t.Errorf("/metrics lacks %s", name)
			}
		}
		stages := map[string]uint64{}
		for _, m := range fams["prep_stage_duration_seconds"].GetMetric() {
			stages[m.GetLabel()[0].GetValue()] = m.GetHistogram().GetSampleCount()
		}
		for _, s := range []string{"payload", "decode_preprocess", "pred", "postprocess"} {
			if stages[s] == 0 {
				t.Errorf("stage %s observed %d times", s, stages[s])
			}
		}
		ready := 0
		for _, m := range fams["prep_model_contract_ready"].GetMetric() {
			if m.GetGauge().GetValue() == 1 {
				ready++
			}
		}
		if ready < 2 {
			t.Errorf("%d contracts ready, want colors and resnet50 at least", ready)
		}
	})
}

// colorImage returns the test image of the named solid color.
func colorImage(t *testing.T, name string) []byte {
	t.Helper()
	for _, c := range solidColors {
		if c.name == name {
			return readFile(t, testImage(t, c.name, c.rgb))
		}
	}
	t.Fatalf("no test color %q", name)
	return nil
}

// batchLabels decodes a batch answer into each image's label.
func batchLabels(t *testing.T, r httpResponse) []string {
	t.Helper()
	var ans struct {
		Predictions []struct {
			Label string            `json:"label"`
			TopK  []json.RawMessage `json:"top_k"`
		} `json:"predictions"`
	}
	if err := json.Unmarshal(r.body, &ans); err != nil || r.status != http.StatusOK {
		t.Fatalf("%d %s", r.status, r.body)
	}
	var got []string
	for _, p := range ans.Predictions {
		got = append(got, p.Label)
	}
	return got
}
