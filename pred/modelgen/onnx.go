package modelgen

import (
	"encoding/binary"
	"fmt"
	"hash/fnv"
	"math"
	"math/rand/v2"

	"google.golang.org/protobuf/proto"

	onnxpb "github.com/prepred/prepred/api/gen/onnx"
)

const (
	// irVersion is the ONNX IR version written (ONNX 1.10+, read by every
	// ONNX Runtime release in use).
	irVersion = 8
	// opsetVersion is the default-domain opset. ReduceMean takes its axes
	// as an attribute up to opset 17 (an input from 18 on).
	opsetVersion = 17
	// producerName is recorded in every generated model.
	producerName = "prepred-modelgen"
	// batchParam names the symbolic batch dimension, as torch.onnx exports
	// it with dynamic_axes.
	batchParam = "batch_size"
	// weightSeed is the fixed half of every weight tensor's PRNG seed; the
	// other half is a hash of the tensor's name, so a tensor's values do not
	// depend on the order tensors are generated in.
	weightSeed = 0x70726570726564 // "prepred"
)

// dim is one dimension of a graph input or output: a fixed size or, when
// param is set, a symbolic one.
type dim struct {
	size  int64
	param string
}

// graph accumulates the nodes and initializers of an ONNX graph in order.
type graph struct {
	g *onnxpb.GraphProto
	// ops counts the nodes op has named, per prefix.
	ops map[string]int
}

func newGraph(name string) *graph {
	return &graph{g: &onnxpb.GraphProto{Name: proto.String(name)}, ops: map[string]int{}}
}

// node appends a node and returns its first output's name.
func (b *graph) node(op, name string, inputs, outputs []string, attrs ...*onnxpb.AttributeProto) string {
	b.g.Node = append(b.g.Node, &onnxpb.NodeProto{
		Name:      proto.String(name),
		OpType:    proto.String(op),
		Input:     inputs,
		Output:    outputs,
		Attribute: attrs,
	})
	return outputs[0]
}

// op appends a node with one output, named after prefix and a counter as
// torch.onnx names them ("/Max_3", output "/Max_3_output_0"), and returns
// the output's name.
func (b *graph) op(opType, prefix string, inputs []string, attrs ...*onnxpb.AttributeProto) string {
	name := b.nodeName(prefix)
	return b.node(opType, name, inputs, []string{name + "_output_0"}, attrs...)
}

// nodeName returns the next unused node name for prefix: prefix itself,
// then prefix_1, prefix_2 and so on.
func (b *graph) nodeName(prefix string) string {
	n := b.ops[prefix]
	b.ops[prefix]++
	if n == 0 {
		return prefix
	}
	return fmt.Sprintf("%s_%d", prefix, n)
}

// int64Initializer appends an int64 constant stored as little-endian
// raw_data (the shapes, axes and indices ops such as Slice and Pad take).
func (b *graph) int64Initializer(name string, dims []int64, values []int64) string {
	raw := make([]byte, 8*len(values))
	for i, v := range values {
		binary.LittleEndian.PutUint64(raw[8*i:], uint64(v))
	}
	b.g.Initializer = append(b.g.Initializer, &onnxpb.TensorProto{
		Name:     proto.String(name),
		Dims:     dims,
		DataType: proto.Int32(int32(onnxpb.TensorProto_INT64)),
		RawData:  raw,
	})
	return name
}

// initializer appends a float32 constant stored as little-endian raw_data.
func (b *graph) initializer(name string, dims []int64, values []float32) string {
	raw := make([]byte, 4*len(values))
	for i, v := range values {
		binary.LittleEndian.PutUint32(raw[4*i:], math.Float32bits(v))
	}
	b.g.Initializer = append(b.g.Initializer, &onnxpb.TensorProto{
		Name:     proto.String(name),
		Dims:     dims,
		DataType: proto.Int32(int32(onnxpb.TensorProto_FLOAT)),
		RawData:  raw,
	})
	return name
}

func (b *graph) input(name string, dims ...dim) {
	b.g.Input = append(b.g.Input, floatValueInfo(name, dims))
}

func (b *graph) output(name string, dims ...dim) {
	b.g.Output = append(b.g.Output, floatValueInfo(name, dims))
}

func floatValueInfo(name string, dims []dim) *onnxpb.ValueInfoProto {
	shape := &onnxpb.TensorShapeProto{}
	for _, d := range dims {
		pd := &onnxpb.TensorShapeProto_Dimension{}
		if d.param != "" {
			pd.Value = &onnxpb.TensorShapeProto_Dimension_DimParam{DimParam: d.param}
		} else {
			pd.Value = &onnxpb.TensorShapeProto_Dimension_DimValue{DimValue: d.size}
		}
		shape.Dim = append(shape.Dim, pd)
	}
	return &onnxpb.ValueInfoProto{
		Name: proto.String(name),
		Type: &onnxpb.TypeProto{Value: &onnxpb.TypeProto_TensorType{TensorType: &onnxpb.TypeProto_Tensor{
			ElemType: proto.Int32(int32(onnxpb.TensorProto_FLOAT)),
			Shape:    shape,
		}}},
	}
}

// model wraps a finished graph in a ModelProto.
func (b *graph) model(doc string) *onnxpb.ModelProto {
	return &onnxpb.ModelProto{
		IrVersion:       proto.Int64(irVersion),
		OpsetImport:     []*onnxpb.OperatorSetIdProto{{Domain: proto.String(""), Version: proto.Int64(opsetVersion)}},
		ProducerName:    proto.String(producerName),
		ProducerVersion: proto.String(markerVersion),
		ModelVersion:    proto.Int64(1),
		DocString:       proto.String(doc),
		Graph:           b.g,
	}
}

func attrInt(name string, v int64) *onnxpb.AttributeProto {
	return &onnxpb.AttributeProto{Name: proto.String(name), Type: onnxpb.AttributeProto_INT.Enum(), I: proto.Int64(v)}
}

func attrInts(name string, v ...int64) *onnxpb.AttributeProto {
	return &onnxpb.AttributeProto{Name: proto.String(name), Type: onnxpb.AttributeProto_INTS.Enum(), Ints: v}
}

func attrFloat(name string, v float32) *onnxpb.AttributeProto {
	return &onnxpb.AttributeProto{Name: proto.String(name), Type: onnxpb.AttributeProto_FLOAT.Enum(), F: proto.Float32(v)}
}

// normal returns n deterministic samples of N(0, std²) for the tensor name.
func normal(name string, n int, std float64) []float32 {
	h := fnv.New64a()
	h.Write([]byte(name))
	r := rand.New(rand.NewPCG(weightSeed, h.Sum64()))
	out := make([]float32, n)
	for i := range out {
		out[i] = float32(r.NormFloat64() * std)
	}
	return out
}

// centeredNormal is normal with each of its rows (consecutive runs of cols
// values, one output channel's weights) shifted to sum to zero, so that an
// offset shared by all of a layer's inputs cancels in its outputs.
func centeredNormal(name string, rows, cols int, std float64) []float32 {
	w := normal(name, rows*cols, std)
	for r := range rows {
		row := w[r*cols : (r+1)*cols]
		var sum float64
		for _, v := range row {
			sum += float64(v)
		}
		mean := float32(sum / float64(cols))
		for i := range row {
			row[i] -= mean
		}
	}
	return w
}
