package predclient

import (
	"errors"
	"fmt"
	"net"
	"strings"

	"google.golang.org/grpc/resolver"
)

// listScheme is the gRPC target scheme of a fixed list of pred addresses:
// "list:///host1:port1,host2:port2". Target makes it from a comma-separated
// pred address.
const listScheme = "list"

// Target turns a pred address into a gRPC target: "host:port" becomes
// "dns:///host:port", so every address of the name is used;
// "host1:port1,host2:port2" becomes "list:///host1:port1,host2:port2", a
// fixed set of replicas; a target with a scheme ("dns:///...", "unix:...",
// "passthrough:///...") is kept.
func Target(addr string) string {
	switch {
	case strings.Contains(addr, "://") || strings.HasPrefix(addr, "unix:") || strings.HasPrefix(addr, "unix-abstract:"):
		return addr
	case strings.Contains(addr, ","):
		return listScheme + ":///" + addr
	}
	return "dns:///" + addr
}

// listBuilder resolves "list:///a,b,...": every listed host:port is one
// endpoint, dialed as given, so the balancer spreads calls over all of them
// and a call that fails with UNAVAILABLE is retried on another.
type listBuilder struct{}

// Scheme implements resolver.Builder.
func (listBuilder) Scheme() string { return listScheme }

// Build implements resolver.Builder: the list is fixed, so it reports it
// once.
func (listBuilder) Build(t resolver.Target, cc resolver.ClientConn, _ resolver.BuildOptions) (resolver.Resolver, error) {
	addrs, err := parseList(t.Endpoint())
	if err != nil {
		return nil, err
	}
	state := resolver.State{
		Addresses: make([]resolver.Address, len(addrs)),
		Endpoints: make([]resolver.Endpoint, len(addrs)),
	}
	for i, a := range addrs {
		state.Addresses[i] = resolver.Address{Addr: a}
		state.Endpoints[i] = resolver.Endpoint{Addresses: []resolver.Address{state.Addresses[i]}}
	}
	// An error here is the balancer refusing the state; gRPC logs it and
	// the connection reports it on every call.
	_ = cc.UpdateState(state)
	return listResolver{}, nil
}

// parseList splits a comma-separated list of host:port addresses.
func parseList(list string) ([]string, error) {
	parts := strings.Split(list, ",")
	addrs := make([]string, 0, len(parts))
	for _, p := range parts {
		p = strings.TrimSpace(p)
		if p == "" {
			return nil, errors.New("empty address in the list of pred addresses")
		}
		if _, _, err := net.SplitHostPort(p); err != nil {
			return nil, fmt.Errorf("pred address %q: %w", p, err)
		}
		addrs = append(addrs, p)
	}
	return addrs, nil
}

// listResolver has nothing to re-resolve.
type listResolver struct{}

// ResolveNow implements resolver.Resolver.
func (listResolver) ResolveNow(resolver.ResolveNowOptions) {}

// Close implements resolver.Resolver.
func (listResolver) Close() {}

// checkTarget reports a malformed list of pred addresses at start-up
// rather than at the first connection attempt.
func checkTarget(target string) error {
	list, ok := strings.CutPrefix(target, listScheme+":///")
	if !ok {
		return nil
	}
	_, err := parseList(list)
	return err
}
