// Command predbench measures pred on one machine, in one run: ONNX Runtime
// in-process, pred over its native gRPC API and over the Open Inference
// Protocol with one client, pred with dynamic batching under concurrent
// clients, and pred's resident memory after many requests.
// scripts/bench-pred.sh builds and runs it.
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
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "predbench:", err)
		os.Exit(1)
	}
}
