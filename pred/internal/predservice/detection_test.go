package predservice_test

import (
	"testing"

	"google.golang.org/protobuf/proto"

	predv1 "github.com/prepred/prepred/api/gen/prepred/pred/v1"
	"github.com/prepred/prepred/api/spec"
)

// TestModelMetadataDetector checks that a detector's metadata carries its
// detection settings with the unset ones defaulted, and a classifier's none.
func TestModelMetadataDetector(t *testing.T) {
	f := setup(t)
	md, err := f.client.ModelMetadata(ctx(t), &predv1.ModelMetadataRequest{Model: "squares"})
	if err != nil {
		t.Fatal(err)
	}
	if md.GetOutputKind() != predv1.OutputKind_OUTPUT_KIND_YOLO {
		t.Errorf("output_kind %v, want YOLO", md.GetOutputKind())
	}
	// The generated config sets confidence_threshold 0.5 only.
	want := &predv1.Detection{ConfidenceThreshold: 0.5, IouThreshold: spec.DefaultIoUThreshold, MaxDetections: spec.DefaultMaxDetections}
	if !proto.Equal(md.GetDetection(), want) {
		t.Errorf("detection = %v, want %v", md.GetDetection(), want)
	}
	if got := md.GetPreprocess().GetResizeMode(); got != predv1.ResizeMode_RESIZE_MODE_LETTERBOX {
		t.Errorf("resize_mode %v, want LETTERBOX", got)
	}
	if len(md.GetLabels()) != 3 || len(md.GetOutputs()) != 1 || len(md.GetOutputs()[0].GetShape()) != 3 {
		t.Errorf("labels %v, outputs %v", md.GetLabels(), md.GetOutputs())
	}
	md, err = f.client.ModelMetadata(ctx(t), &predv1.ModelMetadataRequest{Model: "colors"})
	if err != nil {
		t.Fatal(err)
	}
	if md.GetDetection() != nil {
		t.Errorf("the colors classifier announces detection %v", md.GetDetection())
	}
}
