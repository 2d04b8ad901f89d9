package management

import (
	"crypto/sha256"
	"crypto/subtle"
	"net"
	"strings"
)

// Refusal kinds: why Access refused a caller.
const (
	// RefusedDisabled: the API is off.
	RefusedDisabled = iota + 1
	// RefusedToken: a token is configured and the caller did not present it.
	RefusedToken
	// RefusedRemote: no token is configured and the caller is not on
	// loopback.
	RefusedRemote
)

// Refusal is the error Access.Check returns.
type Refusal struct {
	Kind int
	msg  string
}

func (r *Refusal) Error() string { return r.msg }

// Access is the API's authorization rule, the same for every binding: off
// unless enabled; enabled, only callers that present the token, or, without
// a token, only loopback callers.
type Access struct {
	enabled  bool
	tokenSum []byte
}

// NewAccess returns the rule of o.
func NewAccess(o Options) *Access {
	a := &Access{enabled: o.Enabled}
	if o.Token != "" {
		sum := sha256.Sum256([]byte(o.Token))
		a.tokenSum = sum[:]
	}
	return a
}

// Check returns nil when a caller at remoteAddr that presents authorization
// (an Authorization header's value, "Bearer <token>", or "") may call the
// API, else a *Refusal saying why and what to do; bindings name their own
// ways to present the token in hint.
func (a *Access) Check(authorization, remoteAddr, hint string) error {
	switch {
	case !a.enabled:
		return &Refusal{RefusedDisabled, "the model repository API is disabled; start pred with --management-api (PRED_MANAGEMENT_API=true) to enable it"}
	case a.tokenSum != nil:
		if !a.validToken(authorization) {
			return &Refusal{RefusedToken, "the model repository API needs the management token: " + hint}
		}
	case !loopback(remoteAddr):
		return &Refusal{RefusedRemote, "the model repository API answers only loopback callers unless pred has a --management-token (PRED_MANAGEMENT_TOKEN)"}
	}
	return nil
}

// validToken compares the bearer token in an Authorization value with the
// configured one in constant time (over their hashes, so that the length
// of the token does not show either).
func (a *Access) validToken(header string) bool {
	scheme, token, ok := strings.Cut(header, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return false
	}
	sum := sha256.Sum256([]byte(strings.TrimSpace(token)))
	return subtle.ConstantTimeCompare(sum[:], a.tokenSum) == 1
}

// loopback reports whether a remote address is a loopback address.
func loopback(remoteAddr string) bool {
	host, _, err := net.SplitHostPort(remoteAddr)
	if err != nil {
		host = remoteAddr
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
