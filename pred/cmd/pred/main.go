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

// The C allocator's settings unless the environment sets them. glibc's
// malloc gives each thread that contends for it an arena of its own, up to
// eight per core, and ONNX Runtime's thread pools and pred's request
// goroutines touch many: each arena keeps what a burst of batches left in
// it. Two arenas, and returning freed memory at the top of the heap beyond
// 1 MiB, halved pred's resident memory serving resnet50 with no loss of
// throughput (BenchmarkArenaBurst: baseline 316 -> 164 MiB, after a burst
// of 128 requests 549 -> 397 MiB).
const (
	mallocArenas    = 2
	mallocTrimBytes = 1 << 20
)

// mallocConfigured records whether main set them, for the log.
var mallocConfigured bool

func main() {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(gcPercent)
	}
	// Before ONNX Runtime starts its threads.
	mallocConfigured = configureMalloc(os.Getenv)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdout)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "pred:", err)
		os.Exit(1)
	}
}
