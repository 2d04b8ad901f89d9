package batcher

import (
	"context"
	"sync/atomic"
	"testing"

	predv1 "github.com/prepred/prepred/api/gen/prepred/pred/v1"
	"github.com/prepred/prepred/pred/internal/tensor"
)

// resnetItem is one ResNet-50 input: 3·224·224 float32.
const resnetItem = 3 * 224 * 224 * 4

// BenchmarkSubmit measures the queue's cost per request on a model that
// costs nothing: the hand-off to a worker and back.
func BenchmarkSubmit(b *testing.B) {
	bt, err := New(Config{Name: "bench", MaxBatchSize: 8, Dynamic: true, MaxQueueSize: 64, Instances: 1},
		func(_ context.Context, in []tensor.Tensor, _ int64) ([]tensor.Tensor, error) { return in, nil }, Hooks{})
	if err != nil {
		b.Fatal(err)
	}
	defer bt.Close()
	in := []tensor.Tensor{{Name: "in", DType: predv1.DataType_DATA_TYPE_FLOAT32, Shape: []int64{1, 3, 224, 224}, Data: make([]byte, resnetItem)}}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := bt.Submit(ctx, in, 1); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSubmitConcurrent sends ResNet-50-sized requests from many
// goroutines: they merge into batches (one copy of each input into the
// batch buffer, outputs split back).
func BenchmarkSubmitConcurrent(b *testing.B) {
	var execs, items atomic.Int64
	bt, err := New(Config{Name: "bench", MaxBatchSize: 8, Dynamic: true, MaxQueueSize: 1024, Instances: 1},
		func(_ context.Context, in []tensor.Tensor, n int64) ([]tensor.Tensor, error) {
			return []tensor.Tensor{{Name: "out", DType: in[0].DType, Shape: []int64{n, 1000}, Data: make([]byte, n*4000)}}, nil
		}, Hooks{Executed: func(s BatchStats) {
			execs.Add(1)
			items.Add(s.Items)
		}})
	if err != nil {
		b.Fatal(err)
	}
	defer bt.Close()
	ctx := context.Background()
	b.SetParallelism(4)
	b.ReportAllocs()
	b.SetBytes(resnetItem)
	b.RunParallel(func(pb *testing.PB) {
		in := []tensor.Tensor{{Name: "in", DType: predv1.DataType_DATA_TYPE_FLOAT32, Shape: []int64{1, 3, 224, 224}, Data: make([]byte, resnetItem)}}
		for pb.Next() {
			if _, err := bt.Submit(ctx, in, 1); err != nil {
				b.Error(err)
				return
			}
		}
	})
	if n := execs.Load(); n > 0 {
		b.ReportMetric(float64(items.Load())/float64(n), "items/exec")
	}
}
