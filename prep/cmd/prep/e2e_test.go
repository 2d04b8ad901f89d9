package main

// End-to-end tests: the real pred (built by predtest, with ONNX Runtime and
// the generated models) behind prep's run, over loopback sockets, driven
// the way users drive the classic service.

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"image/color"
	"math"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prepred/prepred/pred/predtest"
	"github.com/prepred/prepred/prep/internal/fakepred"
)

// solidColors are the colors test images with the label the colors model
// must give them; testdata/images/<name>.jpg holds each.
var solidColors = []struct {
	name string
	rgb  color.RGBA
}{
	{"red", color.RGBA{255, 0, 0, 255}},       // with R and B swapped: blue
	{"green", color.RGBA{0, 255, 0, 255}},     //
	{"blue", color.RGBA{0, 0, 255, 255}},      // with R and B swapped: red
	{"black", color.RGBA{0, 0, 0, 255}},       // without mean/std: gray
	{"white", color.RGBA{255, 255, 255, 255}}, // without mean/std: gray
	{"yellow", color.RGBA{255, 255, 0, 255}},  // with R and B swapped: cyan
	{"cyan", color.RGBA{0, 255, 255, 255}},
	{"magenta", color.RGBA{255, 0, 255, 255}},
}

// testImage returns the path of testdata/images/<name>.jpg, or, when the
// repository lacks it, of a 96x64 JPEG of rgb written for this test.
func testImage(t *testing.T, name string, rgb color.RGBA) string {
	t.Helper()
	path := filepath.Join(predtest.RepoRoot(t), "testdata", "images", name+".jpg")
	if _, err := os.Stat(path); err == nil {
		return path
	}
	path = filepath.Join(t.TempDir(), name+".jpg")
	if err := os.WriteFile(path, solidJPEG(t, 96, 64, rgb), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// classicBody is what `(echo -n '{"data": "'; base64 FILE; echo '"}')`
// prints: base64 wrapped at 76 columns. keepNewlines false gives what
// `curl -d @-` sends of it (curl strips CR and LF); true what
// `curl --data-binary @-` sends.
func classicBody(img []byte, keepNewlines bool) []byte {
	enc := base64.StdEncoding.EncodeToString(img)
	var b strings.Builder
	b.WriteString(`{"data": "`)
	for len(enc) > 0 {
		n := min(76, len(enc))
		b.WriteString(enc[:n] + "\n")
		enc = enc[n:]
	}
	b.WriteString("\"}\n")
	if keepNewlines {
		return []byte(b.String())
	}
	return []byte(strings.NewReplacer("\n", "", "\r", "").Replace(b.String()))
}

func postJSON(t *testing.T, url string, body []byte) httpResponse {
	t.Helper()
	return call(t, http.MethodPost, url, "application/json", body)
}

func labelsOf(t *testing.T, p *prepProc) []string {
	t.Helper()
	r := call(t, http.MethodGet, p.URL+"/label", "", nil)
	var labels []string
	if err := json.Unmarshal(r.body, &labels); err != nil || r.status != http.StatusOK {
		t.Fatalf("/label: %d %s", r.status, r.body)
	}
	return labels
}

func probabilitiesOf(t *testing.T, r httpResponse) []float64 {
	t.Helper()
	var body struct {
		Prediction [][]float64 `json:"prediction"`
	}
	if err := json.Unmarshal(r.body, &body); err != nil || r.status != http.StatusOK || len(body.Prediction) != 1 {
		t.Fatalf("/predict: %d %.300s", r.status, r.body)
	}
	return body.Prediction[0]
}

func checkDistribution(t *testing.T, p []float64, n int) {
	t.Helper()
	if len(p) != n {
		t.Fatalf("%d probabilities, want %d", len(p), n)
	}
	var sum float64
	for i, v := range p {
		if v < 0 || v > 1 || math.IsNaN(v) {
			t.Fatalf("probability %d is %v", i, v)
		}
		sum += v
	}
	if math.Abs(sum-1) > 1e-4 {
		t.Errorf("probabilities sum to %v, want 1±1e-4", sum)
	}
}

func TestEndToEnd(t *testing.T) {
	pred := predtest.Start(t)
	colors := startPrep(t, "--http-addr", "127.0.0.1:0", "--pred-address", pred.GRPCAddr, "--model", "colors")
	resnet := startPrep(t, "--http-addr", "127.0.0.1:0", "--pred-address", pred.GRPCAddr, "--model", "resnet50")
	colors.waitContract(t)
	resnet.waitContract(t)

	t.Run("colors labels", func(t *testing.T) {
		for _, c := range solidColors {
			img := readFile(t, testImage(t, c.name, c.rgb))
			for _, keep := range []bool{false, true} {
				r := postJSON(t, colors.URL+"/predict/label", classicBody(img, keep))
				if want := `{"prediction":"` + c.name + `"}`; r.status != http.StatusOK || string(r.body) != want {
					t.Errorf("%s.jpg (newlines kept: %v): %d %s, want %s", c.name, keep, r.status, r.body, want)
				}
			}
		}
	})

	t.Run("README curl", func(t *testing.T) {
		for _, tool := range []string{"bash", "curl", "base64"} {
			if _, err := exec.LookPath(tool); err != nil {
				t.Skipf("%s is not installed", tool)
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
		defer cancel()
		// Exactly the README's command, with the test's address.
		script := `(echo -n '{"data": "'; base64 "$IMG"; echo '"}') | curl -s -X POST -H "Content-Type: application/json" -d @- "$URL/predict/label"`
		cmd := exec.CommandContext(ctx, "bash", "-c", script)
		cmd.Env = append(os.Environ(), "IMG="+testImage(t, "red", color.RGBA{255, 0, 0, 255}), "URL="+colors.URL)
		out, err := cmd.Output()
		if err != nil || string(out) != `{"prediction":"red"}` {
			t.Errorf("curl: %q, %v", out, err)
		}
	})

	t.Run("colors probabilities", func(t *testing.T) {
		labels := labelsOf(t, colors)
		if !slices.Equal(labels, []string{"black", "white", "red", "green", "blue", "yellow", "cyan", "magenta", "gray"}) {
			t.Fatalf("labels %q", labels)
		}
		r := postJSON(t, colors.URL+"/predict", classicBody(readFile(t, testImage(t, "blue", color.RGBA{0, 0, 255, 255})), false))
		p := probabilitiesOf(t, r)
		checkDistribution(t, p, len(labels))
		if best := labels[slices.Index(p, slices.Max(p))]; best != "blue" {
			t.Errorf("most probable %q, want blue", best)
		}
	})

	t.Run("resnet50 label", func(t *testing.T) {
		labels := labelsOf(t, resnet)
		if len(labels) != 1000 {
			t.Fatalf("%d labels, want 1000", len(labels))
		}
		for _, name := range []string{"photo-500x375.jpg", "photo-1024x768.jpg"} {
			path := filepath.Join(predtest.RepoRoot(t), "testdata", "images", name)
			if _, err := os.Stat(path); err != nil {
				path = testImage(t, "yellow", color.RGBA{255, 255, 0, 255})
			}
			r := postJSON(t, resnet.URL+"/predict/label", classicBody(readFile(t, path), false))
			var body struct{ Prediction string }
			if err := json.Unmarshal(r.body, &body); err != nil || r.status != http.StatusOK {
				t.Fatalf("%s: %d %s", name, r.status, r.body)
			}
			if !slices.Contains(labels, body.Prediction) {
				t.Errorf("%s: label %q is not in the model's label list", name, body.Prediction)
			}
		}
	})

	t.Run("resnet50 probabilities", func(t *testing.T) {
		r := postJSON(t, resnet.URL+"/predict", classicBody(readFile(t, testImage(t, "green", color.RGBA{0, 255, 0, 255})), false))
		checkDistribution(t, probabilitiesOf(t, r), 1000)
	})

	t.Run("ready and metadata", func(t *testing.T) {
		for _, p := range []*prepProc{colors, resnet} {
			if r := call(t, http.MethodGet, p.URL+"/ready", "", nil); r.status != http.StatusOK {
				t.Errorf("/ready: %d %s", r.status, r.body)
			}
		}
		r := call(t, http.MethodGet, resnet.URL+"/metadata", "", nil)
		var md map[string]any
		if err := json.Unmarshal(r.body, &md); err != nil {
			t.Fatal(err)
		}
		if md["prediction_structure"] != "(1,1000)" || md["data_type"] != "str" || md["model"] != "resnet50" {
			t.Errorf("/metadata: %s", r.body)
		}
	})

	t.Run("bad input", func(t *testing.T) {
		r := postJSON(t, colors.URL+"/predict/label", []byte(`{"data": "bm90IGFuIGltYWdl"}`))
		if code, _ := errorOf(t, r); r.status != http.StatusUnsupportedMediaType || code != "unsupported_format" {
			t.Errorf("text as image: %d %s", r.status, r.body)
		}
	})
}

func TestPredUnreachable(t *testing.T) {
	const timeout = 2 * time.Second
	addr := fakepred.ClosedAddr(t)
	p := startPrep(t, "--http-addr", "127.0.0.1:0", "--pred-address", addr, "--model", "colors", "--request-timeout", timeout.String())

	if r := call(t, http.MethodGet, p.URL+"/health", "", nil); r.status != http.StatusOK {
		t.Errorf("/health: %d %s", r.status, r.body)
	}
	r := call(t, http.MethodGet, p.URL+"/ready", "", nil)
	if code, msg := errorOf(t, r); r.status != http.StatusServiceUnavailable || code != "not_ready" {
		t.Errorf("/ready: %d %s", r.status, r.body)
	} else if !strings.Contains(msg, `"colors"`) {
		t.Errorf("/ready message %q does not name the model", msg)
	}

	img := readFile(t, testImage(t, "red", color.RGBA{255, 0, 0, 255}))
	start := time.Now()
	r = postJSON(t, p.URL+"/predict/label", classicBody(img, false))
	if d := time.Since(start); d > timeout {
		t.Errorf("answered after %v, more than the request timeout %v", d, timeout)
	}
	if code, _ := errorOf(t, r); r.status != http.StatusServiceUnavailable || code != "not_ready" {
		t.Errorf("/predict/label: %d %s", r.status, r.body)
	}
	// Once the first read has failed, /ready says why, naming pred's address.
	p.waitLog(t, startTimeout, func(m map[string]any) bool { return m["msg"] == "model contract not loaded" })
	r = call(t, http.MethodGet, p.URL+"/ready", "", nil)
	if _, msg := errorOf(t, r); !strings.Contains(msg, addr) {
		t.Errorf("/ready message %q does not name pred's address %s", msg, addr)
	}
}

func TestPredKilled(t *testing.T) {
	const timeout = 3 * time.Second
	pred := predtest.Start(t)
	p := startPrep(t, "--http-addr", "127.0.0.1:0", "--pred-address", pred.GRPCAddr, "--model", "colors", "--request-timeout", timeout.String())
	p.waitContract(t)
	body := classicBody(readFile(t, testImage(t, "white", color.RGBA{255, 255, 255, 255})), false)
	if r := postJSON(t, p.URL+"/predict/label", body); string(r.body) != `{"prediction":"white"}` {
		t.Fatalf("before the kill: %d %s", r.status, r.body)
	}

	pred.Kill()

	for i := range 3 {
		start := time.Now()
		r := postJSON(t, p.URL+"/predict/label", body)
		if d := time.Since(start); d > timeout+time.Second {
			t.Errorf("request %d answered after %v, request timeout %v", i, d, timeout)
		}
		if code, msg := errorOf(t, r); r.status != http.StatusServiceUnavailable || code != "pred_unavailable" {
			t.Errorf("request %d: %d %s", i, r.status, r.body)
		} else if !strings.Contains(msg, "Unavailable") {
			t.Errorf("request %d: message %q", i, msg)
		}
	}
	// /ready follows the connection state; there is no event to wait for.
	deadline := time.Now().Add(callTimeout)
	for {
		r := call(t, http.MethodGet, p.URL+"/ready", "", nil)
		if r.status == http.StatusServiceUnavailable {
			if _, msg := errorOf(t, r); !strings.Contains(msg, "not reachable") {
				t.Errorf("/ready message %q", msg)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("/ready still %d %s after pred was killed", r.status, r.body)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
