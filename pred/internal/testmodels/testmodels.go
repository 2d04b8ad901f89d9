// Package testmodels writes small deterministic ONNX models, with their
// config.pbtxt, into a model repository for tests that need element types
// the generated image models do not use. Each model is a set of Identity
// nodes, so what comes out is exactly what went in, after a round trip
// through ONNX Runtime in the declared type.
package testmodels

import (
	"encoding/binary"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"

	"google.golang.org/protobuf/encoding/prototext"
	"google.golang.org/protobuf/proto"

	onnxpb "github.com/prepred/prepred/api/gen/onnx"
	predv1 "github.com/prepred/prepred/api/gen/prepred/pred/v1"
	"github.com/prepred/prepred/pred/internal/tensor"
)

// Model names.
const (
	// DTypes has one input per element type pred serves, named as in
	// Samples (e.g. "fp16"), each of shape [N, 3] with max_batch_size 8,
	// and an output of the same type and shape named Output(input).
	DTypes = "dtypes"
	// DynamicFP16 has input "x" and output "y", both FLOAT16 of shape
	// [-1, -1] with max_batch_size 0: an output whose shape ONNX Runtime
	// decides, so pred cannot allocate it beforehand.
	DynamicFP16 = "dynamic_fp16"
	// identityPrefix starts the names of the single-type models (see
	// Identity).
	identityPrefix = "identity_"
)

// Identity names the model that has one input "x" of the sample's type, of
// shape [N, 3] with max_batch_size 8, and returns it as output "y".
func Identity(s Sample) string { return identityPrefix + s.Name }

// IdentityModels returns the names of the Identity models of every sample.
func IdentityModels() []string {
	var names []string
	for _, s := range Samples() {
		names = append(names, Identity(s))
	}
	return names
}

// ONNX format versions written.
const (
	irVersion    = 8
	opsetVersion = 17
	// maxBatchSize is the max_batch_size of the batching models.
	maxBatchSize = 8
	// sampleWidth is the non-batch dimension of the DTypes model's tensors.
	sampleWidth = 3
)

// Sample is one input of the DTypes model with three values that probe
// its element type's limits.
type Sample struct {
	// Name is the input's name; the output is Output(Name).
	Name  string
	DType predv1.DataType
	// Raw is the little-endian encoding of the values, shape [1, 3] (for
	// STRING, the length-prefixed elements).
	Raw []byte
	// JSON is the values as a JSON array, as the Open Inference Protocol's
	// REST API writes them.
	JSON string
}

// Output names the DTypes model's output for the named input.
func Output(input string) string { return input + "_out" }

// Samples returns one Sample per element type, in the DTypes model's input
// order.
func Samples() []Sample {
	le := binary.LittleEndian
	return []Sample{
		{"fp32", predv1.DataType_DATA_TYPE_FLOAT32, le.AppendUint32(le.AppendUint32(le.AppendUint32(nil,
			math.Float32bits(1.5)), math.Float32bits(-0.25)), math.Float32bits(3e38)), "[1.5,-0.25,3e+38]"},
		{"fp16", predv1.DataType_DATA_TYPE_FLOAT16, le.AppendUint16(le.AppendUint16(le.AppendUint16(nil,
			tensor.Float16Bits(1.5)), tensor.Float16Bits(-2)), tensor.Float16Bits(65504)), "[1.5,-2,65504]"},
		{"fp64", predv1.DataType_DATA_TYPE_FLOAT64, le.AppendUint64(le.AppendUint64(le.AppendUint64(nil,
			math.Float64bits(0.1)), math.Float64bits(-1e300)), math.Float64bits(2)), "[0.1,-1e+300,2]"},
		{"int8", predv1.DataType_DATA_TYPE_INT8, []byte{0x80, 0, 0x7f}, "[-128,0,127]"},
		{"int16", predv1.DataType_DATA_TYPE_INT16, le.AppendUint16(le.AppendUint16(le.AppendUint16(nil,
			0x8000), 1), 0x7fff), "[-32768,1,32767]"},
		{"int32", predv1.DataType_DATA_TYPE_INT32, le.AppendUint32(le.AppendUint32(le.AppendUint32(nil,
			0x80000000), 0xffffffff), 0x7fffffff), "[-2147483648,-1,2147483647]"},
		{"int64", predv1.DataType_DATA_TYPE_INT64, le.AppendUint64(le.AppendUint64(le.AppendUint64(nil,
			1<<63), 42), 1<<63-1), "[-9223372036854775808,42,9223372036854775807]"},
		{"uint8", predv1.DataType_DATA_TYPE_UINT8, []byte{0, 1, 0xff}, "[0,1,255]"},
		{"uint16", predv1.DataType_DATA_TYPE_UINT16, le.AppendUint16(le.AppendUint16(le.AppendUint16(nil,
			0), 2), 0xffff), "[0,2,65535]"},
		{"uint32", predv1.DataType_DATA_TYPE_UINT32, le.AppendUint32(le.AppendUint32(le.AppendUint32(nil,
			0), 3), 0xffffffff), "[0,3,4294967295]"},
		{"uint64", predv1.DataType_DATA_TYPE_UINT64, le.AppendUint64(le.AppendUint64(le.AppendUint64(nil,
			0), 4), math.MaxUint64), "[0,4,18446744073709551615]"},
		{"bool", predv1.DataType_DATA_TYPE_BOOL, []byte{1, 0, 1}, "[true,false,true]"},
		{"string", predv1.DataType_DATA_TYPE_STRING, tensor.FromStrings([]string{"", "héllo", "日本 text"}), `["","héllo","日本 text"]`},
	}
}

// StringSample returns the Sample of the STRING type.
func StringSample() Sample {
	for _, s := range Samples() {
		if tensor.IsString(s.DType) {
			return s
		}
	}
	panic("testmodels: no STRING sample")
}

// Names returns the names of every model Write writes.
func Names() []string {
	return append([]string{DTypes, DynamicFP16}, IdentityModels()...)
}

// Write writes the named models (DTypes, DynamicFP16, the Identity
// models) into the model repository repo, as version 1.
func Write(repo string, names ...string) error {
	for _, name := range names {
		var cfg *predv1.ModelConfig
		var model *onnxpb.ModelProto
		switch {
		case name == DTypes:
			cfg, model = dtypes()
		case name == DynamicFP16:
			cfg, model = dynamicFP16()
		case slices.Contains(IdentityModels(), name):
			i := slices.Index(IdentityModels(), name)
			cfg, model = identityModel(Samples()[i])
		default:
			return fmt.Errorf("testmodels: unknown model %q", name)
		}
		if err := write(repo, cfg, model); err != nil {
			return fmt.Errorf("testmodels: %s: %w", name, err)
		}
	}
	return nil
}

func dtypes() (*predv1.ModelConfig, *onnxpb.ModelProto) {
	cfg := &predv1.ModelConfig{Name: DTypes, Platform: "onnxruntime_onnx", MaxBatchSize: maxBatchSize}
	g := &onnxpb.GraphProto{Name: proto.String(DTypes)}
	for _, s := range Samples() {
		out := Output(s.Name)
		cfg.Inputs = append(cfg.Inputs, &predv1.TensorSpec{Name: s.Name, Dtype: s.DType, Shape: []int64{sampleWidth}})
		cfg.Outputs = append(cfg.Outputs, &predv1.TensorSpec{Name: out, Dtype: s.DType, Shape: []int64{sampleWidth}})
		dims := []*onnxpb.TensorShapeProto_Dimension{symbolic("batch"), fixed(sampleWidth)}
		g.Input = append(g.Input, valueInfo(s.Name, s.DType, dims))
		g.Output = append(g.Output, valueInfo(out, s.DType, dims))
		g.Node = append(g.Node, identity(s.Name, out))
	}
	return cfg, modelProto(g)
}

func identityModel(s Sample) (*predv1.ModelConfig, *onnxpb.ModelProto) {
	name := Identity(s)
	cfg := &predv1.ModelConfig{
		Name:         name,
		Platform:     "onnxruntime_onnx",
		MaxBatchSize: maxBatchSize,
		Inputs:       []*predv1.TensorSpec{{Name: "x", Dtype: s.DType, Shape: []int64{sampleWidth}}},
		Outputs:      []*predv1.TensorSpec{{Name: "y", Dtype: s.DType, Shape: []int64{sampleWidth}}},
	}
	dims := []*onnxpb.TensorShapeProto_Dimension{symbolic("batch"), fixed(sampleWidth)}
	g := &onnxpb.GraphProto{
		Name:   proto.String(name),
		Input:  []*onnxpb.ValueInfoProto{valueInfo("x", s.DType, dims)},
		Output: []*onnxpb.ValueInfoProto{valueInfo("y", s.DType, dims)},
		Node:   []*onnxpb.NodeProto{identity("x", "y")},
	}
	return cfg, modelProto(g)
}

func dynamicFP16() (*predv1.ModelConfig, *onnxpb.ModelProto) {
	fp16 := predv1.DataType_DATA_TYPE_FLOAT16
	cfg := &predv1.ModelConfig{
		Name:     DynamicFP16,
		Platform: "onnxruntime_onnx",
		Inputs:   []*predv1.TensorSpec{{Name: "x", Dtype: fp16, Shape: []int64{-1, -1}}},
		Outputs:  []*predv1.TensorSpec{{Name: "y", Dtype: fp16, Shape: []int64{-1, -1}}},
	}
	dims := []*onnxpb.TensorShapeProto_Dimension{symbolic("rows"), symbolic("cols")}
	g := &onnxpb.GraphProto{
		Name:   proto.String(DynamicFP16),
		Input:  []*onnxpb.ValueInfoProto{valueInfo("x", fp16, dims)},
		Output: []*onnxpb.ValueInfoProto{valueInfo("y", fp16, dims)},
		Node:   []*onnxpb.NodeProto{identity("x", "y")},
	}
	return cfg, modelProto(g)
}

func identity(in, out string) *onnxpb.NodeProto {
	return &onnxpb.NodeProto{Name: proto.String("identity_" + in), OpType: proto.String("Identity"), Input: []string{in}, Output: []string{out}}
}

func symbolic(name string) *onnxpb.TensorShapeProto_Dimension {
	return &onnxpb.TensorShapeProto_Dimension{Value: &onnxpb.TensorShapeProto_Dimension_DimParam{DimParam: name}}
}

func fixed(n int64) *onnxpb.TensorShapeProto_Dimension {
	return &onnxpb.TensorShapeProto_Dimension{Value: &onnxpb.TensorShapeProto_Dimension_DimValue{DimValue: n}}
}

func valueInfo(name string, d predv1.DataType, dims []*onnxpb.TensorShapeProto_Dimension) *onnxpb.ValueInfoProto {
	return &onnxpb.ValueInfoProto{
		Name: proto.String(name),
		Type: &onnxpb.TypeProto{Value: &onnxpb.TypeProto_TensorType{TensorType: &onnxpb.TypeProto_Tensor{
			ElemType: proto.Int32(int32(tensor.ONNXType(d))),
			Shape:    &onnxpb.TensorShapeProto{Dim: dims},
		}}},
	}
}

func modelProto(g *onnxpb.GraphProto) *onnxpb.ModelProto {
	return &onnxpb.ModelProto{
		IrVersion:    proto.Int64(irVersion),
		OpsetImport:  []*onnxpb.OperatorSetIdProto{{Domain: proto.String(""), Version: proto.Int64(opsetVersion)}},
		ProducerName: proto.String("prepred-testmodels"),
		Graph:        g,
	}
}

func write(repo string, cfg *predv1.ModelConfig, model *onnxpb.ModelProto) error {
	text, err := prototext.MarshalOptions{Multiline: true}.Marshal(cfg)
	if err != nil {
		return err
	}
	onnx, err := proto.MarshalOptions{Deterministic: true}.Marshal(model)
	if err != nil {
		return err
	}
	dir := filepath.Join(repo, cfg.GetName())
	if err := os.MkdirAll(filepath.Join(dir, "1"), 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "config.pbtxt"), text, 0o644); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "1", "model.onnx"), onnx, 0o644)
}

// Link makes the model directory name of the repository src appear in the
// repository dst, hard-linking its files (copying where links cannot be
// made), so that a test repository can hold a large generated model beside
// test models without copying it.
func Link(dst, src, name string) error {
	from := filepath.Join(src, name)
	return filepath.WalkDir(from, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(from, path)
		if err != nil {
			return err
		}
		to := filepath.Join(dst, name, rel)
		if d.IsDir() {
			return os.MkdirAll(to, 0o755)
		}
		if err := os.Link(path, to); err == nil {
			return nil
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		return os.WriteFile(to, data, 0o644)
	})
}
