package oip_test

import (
	"bytes"
	"encoding/binary"
	"slices"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"

	inferencepb "github.com/prepred/prepred/api/gen/inference"
	"github.com/prepred/prepred/pred/internal/tensor"
)

// stringModel is the identity model of the "string" sample: input "x" and
// output "y", both BYTES of shape [N, 3] with N up to 8.
const stringModel = "identity_string"

// bytesRequest is a ModelInfer request to stringModel with one BYTES input
// of the given shape, carried in raw_input_contents when c is nil and in
// c otherwise.
func bytesRequest(shape []int64, raw []byte, c *inferencepb.InferTensorContents) *inferencepb.ModelInferRequest {
	r := &inferencepb.ModelInferRequest{
		ModelName: stringModel,
		Inputs:    []*inferencepb.ModelInferRequest_InferInputTensor{{Name: "x", Datatype: "BYTES", Shape: shape, Contents: c}},
	}
	if c == nil {
		r.RawInputContents = [][]byte{raw}
	}
	return r
}

// byteSlices converts strings to the entries of bytes_contents.
func byteSlices(vals ...string) [][]byte {
	out := make([][]byte, len(vals))
	for i, v := range vals {
		out[i] = []byte(v)
	}
	return out
}

// TestModelInferBytes sends strings of two rows, raw and typed, and reads
// them back from raw_output_contents in the BYTES serialization.
func TestModelInferBytes(t *testing.T) {
	c, _ := client(t)
	vals := []string{"", "a", "héllo wörld", "日本 text", strings.Repeat("z", 70000), "\xff\xfe not UTF-8"}
	raw := tensor.FromStrings(vals)
	for name, req := range map[string]*inferencepb.ModelInferRequest{
		"raw":   bytesRequest([]int64{2, 3}, raw, nil),
		"typed": bytesRequest([]int64{2, 3}, nil, &inferencepb.InferTensorContents{BytesContents: byteSlices(vals...)}),
	} {
		t.Run(name, func(t *testing.T) {
			resp, err := c.ModelInfer(ctx(t), req)
			if err != nil {
				t.Fatal(err)
			}
			if len(resp.GetOutputs()) != 1 || len(resp.GetRawOutputContents()) != 1 {
				t.Fatalf("outputs = %v, %d raw", resp.GetOutputs(), len(resp.GetRawOutputContents()))
			}
			o := resp.GetOutputs()[0]
			if o.GetName() != "y" || o.GetDatatype() != "BYTES" || !slices.Equal(o.GetShape(), []int64{2, 3}) || o.GetContents() != nil {
				t.Errorf("output = %v", o)
			}
			got := resp.GetRawOutputContents()[0]
			if !bytes.Equal(got, raw) {
				t.Errorf("raw output = %q, want %q", got, raw)
			}
			elems, err := tensor.Strings(got, 6)
			if err != nil {
				t.Fatal(err)
			}
			for i, e := range elems {
				if string(e) != vals[i] {
					t.Errorf("element %d = %q, want %q", i, e, vals[i])
				}
			}
		})
	}
}

// TestModelInferBytesErrors checks that malformed BYTES inputs fail with
// InvalidArgument naming the input and the problem.
func TestModelInferBytesErrors(t *testing.T) {
	c, _ := client(t)
	three := tensor.FromStrings([]string{"ab", "", "cde"})
	// pastEnd declares 100 bytes for its second element and has 3.
	pastEnd := binary.LittleEndian.AppendUint32(tensor.FromStrings([]string{"ab"}), 100)
	pastEnd = append(pastEnd, "xyz"...)
	tests := []struct {
		name string
		req  *inferencepb.ModelInferRequest
		msg  string
	}{
		{"length past the end", bytesRequest([]int64{1, 3}, pastEnd, nil),
			`input "x": raw_input_contents[0] (13 bytes) is not the BYTES serialization of shape [1 3] (per element a 4-byte little-endian length, then its bytes): STRING element 1: its length is 100 but only 3 bytes follow`},
		{"huge length", bytesRequest([]int64{1, 3}, append([]byte{0xff, 0xff, 0xff, 0xff}, make([]byte, 8)...), nil),
			"STRING element 0: its length is 4294967295 but only 8 bytes follow"},
		{"trailing bytes", bytesRequest([]int64{1, 3}, append(slices.Clone(three), 7), nil),
			`input "x": raw_input_contents[0] (18 bytes) is not the BYTES serialization of shape [1 3]`},
		{"trailing element", bytesRequest([]int64{1, 3}, tensor.AppendString(slices.Clone(three), "f"), nil),
			"5 bytes follow the 3 STRING elements of the shape"},
		{"cut length", bytesRequest([]int64{1, 3}, append(tensor.FromStrings([]string{"ab", ""}), 1, 0), nil),
			"STRING element 2: 2 bytes left, too few for its 4-byte length"},
		{"too few elements", bytesRequest([]int64{2, 3}, three, nil),
			"17 bytes cannot hold 6 STRING elements"},
		{"empty", bytesRequest([]int64{1, 3}, nil, &inferencepb.InferTensorContents{}),
			`input "x": contents.bytes_contents has 0 values; the shape needs 3`},
		{"too many elements", bytesRequest([]int64{1, tensor.MaxStringElements + 1}, make([]byte, 4*(tensor.MaxStringElements+1)), nil),
			"a STRING tensor holds at most 262144 elements, not 262145"},
		{"typed count", bytesRequest([]int64{1, 3}, nil, &inferencepb.InferTensorContents{BytesContents: byteSlices("a", "b")}),
			`input "x": contents.bytes_contents has 2 values; the shape needs 3`},
		{"typed too many", bytesRequest([]int64{4, 3}, nil, &inferencepb.InferTensorContents{BytesContents: byteSlices("a", "b", "c", "d")}),
			"contents.bytes_contents has 4 values; the shape needs 12"},
		{"typed huge shape", bytesRequest([]int64{1 << 10, 1 << 10}, nil, &inferencepb.InferTensorContents{BytesContents: byteSlices("a")}),
			`input "x": shape has 1048576 elements; a BYTES tensor holds at most 262144`},
		{"typed field", bytesRequest([]int64{1, 3}, nil, &inferencepb.InferTensorContents{IntContents: []int32{1, 2, 3}}),
			"datatype BYTES takes its values in contents.bytes_contents, but the request sets contents.int_contents"},
		{"no data", &inferencepb.ModelInferRequest{ModelName: stringModel, Inputs: []*inferencepb.ModelInferRequest_InferInputTensor{{Name: "x", Datatype: "BYTES", Shape: []int64{1, 3}}}},
			`input "x": no data: set contents.bytes_contents or send raw_input_contents`},
		{"NUL raw", bytesRequest([]int64{1, 3}, tensor.FromStrings([]string{"a", "b\x00c", ""}), nil), "NUL"},
		{"NUL typed", bytesRequest([]int64{1, 3}, nil, &inferencepb.InferTensorContents{BytesContents: byteSlices("\x00", "", "")}), "NUL"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := c.ModelInfer(ctx(t), tt.req)
			wantCode(t, err, codes.InvalidArgument, tt.msg)
		})
	}
}
