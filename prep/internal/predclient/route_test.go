package predclient

import (
	"context"
	"testing"

	"google.golang.org/grpc/balancer"
	"google.golang.org/grpc/balancer/base"
	"google.golang.org/grpc/resolver"
)

func TestRoutesAvoid(t *testing.T) {
	var r routes
	if r.avoid("a:1", "colors", 1, "fp1") {
		t.Error("an unknown replica is avoided")
	}
	r.learn("a:1", "colors", 1, "fp1", true)
	r.learn("b:1", "colors", 1, "fp1", false)
	for _, tc := range []struct {
		addr, fp string
		version  int64
		avoid    bool
	}{
		{"a:1", "fp1", 1, false}, // serves it
		{"a:1", "fp2", 1, true},  // serves another
		{"a:1", "fp2", 2, false}, // another version: unknown
		{"b:1", "fp1", 1, true},  // refused it
		{"b:1", "fp2", 1, false}, // refused another one only
		{"c:1", "fp1", 1, false}, // unknown
	} {
		if got := r.avoid(tc.addr, "colors", tc.version, tc.fp); got != tc.avoid {
			t.Errorf("avoid(%s, version %d, %s) = %v, want %v", tc.addr, tc.version, tc.fp, got, tc.avoid)
		}
	}
	r.learn("b:1", "colors", 1, "fp1", true) // b took the new release
	if r.avoid("b:1", "colors", 1, "fp1") {
		t.Error("a replica that accepted the contract since is still avoided")
	}
	for i := range maxRoutes {
		r.learn("x", "m", int64(i), "fp", true)
	}
	if n := len(r.known); n > maxRoutes {
		t.Errorf("%d routes kept, more than %d", n, maxRoutes)
	}
}

// testSubConn is a balancer.SubConn the picker only hands back.
type testSubConn struct {
	balancer.SubConn
	addr string
}

func TestPickerSkipsAvoidedReplicas(t *testing.T) {
	info := base.PickerBuildInfo{ReadySCs: map[balancer.SubConn]base.SubConnInfo{}}
	for _, a := range []string{"a:1", "b:1", "c:1"} {
		info.ReadySCs[&testSubConn{addr: a}] = base.SubConnInfo{Address: resolver.Address{Addr: a}}
	}
	p := pickerBuilder{}.Build(info)
	var table routes
	table.learn("a:1", "colors", 1, "new", true)
	table.learn("b:1", "colors", 1, "old", true)
	table.learn("c:1", "colors", 1, "old", false)

	picks := map[string]int{}
	for range 30 {
		rt := &route{table: &table, model: "colors", version: 1, fingerprint: "old"}
		res, err := p.Pick(balancer.PickInfo{Ctx: withRoute(context.Background(), rt)})
		if err != nil {
			t.Fatal(err)
		}
		addr := res.SubConn.(*testSubConn).addr
		if rt.addr() != addr || rt.replicas.Load() != 3 {
			t.Errorf("route says %q of %d, picked %q of 3", rt.addr(), rt.replicas.Load(), addr)
		}
		picks[addr]++
	}
	if picks["b:1"] != 30 {
		t.Errorf("picks for the old contract: %v, want all on b:1, the one replica serving it", picks)
	}

	// A replica that refused another contract may serve this one.
	rt := &route{table: &table, model: "colors", version: 1, fingerprint: "other"}
	if res, _ := p.Pick(balancer.PickInfo{Ctx: withRoute(context.Background(), rt)}); res.SubConn.(*testSubConn).addr != "c:1" {
		t.Errorf("picked %s for a third contract, want c:1, the one replica not known to serve another", res.SubConn.(*testSubConn).addr)
	}

	// Every replica avoided: round robin over all (pred refuses, prep learns).
	table.learn("c:1", "colors", 1, "new", true)
	picks = map[string]int{}
	for range 30 {
		rt := &route{table: &table, model: "colors", version: 1, fingerprint: "other"}
		res, _ := p.Pick(balancer.PickInfo{Ctx: withRoute(context.Background(), rt)})
		picks[res.SubConn.(*testSubConn).addr]++
	}
	if picks["a:1"] != 10 || picks["b:1"] != 10 || picks["c:1"] != 10 {
		t.Errorf("picks with every replica avoided: %v, want round robin", picks)
	}

	// Calls without a route (contract reads, watches): round robin.
	picks = map[string]int{}
	for range 30 {
		res, _ := p.Pick(balancer.PickInfo{Ctx: context.Background()})
		picks[res.SubConn.(*testSubConn).addr]++
	}
	if len(picks) != 3 {
		t.Errorf("picks without a route: %v, want all three", picks)
	}
}
