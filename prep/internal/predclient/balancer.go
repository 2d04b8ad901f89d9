package predclient

import (
	"context"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc/balancer"
	"google.golang.org/grpc/balancer/base"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// balancerName is the load-balancing policy of the connection to pred: round
// robin over every ready replica, except that a Predict made with a contract
// skips the replicas that refused that contract recently.
//
// Without it, a rolling update of pred to a release with another
// PreprocessSpec can lock a prep into refusing every request: with two
// replicas serving different specs, plain round robin sends each Predict to
// the replica that refuses it and each contract re-read that follows to the
// other one, which hands back the same contract, request after request.
const balancerName = "prepred_contract_aware"

// Refusal bookkeeping.
const (
	// refusalTTL is how long a replica that refused a contract is skipped
	// for it; after that one call tries it again (a replica can load
	// another model in place).
	refusalTTL = 30 * time.Second
	// maxRefusals bounds the refusals remembered per connection.
	maxRefusals = 1024
)

func init() { balancer.Register(contractAwareBuilder{}) }

// contractAwareBuilder builds the balancer of one connection, with its own
// memory of refusals.
type contractAwareBuilder struct{}

// Name implements balancer.Builder.
func (contractAwareBuilder) Name() string { return balancerName }

// Build implements balancer.Builder: gRPC's base balancer keeps one
// connection per address and hands the ready ones to the picker builder.
func (contractAwareBuilder) Build(cc balancer.ClientConn, opts balancer.BuildOptions) balancer.Balancer {
	pb := &pickerBuilder{refused: &refusals{at: map[refusalKey]time.Time{}}}
	return base.NewBalancerBuilder(balancerName, pb, base.Config{}).Build(cc, opts)
}

// contractID names the contract a Predict was made with.
type contractID struct {
	model       string
	version     int64
	fingerprint string
}

// pickNote travels in a Predict's context: the contract it was made with,
// and whether, at the last pick, another ready replica than the one picked
// had not refused it (so that a refusal is worth trying elsewhere).
type pickNote struct {
	spec   contractID
	others atomic.Bool
}

type pickNoteKey struct{}

// withPickNote returns ctx carrying a note for a Predict made with s.
func withPickNote(ctx context.Context, s contractID) (context.Context, *pickNote) {
	n := &pickNote{spec: s}
	return context.WithValue(ctx, pickNoteKey{}, n), n
}

// refusalKey is one replica's refusal of one contract.
type refusalKey struct {
	addr string
	spec contractID
}

// refusals remembers which replica refused which contract, and when.
type refusals struct {
	mu sync.Mutex
	at map[refusalKey]time.Time
}

// has reports whether addr refused s within refusalTTL.
func (r *refusals) has(addr string, s contractID, now time.Time) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	t, ok := r.at[refusalKey{addr, s}]
	return ok && now.Sub(t) < refusalTTL
}

func (r *refusals) add(addr string, s contractID, now time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.at) >= maxRefusals {
		for k, t := range r.at {
			if now.Sub(t) >= refusalTTL {
				delete(r.at, k)
			}
		}
		if len(r.at) >= maxRefusals {
			clear(r.at) // forgetting costs one refused call per replica
		}
	}
	r.at[refusalKey{addr, s}] = now
}

func (r *refusals) remove(addr string, s contractID) {
	r.mu.Lock()
	delete(r.at, refusalKey{addr, s})
	r.mu.Unlock()
}

// refusesContract reports whether err is a replica refusing the contract of
// a call (another spec fingerprint, a version or model it does not serve,
// no ready version); predictError re-reads the contract on it.
func refusesContract(err error) bool {
	switch status.Code(err) {
	case codes.FailedPrecondition, codes.NotFound:
		return true
	}
	return false
}

type pickerBuilder struct{ refused *refusals }

// Build implements base.PickerBuilder.
func (b *pickerBuilder) Build(info base.PickerBuildInfo) balancer.Picker {
	if len(info.ReadySCs) == 0 {
		return base.NewErrPicker(balancer.ErrNoSubConnAvailable)
	}
	p := &picker{refused: b.refused}
	for sc, sci := range info.ReadySCs {
		p.replicas = append(p.replicas, replica{sc: sc, addr: sci.Address.Addr})
	}
	slices.SortFunc(p.replicas, func(a, b replica) int { return strings.Compare(a.addr, b.addr) })
	// Start at a random replica, as round_robin does, so that many preps
	// do not all begin with the same one.
	p.next.Store(rand.Uint32())
	return p
}

type replica struct {
	sc   balancer.SubConn
	addr string
}

// picker is round robin over the ready replicas; a Predict carrying a
// pickNote skips those that refused its contract, unless all of them did.
// A pick scans the replicas (a handful) under refusals' lock.
type picker struct {
	replicas []replica
	next     atomic.Uint32
	refused  *refusals
}

// Pick implements balancer.Picker.
func (p *picker) Pick(info balancer.PickInfo) (balancer.PickResult, error) {
	n := uint32(len(p.replicas))
	first := p.next.Add(1)
	note, _ := info.Ctx.Value(pickNoteKey{}).(*pickNote)
	if note == nil {
		return balancer.PickResult{SubConn: p.replicas[first%n].sc}, nil
	}
	now := time.Now()
	pick, fresh := first%n, 0
	for i := range n {
		j := (first + i) % n
		if !p.refused.has(p.replicas[j].addr, note.spec, now) {
			if fresh == 0 {
				pick = j
			}
			if fresh++; fresh == 2 {
				break
			}
		}
	}
	note.others.Store(fresh == 2)
	addr, s := p.replicas[pick].addr, note.spec
	return balancer.PickResult{
		SubConn: p.replicas[pick].sc,
		// Done runs before the call returns to its caller, so a retry of
		// it already skips this replica.
		Done: func(di balancer.DoneInfo) {
			switch {
			case di.Err == nil:
				p.refused.remove(addr, s)
			case refusesContract(di.Err):
				p.refused.add(addr, s, time.Now())
			}
		},
	}, nil
}
