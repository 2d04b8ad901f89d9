package postprocess

import (
	"encoding/binary"
	"errors"
	"math"
	"slices"
	"strings"
	"testing"

	predv1 "github.com/prepred/prepred/api/gen/prepred/pred/v1"
)

func float32Tensor(v ...float32) *predv1.Tensor {
	b := make([]byte, 4*len(v))
	for i, f := range v {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(f))
	}
	return &predv1.Tensor{Name: "output", Dtype: predv1.DataType_DATA_TYPE_FLOAT32, Shape: []int64{1, int64(len(v))}, RawData: b}
}

func float64Tensor(v ...float64) *predv1.Tensor {
	b := make([]byte, 8*len(v))
	for i, f := range v {
		binary.LittleEndian.PutUint64(b[8*i:], math.Float64bits(f))
	}
	return &predv1.Tensor{Name: "output", Dtype: predv1.DataType_DATA_TYPE_FLOAT64, Shape: []int64{1, int64(len(v))}, RawData: b}
}

func TestScores(t *testing.T) {
	got, err := Scores(float32Tensor(1.5, -2, 0), 3)
	if err != nil || !slices.Equal(got, []float64{1.5, -2, 0}) {
		t.Errorf("Scores(float32) = %v, %v", got, err)
	}
	got, err = Scores(float64Tensor(0.25, 1e300), 2)
	if err != nil || !slices.Equal(got, []float64{0.25, 1e300}) {
		t.Errorf("Scores(float64) = %v, %v", got, err)
	}
}

func TestScoresErrors(t *testing.T) {
	nan32 := float32(math.NaN())
	inf32 := float32(math.Inf(1))
	tests := []struct {
		name string
		t    *predv1.Tensor
		n    int
		want string
	}{
		{"NaN", float32Tensor(1, nan32, 3), 3, "NaN at position 1"},
		{"+Inf", float32Tensor(inf32, 0), 2, "+Inf at position 0"},
		{"-Inf float64", float64Tensor(0, math.Inf(-1)), 2, "-Inf at position 1"},
		{"too few bytes", float32Tensor(1, 2), 3, "has 8 bytes"},
		{"too many bytes", float32Tensor(1, 2, 3, 4), 3, "has 16 bytes"},
		{"int64 output", &predv1.Tensor{Name: "output", Dtype: predv1.DataType_DATA_TYPE_INT64, RawData: make([]byte, 8)}, 1, "only FLOAT32 and FLOAT64"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Scores(tt.t, tt.n)
			var oe *OutputError
			if !errors.As(err, &oe) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Scores = %v, want an *OutputError containing %q", err, tt.want)
			}
		})
	}
}

func TestSoftmax(t *testing.T) {
	tests := []struct {
		name string
		in   []float64
		want []float64
	}{
		{"uniform", []float64{3, 3, 3, 3}, []float64{0.25, 0.25, 0.25, 0.25}},
		// e^0 / (e^0 + e^ln3) = 1/4.
		{"log ratio", []float64{0, math.Log(3)}, []float64{0.25, 0.75}},
		{"known values", []float64{1, 2, 3}, []float64{0.09003057317038046, 0.24472847105479764, 0.6652409557748219}},
		// Without subtracting the maximum exp(1000) overflows to +Inf.
		{"large logits", []float64{1000, 1000 + math.Log(3)}, []float64{0.25, 0.75}},
		{"very negative logits", []float64{-1000, -1000}, []float64{0.5, 0.5}},
		{"single", []float64{-7}, []float64{1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := slices.Clone(tt.in)
			Softmax(got)
			var sum float64
			for i := range got {
				if math.Abs(got[i]-tt.want[i]) > 1e-12 {
					t.Errorf("Softmax(%v) = %v, want %v", tt.in, got, tt.want)
					break
				}
				sum += got[i]
			}
			if math.Abs(sum-1) > 1e-12 {
				t.Errorf("Softmax(%v) sums to %v", tt.in, sum)
			}
		})
	}
}

func TestProbabilities(t *testing.T) {
	got, err := Probabilities(predv1.OutputKind_OUTPUT_KIND_LOGITS, []float64{0, math.Log(3)})
	if err != nil || math.Abs(got[1]-0.75) > 1e-12 {
		t.Errorf("logits: %v, %v", got, err)
	}
	got, err = Probabilities(predv1.OutputKind_OUTPUT_KIND_PROBABILITIES, []float64{0.1, 0.9})
	if err != nil || !slices.Equal(got, []float64{0.1, 0.9}) {
		t.Errorf("probabilities: %v, %v", got, err)
	}
	if _, err := Probabilities(predv1.OutputKind_OUTPUT_KIND_UNSPECIFIED, []float64{1}); err == nil {
		t.Error("unspecified output kind accepted")
	}
}

func TestTopKAndArgmax(t *testing.T) {
	p := []float64{0.1, 0.3, 0.05, 0.3, 0.25}
	tests := []struct {
		k    int
		want []int
	}{
		{1, []int{1}},
		{3, []int{1, 3, 4}}, // ties keep index order
		{5, []int{1, 3, 4, 0, 2}},
		{9, []int{1, 3, 4, 0, 2}},
		{0, []int{}},
		{-1, []int{}},
	}
	for _, tt := range tests {
		if got := TopK(p, tt.k); !slices.Equal(got, tt.want) {
			t.Errorf("TopK(%v, %d) = %v, want %v", p, tt.k, got, tt.want)
		}
	}
	if got := Argmax(p); got != 1 {
		t.Errorf("Argmax = %d, want 1", got)
	}
	if got := Argmax(nil); got != -1 {
		t.Errorf("Argmax(nil) = %d, want -1", got)
	}
}

func TestLabel(t *testing.T) {
	labels := []string{"cat", "dog"}
	if got := Label(labels, 1); got != "dog" {
		t.Errorf("Label = %q", got)
	}
	if got := Label(nil, 7); got != "7" {
		t.Errorf("Label without labels = %q, want the index", got)
	}
}

func BenchmarkPostprocess1000(b *testing.B) {
	v := make([]float32, 1000)
	for i := range v {
		v[i] = float32(math.Sin(float64(i))) * 8
	}
	t := float32Tensor(v...)
	b.ReportAllocs()
	for b.Loop() {
		s, err := Scores(t, len(v))
		if err != nil {
			b.Fatal(err)
		}
		p, _ := Probabilities(predv1.OutputKind_OUTPUT_KIND_LOGITS, s)
		_ = Argmax(p)
	}
}
