package ortserver_test

import (
	"bytes"
	"context"
	"slices"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	onnxpb "github.com/prepred/prepred/api/gen/onnx"
	ortserverpb "github.com/prepred/prepred/api/gen/onnxruntime/server"
	"github.com/prepred/prepred/pred/internal/infertest"
	"github.com/prepred/prepred/pred/internal/ortserver"
	"github.com/prepred/prepred/pred/internal/tensor"
	"github.com/prepred/prepred/pred/internal/testmodels"
)

// tensorSeeds are TensorProtos as clients send them: raw_data and every
// typed field, and STRING tensors right and wrong.
func tensorSeeds(t testing.TB) []*onnxpb.TensorProto {
	var seeds []*onnxpb.TensorProto
	for _, s := range testmodels.Samples() {
		seeds = append(seeds, rawTensor(t, s))
	}
	stringRaw := stringTensor([]int64{1, 3})
	stringRaw.RawData = tensor.FromStrings([]string{"a", "bc", ""})
	return append(seeds,
		&onnxpb.TensorProto{Dims: []int64{2}, DataType: dataType(onnxpb.TensorProto_FLOAT), FloatData: []float32{1, -2}},
		&onnxpb.TensorProto{Dims: []int64{2}, DataType: dataType(onnxpb.TensorProto_DOUBLE), DoubleData: []float64{1, -2}},
		&onnxpb.TensorProto{Dims: []int64{1, 2}, DataType: dataType(onnxpb.TensorProto_INT8), Int32Data: []int32{-128, 127}},
		&onnxpb.TensorProto{Dims: []int64{2}, DataType: dataType(onnxpb.TensorProto_FLOAT16), Int32Data: []int32{0x3c00, 0xfc00}},
		&onnxpb.TensorProto{Dims: []int64{2}, DataType: dataType(onnxpb.TensorProto_BOOL), Int32Data: []int32{0, 1}},
		&onnxpb.TensorProto{Dims: []int64{2}, DataType: dataType(onnxpb.TensorProto_INT64), Int64Data: []int64{-1, 1 << 40}},
		&onnxpb.TensorProto{Dims: []int64{2}, DataType: dataType(onnxpb.TensorProto_UINT32), Uint64Data: []uint64{0, 1<<32 - 1}},
		stringTensor([]int64{1}, "a"),
		stringTensor([]int64{2, 3}, "", "héllo", "x", "\xff", "y", "z"),
		stringTensor([]int64{0, 3}),
		stringTensor([]int64{1, 3}, "a", "b\x00", "c"),
		stringTensor([]int64{1, 3}, "a", "b"),
		stringRaw,
	)
}

// FuzzDecodeTensor decodes arbitrary TensorProtos: each must fail or give
// exactly the bytes its type and shape need.
func FuzzDecodeTensor(f *testing.F) {
	for _, tp := range tensorSeeds(f) {
		b, err := proto.Marshal(tp)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		tp := &onnxpb.TensorProto{}
		if proto.Unmarshal(data, tp) != nil {
			return
		}
		got, err := ortserver.DecodeTensor(tp)
		if err != nil {
			return
		}
		if err := tensor.CheckData(got.DType, got.Shape, got.Data); err != nil {
			t.Fatalf("%d bytes for %v %v: %v", len(got.Data), got.DType, got.Shape, err)
		}
		if tensor.ONNXType(got.DType) != onnxpb.TensorProto_DataType(tp.GetDataType()) {
			t.Fatalf("data_type %d decoded as %v", tp.GetDataType(), got.DType)
		}
		if tensor.IsString(got.DType) {
			elems, err := tensor.Strings(got.Data, int64(len(tp.GetStringData())))
			if err != nil || len(tp.GetRawData()) != 0 || !slices.EqualFunc(elems, tp.GetStringData(), bytes.Equal) {
				t.Fatalf("string_data %q (raw_data %x) decoded as %x (%v)", tp.GetStringData(), tp.GetRawData(), got.Data, err)
			}
		}
	})
}

// FuzzPredict sends arbitrary PredictRequests to the models of every
// element type and to the colors model: each must end in a client error or
// in outputs that hold exactly the elements their type and shape need.
func FuzzPredict(f *testing.F) {
	env := infertest.Setup(f)
	models := append([]string{"colors", testmodels.DTypes}, testmodels.IdentityModels()...)
	// Each seed goes to the model it fits: the first byte is the index
	// into models.
	add := func(model string, req *ortserverpb.PredictRequest) {
		b, err := proto.Marshal(req)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(uint8(max(slices.Index(models, model), 0)), b)
	}
	add("colors", colorsRequest(f, [3]uint8{255, 0, 0}))
	all := &ortserverpb.PredictRequest{Inputs: map[string]*onnxpb.TensorProto{}, OutputFilter: []string{"int8_out", "string_out"}}
	for _, s := range testmodels.Samples() {
		all.Inputs[s.Name] = rawTensor(f, s)
	}
	add(testmodels.DTypes, all)
	for _, tp := range tensorSeeds(f) {
		model := "colors"
		for _, s := range testmodels.Samples() {
			if tensor.ONNXType(s.DType) == onnxpb.TensorProto_DataType(tp.GetDataType()) {
				model = testmodels.Identity(s)
			}
		}
		add(model, &ortserverpb.PredictRequest{Inputs: map[string]*onnxpb.TensorProto{"x": tp}})
	}
	svc := ortserver.New(env.Runner, ortserver.Options{})
	f.Fuzz(func(t *testing.T, model uint8, data []byte) {
		req := &ortserverpb.PredictRequest{}
		if proto.Unmarshal(data, req) != nil {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		ctx = metadata.NewIncomingContext(ctx, metadata.Pairs("model-name", models[int(model)%len(models)]))
		resp, err := svc.Predict(ctx, req)
		if code := status.Code(err); !slices.Contains([]codes.Code{codes.OK, codes.InvalidArgument, codes.NotFound}, code) {
			t.Fatalf("Predict: %v", err)
		}
		for name, o := range resp.GetOutputs() {
			dt, ok := tensor.FromONNXType(onnxpb.TensorProto_DataType(o.GetDataType()))
			if !ok {
				t.Fatalf("output %q: data_type %d", name, o.GetDataType())
			}
			if tensor.IsString(dt) {
				n, err := tensor.ElementCount(o.GetDims())
				if err != nil || n != int64(len(o.GetStringData())) || len(o.GetRawData()) != 0 {
					t.Fatalf("output %q: %d string_data values and %d raw_data bytes for STRING %v", name, len(o.GetStringData()), len(o.GetRawData()), o.GetDims())
				}
				continue
			}
			size, err := tensor.ByteSize(dt, o.GetDims())
			if err != nil || size != int64(len(o.GetRawData())) || len(o.GetStringData()) != 0 {
				t.Fatalf("output %q: %d bytes for %v %v", name, len(o.GetRawData()), o.GetDataType(), o.GetDims())
			}
		}
	})
}
