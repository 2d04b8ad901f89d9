package httpapi

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/prepred/prepred/pred/internal/metrics"
	"github.com/prepred/prepred/pred/internal/requestlog"
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

// TestMountsAndLogsProtocols checks that the protocols' handlers are
// mounted where their clients look, each request gets an ID and one log
// line with its status.
func TestMountsAndLogsProtocols(t *testing.T) {
	core, logs := observer.New(zapcore.DebugLevel)
	handler := func(name string) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			requestlog.AddFields(r.Context(), zap.String("model", "m"))
			w.WriteHeader(http.StatusTeapot)
			io.WriteString(w, name+" "+r.URL.Path)
		})
	}
	srv := httptest.NewServer(Handler(Options{
		Ready:     func() bool { return true },
		Gatherer:  metrics.New().Registry,
		OIP:       handler("oip"),
		ORTServer: handler("ort"),
		Logger:    zap.New(core),
	}))
	t.Cleanup(srv.Close)
	tests := []struct {
		path, id, want string
	}{
		{"/v2", "", "oip /v2"},
		{"/v2/models/colors/infer", "abc-1", "oip /v2/models/colors/infer"},
		{"/v1/models/colors:predict", "", "ort /v1/models/colors:predict"},
	}
	for _, tt := range tests {
		req, err := http.NewRequest("POST", srv.URL+tt.path, nil)
		if err != nil {
			t.Fatal(err)
		}
		if tt.id != "" {
			req.Header.Set("X-Request-ID", tt.id)
		}
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		id := resp.Header.Get("X-Request-ID")
		if resp.StatusCode != http.StatusTeapot || string(body) != tt.want || id == "" || (tt.id != "" && id != tt.id) {
			t.Errorf("POST %s = %d %q, request ID %q", tt.path, resp.StatusCode, body, id)
		}
		entries := logs.FilterField(zap.String("request_id", id)).AllUntimed()
		if len(entries) != 1 || entries[0].Message != "http request" || entries[0].Level != zapcore.InfoLevel ||
			entries[0].ContextMap()["status"] != int64(http.StatusTeapot) || entries[0].ContextMap()["model"] != "m" {
			t.Errorf("POST %s logged %+v", tt.path, entries)
		}
	}
	// Health stays the health handler's.
	resp, err := srv.Client().Get(srv.URL + "/v2/health/ready")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("ready: %d", resp.StatusCode)
	}
}
