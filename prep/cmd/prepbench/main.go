// Command prepbench measures prep: "load" sends one image to a running prep
// from 1, 4, 16... concurrent clients and reports images/s and latency
// percentiles per concurrency; "preprocess" times prep's preprocessing of
// the image in-process, with the spec pred announces for the model, as one
// half of the in-process limit scripts/bench-e2e.sh compares with.
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
	err := run(ctx, os.Args[1:], os.Stdout)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "prepbench:", err)
		os.Exit(1)
	}
}
