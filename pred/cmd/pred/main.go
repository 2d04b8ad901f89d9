// Command pred is the inference server: it serves the ONNX models of a
// model repository over gRPC (prepred.pred.v1.PredService, the Open
// Inference Protocol, ONNX Runtime Server, grpc.health.v1, reflection) and
// HTTP (health, metrics, the Open Inference Protocol's REST API).
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"
)

// gcPercent is pred's GOGC unless the environment sets one. pred's own Go
// heap is a few MiB (models live in ONNX Runtime's memory), while every
// request allocates its tensors, 602 KB for one ResNet-50 input: with Go's
// default of 100 the collector runs every few requests, on the cores ONNX
// Runtime computes on. 400 lets the heap grow to about five times what is
// live, some tens of MiB, and collects a quarter as often.
const gcPercent = 400

func main() {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(gcPercent)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdout)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "pred:", err)
		os.Exit(1)
	}
}
