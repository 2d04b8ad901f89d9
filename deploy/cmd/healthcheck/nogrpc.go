//go:build nogrpc

// An HTTP-only probe: -tags nogrpc leaves out the gRPC client, about half of
// the binary, for prep's image, which needs -http only.

package main

import (
	"context"
	"errors"
)

func probeGRPC(context.Context, string, string) (string, error) {
	return "", errors.New("this healthcheck is built without the gRPC probe (-tags nogrpc); use -http")
}
