package predservice_test

import (
	"context"
	"testing"

	inferencepb "github.com/prepred/prepred/api/gen/inference"
	predv1 "github.com/prepred/prepred/api/gen/prepred/pred/v1"
	"github.com/prepred/prepred/pred/internal/tensor"
)

// resnetImage is one ResNet-50 input of constant bytes; the cost of a
// convolutional network does not depend on the values.
func resnetImage() []byte { return make([]byte, 3*224*224*4) }

// BenchmarkInProcessResNet50 runs ResNet-50 on batches of 1 through the
// registry, validation included, without any transport: the cost of the
// model itself.
func BenchmarkInProcessResNet50(b *testing.B) {
	f := setup(b)
	v, release, err := f.reg.Acquire("resnet50", 0)
	if err != nil {
		b.Fatal(err)
	}
	defer release()
	in := []tensor.Tensor{{Name: "input", DType: predv1.DataType_DATA_TYPE_FLOAT32, Shape: []int64{1, 3, 224, 224}, Data: resnetImage()}}
	ctx := context.Background()
	// The first run of a session sizes its memory arena: keep it out.
	if _, err := v.Predict(ctx, in); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := v.Predict(ctx, in); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkGRPCResNet50 sends the same request through the gRPC server
// over loopback: the model plus pred's transport overhead.
func BenchmarkGRPCResNet50(b *testing.B) {
	f := setup(b)
	req := &predv1.PredictRequest{Model: "resnet50", Inputs: []*predv1.Tensor{{
		Name: "input", Dtype: predv1.DataType_DATA_TYPE_FLOAT32, Shape: []int64{1, 3, 224, 224}, RawData: resnetImage(),
	}}}
	ctx := context.Background()
	if _, err := f.client.Predict(ctx, req); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := f.client.Predict(ctx, req); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkOIPGRPCResNet50 is BenchmarkGRPCResNet50 through the Open
// Inference Protocol's ModelInfer (raw_input_contents in,
// raw_output_contents out), on the same server: the two protocols' costs
// side by side.
func BenchmarkOIPGRPCResNet50(b *testing.B) {
	f := setup(b)
	req := &inferencepb.ModelInferRequest{
		ModelName:        "resnet50",
		Inputs:           []*inferencepb.ModelInferRequest_InferInputTensor{{Name: "input", Datatype: "FP32", Shape: []int64{1, 3, 224, 224}}},
		RawInputContents: [][]byte{resnetImage()},
	}
	ctx := context.Background()
	if _, err := f.oip.ModelInfer(ctx, req); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := f.oip.ModelInfer(ctx, req); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkGRPCColors measures the transport on a model that costs almost
// nothing, so that pred's per-request overhead shows.
func BenchmarkGRPCColors(b *testing.B) {
	f := setup(b)
	req := f.colorsRequest(b, [3]uint8{255, 0, 0})
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := f.client.Predict(ctx, req); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkOIPGRPCColors is BenchmarkGRPCColors through the Open
// Inference Protocol: its per-request overhead beside the native one.
func BenchmarkOIPGRPCColors(b *testing.B) {
	f := setup(b)
	native := f.colorsRequest(b, [3]uint8{255, 0, 0})
	req := &inferencepb.ModelInferRequest{
		ModelName:        "colors",
		Inputs:           []*inferencepb.ModelInferRequest_InferInputTensor{{Name: "input", Datatype: "FP32", Shape: native.Inputs[0].Shape}},
		RawInputContents: [][]byte{native.Inputs[0].RawData},
	}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := f.oip.ModelInfer(ctx, req); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkInProcessColors is BenchmarkGRPCColors without the transport.
func BenchmarkInProcessColors(b *testing.B) {
	f := setup(b)
	v, release, err := f.reg.Acquire("colors", 0)
	if err != nil {
		b.Fatal(err)
	}
	defer release()
	req := f.colorsRequest(b, [3]uint8{255, 0, 0})
	in := []tensor.Tensor{{Name: "input", DType: req.Inputs[0].Dtype, Shape: req.Inputs[0].Shape, Data: req.Inputs[0].RawData}}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := v.Predict(ctx, in); err != nil {
			b.Fatal(err)
		}
	}
}
