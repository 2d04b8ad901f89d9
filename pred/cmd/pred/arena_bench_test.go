package main

import (
	"context"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/prototext"

	predv1 "github.com/prepred/prepred/api/gen/prepred/pred/v1"
	"github.com/prepred/prepred/pred/predtest"
	"github.com/prepred/prepred/pred/proctest"
)

// Sizes of BenchmarkArenaBurst: a burst that fills the batcher's queue
// (64) with requests, so that batches of up to max_batch_size (8) form.
const (
	arenaClients   = 64
	arenaPerClient = 2
)

// BenchmarkArenaBurst measures what ONNX Runtime's CPU memory arena costs
// and saves: a real pred serves resnet50 with the arena on (the default)
// and off (runtime { disable_cpu_mem_arena: true }), takes a burst of
// arenaClients concurrent clients sending arenaPerClient batch-1 requests
// each, and reports its resident memory before, at the peak and after the
// burst, and the burst's throughput.
//
//	go test ./pred/cmd/pred -run '^$' -bench ArenaBurst -benchtime 1x
func BenchmarkArenaBurst(b *testing.B) {
	for _, tc := range []struct {
		name    string
		disable bool
	}{{"arena", false}, {"no_arena", true}} {
		b.Run(tc.name, func(b *testing.B) {
			repo := resnet50Repo(b, tc.disable)
			srv := predtest.Start(b, "--model-repository", repo)
			client := predv1.NewPredServiceClient(srv.Dial(b))
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
			defer cancel()
			md, err := client.ModelMetadata(ctx, &predv1.ModelMetadataRequest{Model: "resnet50"})
			if err != nil {
				b.Fatal(err)
			}
			s := md.GetPreprocess()
			req := &predv1.PredictRequest{
				Model:           "resnet50",
				SpecFingerprint: md.GetSpecFingerprint(),
				Inputs: []*predv1.Tensor{{
					Dtype:   predv1.DataType_DATA_TYPE_FLOAT32,
					Shape:   []int64{1, 3, int64(s.GetHeight()), int64(s.GetWidth())},
					RawData: predtest.ConstantImages(s, [3]uint8{200, 30, 30}),
				}},
			}
			if _, err := client.Predict(ctx, req); err != nil {
				b.Fatal(err)
			}
			baseline := vmKB(b, srv.Pid(), "VmRSS")
			var failed sync.Map
			b.ResetTimer()
			start := time.Now()
			for range b.N {
				var wg sync.WaitGroup
				for range arenaClients {
					wg.Go(func() {
						for range arenaPerClient {
							if _, err := client.Predict(ctx, req); err != nil {
								failed.Store(err.Error(), true)
							}
						}
					})
				}
				wg.Wait()
			}
			elapsed := time.Since(start)
			b.StopTimer()
			failed.Range(func(k, _ any) bool { b.Errorf("a request failed: %v", k); return false })
			b.ReportMetric(float64(baseline)/1024, "baseline_MiB")
			b.ReportMetric(float64(vmKB(b, srv.Pid(), "VmHWM"))/1024, "peak_MiB")
			b.ReportMetric(float64(vmKB(b, srv.Pid(), "VmRSS"))/1024, "after_MiB")
			b.ReportMetric(float64(b.N*arenaClients*arenaPerClient)/elapsed.Seconds(), "images/s")
		})
	}
}

// resnet50Repo is a model repository holding resnet50, with the CPU arena disabled when disable is set.
func resnet50Repo(b *testing.B, disable bool) string {
	b.Helper()
	src := filepath.Join(predtest.ModelRepository(b), "resnet50")
	// The model file is hard-linked (pred refuses links out of its
	// repository), so the repository lives on the same file system.
	cache := filepath.Join(predtest.RepoRoot(b), ".cache")
	if err := os.MkdirAll(cache, 0o755); err != nil {
		b.Fatal(err)
	}
	repo, err := os.MkdirTemp(cache, "arena-bench-")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { os.RemoveAll(repo) })
	dst := filepath.Join(repo, "resnet50")
	if err := os.MkdirAll(filepath.Join(dst, "1"), 0o755); err != nil {
		b.Fatal(err)
	}
	if err := os.Link(filepath.Join(src, "1", "model.onnx"), filepath.Join(dst, "1", "model.onnx")); err != nil {
		b.Fatal(err)
	}
	labels, err := os.ReadFile(filepath.Join(src, "labels.json"))
	if err != nil {
		b.Fatal(err)
	}
	text, err := os.ReadFile(filepath.Join(src, "config.pbtxt"))
	if err != nil {
		b.Fatal(err)
	}
	cfg := &predv1.ModelConfig{}
	if err := prototext.Unmarshal(text, cfg); err != nil {
		b.Fatal(err)
	}
	if disable {
		if cfg.Runtime == nil {
			cfg.Runtime = &predv1.RuntimeOptions{}
		}
		cfg.Runtime.DisableCpuMemArena = true
	}
	if text, err = prototext.Marshal(cfg); err != nil {
		b.Fatal(err)
	}
	for name, data := range map[string][]byte{"labels.json": labels, "config.pbtxt": text} {
		if err := os.WriteFile(filepath.Join(dst, name), data, 0o644); err != nil {
			b.Fatal(err)
		}
	}
	return repo
}

// vmKB reads a "Vm..." line of pred's /proc/<pid>/status, in KiB.
func vmKB(b *testing.B, pid int, field string) int64 {
	b.Helper()
	kb, err := proctest.StatusKB(pid, field)
	if err != nil {
		b.Fatal(err)
	}
	return kb
}
