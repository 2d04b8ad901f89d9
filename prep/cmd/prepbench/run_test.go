package main

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prepred/prepred/pred/predtest"
	"github.com/prepred/prepred/prep/internal/fakepred"
)

func redImage(t *testing.T) string {
	t.Helper()
	return filepath.Join(predtest.RepoRoot(t), "testdata", "images", "red.jpg")
}

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// fakePrep answers /ready and /predict/label; after okCalls predictions it
// answers 503.
func fakePrep(t *testing.T, okCalls int64) *httptest.Server {
	t.Helper()
	var calls atomic.Int64
	mux := http.NewServeMux()
	mux.HandleFunc("GET /ready", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte(`{"ready":"ok","model":"colors","version":1}`))
	})
	mux.HandleFunc("POST /predict/label", func(w http.ResponseWriter, r *http.Request) {
		if !strings.Contains(r.Header.Get("Content-Type"), "application/json") {
			http.Error(w, "want JSON", http.StatusUnsupportedMediaType)
			return
		}
		if calls.Add(1) > okCalls {
			http.Error(w, `{"error":{"code":"pred_unavailable"}}`, http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte(`{"prediction":"red"}`))
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

var loadLine = regexp.MustCompile(`^load model=colors c=(\d+) n=(\d+) errors=(\d+) images_per_s=[0-9.]+ p50_ms=[0-9.]+ p99_ms=[0-9.]+ mean_ms=[0-9.]+ seconds=[0-9.]+$`)

func TestLoad(t *testing.T) {
	srv := fakePrep(t, 1<<30)
	var out bytes.Buffer
	err := run(testContext(t), []string{"load", "-url", srv.URL, "-image", redImage(t), "-c", "1,3", "-n", "12"}, &out)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("output:\n%s", out.String())
	}
	for i, c := range []string{"1", "3"} {
		m := loadLine.FindStringSubmatch(lines[i])
		if m == nil || m[1] != c || m[2] != "12" || m[3] != "0" {
			t.Errorf("line %d: %q", i, lines[i])
		}
	}
}

func TestLoadReportsErrors(t *testing.T) {
	srv := fakePrep(t, 5) // the warm-up (2) passes, the measurement fails
	var out bytes.Buffer
	err := run(testContext(t), []string{"load", "-url", srv.URL, "-image", redImage(t), "-c", "1", "-n", "10"}, &out)
	if err == nil {
		t.Fatalf("no error; output:\n%s", out.String())
	}
	if m := loadLine.FindStringSubmatch(strings.Split(out.String(), "\n")[0]); m == nil || m[2] != "3" || m[3] != "7" {
		t.Errorf("output:\n%s", out.String())
	}
	if !strings.Contains(out.String(), "pred_unavailable") {
		t.Errorf("the first error is not shown:\n%s", out.String())
	}
}

func TestPreprocess(t *testing.T) {
	pred := fakepred.Start(t, fakepred.ColorsMetadata())
	var out bytes.Buffer
	err := run(testContext(t), []string{"preprocess", "-pred", pred.Addr, "-model", "colors", "-image", redImage(t), "-n", "5"}, &out)
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`^preprocess model=colors n=5 mean_ms=[0-9.]+ p50_ms=[0-9.]+ min_ms=[0-9.]+\n$`).MatchString(out.String()) {
		t.Errorf("output %q", out.String())
	}
}

func TestBadArguments(t *testing.T) {
	for _, args := range [][]string{
		nil,
		{"nonsense"},
		{"load"},
		{"load", "-image", "x", "-c", "0"},
		{"load", "-image", "x", "-n", "0"},
		{"preprocess"},
	} {
		if err := run(context.Background(), args, &bytes.Buffer{}); err == nil {
			t.Errorf("run(%q) succeeded", args)
		}
	}
}

func TestPercentile(t *testing.T) {
	v := make([]time.Duration, 100)
	for i := range v {
		v[i] = time.Duration(i+1) * time.Millisecond
	}
	for _, tt := range []struct {
		p    int
		want time.Duration
	}{{50, 50 * time.Millisecond}, {99, 99 * time.Millisecond}, {100, 100 * time.Millisecond}, {1, time.Millisecond}} {
		if got := percentile(v, tt.p); got != tt.want {
			t.Errorf("percentile %d = %v, want %v", tt.p, got, tt.want)
		}
	}
	if got := percentile(v[:1], 99); got != time.Millisecond {
		t.Errorf("percentile of one value = %v", got)
	}
}
