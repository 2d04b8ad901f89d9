package main

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prepred/prepred/pred/predtest"
)

// TestProfilingEndpoints: with --debug-addr, pred serves Go's profiling
// endpoints on a listener of its own; its HTTP port never serves them.
func TestProfilingEndpoints(t *testing.T) {
	srv := predtest.Start(t, "--debug-addr", "127.0.0.1:0")
	line := srv.WaitLog(t, time.Minute, func(l string) bool { return strings.Contains(l, `"profiling endpoints"`) })
	var m struct {
		DebugAddr string `json:"debug_addr"`
	}
	if err := json.Unmarshal([]byte(line), &m); err != nil || m.DebugAddr == "" {
		t.Fatalf("log line %q: %v", line, err)
	}
	if code, body := httpGet(t, "http://"+m.DebugAddr+"/debug/pprof/goroutine?debug=1"); code != http.StatusOK || !strings.Contains(body, "goroutine profile:") {
		t.Errorf("goroutine profile on the debug listener: %d %.200s", code, body)
	}
	if code, _ := httpGet(t, "http://"+srv.HTTPAddr+"/debug/pprof/"); code != http.StatusNotFound {
		t.Errorf("/debug/pprof/ on the HTTP port: %d, want 404", code)
	}
}
