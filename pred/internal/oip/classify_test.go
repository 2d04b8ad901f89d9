package oip_test

import (
	"encoding/binary"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/encoding/protowire"

	inferencepb "github.com/prepred/prepred/api/gen/inference"
	"github.com/prepred/prepred/pred/modelgen"
	"github.com/prepred/prepred/pred/predtest"
)

// topK computes, from a [N, 9] float32 output of the colors model, what
// Triton's classification of it is: per row the k largest as
// "%f:index:label".
func topK(t *testing.T, raw []byte, rows, k int) []string {
	t.Helper()
	logits := predtest.Float32s(raw)
	n := len(modelgen.ColorLabels)
	var out []string
	for r := range rows {
		row := logits[r*n : (r+1)*n]
		idx := make([]int, n)
		for i := range idx {
			idx[i] = i
		}
		sort.SliceStable(idx, func(a, b int) bool { return row[idx[a]] > row[idx[b]] })
		for _, i := range idx[:k] {
			out = append(out, strconv.FormatFloat(float64(row[i]), 'f', 6, 64)+":"+strconv.Itoa(i)+":"+modelgen.ColorLabels[i])
		}
	}
	return out
}

// bytesElements decodes the BYTES serialization by hand.
func bytesElements(t *testing.T, b []byte) []string {
	t.Helper()
	var out []string
	for len(b) > 0 {
		if len(b) < 4 {
			t.Fatalf("truncated BYTES element: %q", b)
		}
		n := binary.LittleEndian.Uint32(b)
		if uint32(len(b)-4) < n {
			t.Fatalf("BYTES element of %d bytes, %d left", n, len(b)-4)
		}
		out, b = append(out, string(b[4:4+n])), b[4+n:]
	}
	return out
}

// TestClassification asks for the colors model's output with
// classification 3 and checks it against the top 3 of the plain output
// of the same request.
func TestClassification(t *testing.T) {
	c, _ := client(t)
	colors := [][3]uint8{{255, 0, 0}, {0, 0, 255}}
	plain, err := c.ModelInfer(ctx(t), colorsRequest(t, colors...))
	if err != nil {
		t.Fatal(err)
	}
	req := colorsRequest(t, colors...)
	req.Outputs[0].Parameters = map[string]*inferencepb.InferParameter{"classification": {ParameterChoice: &inferencepb.InferParameter_Int64Param{Int64Param: 3}}}
	resp, err := c.ModelInfer(ctx(t), req)
	if err != nil {
		t.Fatal(err)
	}
	o := resp.GetOutputs()[0]
	if o.GetName() != "output" || o.GetDatatype() != "BYTES" || !slices.Equal(o.GetShape(), []int64{2, 3}) {
		t.Fatalf("output %s %s %v, want output BYTES [2 3]", o.GetName(), o.GetDatatype(), o.GetShape())
	}
	got, want := bytesElements(t, resp.GetRawOutputContents()[0]), topK(t, plain.GetRawOutputContents()[0], 2, 3)
	if !slices.Equal(got, want) {
		t.Errorf("classification = %q, want %q", got, want)
	}
	for i, label := range []string{"red", "blue"} {
		if !strings.HasSuffix(got[i*3], ":"+label) {
			t.Errorf("row %d: top class %q, want %s", i, got[i*3], label)
		}
	}

	// K above the classes gives them all; 0 asks for the plain output.
	req.Outputs[0].Parameters["classification"] = &inferencepb.InferParameter{ParameterChoice: &inferencepb.InferParameter_Int64Param{Int64Param: 50}}
	if resp, err := c.ModelInfer(ctx(t), req); err != nil || !slices.Equal(resp.GetOutputs()[0].GetShape(), []int64{2, 9}) {
		t.Errorf("classification 50 = %v, %v; want shape [2 9]", resp.GetOutputs(), err)
	}
	req.Outputs[0].Parameters["classification"] = &inferencepb.InferParameter{ParameterChoice: &inferencepb.InferParameter_Int64Param{Int64Param: 0}}
	if resp, err := c.ModelInfer(ctx(t), req); err != nil || resp.GetOutputs()[0].GetDatatype() != "FP32" {
		t.Errorf("classification 0 = %v, %v; want the FP32 output", resp.GetOutputs(), err)
	}
}

// TestWireClassification sends the request as Triton's clients encode
// InferRequestedOutput(name, class_count=2): the output's parameters map
// entry (field 2) "classification" -> int64_param (field 2).
func TestWireClassification(t *testing.T) {
	_, conn := client(t)
	var param []byte
	param = protowire.AppendTag(param, 2, protowire.VarintType) // int64_param
	param = protowire.AppendVarint(param, 2)
	var entry []byte
	entry = protowire.AppendTag(entry, 1, protowire.BytesType) // key
	entry = protowire.AppendString(entry, "classification")
	entry = protowire.AppendTag(entry, 2, protowire.BytesType) // value
	entry = protowire.AppendBytes(entry, param)
	var output []byte
	output = protowire.AppendTag(output, 1, protowire.BytesType) // name
	output = protowire.AppendString(output, "output")
	output = protowire.AppendTag(output, 2, protowire.BytesType) // parameters
	output = protowire.AppendBytes(output, entry)

	var input []byte
	input = protowire.AppendTag(input, 1, protowire.BytesType)
	input = protowire.AppendString(input, "input")
	input = protowire.AppendTag(input, 2, protowire.BytesType)
	input = protowire.AppendString(input, "FP32")
	var shape []byte
	for _, d := range []uint64{1, 3, 32, 32} {
		shape = protowire.AppendVarint(shape, d)
	}
	input = protowire.AppendTag(input, 3, protowire.BytesType)
	input = protowire.AppendBytes(input, shape)

	var req []byte
	req = protowire.AppendTag(req, 1, protowire.BytesType) // model_name
	req = protowire.AppendString(req, "colors")
	req = protowire.AppendTag(req, 5, protowire.BytesType) // inputs
	req = protowire.AppendBytes(req, input)
	req = protowire.AppendTag(req, 6, protowire.BytesType) // outputs
	req = protowire.AppendBytes(req, output)
	req = protowire.AppendTag(req, 7, protowire.BytesType) // raw_input_contents
	req = protowire.AppendBytes(req, colorsRequest(t, [3]uint8{0, 255, 0}).GetRawInputContents()[0])

	var resp []byte
	if err := conn.Invoke(ctx(t), "/inference.GRPCInferenceService/ModelInfer", &req, &resp, grpc.ForceCodec(rawCodec{})); err != nil {
		t.Fatalf("ModelInfer: %v", err)
	}
	f := fields(t, resp)
	out := sub(t, f, 5)
	if string(out[2][0].([]byte)) != "BYTES" {
		t.Errorf("datatype %q, want BYTES", out[2][0])
	}
	if len(f[6]) != 1 {
		t.Fatalf("raw_output_contents: %d entries", len(f[6]))
	}
	got := bytesElements(t, f[6][0].([]byte))
	if len(got) != 2 || !strings.HasSuffix(got[0], ":3:green") {
		t.Errorf("classification = %q, want the top 2 with green (index 3) first", got)
	}
}
