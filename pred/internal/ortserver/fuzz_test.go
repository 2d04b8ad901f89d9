package ortserver_test

import (
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
// typed field.
func tensorSeeds() []*onnxpb.TensorProto {
	var seeds []*onnxpb.TensorProto
	for _, s := range testmodels.Samples() {
		seeds = append(seeds, &onnxpb.TensorProto{Dims: []int64{1, 3}, DataType: dataType(tensor.ONNXType(s.DType)), RawData: s.Raw})
	}
	return append(seeds,
		&onnxpb.TensorProto{Dims: []int64{2}, DataType: dataType(onnxpb.TensorProto_FLOAT), FloatData: []float32{1, -2}},
		&onnxpb.TensorProto{Dims: []int64{2}, DataType: dataType(onnxpb.TensorProto_DOUBLE), DoubleData: []float64{1, -2}},
		&onnxpb.TensorProto{Dims: []int64{1, 2}, DataType: dataType(onnxpb.TensorProto_INT8), Int32Data: []int32{-128, 127}},
		&onnxpb.TensorProto{Dims: []int64{2}, DataType: dataType(onnxpb.TensorProto_FLOAT16), Int32Data: []int32{0x3c00, 0xfc00}},
		&onnxpb.TensorProto{Dims: []int64{2}, DataType: dataType(onnxpb.TensorProto_BOOL), Int32Data: []int32{0, 1}},
		&onnxpb.TensorProto{Dims: []int64{2}, DataType: dataType(onnxpb.TensorProto_INT64), Int64Data: []int64{-1, 1 << 40}},
		&onnxpb.TensorProto{Dims: []int64{2}, DataType: dataType(onnxpb.TensorProto_UINT32), Uint64Data: []uint64{0, 1<<32 - 1}},
		&onnxpb.TensorProto{Dims: []int64{1}, DataType: dataType(onnxpb.TensorProto_STRING), StringData: [][]byte{[]byte("a")}},
	)
}

// FuzzDecodeTensor decodes arbitrary TensorProtos: each must fail or give
// exactly the bytes its type and shape need.
func FuzzDecodeTensor(f *testing.F) {
	for _, tp := range tensorSeeds() {
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
		size, err := tensor.ByteSize(got.DType, got.Shape)
		if err != nil || size != int64(len(got.Data)) {
			t.Fatalf("%d bytes for %v %v (%v)", len(got.Data), got.DType, got.Shape, err)
		}
		if tensor.ONNXType(got.DType) != onnxpb.TensorProto_DataType(tp.GetDataType()) {
			t.Fatalf("data_type %d decoded as %v", tp.GetDataType(), got.DType)
		}
	})
}

// FuzzPredict sends arbitrary PredictRequests to the models of every
// element type and to the colors model: each must end in a client error or
// in outputs of the size their type and shape need.
func FuzzPredict(f *testing.F) {
	env := infertest.Setup(f)
	seeds := []*ortserverpb.PredictRequest{colorsRequest(f, [3]uint8{255, 0, 0})}
	all := &ortserverpb.PredictRequest{Inputs: map[string]*onnxpb.TensorProto{}, OutputFilter: []string{"int8_out"}}
	for _, s := range testmodels.Samples() {
		all.Inputs[s.Name] = &onnxpb.TensorProto{Dims: []int64{1, 3}, DataType: dataType(tensor.ONNXType(s.DType)), RawData: s.Raw}
	}
	seeds = append(seeds, all)
	for _, tp := range tensorSeeds() {
		seeds = append(seeds, &ortserverpb.PredictRequest{Inputs: map[string]*onnxpb.TensorProto{"x": tp}})
	}
	for i, req := range seeds {
		b, err := proto.Marshal(req)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(uint8(i), b)
	}
	models := append([]string{"colors", testmodels.DTypes}, testmodels.IdentityModels()...)
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
			size, err := tensor.ByteSize(dt, o.GetDims())
			if !ok || err != nil || size != int64(len(o.GetRawData())) {
				t.Fatalf("output %q: %d bytes for %v %v", name, len(o.GetRawData()), o.GetDataType(), o.GetDims())
			}
		}
	})
}
