package e2e

import (
	"net/http"
	"syscall"
	"testing"

	"github.com/prepred/prepred/pred/predtest"
)

// TestShutdownDelay: after SIGTERM, a prep started with --shutdown-delay
// goes on answering predictions while /ready says 503 shutting_down, so
// that a load balancer takes it out of rotation before it stops accepting
// connections; then it exits cleanly.
func TestShutdownDelay(t *testing.T) {
	pred := predtest.Start(t)
	prep := startPrep(t, pred.GRPCAddr, "--shutdown-delay", "5s")
	prep.WaitLog(t, contractTimeout, isContractLoaded(1))
	good := redBody(t)
	if a := get(t, prep.URL+"/ready"); a.status != http.StatusOK {
		t.Fatalf("/ready before SIGTERM: %v", a)
	}

	if err := prep.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	prep.WaitLog(t, contractTimeout, func(m map[string]any) bool { return m["msg"] == "shutting down: not ready, still serving" })
	if a := get(t, prep.URL+"/ready"); a.status != http.StatusServiceUnavailable {
		t.Errorf("/ready during the shutdown delay: %v, want 503", a)
	} else if code, _ := a.errorCode(); code != "shutting_down" {
		t.Errorf("/ready during the shutdown delay: code %q, want shutting_down", code)
	}
	a := predictRed(t, prep, good)
	if label, _, err := a.label(); err != nil || label != "red" {
		t.Errorf("prediction during the shutdown delay: %v (%v), want red", a, err)
	}
	if a := get(t, prep.URL+"/health"); a.status != http.StatusOK {
		t.Errorf("/health during the shutdown delay: %v, want 200 (the process is alive)", a)
	}

	code, exited := prep.Wait(contractTimeout)
	if !exited || code != 0 {
		t.Fatalf("prep after the shutdown delay: exited %v with %d, want a clean exit", exited, code)
	}
}
