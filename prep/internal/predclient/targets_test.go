package predclient

import (
	"strings"
	"testing"

	"github.com/prepred/prepred/prep/internal/fakepred"
	"github.com/prepred/prepred/prep/internal/imageprep"
)

func TestTargetList(t *testing.T) {
	tests := map[string]string{
		"127.0.0.1:1,127.0.0.1:2":   "list:///127.0.0.1:1,127.0.0.1:2",
		"pred-a:50051,pred-b:50051": "list:///pred-a:50051,pred-b:50051",
		"dns:///a:1,b:2":            "dns:///a:1,b:2", // a scheme wins
	}
	for in, want := range tests {
		if got := Target(in); got != want {
			t.Errorf("Target(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestNewRejectsBadList(t *testing.T) {
	for _, addr := range []string{"127.0.0.1:1,", "127.0.0.1:1,,127.0.0.1:2", "127.0.0.1:1,pred"} {
		c, err := New(Config{Target: addr, Model: "colors"})
		if err == nil {
			_ = c.Close()
			t.Errorf("New(%q) succeeded", addr)
		} else if !strings.Contains(err.Error(), addr) {
			t.Errorf("New(%q): %v does not name the address", addr, err)
		}
	}
}

// TestListSpreadsAndFailsOver: a comma-separated pred address spreads calls
// over every replica, and once one is gone every call still succeeds on the
// other (UNAVAILABLE is retried, the dead replica leaves the rotation).
func TestListSpreadsAndFailsOver(t *testing.T) {
	md := fakepred.ColorsMetadata()
	a, b := fakepred.Start(t, md), fakepred.Start(t, md)
	c, err := New(Config{Target: a.Addr + "," + b.Addr, Model: "colors", Limits: imageprep.Limits{MaxPixels: 1 << 20}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	ctx := testContext(t)
	ct, err := c.Refresh(ctx)
	if err != nil {
		t.Fatal(err)
	}
	input := make([]float32, ct.Preprocessor.TensorLen())
	counts := func() (int, int) {
		ra, _ := a.Requests()
		rb, _ := b.Requests()
		return len(ra), len(rb)
	}
	// Until both connections are up, calls go to whichever is; the test's
	// deadline bounds the wait.
	for na, nb := counts(); na == 0 || nb == 0; na, nb = counts() {
		if _, err := c.Predict(ctx, ct, "", input); err != nil {
			t.Fatal(err)
		}
	}

	a.Stop()
	na, _ := counts()
	const calls = 20
	for i := range calls {
		if _, err := c.Predict(ctx, ct, "", input); err != nil {
			t.Fatalf("call %d after one replica stopped: %v", i, err)
		}
	}
	if na2, _ := counts(); na2 != na {
		t.Errorf("the stopped replica got %d more calls", na2-na)
	}
}
