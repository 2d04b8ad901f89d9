package predservice_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	predv1 "github.com/prepred/prepred/api/gen/prepred/pred/v1"
	"github.com/prepred/prepred/pred/internal/predservice"
	"github.com/prepred/prepred/pred/internal/tensor"
	"github.com/prepred/prepred/pred/internal/testmodels"
)

// FuzzPredict sends arbitrary native PredictRequests through validation
// and, when they pass, ONNX Runtime: each must end in a client error or in
// outputs whose bytes encode their type and shape.
func FuzzPredict(f *testing.F) {
	fx := setup(f)
	seeds := []*predv1.PredictRequest{
		fx.colorsRequest(f, [3]uint8{255, 0, 0}),
		fx.colorsRequest(f, [3]uint8{0, 0, 255}, [3]uint8{7, 7, 7}),
		{Model: "colors", Version: 1, Inputs: []*predv1.Tensor{{Dtype: predv1.DataType_DATA_TYPE_FLOAT32, Shape: []int64{1, 3, 32, 32}, RawData: make([]byte, 12288)}}},
		{Model: "colors", SpecFingerprint: "sha256:0", Inputs: []*predv1.Tensor{{Name: "input", Dtype: predv1.DataType_DATA_TYPE_FLOAT16, Shape: []int64{1, 3, 32, 32}, RawData: make([]byte, 6144)}}},
	}
	dtypes := &predv1.PredictRequest{Model: testmodels.DTypes}
	for _, s := range testmodels.Samples() {
		dtypes.Inputs = append(dtypes.Inputs, &predv1.Tensor{Name: s.Name, Dtype: s.DType, Shape: []int64{1, 3}, RawData: s.Raw})
	}
	seeds = append(seeds, dtypes)
	for _, req := range seeds {
		b, err := proto.Marshal(req)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	svc := predservice.New(fx.reg, fx.metrics)
	clientErrors := []codes.Code{codes.OK, codes.InvalidArgument, codes.NotFound, codes.FailedPrecondition, codes.Unavailable}
	f.Fuzz(func(t *testing.T, data []byte) {
		req := &predv1.PredictRequest{}
		if proto.Unmarshal(data, req) != nil {
			return
		}
		if req.GetModel() == "resnet50" {
			return // valid requests take a second each: keep the fuzzer on the cheap model
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		resp, err := svc.Predict(ctx, req)
		if code := status.Code(err); !slices.Contains(clientErrors, code) {
			t.Fatalf("Predict: %v", err)
		}
		for _, o := range resp.GetOutputs() {
			if err := tensor.CheckData(o.GetDtype(), o.GetShape(), o.GetRawData()); err != nil {
				t.Fatalf("output %q: %v", o.GetName(), err)
			}
		}
	})
}
