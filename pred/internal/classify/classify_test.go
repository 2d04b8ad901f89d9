package classify

import (
	"math"
	"slices"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	predv1 "github.com/prepred/prepred/api/gen/prepred/pred/v1"
	"github.com/prepred/prepred/pred/internal/tensor"
)

func f32(t *testing.T, shape []int64, v ...float32) tensor.Tensor {
	t.Helper()
	data, err := tensor.FromFloats(predv1.DataType_DATA_TYPE_FLOAT32, v)
	if err != nil {
		t.Fatal(err)
	}
	return tensor.Tensor{Name: "out", DType: predv1.DataType_DATA_TYPE_FLOAT32, Shape: shape, Data: data}
}

func ints[T int32 | int64 | uint32 | uint64](t *testing.T, d predv1.DataType, shape []int64, v ...T) tensor.Tensor {
	t.Helper()
	data, err := tensor.FromInts(d, v)
	if err != nil {
		t.Fatal(err)
	}
	return tensor.Tensor{Name: "out", DType: d, Shape: shape, Data: data}
}

func TestTopK(t *testing.T) {
	labels := []string{"red", "green", "blue"}
	for _, tt := range []struct {
		name      string
		in        tensor.Tensor
		k         int64
		batched   bool
		labels    []string
		wantShape []int64
		want      []string
	}{
		{"batched with labels", f32(t, []int64{2, 3}, 0.1, 0.7, 0.2, 3, -1, 2.5), 2, true, labels,
			[]int64{2, 2}, []string{"0.700000:1:green", "0.200000:2:blue", "3.000000:0:red", "2.500000:2:blue"}},
		// Triton's own example: a [2,3] INT32 output of a model without
		// batching is one item of 6 elements; integers print as integers.
		{"unbatched int32", ints[int32](t, predv1.DataType_DATA_TYPE_INT32, []int64{2, 3}, 1, 3, 2, 9, 7, 8), 2, false, nil,
			[]int64{2}, []string{"9:3", "8:5"}},
		{"k above the classes", f32(t, []int64{1, 3}, 1, 2, 3), 10, true, labels,
			[]int64{1, 3}, []string{"3.000000:2:blue", "2.000000:1:green", "1.000000:0:red"}},
		{"labels that do not match are left out", f32(t, []int64{1, 2}, 1, 2), 1, true, labels,
			[]int64{1, 1}, []string{"2.000000:1"}},
		{"ties keep index order, NaN last", f32(t, []int64{4}, float32(math.NaN()), 5, 5, -5), 4, false, nil,
			[]int64{4}, []string{"5.000000:1", "5.000000:2", "-5.000000:3", "nan:0"}},
		{"uint64", ints[uint64](t, predv1.DataType_DATA_TYPE_UINT64, []int64{1, 2}, 1<<63, 7), 1, true, nil,
			[]int64{1, 1}, []string{"9223372036854775808:0"}},
		{"empty batch", f32(t, []int64{0, 3}), 2, true, labels, []int64{0, 2}, nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := TopK(tt.in, tt.k, tt.batched, tt.labels)
			if err != nil {
				t.Fatal(err)
			}
			n, _ := tensor.ElementCount(got.Shape)
			strs, err := tensor.Strings(got.Data, n)
			if err != nil {
				t.Fatal(err)
			}
			var s []string
			for _, b := range strs {
				s = append(s, string(b))
			}
			if got.DType != predv1.DataType_DATA_TYPE_STRING || got.Name != "out" || !slices.Equal(got.Shape, tt.wantShape) || !slices.Equal(s, tt.want) {
				t.Errorf("TopK = %s %v %q, want STRING %v %q", got.DType, got.Shape, s, tt.wantShape, tt.want)
			}
		})
	}
}

func TestTopKRefusals(t *testing.T) {
	half := tensor.Tensor{Name: "out", DType: predv1.DataType_DATA_TYPE_FLOAT16, Shape: []int64{2}, Data: make([]byte, 4)}
	str := tensor.Tensor{Name: "out", DType: predv1.DataType_DATA_TYPE_STRING, Shape: []int64{1}, Data: tensor.FromStrings([]string{"a"})}
	for _, tt := range []struct {
		in     tensor.Tensor
		k      int64
		substr string
	}{
		{f32(t, []int64{1, 3}, 1, 2, 3), 0, "must be a positive number"},
		{f32(t, []int64{1, 3}, 1, 2, 3), -2, "must be a positive number"},
		{half, 1, "unsupported type"},
		{str, 1, "unsupported type"},
	} {
		_, err := TopK(tt.in, tt.k, true, nil)
		if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), tt.substr) {
			t.Errorf("TopK(%s, k=%d) = %v, want InvalidArgument containing %q", tt.in.DType, tt.k, err, tt.substr)
		}
	}
}

// TestTopSelection checks the insertion selection against a full sort on
// values with many ties and NaNs.
func TestTopSelection(t *testing.T) {
	vals := make([]float64, 300)
	for i := range vals {
		vals[i] = float64((i * 7919) % 23)
		if i%41 == 0 {
			vals[i] = math.NaN()
		}
	}
	all := top(vals, len(vals), nil) // sorts: len(vals) > insertionLimit
	for _, k := range []int{1, 2, 5, insertionLimit} {
		if got := top(vals, k, nil); !slices.Equal(got, all[:k]) {
			t.Errorf("top %d = %v, want %v", k, got, all[:k])
		}
	}
	if math.IsNaN(vals[all[0]]) || !math.IsNaN(vals[all[len(all)-1]]) {
		t.Errorf("order: first %v, last %v", vals[all[0]], vals[all[len(all)-1]])
	}
}
