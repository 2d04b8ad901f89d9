package oip_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	inferencepb "github.com/prepred/prepred/api/gen/inference"
	"github.com/prepred/prepred/pred/internal/infertest"
	"github.com/prepred/prepred/pred/internal/oip"
	"github.com/prepred/prepred/pred/internal/tensor"
	"github.com/prepred/prepred/pred/internal/testmodels"
)

// clientErrors are the codes a request may fail with; anything else
// (Internal, Unknown, a panic) is a bug that a request can trigger.
var clientErrors = []codes.Code{codes.OK, codes.InvalidArgument, codes.NotFound, codes.FailedPrecondition, codes.Unavailable}

// fuzzSeeds are real requests: what Triton's clients send, raw and typed,
// to the image model and to the models of every element type, and BYTES
// requests at the edges of the BYTES serialization.
func fuzzSeeds(t testing.TB) []*inferencepb.ModelInferRequest {
	seeds := []*inferencepb.ModelInferRequest{colorsRequest(t, [3]uint8{255, 0, 0}, [3]uint8{0, 0, 9})}
	typed := colorsRequest(t, [3]uint8{1, 2, 3})
	typed.Inputs[0].Contents = &inferencepb.InferTensorContents{Fp32Contents: make([]float32, 3072)}
	typed.RawInputContents = nil
	seeds = append(seeds, typed)
	all := &inferencepb.ModelInferRequest{ModelName: testmodels.DTypes, ModelVersion: "1"}
	for _, s := range testmodels.Samples() {
		all.Inputs = append(all.Inputs, &inferencepb.ModelInferRequest_InferInputTensor{Name: s.Name, Datatype: oip.DataTypeName(s.DType), Shape: []int64{1, 3}})
		all.RawInputContents = append(all.RawInputContents, s.Raw)
		seeds = append(seeds, &inferencepb.ModelInferRequest{
			ModelName:        testmodels.Identity(s),
			Inputs:           []*inferencepb.ModelInferRequest_InferInputTensor{{Name: "x", Datatype: oip.DataTypeName(s.DType), Shape: []int64{1, 3}}},
			Outputs:          []*inferencepb.ModelInferRequest_InferRequestedOutputTensor{{Name: "y"}},
			RawInputContents: [][]byte{s.Raw},
		})
	}
	seeds = append(seeds, all, &inferencepb.ModelInferRequest{
		ModelName: "identity_int8",
		Inputs: []*inferencepb.ModelInferRequest_InferInputTensor{{Name: "x", Datatype: "INT8", Shape: []int64{1, 3},
			Contents: &inferencepb.InferTensorContents{IntContents: []int32{-128, 5, 127}}}},
		Parameters: map[string]*inferencepb.InferParameter{"spec_fingerprint": {ParameterChoice: &inferencepb.InferParameter_StringParam{StringParam: ""}}},
	})
	return append(seeds, bytesSeeds()...)
}

// bytesSeeds are BYTES requests to the string identity model: typed, raw
// over two rows, and raw whose serialization is cut short, has a length
// past the end, or carries a NUL byte.
func bytesSeeds() []*inferencepb.ModelInferRequest {
	const model = "identity_string"
	req := func(shape []int64, raw []byte, c *inferencepb.InferTensorContents) *inferencepb.ModelInferRequest {
		r := &inferencepb.ModelInferRequest{
			ModelName: model,
			Inputs:    []*inferencepb.ModelInferRequest_InferInputTensor{{Name: "x", Datatype: "BYTES", Shape: shape, Contents: c}},
		}
		if c == nil {
			r.RawInputContents = [][]byte{raw}
		}
		return r
	}
	two := tensor.FromStrings([]string{"a", "", "bc", "日本", "d\xffe", "fffffffff"})
	return []*inferencepb.ModelInferRequest{
		req([]int64{1, 3}, nil, &inferencepb.InferTensorContents{BytesContents: [][]byte{[]byte("x"), nil, []byte("yz")}}),
		req([]int64{2, 3}, two, nil),
		req([]int64{2, 3}, two[:len(two)-3], nil),
		req([]int64{1, 3}, []byte{0xff, 0xff, 0xff, 0x7f, 'a'}, nil),
		req([]int64{1, 3}, tensor.FromStrings([]string{"a\x00b", "", ""}), nil),
	}
}

// FuzzModelInfer sends arbitrary ModelInfer requests through decoding,
// validation and, when they pass, ONNX Runtime. Every request must end in
// a client error or in outputs that match their declared datatype and
// shape (for BYTES, well-formed serialization of as many elements).
func FuzzModelInfer(f *testing.F) {
	for _, req := range fuzzSeeds(f) {
		b, err := proto.Marshal(req)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	env := infertest.Setup(f)
	svc := oip.New(env.Runner, oip.Options{})
	f.Fuzz(func(t *testing.T, data []byte) {
		req := &inferencepb.ModelInferRequest{}
		if proto.Unmarshal(data, req) != nil {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		resp, err := svc.ModelInfer(ctx, req)
		if code := status.Code(err); !slices.Contains(clientErrors, code) {
			t.Fatalf("ModelInfer: %v", err)
		}
		if err != nil {
			return
		}
		if len(resp.GetOutputs()) != len(resp.GetRawOutputContents()) {
			t.Fatalf("%d outputs, %d raw contents", len(resp.GetOutputs()), len(resp.GetRawOutputContents()))
		}
		for i, o := range resp.GetOutputs() {
			dt, err := oip.ParseDataType(o.GetDatatype())
			if err != nil {
				t.Fatalf("output %q: %v", o.GetName(), err)
			}
			if err := tensor.CheckData(dt, o.GetShape(), resp.GetRawOutputContents()[i]); err != nil {
				t.Fatalf("output %q: %d bytes for %s %v: %v", o.GetName(), len(resp.GetRawOutputContents()[i]), o.GetDatatype(), o.GetShape(), err)
			}
		}
	})
}
