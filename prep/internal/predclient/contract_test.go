package predclient

import (
	"slices"
	"strings"
	"testing"

	predv1 "github.com/prepred/prepred/api/gen/prepred/pred/v1"
	"github.com/prepred/prepred/api/spec"
	"github.com/prepred/prepred/prep/internal/fakepred"
	"github.com/prepred/prepred/prep/internal/imageprep"
)

// refingerprint recomputes md's fingerprint after a test edited its spec, so
// that only the edit is refused.
func refingerprint(t *testing.T, md *predv1.ModelMetadataResponse) {
	t.Helper()
	fp, err := spec.Fingerprint(md.GetPreprocess())
	if err != nil {
		t.Fatal(err)
	}
	md.SpecFingerprint = fp
}

func TestNewContractRefuses(t *testing.T) {
	tests := []struct {
		name string
		edit func(md *predv1.ModelMetadataResponse)
		want string
	}{
		{"no spec", func(md *predv1.ModelMetadataResponse) { md.Preprocess = nil }, "announces no preprocess spec"},
		{"newer schema", func(md *predv1.ModelMetadataResponse) { md.Preprocess.SchemaVersion = spec.SchemaVersion + 1 }, "schema_version 2"},
		{"unspecified color order", func(md *predv1.ModelMetadataResponse) {
			md.Preprocess.ColorOrder = predv1.ColorOrder_COLOR_ORDER_UNSPECIFIED
		}, "color_order"},
		{"unknown resize mode", func(md *predv1.ModelMetadataResponse) { md.Preprocess.ResizeMode = 7 }, "resize_mode 7"},
		{"unknown interpolation", func(md *predv1.ModelMetadataResponse) { md.Preprocess.Interpolation = 9 }, "interpolation 9"},
		{"unspecified layout", func(md *predv1.ModelMetadataResponse) { md.Preprocess.Layout = predv1.Layout_LAYOUT_UNSPECIFIED }, "layout"},
		{"float16 tensor", func(md *predv1.ModelMetadataResponse) { md.Preprocess.Dtype = predv1.DataType_DATA_TYPE_FLOAT16 }, "dtype"},
		{"two means", func(md *predv1.ModelMetadataResponse) { md.Preprocess.Mean = md.Preprocess.Mean[:2] }, "mean has 2 values"},
		{"zero std", func(md *predv1.ModelMetadataResponse) { md.Preprocess.Std[1] = 0 }, "std[1]"},
		{"wrong model", func(md *predv1.ModelMetadataResponse) { md.Model = "other" }, `model "other" instead of "colors"`},
		{"two inputs", func(md *predv1.ModelMetadataResponse) {
			md.Inputs = append(md.Inputs, &predv1.TensorSpec{Name: "mask", Dtype: predv1.DataType_DATA_TYPE_FLOAT32, Shape: []int64{1}})
		}, "2 inputs"},
		{"spec names another input", func(md *predv1.ModelMetadataResponse) { md.Preprocess.Input = "pixels" }, `fills input "pixels"`},
		{"uint8 input", func(md *predv1.ModelMetadataResponse) { md.Inputs[0].Dtype = predv1.DataType_DATA_TYPE_UINT8 }, "prep produces FLOAT32"},
		{"input size differs from spec", func(md *predv1.ModelMetadataResponse) { md.Inputs[0].Shape = []int64{-1, 3, 64, 64} }, "spec produces [3 32 32]"},
		{"NHWC input", func(md *predv1.ModelMetadataResponse) { md.Inputs[0].Shape = []int64{-1, 32, 32, 3} }, "shape [-1 32 32 3]"},
		{"fixed batch of 8", func(md *predv1.ModelMetadataResponse) { md.Inputs[0].Shape = []int64{8, 3, 32, 32} }, "shape [8 3 32 32]"},
		{"no outputs", func(md *predv1.ModelMetadataResponse) { md.Outputs = nil }, "no outputs"},
		{"int64 output", func(md *predv1.ModelMetadataResponse) { md.Outputs[0].Dtype = predv1.DataType_DATA_TYPE_INT64 }, "FLOAT32 or FLOAT64 scores"},
		{"variable output", func(md *predv1.ModelMetadataResponse) { md.Outputs[0].Shape = []int64{-1, -1} }, "fixed number of values"},
		{"labels do not match output", func(md *predv1.ModelMetadataResponse) { md.Labels = md.Labels[:8] }, "8 labels for 9 output values"},
		{"unspecified output kind", func(md *predv1.ModelMetadataResponse) { md.OutputKind = predv1.OutputKind_OUTPUT_KIND_UNSPECIFIED }, "output_kind"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			md := fakepred.ColorsMetadata()
			tt.edit(md)
			refingerprint(t, md)
			ct, err := newContract(md, "colors", 0, imageprep.Limits{})
			if err == nil {
				t.Fatalf("newContract accepted %v", md)
			}
			if ct != nil {
				t.Errorf("newContract returned a contract with error %v", err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("newContract error = %q, want it to contain %q", err, tt.want)
			}
		})
	}
}

func TestNewContractRefusesFingerprintMismatch(t *testing.T) {
	md := fakepred.ColorsMetadata()
	md.Preprocess.Interpolation = predv1.Interpolation_INTERPOLATION_BICUBIC // spec changed, fingerprint not
	_, err := newContract(md, "colors", 0, imageprep.Limits{})
	if err == nil || !strings.Contains(err.Error(), "spec_fingerprint") {
		t.Fatalf("newContract = %v, want a fingerprint mismatch", err)
	}
}

func TestNewContractRefusesOtherVersion(t *testing.T) {
	_, err := newContract(fakepred.ColorsMetadata(), "colors", 2, imageprep.Limits{})
	if err == nil || !strings.Contains(err.Error(), "version 1 instead of 2") {
		t.Fatalf("newContract = %v, want a version mismatch", err)
	}
}

func TestNewContractAccepts(t *testing.T) {
	tests := []struct {
		name         string
		edit         func(md *predv1.ModelMetadataResponse)
		wantShape    []int64
		wantClasses  int
		wantLabelsOK bool
	}{
		{"batched, announced with the batch dimension", func(*predv1.ModelMetadataResponse) {}, []int64{1, 3, 32, 32}, 9, true},
		{"batched, announced without the batch dimension", func(md *predv1.ModelMetadataResponse) {
			md.Inputs[0].Shape = []int64{3, 32, 32}
			md.Outputs[0].Shape = []int64{9}
		}, []int64{1, 3, 32, 32}, 9, true},
		{"variable spatial dims", func(md *predv1.ModelMetadataResponse) { md.Inputs[0].Shape = []int64{-1, 3, -1, -1} }, []int64{1, 3, 32, 32}, 9, true},
		{"unbatched with its own batch dim", func(md *predv1.ModelMetadataResponse) {
			md.MaxBatchSize = 0
			md.Inputs[0].Shape = []int64{1, 3, 32, 32}
			md.Outputs[0].Shape = []int64{1, 9}
		}, []int64{1, 3, 32, 32}, 9, true},
		{"unbatched without batch dim", func(md *predv1.ModelMetadataResponse) {
			md.MaxBatchSize = 0
			md.Inputs[0].Shape = []int64{3, 32, 32}
			md.Outputs[0].Shape = []int64{9}
		}, []int64{3, 32, 32}, 9, true},
		{"no labels", func(md *predv1.ModelMetadataResponse) { md.Labels = nil }, []int64{1, 3, 32, 32}, 9, false},
		{"probabilities, float64", func(md *predv1.ModelMetadataResponse) {
			md.OutputKind = predv1.OutputKind_OUTPUT_KIND_PROBABILITIES
			md.Outputs[0].Dtype = predv1.DataType_DATA_TYPE_FLOAT64
		}, []int64{1, 3, 32, 32}, 9, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			md := fakepred.ColorsMetadata()
			tt.edit(md)
			ct, err := newContract(md, "colors", 0, imageprep.Limits{})
			if err != nil {
				t.Fatalf("newContract: %v", err)
			}
			if !slices.Equal(ct.requestShape, tt.wantShape) || ct.Classes != tt.wantClasses {
				t.Errorf("request shape %v, classes %d; want %v, %d", ct.requestShape, ct.Classes, tt.wantShape, tt.wantClasses)
			}
			if (len(ct.Labels) == ct.Classes) != tt.wantLabelsOK {
				t.Errorf("labels %v", ct.Labels)
			}
			if ct.Fingerprint != md.SpecFingerprint || ct.Version != 1 || ct.Preprocessor.TensorLen() != 3*32*32 {
				t.Errorf("contract %+v", ct)
			}
		})
	}
}
