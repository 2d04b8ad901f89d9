// Command pred is the inference server: it serves the ONNX models of a
// model repository over gRPC (prepred.pred.v1.PredService, grpc.health.v1,
// reflection) and HTTP (health, metrics).
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdout)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "pred:", err)
		os.Exit(1)
	}
}
