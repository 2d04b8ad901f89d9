package e2e

import (
	"net/http"
	"strings"
	"testing"

	"github.com/prepred/prepred/pred/predtest"
)

// TestProfilingEndpoints: with --debug-addr, prep serves Go's profiling
// endpoints on a listener of its own; its API port never serves them.
func TestProfilingEndpoints(t *testing.T) {
	pred := predtest.Start(t)
	prep := startPrep(t, pred.GRPCAddr, "--debug-addr", "127.0.0.1:0")
	line := prep.WaitLog(t, contractTimeout, func(m map[string]any) bool { return m["msg"] == "profiling endpoints" })
	addr, _ := line["debug_addr"].(string)
	if a := get(t, "http://"+addr+"/debug/pprof/goroutine?debug=1"); a.status != http.StatusOK || !strings.Contains(string(a.body), "goroutine profile:") {
		t.Errorf("goroutine profile on the debug listener: %v", a)
	}
	if a := get(t, prep.URL+"/debug/pprof/"); a.status != http.StatusNotFound {
		t.Errorf("/debug/pprof/ on the API port: %d, want 404", a.status)
	}
}
