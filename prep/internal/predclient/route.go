package predclient

import (
	"context"
	"sync"
	"sync/atomic"

	"google.golang.org/grpc/balancer"
	"google.golang.org/grpc/balancer/base"
)

// balancerName is the load balancer of prep's connection to pred (see
// serviceConfig): round robin over the ready replicas that, for a
// prediction, skips those known to serve its model with another contract.
//
// While a release whose model announces another PreprocessSpec rolls
// through the replicas, some serve the old spec and some the new one. Plain
// round robin sends a tensor made for one spec to either; pred refuses the
// mismatch (no label is ever computed from it), but the client gets an
// error for every request that lands on the other kind. Routing by contract
// sends each tensor to a replica that serves its spec, so a roll costs no
// request: a replica's contract is learnt from its answers (a success
// proves it serves the contract sent, a refusal that it does not), and a
// replica not yet known takes any prediction.
const balancerName = "prepred_contract"

func init() {
	balancer.Register(base.NewBalancerBuilder(balancerName, pickerBuilder{}, base.Config{}))
}

// maxRoutes bounds the (replica, model) pairs a routes table remembers:
// replicas come and go (pod addresses), and forgetting costs only a
// refusal and a retry.
const maxRoutes = 4096

// routes is what a Client knows of the contract each replica serves.
type routes struct {
	mu    sync.RWMutex
	known map[routeKey]replicaContract
}

type routeKey struct {
	addr, model string
	version     int64
}

// replicaContract is what a replica was last seen to do with the contract
// of a model version: accept fingerprint (refused false) or refuse it
// (refused true).
type replicaContract struct {
	fingerprint string
	refused     bool
}

// learn records that the replica at addr accepted (ok) or refused the
// contract of the model version with fingerprint.
func (r *routes) learn(addr, model string, version int64, fingerprint string, ok bool) {
	if addr == "" {
		return
	}
	k, s := routeKey{addr, model, version}, replicaContract{fingerprint: fingerprint, refused: !ok}
	r.mu.RLock()
	cur, has := r.known[k]
	r.mu.RUnlock()
	if has && cur == s {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.known == nil || len(r.known) >= maxRoutes {
		r.known = map[routeKey]replicaContract{}
	}
	r.known[k] = s
}

// avoid reports whether the replica at addr is known not to serve the
// contract of the model version with fingerprint.
func (r *routes) avoid(addr, model string, version int64, fingerprint string) bool {
	r.mu.RLock()
	s, ok := r.known[routeKey{addr, model, version}]
	r.mu.RUnlock()
	if !ok {
		return false
	}
	if s.refused {
		return s.fingerprint == fingerprint
	}
	return s.fingerprint != fingerprint
}

// route is what a prediction's context tells the picker.
type route struct {
	table       *routes
	model       string
	version     int64
	fingerprint string
	// picked is the address of the replica the last attempt went to, and
	// replicas the number of ready replicas it was picked from.
	picked   atomic.Pointer[string]
	replicas atomic.Int32
}

// addr is the address of the replica the call went to ("" if none).
func (rt *route) addr() string {
	if a := rt.picked.Load(); a != nil {
		return *a
	}
	return ""
}

type routeCtxKey struct{}

func withRoute(ctx context.Context, rt *route) context.Context {
	return context.WithValue(ctx, routeCtxKey{}, rt)
}

type pickerBuilder struct{}

// Build implements base.PickerBuilder.
func (pickerBuilder) Build(info base.PickerBuildInfo) balancer.Picker {
	if len(info.ReadySCs) == 0 {
		return base.NewErrPicker(balancer.ErrNoSubConnAvailable)
	}
	p := &picker{}
	for sc, sci := range info.ReadySCs {
		p.subConns = append(p.subConns, sc)
		p.addrs = append(p.addrs, sci.Address.Addr)
	}
	return p
}

// picker is round robin over the ready replicas; a prediction skips those
// its route says to avoid, unless every one is to be avoided (then pred
// refuses, and prep learns and re-reads the contract).
type picker struct {
	subConns []balancer.SubConn
	addrs    []string
	next     atomic.Uint32
}

// Pick implements balancer.Picker.
func (p *picker) Pick(info balancer.PickInfo) (balancer.PickResult, error) {
	n := uint32(len(p.subConns))
	start := p.next.Add(1)
	j := start % n
	if rt, ok := info.Ctx.Value(routeCtxKey{}).(*route); ok {
		for i := range n {
			if k := (start + i) % n; !rt.table.avoid(p.addrs[k], rt.model, rt.version, rt.fingerprint) {
				j = k
				break
			}
		}
		rt.picked.Store(&p.addrs[j])
		rt.replicas.Store(int32(n))
	}
	return balancer.PickResult{SubConn: p.subConns[j]}, nil
}
