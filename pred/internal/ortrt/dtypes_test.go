package ortrt

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"testing"

	predv1 "github.com/prepred/prepred/api/gen/prepred/pred/v1"
	"github.com/prepred/prepred/pred/internal/tensor"
	"github.com/prepred/prepred/pred/internal/testmodels"
)

func openTestModel(t *testing.T, name string) *Session {
	t.Helper()
	repo := t.TempDir()
	if err := testmodels.Write(repo, name); err != nil {
		t.Fatal(err)
	}
	s, err := testRuntime(t).Open(filepath.Join(repo, name, "1", "model.onnx"), Options{})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Error(err)
		}
	})
	return s
}

// TestRunEveryDType sends every element type through ONNX Runtime and
// back, with outputs allocated by pred and by ONNX Runtime (but FLOAT16,
// which must be allocated by pred).
func TestRunEveryDType(t *testing.T) {
	s := openTestModel(t, testmodels.DTypes)
	samples := testmodels.Samples()
	inputs := make([]tensor.Tensor, len(samples))
	for i, smp := range samples {
		if in := s.Inputs()[i]; in.Name != smp.Name || in.DType != smp.DType || !slices.Equal(in.Shape, []int64{-1, 3}) {
			t.Fatalf("input %d = %+v, want %s %v [-1 3]", i, in, smp.Name, smp.DType)
		}
		// Two rows: the sample and its bytes reversed (still valid values
		// for every fixed-size type but BOOL, whose bytes are symmetric),
		// or other strings.
		rev := slices.Clone(smp.Raw)
		slices.Reverse(rev)
		if tensor.IsString(smp.DType) {
			rev = tensor.FromStrings([]string{"second row", "", "\xff\xfe not UTF-8"})
		}
		inputs[i] = tensor.Tensor{Name: smp.Name, DType: smp.DType, Shape: []int64{2, 3}, Data: append(slices.Clone(smp.Raw), rev...)}
	}
	for _, prealloc := range []bool{true, false} {
		t.Run(fmt.Sprintf("preallocated=%v", prealloc), func(t *testing.T) {
			shapes := make([][]int64, len(samples))
			for i, smp := range samples {
				if prealloc || smp.DType == predv1.DataType_DATA_TYPE_FLOAT16 {
					shapes[i] = []int64{2, 3}
				}
			}
			outs, err := s.Run(context.Background(), inputs, shapes)
			if err != nil {
				t.Fatalf("Run: %v", err)
			}
			for i, smp := range samples {
				o := outs[i]
				if o.Name != testmodels.Output(smp.Name) || o.DType != smp.DType || !slices.Equal(o.Shape, []int64{2, 3}) {
					t.Errorf("output %d = %s %v %v, want %s %v [2 3]", i, o.Name, o.DType, o.Shape, testmodels.Output(smp.Name), smp.DType)
				}
				if !bytes.Equal(o.Data, inputs[i].Data) {
					t.Errorf("%s: output bytes %x, want %x", smp.Name, o.Data, inputs[i].Data)
				}
			}
		})
	}
}

// TestRunFloat16OutputOfUnknownShape: onnxruntime_go cannot return a
// FLOAT16 output that ONNX Runtime allocates, so Run refuses it up front,
// with an error that says what to do, and the session keeps working.
func TestRunFloat16OutputOfUnknownShape(t *testing.T) {
	s := openTestModel(t, testmodels.DynamicFP16)
	var data []byte
	for i := range 6 {
		h := tensor.Float16Bits(float32(i) - 2.5)
		data = append(data, byte(h), byte(h>>8))
	}
	in := tensor.Tensor{Name: "x", DType: predv1.DataType_DATA_TYPE_FLOAT16, Shape: []int64{2, 3}, Data: data}
	if _, err := s.Run(context.Background(), []tensor.Tensor{in}, nil); !errors.Is(err, ErrFloat16Shape) {
		t.Fatalf("Run without the output shape = %v, want ErrFloat16Shape", err)
	}
	outs, err := s.Run(context.Background(), []tensor.Tensor{in}, [][]int64{{2, 3}})
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if o := outs[0]; o.DType != in.DType || !slices.Equal(o.Shape, in.Shape) || !bytes.Equal(o.Data, in.Data) {
		t.Errorf("output = %v %v %x, want %v %v %x", o.DType, o.Shape, o.Data, in.DType, in.Shape, in.Data)
	}
}
