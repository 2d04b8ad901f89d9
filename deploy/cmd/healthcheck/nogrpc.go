//go:build nogrpc

// An HTTP-only probe: -tags nogrpc leaves out the gRPC client, about half of
// the binary, for prep's image, which needs -http only.

package main

import (
	"context"
	"crypto/tls"
	"errors"
)

func probeGRPC(context.Context, string, string, *tls.Config) (string, error) {
	return "", errors.New("this healthcheck is built without the gRPC probe (-tags nogrpc); use -http")
}
