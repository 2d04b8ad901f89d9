package classify

import (
	"math"
	"strconv"
	"testing"

	predv1 "github.com/prepred/prepred/api/gen/prepred/pred/v1"
	"github.com/prepred/prepred/pred/internal/tensor"
)

// BenchmarkTopK classifies a batch of 8 ResNet-50 outputs (1000 classes)
// to their top 5, as a Triton client asking for class_count=5 does.
func BenchmarkTopK(b *testing.B) {
	vals := make([]float32, 8*1000)
	for i := range vals {
		vals[i] = float32(math.Sin(float64(i) * 0.37))
	}
	data, err := tensor.FromFloats(predv1.DataType_DATA_TYPE_FLOAT32, vals)
	if err != nil {
		b.Fatal(err)
	}
	labels := make([]string, 1000)
	for i := range labels {
		labels[i] = "class_" + strconv.Itoa(i)
	}
	t := tensor.Tensor{Name: "output", DType: predv1.DataType_DATA_TYPE_FLOAT32, Shape: []int64{8, 1000}, Data: data}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := TopK(t, 5, true, labels); err != nil {
			b.Fatal(err)
		}
	}
}
