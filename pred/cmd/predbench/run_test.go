package main

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prepred/prepred/pred/predtest"
)

// TestRunSmall runs every case on the colors model with a handful of
// requests: the report has a row per case and memory readings.
func TestRunSmall(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	var out strings.Builder
	err := run(ctx, []string{
		"-pred-bin", predtest.Binary(t),
		"-ort-lib", predtest.ORTLibrary(t),
		"-model-repository", predtest.ModelRepository(t),
		"-work-dir", filepath.Join(t.TempDir(), "bench"),
		"-model", "colors", "-rss-model", "colors",
		"-requests", "6", "-clients", "2", "-batch-requests", "8", "-rounds", "2",
		"-rss-requests", "10,20", "-rss-model-requests", "4",
	}, func(string) string { return "" }, &out)
	if err != nil {
		t.Fatalf("run: %v\n%s", err, out.String())
	}
	report := out.String()
	for _, want := range []string{
		"| ONNX Runtime in-process, batch 1, sequential | 6 |",
		"| pred, native gRPC (prepred.pred.v1), batch 1, sequential | 6 |",
		"| pred, Open Inference Protocol gRPC (ModelInfer), batch 1, sequential | 6 |",
		"| pred, native gRPC, batch 1, 2 concurrent clients, dynamic batching | 8 |",
		"| pred, native gRPC, batch 1, 2 concurrent clients, no dynamic batching | 8 |",
		"images per execution",
		"| throughput / ONNX Runtime in-process, within each round | median | min | max |",
		"| pred, native gRPC (prepred.pred.v1), batch 1, sequential | ",
		"| after start (models loaded and warmed up) |",
		"| after 10 colors requests (2 clients;",
		"| after 20 colors requests (2 clients;",
		"| then after 4 colors requests (2 clients;",
		"load average at end:",
	} {
		if !strings.Contains(report, want) {
			t.Errorf("report lacks %q:\n%s", want, report)
		}
	}
}

func TestParseConfigRejects(t *testing.T) {
	for _, args := range [][]string{
		{"-cases", "ort,warp"},
		{"-rss-requests", "10,x"},
		{"-clients", "0"},
		{"-requests", "0"},
		{"extra"},
	} {
		if _, err := parseConfig(args, func(string) string { return "" }, &strings.Builder{}); err == nil {
			t.Errorf("parseConfig(%q) succeeded", args)
		}
	}
}

func TestRatioRow(t *testing.T) {
	got := ratioRow("b", []float64{9, 20, 33, 40}, []float64{10, 20, 30, 40})
	if want := "| b | 1.000 | 0.900 | 1.100 |"; got != want {
		t.Errorf("ratioRow = %q, want %q", got, want)
	}
	if got := ratioRow("c", nil, []float64{1}); got != "| c | – | – | – |" {
		t.Errorf("ratioRow without rates = %q", got)
	}
}
