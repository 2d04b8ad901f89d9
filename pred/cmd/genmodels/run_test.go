package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	onnxpb "github.com/prepred/prepred/api/gen/onnx"
)

func noEnv(string) string { return "" }

func TestRunGeneratesThenKeeps(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "models")
	tests := []struct {
		name string
		args []string
		want []string
	}{
		{"first run generates", []string{"-out", dir, "-model", "colors"}, []string{"generated " + filepath.Join(dir, "colors"), "1/model.onnx", "config.pbtxt", "labels.json"}},
		{"second run keeps", []string{"-out", dir, "-model", "colors"}, []string{"kept      " + filepath.Join(dir, "colors")}},
		{"force regenerates", []string{"-out", dir, "-model", "colors", "-force"}, []string{"generated " + filepath.Join(dir, "colors")}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out bytes.Buffer
			if err := run(t.Context(), tt.args, noEnv, &out); err != nil {
				t.Fatalf("run: %v\n%s", err, out.String())
			}
			for _, w := range tt.want {
				if !strings.Contains(out.String(), w) {
					t.Errorf("output lacks %q:\n%s", w, out.String())
				}
			}
		})
	}
	if _, err := os.Stat(filepath.Join(dir, "resnet50")); !os.IsNotExist(err) {
		t.Errorf("-model colors wrote resnet50: %v", err)
	}
}

func TestRunUsesEnvironmentRepository(t *testing.T) {
	dir := t.TempDir()
	env := func(k string) string {
		if k == "PRED_MODEL_REPOSITORY" {
			return dir
		}
		return ""
	}
	var out bytes.Buffer
	if err := run(t.Context(), []string{"-model", "colors"}, env, &out); err != nil {
		t.Fatalf("run: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "colors", "1", "model.onnx")); err != nil {
		t.Fatal(err)
	}
}

func TestRunRejectsBadArguments(t *testing.T) {
	dir := t.TempDir()
	for _, args := range [][]string{
		{"-out", dir, "-model", "nonexistent"},
		{"-out", dir, "extra"},
		{"-no-such-flag"},
		{"-inspect", filepath.Join(dir, "missing.onnx")},
		{"-out", dir, "-test-model", "nonexistent"},
		{"-out", dir, "-test-model", "identity_string", "-model", "colors"},
	} {
		var out bytes.Buffer
		if err := run(t.Context(), args, noEnv, &out); err == nil {
			t.Errorf("run(%q) succeeded:\n%s", args, out.String())
		}
	}
}

func TestInspect(t *testing.T) {
	dir := t.TempDir()
	// An IR version 3 style graph: the initializer "w" is also listed as
	// a graph input and must not be reported as a model input.
	valueInfo := func(name string, dims ...any) *onnxpb.ValueInfoProto {
		shape := &onnxpb.TensorShapeProto{}
		for _, d := range dims {
			dim := &onnxpb.TensorShapeProto_Dimension{}
			switch d := d.(type) {
			case string:
				dim.Value = &onnxpb.TensorShapeProto_Dimension_DimParam{DimParam: d}
			case int:
				dim.Value = &onnxpb.TensorShapeProto_Dimension_DimValue{DimValue: int64(d)}
			}
			shape.Dim = append(shape.Dim, dim)
		}
		return &onnxpb.ValueInfoProto{Name: proto.String(name), Type: &onnxpb.TypeProto{
			Value: &onnxpb.TypeProto_TensorType{TensorType: &onnxpb.TypeProto_Tensor{
				ElemType: proto.Int32(int32(onnxpb.TensorProto_FLOAT)), Shape: shape,
			}},
		}}
	}
	m := &onnxpb.ModelProto{
		IrVersion: proto.Int64(3),
		Graph: &onnxpb.GraphProto{
			Node: []*onnxpb.NodeProto{{OpType: proto.String("Mul"), Input: []string{"data", "w"}, Output: []string{"prob"}}},
			Initializer: []*onnxpb.TensorProto{{
				Name: proto.String("w"), DataType: proto.Int32(int32(onnxpb.TensorProto_FLOAT)), FloatData: []float32{2},
			}},
			Input:  []*onnxpb.ValueInfoProto{valueInfo("data", "N", 3, 224, 224), valueInfo("w")},
			Output: []*onnxpb.ValueInfoProto{valueInfo("prob", "N", nil, 1000)},
		},
	}
	raw, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "model.onnx")
	if err := os.WriteFile(path, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := run(t.Context(), []string{"-inspect", path}, noEnv, &out); err != nil {
		t.Fatalf("inspect: %v", err)
	}
	want := "input data FLOAT [N,3,224,224]\noutput prob FLOAT [N,?,1000]\n"
	if out.String() != want {
		t.Errorf("inspect printed\n%s\nwant\n%s", out.String(), want)
	}

	if err := os.WriteFile(path, []byte("<html>Not Found</html>"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := run(t.Context(), []string{"-inspect", path}, noEnv, &out); err == nil {
		t.Error("inspect accepted a file that is not ONNX")
	}
}

func TestRunWritesTestModels(t *testing.T) {
	dir := t.TempDir()
	var out bytes.Buffer
	if err := run(t.Context(), []string{"-out", dir, "-test-model", "identity_string"}, noEnv, &out); err != nil {
		t.Fatalf("run: %v\n%s", err, out.String())
	}
	for _, f := range []string{"config.pbtxt", filepath.Join("1", "model.onnx")} {
		if _, err := os.Stat(filepath.Join(dir, "identity_string", f)); err != nil {
			t.Errorf("identity_string/%s: %v", f, err)
		}
	}
	if !strings.Contains(out.String(), "identity_string") {
		t.Errorf("output does not name the model:\n%s", out.String())
	}
}
