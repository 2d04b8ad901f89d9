//go:build !nogrpc

// The gRPC probe; building with -tags nogrpc leaves it out (nogrpc.go).

package main

import (
	"context"
	"crypto/tls"
	"fmt"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

func probeGRPC(ctx context.Context, addr, service string, tlsCfg *tls.Config) (string, error) {
	target, err := probeAddr(addr)
	if err != nil {
		return "", err
	}
	creds := insecure.NewCredentials()
	if tlsCfg != nil {
		creds = credentials.NewTLS(tlsCfg)
	}
	conn, err := grpc.NewClient("passthrough:///"+target, grpc.WithTransportCredentials(creds))
	if err != nil {
		return "", fmt.Errorf("grpc client for %s: %w", target, err)
	}
	defer conn.Close()
	resp, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{Service: service})
	if err != nil {
		return "", fmt.Errorf("grpc health check of %s (service %q): %w", target, service, err)
	}
	if resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		return "", fmt.Errorf("grpc health of %s (service %q) is %s", target, service, resp.GetStatus())
	}
	return fmt.Sprintf("grpc %s service %q %s", target, service, resp.GetStatus()), nil
}
