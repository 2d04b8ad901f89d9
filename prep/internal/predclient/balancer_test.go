package predclient

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"google.golang.org/grpc/balancer"

	predv1 "github.com/prepred/prepred/api/gen/prepred/pred/v1"
	"github.com/prepred/prepred/prep/internal/fakepred"
)

// TestRollingUpdateRoutesByContract: with one replica on each of two
// PreprocessSpecs (a rolling update half done), every Predict reaches the
// replica that serves its contract, whichever of the two the client read,
// instead of alternating into the one that refuses it. When that replica
// goes, the contract is re-read once and calls go to the other.
func TestRollingUpdateRoutesByContract(t *testing.T) {
	old := fakepred.ColorsMetadata()
	next := fakepred.ColorsMetadata()
	next.Version, next.Versions = 2, []int64{2}
	next.Preprocess.Interpolation = predv1.Interpolation_INTERPOLATION_BICUBIC
	refingerprint(t, next)
	a, b := fakepred.Start(t, old), fakepred.Start(t, next)
	c := newClient(t, "list:///"+a.Addr+","+b.Addr)
	ctx := testContext(t)

	// Read contracts until both replicas are connected and have been read
	// from, so that the calls below start from a connection to each.
	for a.MetadataCalls() == 0 || b.MetadataCalls() == 0 {
		if _, err := c.Refresh(ctx); err != nil {
			t.Fatal(err)
		}
	}
	ct, err := c.Contract()
	if err != nil {
		t.Fatal(err)
	}
	serving, other := a, b
	if ct.Fingerprint == next.GetSpecFingerprint() {
		serving, other = b, a
	}
	input := make([]float32, ct.Preprocessor.TensorLen())
	const calls = 40
	for i := range calls {
		if _, err := c.Predict(ctx, ct, "", input); err != nil {
			t.Fatalf("call %d of %d with the contract of %s: %v", i+1, calls, serving.Addr, err)
		}
	}
	served, _ := serving.Requests()
	refused, _ := other.Requests()
	if len(served) != calls || len(refused) > 1 {
		t.Errorf("the replica serving the contract got %d of %d calls, the other %d (want at most the 1 that taught the client)", len(served), calls, len(refused))
	}

	serving.Stop()
	var ce *ContractError
	for {
		_, err := c.Predict(ctx, ct, "", input)
		if errors.As(err, &ce) {
			break
		}
		// Calls that reach the stopping replica before the client sees it
		// go are answered, or fail as unavailable.
		if ctx.Err() != nil {
			t.Fatalf("no contract error after the serving replica stopped: %v", err)
		}
	}
	if !ce.Changed() {
		t.Fatalf("Predict after the serving replica stopped = %v, want the contract re-read from the other", ce)
	}
	if _, err := c.Predict(ctx, ce.Current, "", input); err != nil {
		t.Errorf("Predict with the re-read contract: %v", err)
	}
}

// TestRefusalsExpire: a replica that refused a contract is skipped for it
// for refusalTTL, then tried again; its refusal of one contract says
// nothing about another.
func TestRefusalsExpire(t *testing.T) {
	r := &refusals{at: map[refusalKey]time.Time{}}
	s1, s2 := contractID{"colors", 1, "f1"}, contractID{"colors", 1, "f2"}
	now := time.Now()
	r.add("a:1", s1, now)
	switch {
	case !r.has("a:1", s1, now.Add(refusalTTL-time.Second)):
		t.Error("refusal forgotten before refusalTTL")
	case r.has("a:1", s1, now.Add(refusalTTL)):
		t.Error("refusal kept past refusalTTL")
	case r.has("a:1", s2, now), r.has("b:1", s1, now):
		t.Error("refusal applied to another contract or replica")
	}
	r.remove("a:1", s1)
	if r.has("a:1", s1, now) {
		t.Error("refusal kept after the replica served the contract")
	}
	for i := range 2 * maxRefusals {
		r.add(fmt.Sprintf("a:%d", i), s1, now)
	}
	if len(r.at) > maxRefusals {
		t.Errorf("%d refusals kept, want at most %d", len(r.at), maxRefusals)
	}
}

// BenchmarkPick is the picker's cost per Predict: two ready replicas, one
// of which refused the contract, and the Done callback of a success.
func BenchmarkPick(b *testing.B) {
	r := &refusals{at: map[refusalKey]time.Time{}}
	p := &picker{replicas: []replica{{addr: "a:1"}, {addr: "b:1"}}, refused: r}
	s := contractID{"colors", 1, "f1"}
	r.add("b:1", s, time.Now())
	ctx, _ := withPickNote(context.Background(), s)
	info := balancer.PickInfo{FullMethodName: "/prepred.pred.v1.PredService/Predict", Ctx: ctx}
	b.ReportAllocs()
	for b.Loop() {
		res, err := p.Pick(info)
		if err != nil {
			b.Fatal(err)
		}
		res.Done(balancer.DoneInfo{})
	}
}
