package e2e

import (
	"context"
	"net/http"
	"testing"
	"time"
)

// TestMixedSpecReplicas: halfway through a roll, one pred replica serves
// the colors model with the RGB spec and the other with the BGR spec (same
// version number, other fingerprint). prep, talking to both, sends each
// tensor to a replica that serves the spec it was made for: every request
// succeeds and each answer is the label of a spec one of the replicas
// serves (red for RGB, blue for BGR). A refusal teaches prep what a
// replica serves; plain round robin would send about half the tensors to
// the other kind, to be refused.
func TestMixedSpecReplicas(t *testing.T) {
	const (
		clients = 4
		answers = 200
	)
	rgbPred := startPred(t, release(t, []int64{1}, nil), "")
	bgrPred := startPred(t, release(t, []int64{1}, bgr), "")
	prep := startPrep(t, rgbPred.GRPCAddr+","+bgrPred.GRPCAddr)
	prep.WaitLog(t, contractTimeout, isContractLoaded(1))

	body := redBody(t)
	client := newHTTPClient(clients)
	l := startLoad(t, clients, answers, time.Millisecond, func(ctx context.Context) answer {
		return post(ctx, client, prep.URL+"/predict/topk?k=1", body)
	})
	got := l.waitFor(t, "the answers", func(as []answer) bool { return len(as) >= answers })
	l.stop()

	labels := map[string]int{}
	for i, a := range got[:answers] {
		if a.err != nil || a.status != http.StatusOK {
			code, msg := a.errorCode()
			t.Errorf("answer %d: %d %s: %s %v; want every request served by a replica of its spec", i, a.status, code, msg, a.err)
			continue
		}
		label, _, err := a.label()
		if err != nil {
			t.Fatalf("answer %d: %v", i, err)
		}
		labels[label]++
	}
	for label := range labels {
		if label != "red" && label != "blue" {
			t.Errorf("label %q: neither spec's answer for the red image", label)
		}
	}
	rgbServed, bgrServed := predOK(t, rgbPred), predOK(t, bgrPred)
	t.Logf("%d answers by label %v; replicas served %v (RGB) and %v (BGR)", answers, labels, rgbServed, bgrServed)
	if rgbServed+bgrServed < answers {
		t.Errorf("the replicas counted %v predictions, fewer than the %d answers", rgbServed+bgrServed, answers)
	}
}
