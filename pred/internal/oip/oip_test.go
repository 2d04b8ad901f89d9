package oip_test

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	inferencepb "github.com/prepred/prepred/api/gen/inference"
	predv1 "github.com/prepred/prepred/api/gen/prepred/pred/v1"
	"github.com/prepred/prepred/api/spec"
	"github.com/prepred/prepred/pred/internal/grpcserver"
	"github.com/prepred/prepred/pred/internal/infertest"
	"github.com/prepred/prepred/pred/internal/oip"
	"github.com/prepred/prepred/pred/internal/tensor"
	"github.com/prepred/prepred/pred/internal/testmodels"
	"github.com/prepred/prepred/pred/predtest"
)

func TestMain(m *testing.M) {
	code := m.Run()
	if err := infertest.Teardown(); err != nil {
		fmt.Fprintln(os.Stderr, "teardown:", err)
		code = 1
	}
	os.Exit(code)
}

// client serves the OIP service of the shared setup on loopback.
func client(t testing.TB) (inferencepb.GRPCInferenceServiceClient, *grpc.ClientConn) {
	t.Helper()
	env := infertest.Setup(t)
	svc := oip.New(env.Runner, oip.Options{Ready: func() bool { return true }, Version: "1.2.3"})
	conn := infertest.Serve(t, grpcserver.Service{Desc: &inferencepb.GRPCInferenceService_ServiceDesc, Impl: svc})
	return inferencepb.NewGRPCInferenceServiceClient(conn), conn
}

func ctx(t testing.TB) context.Context {
	c, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return c
}

func wantCode(t *testing.T, err error, code codes.Code, substr string) {
	t.Helper()
	if status.Code(err) != code || !strings.Contains(status.Convert(err).Message(), substr) {
		t.Errorf("error = %v, want %v containing %q", err, code, substr)
	}
}

func TestServerCalls(t *testing.T) {
	c, _ := client(t)
	live, err := c.ServerLive(ctx(t), &inferencepb.ServerLiveRequest{})
	if err != nil || !live.GetLive() {
		t.Errorf("ServerLive = %v, %v", live, err)
	}
	ready, err := c.ServerReady(ctx(t), &inferencepb.ServerReadyRequest{})
	if err != nil || !ready.GetReady() {
		t.Errorf("ServerReady = %v, %v", ready, err)
	}
	md, err := c.ServerMetadata(ctx(t), &inferencepb.ServerMetadataRequest{})
	if err != nil || md.GetName() != "prepred-pred" || md.GetVersion() != "1.2.3" || !slices.Equal(md.GetExtensions(), oip.Extensions) {
		t.Errorf("ServerMetadata = %v, %v", md, err)
	}
}

func TestServerNotReady(t *testing.T) {
	env := infertest.Setup(t)
	svc := oip.New(env.Runner, oip.Options{Ready: func() bool { return false }})
	resp, err := svc.ServerReady(ctx(t), &inferencepb.ServerReadyRequest{})
	if err != nil || resp.GetReady() {
		t.Errorf("ServerReady = %v, %v; want not ready", resp, err)
	}
}

func TestModelMetadata(t *testing.T) {
	c, _ := client(t)
	md, err := c.ModelMetadata(ctx(t), &inferencepb.ModelMetadataRequest{Name: "colors"})
	if err != nil {
		t.Fatal(err)
	}
	want := `name:"colors" versions:"1" platform:"onnxruntime_onnx" ` +
		`inputs:{name:"input" datatype:"FP32" shape:-1 shape:3 shape:32 shape:32} ` +
		`outputs:{name:"output" datatype:"FP32" shape:-1 shape:9}`
	if got := strings.Join(strings.Fields(md.String()), " "); got != want {
		t.Errorf("ModelMetadata(colors) =\n%s\nwant\n%s", got, want)
	}

	md, err = c.ModelMetadata(ctx(t), &inferencepb.ModelMetadataRequest{Name: testmodels.DTypes, Version: "1"})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, in := range md.GetInputs() {
		got = append(got, fmt.Sprintf("%s:%s:%v", in.GetName(), in.GetDatatype(), in.GetShape()))
	}
	wantInputs := []string{"fp32:FP32:[-1 3]", "fp16:FP16:[-1 3]", "fp64:FP64:[-1 3]", "int8:INT8:[-1 3]", "int16:INT16:[-1 3]",
		"int32:INT32:[-1 3]", "int64:INT64:[-1 3]", "uint8:UINT8:[-1 3]", "uint16:UINT16:[-1 3]", "uint32:UINT32:[-1 3]",
		"uint64:UINT64:[-1 3]", "bool:BOOL:[-1 3]", "string:BYTES:[-1 3]"}
	if !slices.Equal(got, wantInputs) {
		t.Errorf("dtypes inputs = %v, want %v", got, wantInputs)
	}
	if outs := md.GetOutputs(); len(outs) != len(wantInputs) || outs[len(outs)-1].GetName() != "string_out" || outs[len(outs)-1].GetDatatype() != "BYTES" {
		t.Errorf("dtypes outputs = %v, want the last one string_out of BYTES", outs)
	}

	tests := []struct {
		req  *inferencepb.ModelMetadataRequest
		code codes.Code
		msg  string
	}{
		{&inferencepb.ModelMetadataRequest{Name: "nope"}, codes.NotFound, `model "nope" is not served`},
		{&inferencepb.ModelMetadataRequest{Name: "colors", Version: "2"}, codes.NotFound, "has no version 2"},
		{&inferencepb.ModelMetadataRequest{Name: "colors", Version: "latest"}, codes.InvalidArgument, `model version "latest" is not a positive integer`},
		{&inferencepb.ModelMetadataRequest{}, codes.InvalidArgument, "model is required"},
	}
	for _, tt := range tests {
		_, err := c.ModelMetadata(ctx(t), tt.req)
		wantCode(t, err, tt.code, tt.msg)
	}
}

func TestModelReady(t *testing.T) {
	c, _ := client(t)
	for _, v := range []string{"", "1"} {
		resp, err := c.ModelReady(ctx(t), &inferencepb.ModelReadyRequest{Name: "colors", Version: v})
		if err != nil || !resp.GetReady() {
			t.Errorf("ModelReady(colors, %q) = %v, %v", v, resp, err)
		}
	}
	_, err := c.ModelReady(ctx(t), &inferencepb.ModelReadyRequest{Name: "nope"})
	wantCode(t, err, codes.NotFound, "not served")
	_, err = c.ModelReady(ctx(t), &inferencepb.ModelReadyRequest{Name: "colors", Version: "0"})
	wantCode(t, err, codes.InvalidArgument, "not a positive integer")
}

// colorsRequest is a request as Triton's Python and Go clients make it:
// FP32 inputs as raw_input_contents.
func colorsRequest(t testing.TB, colors ...[3]uint8) *inferencepb.ModelInferRequest {
	env := infertest.Setup(t)
	return &inferencepb.ModelInferRequest{
		ModelName: "colors",
		Id:        "req-7",
		Inputs: []*inferencepb.ModelInferRequest_InferInputTensor{{
			Name: "input", Datatype: "FP32", Shape: []int64{int64(len(colors)), 3, 32, 32},
		}},
		Outputs:          []*inferencepb.ModelInferRequest_InferRequestedOutputTensor{{Name: "output"}},
		RawInputContents: [][]byte{env.Images(colors...)},
	}
}

func TestModelInferColors(t *testing.T) {
	c, _ := client(t)
	colors := [][3]uint8{{255, 0, 0}, {0, 0, 255}, {250, 250, 5}}
	want := []string{"red", "blue", "yellow"}

	raw := colorsRequest(t, colors...)
	typed := colorsRequest(t, colors...)
	typed.Inputs[0].Contents = &inferencepb.InferTensorContents{Fp32Contents: predtest.Float32s(typed.RawInputContents[0])}
	typed.RawInputContents = nil
	typed.Outputs = nil
	typed.ModelVersion = "1"

	for name, req := range map[string]*inferencepb.ModelInferRequest{"raw": raw, "typed": typed} {
		t.Run(name, func(t *testing.T) {
			resp, err := c.ModelInfer(ctx(t), req)
			if err != nil {
				t.Fatalf("ModelInfer: %v", err)
			}
			if resp.GetModelName() != "colors" || resp.GetModelVersion() != "1" || resp.GetId() != "req-7" {
				t.Errorf("response header = %q %q %q", resp.GetModelName(), resp.GetModelVersion(), resp.GetId())
			}
			if len(resp.GetOutputs()) != 1 || len(resp.GetRawOutputContents()) != 1 {
				t.Fatalf("outputs = %v, %d raw", resp.GetOutputs(), len(resp.GetRawOutputContents()))
			}
			o := resp.GetOutputs()[0]
			if o.GetName() != "output" || o.GetDatatype() != "FP32" || !slices.Equal(o.GetShape(), []int64{3, 9}) || o.GetContents() != nil {
				t.Errorf("output = %v", o)
			}
			for i, w := range want {
				if got := infertest.ColorLabel(resp.GetRawOutputContents()[0], i); got != w {
					t.Errorf("image %d: %s, want %s", i, got, w)
				}
			}
		})
	}
}

func TestModelInferResNet50(t *testing.T) {
	c, _ := client(t)
	img := make([]float32, 2*3*224*224)
	for i := range img {
		img[i] = float32(math.Sin(float64(i) * 0.01))
	}
	resp, err := c.ModelInfer(ctx(t), &inferencepb.ModelInferRequest{
		ModelName:        "resnet50",
		Inputs:           []*inferencepb.ModelInferRequest_InferInputTensor{{Name: "input", Datatype: "FP32", Shape: []int64{2, 3, 224, 224}}},
		RawInputContents: [][]byte{predtest.Float32Bytes(img)},
	})
	if err != nil {
		t.Fatal(err)
	}
	o := resp.GetOutputs()[0]
	logits := predtest.Float32s(resp.GetRawOutputContents()[0])
	if o.GetName() != "output" || !slices.Equal(o.GetShape(), []int64{2, 1000}) || len(logits) != 2000 {
		t.Fatalf("output %v with %d logits", o, len(logits))
	}
	if slices.Equal(logits[:1000], logits[1000:]) {
		t.Error("two different images gave the same logits")
	}
}

// TestModelInferEveryDType sends every element type through a model and
// back: all at once as raw bytes, and one by one as typed contents.
func TestModelInferEveryDType(t *testing.T) {
	c, _ := client(t)
	samples := testmodels.Samples()
	raw := &inferencepb.ModelInferRequest{ModelName: testmodels.DTypes}
	for _, s := range samples {
		raw.Inputs = append(raw.Inputs, &inferencepb.ModelInferRequest_InferInputTensor{Name: s.Name, Datatype: oip.DataTypeName(s.DType), Shape: []int64{1, 3}})
		raw.RawInputContents = append(raw.RawInputContents, s.Raw)
	}
	resp, err := c.ModelInfer(ctx(t), raw)
	if err != nil {
		t.Fatalf("raw: %v", err)
	}
	for i, s := range samples {
		o := resp.GetOutputs()[i]
		if o.GetName() != testmodels.Output(s.Name) || o.GetDatatype() != oip.DataTypeName(s.DType) || !bytes.Equal(resp.GetRawOutputContents()[i], s.Raw) {
			t.Errorf("raw %s: output %v %x, want %x", s.Name, o, resp.GetRawOutputContents()[i], s.Raw)
		}
	}

	for _, s := range samples {
		if s.DType == predv1.DataType_DATA_TYPE_FLOAT16 {
			continue // FP16 has no typed field
		}
		t.Run("typed "+s.Name, func(t *testing.T) {
			resp, err := c.ModelInfer(ctx(t), &inferencepb.ModelInferRequest{
				ModelName: testmodels.Identity(s),
				Inputs: []*inferencepb.ModelInferRequest_InferInputTensor{{
					Name: "x", Datatype: oip.DataTypeName(s.DType), Shape: []int64{1, 3}, Contents: typedContents(t, s),
				}},
			})
			if err != nil {
				t.Fatal(err)
			}
			if got := resp.GetRawOutputContents()[0]; !bytes.Equal(got, s.Raw) {
				t.Errorf("output %x, want %x", got, s.Raw)
			}
		})
	}
}

// typedContents returns the sample's values in the protocol's typed field.
func typedContents(t *testing.T, s testmodels.Sample) *inferencepb.InferTensorContents {
	t.Helper()
	c := &inferencepb.InferTensorContents{}
	var err error
	switch s.Name {
	case "fp32":
		c.Fp32Contents = []float32{1.5, -0.25, 3e38}
	case "fp64":
		c.Fp64Contents = []float64{0.1, -1e300, 2}
	case "int8":
		c.IntContents = []int32{-128, 0, 127}
	case "int16":
		c.IntContents = []int32{-32768, 1, 32767}
	case "int32":
		c.IntContents = []int32{math.MinInt32, -1, math.MaxInt32}
	case "int64":
		c.Int64Contents = []int64{math.MinInt64, 42, math.MaxInt64}
	case "uint8":
		c.UintContents = []uint32{0, 1, 255}
	case "uint16":
		c.UintContents = []uint32{0, 2, 65535}
	case "uint32":
		c.UintContents = []uint32{0, 3, math.MaxUint32}
	case "uint64":
		c.Uint64Contents = []uint64{0, 4, math.MaxUint64}
	case "bool":
		c.BoolContents = []bool{true, false, true}
	case "string":
		c.BytesContents = [][]byte{[]byte(""), []byte("héllo"), []byte("日本 text")}
	default:
		err = fmt.Errorf("no typed values for %s", s.Name)
	}
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestModelInferRequestedOutputs(t *testing.T) {
	c, _ := client(t)
	req := &inferencepb.ModelInferRequest{ModelName: testmodels.DTypes}
	for _, s := range testmodels.Samples() {
		req.Inputs = append(req.Inputs, &inferencepb.ModelInferRequest_InferInputTensor{Name: s.Name, Datatype: oip.DataTypeName(s.DType), Shape: []int64{1, 3}})
		req.RawInputContents = append(req.RawInputContents, s.Raw)
	}
	req.Outputs = []*inferencepb.ModelInferRequest_InferRequestedOutputTensor{{Name: "uint8_out"}, {Name: "bool_out"}}
	resp, err := c.ModelInfer(ctx(t), req)
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.GetOutputs()) != 2 || resp.GetOutputs()[0].GetName() != "uint8_out" || resp.GetOutputs()[1].GetName() != "bool_out" ||
		!bytes.Equal(resp.GetRawOutputContents()[0], []byte{0, 1, 255}) || !bytes.Equal(resp.GetRawOutputContents()[1], []byte{1, 0, 1}) {
		t.Errorf("outputs = %v %x", resp.GetOutputs(), resp.GetRawOutputContents())
	}
}

func TestModelInferErrors(t *testing.T) {
	c, _ := client(t)
	env := infertest.Setup(t)
	fp, err := spec.Fingerprint(env.Colors.GetPreprocess())
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		edit func(r *inferencepb.ModelInferRequest)
		code codes.Code
		msg  string
	}{
		{"unknown model", func(r *inferencepb.ModelInferRequest) { r.ModelName = "nope" }, codes.NotFound, `model "nope" is not served`},
		{"unknown version", func(r *inferencepb.ModelInferRequest) { r.ModelVersion = "9" }, codes.NotFound, "has no version 9"},
		{"bad version", func(r *inferencepb.ModelInferRequest) { r.ModelVersion = "v1" }, codes.InvalidArgument, `model version "v1"`},
		{"wrong datatype", func(r *inferencepb.ModelInferRequest) {
			r.Inputs[0].Datatype = "FP64"
			r.RawInputContents[0] = append(r.RawInputContents[0], r.RawInputContents[0]...)
		}, codes.InvalidArgument, "dtype is DATA_TYPE_FLOAT64, model \"colors\" expects DATA_TYPE_FLOAT32"},
		{"bytes for fp32", func(r *inferencepb.ModelInferRequest) {
			r.Inputs[0].Datatype = "BYTES"
			r.RawInputContents[0] = tensor.FromStrings(make([]string, 3*32*32))
		}, codes.InvalidArgument, `dtype is DATA_TYPE_STRING, model "colors" expects DATA_TYPE_FLOAT32`},
		{"fp32 bytes as BYTES", func(r *inferencepb.ModelInferRequest) { r.Inputs[0].Datatype = "BYTES" }, codes.InvalidArgument,
			`input "input": raw_input_contents[0] (12288 bytes) is not the BYTES serialization of shape [1 3 32 32]`},
		{"bf16", func(r *inferencepb.ModelInferRequest) { r.Inputs[0].Datatype = "BF16" }, codes.InvalidArgument, "datatype BF16 is not supported"},
		{"unknown datatype", func(r *inferencepb.ModelInferRequest) { r.Inputs[0].Datatype = "FLOAT" }, codes.InvalidArgument, `unknown datatype "FLOAT"`},
		{"short raw", func(r *inferencepb.ModelInferRequest) { r.RawInputContents[0] = r.RawInputContents[0][1:] }, codes.InvalidArgument, "raw_input_contents[0] has 12287 bytes; shape [1 3 32 32] of FP32 needs 12288"},
		{"raw count", func(r *inferencepb.ModelInferRequest) {
			r.RawInputContents = append(r.RawInputContents, nil)
		}, codes.InvalidArgument, "raw_input_contents has 2 entries for 1 inputs"},
		{"raw and contents", func(r *inferencepb.ModelInferRequest) {
			r.Inputs[0].Contents = &inferencepb.InferTensorContents{Fp32Contents: []float32{1}}
		}, codes.InvalidArgument, "use one or the other"},
		{"no data", func(r *inferencepb.ModelInferRequest) { r.RawInputContents = nil }, codes.InvalidArgument, "no data: set contents.fp32_contents"},
		{"typed count", func(r *inferencepb.ModelInferRequest) {
			r.RawInputContents = nil
			r.Inputs[0].Contents = &inferencepb.InferTensorContents{Fp32Contents: make([]float32, 5)}
		}, codes.InvalidArgument, "contents.fp32_contents has 5 values; the shape needs 3072"},
		{"typed field", func(r *inferencepb.ModelInferRequest) {
			r.RawInputContents = nil
			r.Inputs[0].Contents = &inferencepb.InferTensorContents{Fp64Contents: make([]float64, 3072)}
		}, codes.InvalidArgument, "datatype FP32 takes its values in contents.fp32_contents, but the request sets contents.fp64_contents"},
		{"negative dim", func(r *inferencepb.ModelInferRequest) { r.Inputs[0].Shape[0] = -1 }, codes.InvalidArgument, "must not be negative"},
		{"huge shape", func(r *inferencepb.ModelInferRequest) { r.Inputs[0].Shape = []int64{1 << 40, 1 << 40} }, codes.InvalidArgument, "more than"},
		{"wrong shape", func(r *inferencepb.ModelInferRequest) { r.Inputs[0].Shape = []int64{1, 3, 64, 16} }, codes.InvalidArgument, "dimension 2 of shape [1 3 64 16] is 64"},
		{"batch too big", func(r *inferencepb.ModelInferRequest) {
			r.Inputs[0].Shape[0] = 9
			r.RawInputContents[0] = bytes.Repeat(r.RawInputContents[0], 9)
		}, codes.InvalidArgument, "batch size 9"},
		{"unknown input", func(r *inferencepb.ModelInferRequest) { r.Inputs[0].Name = "image" }, codes.InvalidArgument, `unknown input "image"`},
		{"unknown output", func(r *inferencepb.ModelInferRequest) { r.Outputs[0].Name = "logits" }, codes.InvalidArgument, `unknown output "logits"; model "colors" has outputs ["output"]`},
		{"output twice", func(r *inferencepb.ModelInferRequest) { r.Outputs = append(r.Outputs, r.Outputs[0]) }, codes.InvalidArgument, `output "output" is requested twice`},
		{"classification type", func(r *inferencepb.ModelInferRequest) {
			r.Outputs[0].Parameters = map[string]*inferencepb.InferParameter{"classification": {ParameterChoice: &inferencepb.InferParameter_StringParam{StringParam: "3"}}}
		}, codes.InvalidArgument, `invalid value type for parameter "classification", expected int64_param`},
		{"classification negative", func(r *inferencepb.ModelInferRequest) {
			r.Outputs[0].Parameters = map[string]*inferencepb.InferParameter{"classification": {ParameterChoice: &inferencepb.InferParameter_Int64Param{Int64Param: -1}}}
		}, codes.InvalidArgument, "must be a number of classes, not -1"},
		{"shared memory", func(r *inferencepb.ModelInferRequest) {
			r.Inputs[0].Parameters = map[string]*inferencepb.InferParameter{"shared_memory_region": {ParameterChoice: &inferencepb.InferParameter_StringParam{StringParam: "r"}}}
		}, codes.InvalidArgument, "shared-memory extension is not supported"},
		{"fingerprint mismatch", func(r *inferencepb.ModelInferRequest) {
			r.Parameters = map[string]*inferencepb.InferParameter{"spec_fingerprint": {ParameterChoice: &inferencepb.InferParameter_StringParam{StringParam: "sha256:0"}}}
		}, codes.FailedPrecondition, "spec_fingerprint mismatch"},
		{"fingerprint type", func(r *inferencepb.ModelInferRequest) {
			r.Parameters = map[string]*inferencepb.InferParameter{"spec_fingerprint": {ParameterChoice: &inferencepb.InferParameter_BoolParam{BoolParam: true}}}
		}, codes.InvalidArgument, `parameter "spec_fingerprint" must be a string`},
		{"fingerprint match", func(r *inferencepb.ModelInferRequest) {
			r.Parameters = map[string]*inferencepb.InferParameter{"spec_fingerprint": {ParameterChoice: &inferencepb.InferParameter_StringParam{StringParam: fp}}}
		}, codes.OK, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := colorsRequest(t, [3]uint8{255, 0, 0})
			tt.edit(req)
			_, err := c.ModelInfer(ctx(t), req)
			wantCode(t, err, tt.code, tt.msg)
		})
	}
}

// TestDecodeContentsRanges checks that typed values must fit their type.
func TestDecodeContentsRanges(t *testing.T) {
	tests := []struct {
		datatype string
		c        *inferencepb.InferTensorContents
		msg      string
	}{
		{"INT8", &inferencepb.InferTensorContents{IntContents: []int32{128}}, "element 0 is 128, outside the range of DATA_TYPE_INT8"},
		{"INT16", &inferencepb.InferTensorContents{IntContents: []int32{-32769}}, "outside the range"},
		{"UINT8", &inferencepb.InferTensorContents{UintContents: []uint32{256}}, "outside the range"},
		{"UINT16", &inferencepb.InferTensorContents{UintContents: []uint32{70000}}, "outside the range"},
		{"FP16", &inferencepb.InferTensorContents{Fp32Contents: []float32{1}}, "FP16 has no typed contents field"},
		{"INT32", &inferencepb.InferTensorContents{Int64Contents: []int64{1}}, "takes its values in contents.int_contents"},
	}
	for _, tt := range tests {
		dt, err := oip.ParseDataType(tt.datatype)
		if err != nil {
			t.Fatal(err)
		}
		_, err = oip.DecodeContents(tt.datatype, dt, tt.c, 1)
		if err == nil || !strings.Contains(err.Error(), tt.msg) {
			t.Errorf("%s %v: %v, want an error containing %q", tt.datatype, tt.c, err, tt.msg)
		}
	}
}
