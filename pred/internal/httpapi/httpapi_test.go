package httpapi

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/prepred/prepred/pred/internal/metrics"
)

func TestHandler(t *testing.T) {
	var ready atomic.Bool
	m := metrics.New()
	m.Requests.WithLabelValues("colors", "1", "OK").Inc()
	srv := httptest.NewServer(Handler(Options{Ready: ready.Load, Gatherer: m.Registry}))
	t.Cleanup(srv.Close)

	get := func(method, path string) (int, string) {
		t.Helper()
		req, err := http.NewRequest(method, srv.URL+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return resp.StatusCode, string(body)
	}
	tests := []struct {
		name     string
		ready    bool
		method   string
		path     string
		wantCode int
		wantBody string
	}{
		{"live", false, "GET", "/v2/health/live", 200, `{"live":true}`},
		{"not ready", false, "GET", "/v2/health/ready", 503, `{"ready":false}`},
		{"ready", true, "GET", "/v2/health/ready", 200, `{"ready":true}`},
		{"head ready", true, "HEAD", "/v2/health/ready", 200, ``},
		{"metrics", true, "GET", "/metrics", 200, `pred_inference_requests_total{code="OK",model="colors",version="1"} 1`},
		{"go metrics", true, "GET", "/metrics", 200, `go_goroutines`},
		{"post", true, "POST", "/v2/health/live", 405, ``},
		{"unknown", true, "GET", "/v2/models", 404, ``},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ready.Store(tt.ready)
			code, body := get(tt.method, tt.path)
			if code != tt.wantCode || !strings.Contains(body, tt.wantBody) {
				t.Errorf("%s %s = %d %q, want %d containing %q", tt.method, tt.path, code, body, tt.wantCode, tt.wantBody)
			}
		})
	}
}
