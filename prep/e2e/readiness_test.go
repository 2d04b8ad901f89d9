package e2e

// Tests of readiness and model changes: prep's /ready follows the state of
// pred's model versions, and prep follows pred's model watch, so that a
// changed model is adopted without traffic and without errors.

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prepred/prepred/pred/predtest"
	"github.com/prepred/prepred/prep/preptest"
)

// watchDeadline bounds the wait for prep to adopt a model change that no
// request has seen. It is a third of prep's fallback poll (30 s), so only
// the model watch can meet it; it is a deadline for an event, not a speed
// goal (the watch takes milliseconds).
const watchDeadline = 10 * time.Second

// manage calls pred's model management API (load or unload) on the colors
// model.
func manage(t *testing.T, pred *predtest.Server, action string) {
	t.Helper()
	a := post(context.Background(), http.DefaultClient, "http://"+pred.HTTPAddr+"/v2/repository/models/colors/"+action, nil)
	if a.err != nil || a.status != http.StatusOK {
		t.Fatalf("%s colors: %v", action, a)
	}
}

// waitReady polls path on prep until its answer has the given status and
// error code (empty for a 200) and its body contains every one of parts.
// Nothing signals when prep has heard from pred's
// watch, so this polls, within deadline.
func waitReady(t *testing.T, prep *preptest.Server, path string, status int, code string, deadline time.Duration, parts ...string) {
	t.Helper()
	end := time.Now().Add(deadline)
	for {
		a := get(t, prep.URL+path)
		got, _ := a.errorCode()
		ok := a.status == status && got == code
		for _, p := range parts {
			ok = ok && strings.Contains(string(a.body), p)
		}
		if ok {
			return
		}
		if time.Now().After(end) {
			t.Fatalf("GET %s: no %d %s with %q within %v; last: %v", path, status, code, parts, deadline, a)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestReadyFollowsModelState: prep's /ready is 503 with the reason while
// pred serves no READY version of prep's model (unloaded through pred's
// management API) and 200 again once it does; /ready?model= answers for
// any model, 404 for one pred does not have.
func TestReadyFollowsModelState(t *testing.T) {
	pred := startPred(t, release(t, []int64{1}, nil), "", "--management-api")
	prep := startPrep(t, pred.GRPCAddr)
	prep.WaitLog(t, contractTimeout, isContractLoaded(1))
	waitReady(t, prep, "/ready", http.StatusOK, "", contractTimeout, `"spec_fingerprint"`)
	waitReady(t, prep, "/ready?model=colors", http.StatusOK, "", contractTimeout)

	manage(t, pred, "unload")
	waitReady(t, prep, "/ready", http.StatusServiceUnavailable, "not_ready", watchDeadline, "no READY version", "unloaded")
	waitReady(t, prep, "/ready?model=colors", http.StatusServiceUnavailable, "not_ready", watchDeadline, "no READY version")
	// A prediction meanwhile fails with pred's reason.
	if p := predictRed(t, prep, redBody(t)); p.status != http.StatusServiceUnavailable {
		t.Errorf("prediction while unloaded: %v, want 503", p)
	}

	manage(t, pred, "load")
	waitReady(t, prep, "/ready", http.StatusOK, "", watchDeadline, `"version":1`)
	waitReady(t, prep, "/ready?model=colors&version=1", http.StatusOK, "", watchDeadline)
	expectLabel(t, predictRed(t, prep, redBody(t)), "red", 1)

	waitReady(t, prep, "/ready?model=nope", http.StatusNotFound, "model_not_found", watchDeadline, `\"nope\"`)
	waitReady(t, prep, "/ready?model=colors&version=7", http.StatusNotFound, "model_not_found", watchDeadline, "no version 7")
	waitReady(t, prep, "/ready?model=bad%20name", http.StatusBadRequest, "bad_request", watchDeadline)
}

// TestWatchAdoptsNewSpecWithoutTraffic: pred loads version 2 of the model
// with another spec (BGR) while prep gets no request at all; prep's /ready
// reports the new version and fingerprint within watchDeadline, and the
// first request after it uses the new contract.
func TestWatchAdoptsNewSpecWithoutTraffic(t *testing.T) {
	repo := release(t, []int64{1}, nil)
	pred := startPred(t, repo, "", "--management-api")
	prep := startPrep(t, pred.GRPCAddr)
	prep.WaitLog(t, contractTimeout, isContractLoaded(1))
	prep.WaitLog(t, contractTimeout, func(m map[string]any) bool { return m["msg"] == "watching pred's model changes" })
	if fp := readyFingerprint(t, prep); fp != fingerprintOf(t, nil) {
		t.Fatalf("/ready fingerprint %s, want the RGB spec's %s", fp, fingerprintOf(t, nil))
	}

	writeRelease(t, repo, []int64{1, 2}, bgr)
	manage(t, pred, "load")
	waitReady(t, prep, "/ready", http.StatusOK, "", watchDeadline, `"version":2`, fingerprintOf(t, bgr))
	expectLabel(t, predictRed(t, prep, redBody(t)), "blue", 2)
}
