// Command healthcheck probes a prep or pred process in the same container
// and exits 0 when it is healthy. The images carry no curl and no
// grpc_health_probe; Docker's HEALTHCHECK and the Helm chart's test pod run
// this instead.
//
//	healthcheck -grpc :50051               grpc.health.v1 Check("") must answer SERVING
//	healthcheck -http :8000 -path /ready   GET must answer 2xx
//
// A listen address (":50051", "0.0.0.0:50051", "[::]:50051") is probed on
// loopback, so the same value as the server's PRED_GRPC_ADDR or
// PREP_HTTP_ADDR can be passed.
//
// With TLS on in the container (PRED_TLS_CERT_FILE, PREP_TLS_CERT_FILE) the
// probe speaks TLS, and under pred's mTLS presents pred's own certificate;
// -ca-file, -cert-file, -key-file and -server-name probe other hosts (see
// tls.go).
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout)
	stop()
	if err != nil {
		os.Exit(1)
	}
}
