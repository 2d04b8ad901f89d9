package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/prepred/prepred/pred/predtest"
	"github.com/prepred/prepred/prep/preptest"
)

// BenchmarkExplainResNet50 measures one explanation of a photo by the
// generated ResNet-50 (224x224 input) with the default patches (window 28,
// stride 14: 15x15 patches and the image, 226 inferences, sent in batches
// of max_batch_size 8), against the same number of single /predict calls
// of the same image, one after the other as the explanation's are. It
// reports both times, the inference count and the ratio.
//
//	go test ./prep/e2e -run '^$' -bench ExplainResNet50 -benchtime 1x
func BenchmarkExplainResNet50(b *testing.B) {
	pred := predtest.Start(b)
	prep := preptest.Start(b, "--pred-address", pred.GRPCAddr, "--model", "resnet50", "--request-timeout", "5m", "--max-request-timeout", "5m")
	prep.WaitLog(b, contractTimeout, func(m map[string]any) bool { return m["msg"] == "model contract loaded" })
	img, err := os.ReadFile(filepath.Join(predtest.RepoRoot(b), "testdata", "images", "photo-500x375.jpg"))
	if err != nil {
		b.Fatal(err)
	}
	send := func(path string) imageAnswer {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, prep.URL+path, bytes.NewReader(img))
		if err != nil {
			b.Fatal(err)
		}
		req.Header.Set("Content-Type", "image/jpeg")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		defer resp.Body.Close()
		var e json.RawMessage
		if err := json.NewDecoder(resp.Body).Decode(&e); err != nil {
			b.Fatal(err)
		}
		if resp.StatusCode != http.StatusOK {
			b.Fatalf("%s: %d %s", path, resp.StatusCode, e)
		}
		return imageAnswer{status: resp.StatusCode, body: e}
	}
	send("/predict") // warm the connection, ONNX Runtime and the pools

	var explain, singles time.Duration
	inferences := 0
	for range b.N {
		start := time.Now()
		var e explanation
		if err := json.Unmarshal(send("/explain").body, &e); err != nil {
			b.Fatal(err)
		}
		explain += time.Since(start)
		inferences = e.Inferences
		start = time.Now()
		for range e.Inferences {
			send("/predict")
		}
		singles += time.Since(start)
	}
	b.ReportMetric(float64(inferences), "inferences")
	b.ReportMetric(explain.Seconds()*1000/float64(b.N), "explain-ms")
	b.ReportMetric(singles.Seconds()*1000/float64(b.N), "singles-ms")
	b.ReportMetric(singles.Seconds()/explain.Seconds(), "singles/explain")
}
