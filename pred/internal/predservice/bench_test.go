package predservice_test

import (
	"bytes"
	"context"
	"fmt"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

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

// BenchmarkInProcessResNet50Batch runs ResNet-50 through the registry on
// batches of 1, 2, 4 and 8 images and reports images/s: the per-image
// cost of each batch size, which preferred_batch_size should favour.
func BenchmarkInProcessResNet50Batch(b *testing.B) {
	f := setup(b)
	v, release, err := f.reg.Acquire("resnet50", 0)
	if err != nil {
		b.Fatal(err)
	}
	defer release()
	ctx := context.Background()
	for _, n := range []int64{1, 2, 4, 8} {
		b.Run(fmt.Sprintf("batch=%d", n), func(b *testing.B) {
			data := bytes.Repeat(resnetImage(), int(n))
			in := []tensor.Tensor{{Name: "input", DType: predv1.DataType_DATA_TYPE_FLOAT32, Shape: []int64{n, 3, 224, 224}, Data: data}}
			if _, err := v.Predict(ctx, in); err != nil { // sizes the arena for this batch
				b.Fatal(err)
			}
			for b.Loop() {
				if _, err := v.Predict(ctx, in); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "images/s")
		})
	}
}

// BenchmarkGRPCTransportResNet50 sends a ResNet-50 input that pred
// receives, decodes and refuses (its spec fingerprint is wrong) before
// running anything: the cost of moving 602 KB through gRPC over loopback,
// both ends included.
func BenchmarkGRPCTransportResNet50(b *testing.B) {
	f := setup(b)
	req := &predv1.PredictRequest{Model: "resnet50", SpecFingerprint: "sha256:00", Inputs: []*predv1.Tensor{{
		Name: "input", Dtype: predv1.DataType_DATA_TYPE_FLOAT32, Shape: []int64{1, 3, 224, 224}, RawData: resnetImage(),
	}}}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := f.client.Predict(ctx, req); status.Code(err) != codes.FailedPrecondition {
			b.Fatalf("Predict = %v, want FAILED_PRECONDITION", err)
		}
	}
}
