package e2e

// Faults and shutdown under load: pred killed and restarted, one of two
// pred replicas stopped, prep itself stopped.

import (
	"context"
	"net/http"
	"syscall"
	"testing"
	"time"

	"github.com/prepred/prepred/pred/predtest"
)

// TestPredKilledUnderLoad: pred is killed (SIGKILL) while clients load
// prep. Every answer while pred is gone is a 503 within prep's request
// timeout; prep's goroutines do not pile up; once pred is back on the same
// address, prep serves again by itself within reconnectBound, without a
// restart.
func TestPredKilledUnderLoad(t *testing.T) {
	const (
		clients = 8
		// maxAnswers bounds the load.
		maxAnswers = 20000
		// requestTimeout is prep's; an answer may take this plus answerSlack.
		requestTimeout = 2 * time.Second
		answerSlack    = time.Second
		// outage is how long pred stays gone under load: long enough for
		// gRPC's reconnect backoff to grow to prep's cap of a second (from
		// 0.1 s by 1.6 per attempt), which reconnectBound then checks.
		outage = 3 * time.Second
		// reconnectBound is how soon after pred serves again prep must
		// serve.
		reconnectBound = 2 * time.Second
		// goroutineSlack bounds the goroutines prep may have beyond those
		// it had serving the same clients before the kill: connections and
		// requests in flight, not one per failed request.
		goroutineSlack = 4 * clients
		// pace spaces each client's requests, so that the fast failures
		// while pred is gone stay few.
		pace = 10 * time.Millisecond
	)
	body := redBody(t)
	repo := release(t, []int64{1}, nil)
	pred := startPred(t, repo, "")
	prep := startPrep(t, pred.GRPCAddr, "--request-timeout", requestTimeout.String())
	prep.WaitLog(t, contractTimeout, isContractLoaded(1))
	metrics := prep.URL + "/metrics"
	idle := metric(t, metrics, "go_goroutines")

	client := newHTTPClient(clients)
	l := startLoad(t, clients, maxAnswers, pace, func(ctx context.Context) answer {
		return post(ctx, client, prep.URL+"/predict/topk?k=1", body)
	})
	l.waitFor(t, "answers before the kill", atLeast(100, countOK(time.Time{})))
	loaded := metric(t, metrics, "go_goroutines")

	pred.Kill()
	killed := time.Now()
	// The load's own answers mark the time: no sleep.
	l.waitFor(t, "answers throughout the outage", func(as []answer) bool {
		return len(as) > 0 && as[len(as)-1].start.Sub(killed) >= outage
	})
	down := metric(t, metrics, "go_goroutines")

	startPred(t, repo, pred.GRPCAddr)
	back := time.Now()
	l.waitFor(t, "an answer after pred came back", atLeast(1, countOK(back)))
	answers := l.stop()
	client.CloseIdleConnections()

	var firstOK time.Time
	var downAnswers int
	for i, a := range answers {
		if a.err != nil {
			t.Fatalf("answer %d: %v", i, a)
		}
		if d := a.end.Sub(a.start); d > requestTimeout+answerSlack {
			t.Errorf("answer %d took %v, request timeout %v: %v", i, d, requestTimeout, a)
		}
		if a.status == http.StatusOK {
			if label, version, err := a.label(); err != nil || label != "red" || version != 1 {
				t.Errorf("answer %d: %q from version %d (%v), want red from 1", i, label, version, err)
			}
			if a.end.After(back) && (firstOK.IsZero() || a.end.Before(firstOK)) {
				firstOK = a.end
			}
			continue
		}
		if a.start.Before(killed) {
			continue // in flight at the kill
		}
		downAnswers++
		if code, _ := a.errorCode(); a.status != http.StatusServiceUnavailable || code != "pred_unavailable" {
			t.Errorf("answer %d while pred was gone: %v, want 503 pred_unavailable", i, a)
		}
	}
	serveAgain := firstOK.Sub(back)
	t.Logf("goroutines: %v idle, %v under load, %v under load with pred gone; %d answers while pred was gone; first success %v after pred served again",
		idle, loaded, down, downAnswers, serveAgain)
	if down > loaded+goroutineSlack {
		t.Errorf("prep had %v goroutines with pred gone, %v before the kill under the same load", down, loaded)
	}
	if serveAgain > reconnectBound {
		t.Errorf("prep served again %v after pred did, want at most %v", serveAgain, reconnectBound)
	}

	// Once the clients are gone, so are their goroutines. Nothing signals
	// that; poll with a deadline.
	deadline := time.Now().Add(callTimeout)
	for {
		n := metric(t, metrics, "go_goroutines")
		if n <= idle+4 {
			break
		}
		if time.Now().After(deadline) {
			t.Errorf("prep has %v goroutines %v after the load ended, %v before it", n, callTimeout, idle)
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestReplicaStoppedUnderLoad: prep serves two pred replicas
// ("--pred-address a,b"); one is stopped under load, with SIGTERM (it
// drains) or SIGKILL (calls in flight on it fail). No client request
// fails: calls in flight on a draining replica finish there, and calls that
// fail with UNAVAILABLE are retried on the other.
func TestReplicaStoppedUnderLoad(t *testing.T) {
	const (
		clients    = 8
		maxAnswers = 20000
		// phase is how many answers come before the stop, and after it.
		phase = 150
		pace  = 5 * time.Millisecond
	)
	body := redBody(t)
	repo := release(t, []int64{1}, nil)
	tests := []struct {
		name string
		stop func(t *testing.T, pred *predtest.Server)
	}{
		{"SIGTERM", func(t *testing.T, pred *predtest.Server) {
			if code := pred.Stop(); code != 0 {
				t.Errorf("the stopped replica exited with %d", code)
			}
		}},
		{"SIGKILL", func(t *testing.T, pred *predtest.Server) { pred.Kill() }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, b := startPred(t, repo, ""), startPred(t, repo, "")
			prep := startPrep(t, a.GRPCAddr+","+b.GRPCAddr, "--request-timeout", "5s")
			prep.WaitLog(t, contractTimeout, isContractLoaded(1))

			client := newHTTPClient(clients)
			l := startLoad(t, clients, maxAnswers, pace, func(ctx context.Context) answer {
				return post(ctx, client, prep.URL+"/predict/topk?k=1", body)
			})
			l.waitFor(t, "answers before the stop", atLeast(phase, countOK(time.Time{})))
			servedA, servedB := predOK(t, a), predOK(t, b)
			if servedA == 0 || servedB == 0 {
				t.Errorf("replicas served %v and %v before the stop; want both used", servedA, servedB)
			}
			tt.stop(t, a)
			stopped := time.Now()
			l.waitFor(t, "answers after the stop", atLeast(phase, func(as []answer) int {
				n := 0
				for _, a := range as {
					if a.start.After(stopped) {
						n++
					}
				}
				return n
			}))
			answers := l.stop()

			for i, ans := range answers {
				if ans.err != nil || ans.status != http.StatusOK {
					t.Errorf("answer %d failed: %v", i, ans)
					continue
				}
				if label, _, err := ans.label(); err != nil || label != "red" {
					t.Errorf("answer %d: %q (%v), want red", i, label, err)
				}
			}
			all := predOK(t, b)
			t.Logf("%d answers; replica b served %v before the stop and %v in all", len(answers), servedB, all)
			if all < servedB+phase {
				t.Errorf("replica b served %v requests after the stop, want at least %d", all-servedB, phase)
			}
		})
	}
}

// TestPrepStoppedUnderLoad: prep gets SIGTERM while requests are in
// flight. Those complete with their answers; new connections are refused;
// prep exits 0.
func TestPrepStoppedUnderLoad(t *testing.T) {
	const (
		clients = 6
		// maxAnswers bounds the load: each client ends at its first refusal.
		maxAnswers = 1000
		// maxProbes bounds the requests sent after the stop until one is
		// refused.
		maxProbes = 100
	)
	body := redBody(t)
	pred := startPred(t, release(t, []int64{1}, nil), "")
	px := startProxy(t, pred.GRPCAddr)
	prep := startPrep(t, px.Addr)
	prep.WaitLog(t, contractTimeout, isContractLoaded(1))

	// Each client sends on new connections (no keep-alive), so that a
	// request after the stop meets a closed listener.
	arrived, release := px.hold(clients)
	defer release()
	client := newHTTPClient(0)
	l := startLoad(t, clients, maxAnswers, 0, func(ctx context.Context) answer {
		return post(ctx, client, prep.URL+"/predict/topk?k=1", body)
	})
	for range clients {
		<-arrived // every client has a request in flight, held before pred
	}
	mark := prep.Mark()
	signalled := time.Now()
	if err := prep.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	prep.WaitLogSince(t, mark, callTimeout, func(m map[string]any) bool { return m["msg"] == "shutting down" })
	release()
	// prep logs "shutting down" just before it closes its listener: a
	// request in between is still served. Soon every one is refused.
	for i := 0; ; i++ {
		a := post(context.Background(), client, prep.URL+"/predict/topk?k=1", body)
		if a.refused() {
			break
		}
		if label, _, err := a.label(); a.err != nil || a.status != http.StatusOK || err != nil || label != "red" {
			t.Fatalf("a request after the stop: %v, want connection refused", a)
		}
		if i == maxProbes {
			t.Fatalf("%d requests after the stop were served", i)
		}
	}
	code, exited := prep.Wait(callTimeout)
	if !exited || code != 0 {
		t.Errorf("prep exited: %v, code %d; want exit code 0", exited, code)
	}
	answers := l.wait() // every client ends at its first refusal

	// The requests sent before the signal are the ones in flight at it:
	// each must have its answer. Each later one is answered (sent before
	// the listener closed) or refused.
	inFlight, refused := 0, 0
	for i, a := range answers {
		before := a.start.Before(signalled)
		if before {
			inFlight++
		}
		switch {
		case a.refused() && !before:
			refused++
		case a.err == nil && a.status == http.StatusOK:
			if label, _, err := a.label(); err != nil || label != "red" {
				t.Errorf("answer %d: %q (%v), want red", i, label, err)
			}
		default:
			t.Errorf("answer %d (sent before the signal: %v): %v, want the answer or, sent after, connection refused", i, before, a)
		}
	}
	if inFlight != clients || refused != clients {
		t.Errorf("%d requests in flight at the signal and %d refused, want %d and one refusal per client", inFlight, refused, clients)
	}
}
