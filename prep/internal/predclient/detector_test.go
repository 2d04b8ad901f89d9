package predclient

import (
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	predv1 "github.com/prepred/prepred/api/gen/prepred/pred/v1"
	"github.com/prepred/prepred/api/spec"
	"github.com/prepred/prepred/prep/internal/fakepred"
	"github.com/prepred/prepred/prep/internal/imageprep"
)

// detectorMetadata is the colors model's metadata made a letterboxed
// detector of the given kind whose first output has the per-image shape
// dims (announced with the batch dimension), with the labels red, green,
// blue.
func detectorMetadata(t *testing.T, kind predv1.OutputKind, dims ...int64) *predv1.ModelMetadataResponse {
	t.Helper()
	md := fakepred.ColorsMetadata()
	md.OutputKind = kind
	md.Outputs[0].Shape = append([]int64{-1}, dims...)
	md.Labels = []string{"red", "green", "blue"}
	md.Preprocess.ResizeMode = predv1.ResizeMode_RESIZE_MODE_LETTERBOX
	md.Preprocess.PadColor = []uint32{114, 114, 114}
	md.Detection = spec.Detection(nil)
	refingerprint(t, md)
	return md
}

func TestNewContractDetectors(t *testing.T) {
	yolo, detections := predv1.OutputKind_OUTPUT_KIND_YOLO, predv1.OutputKind_OUTPUT_KIND_DETECTIONS
	tests := []struct {
		name        string
		md          *predv1.ModelMetadataResponse
		edit        func(md *predv1.ModelMetadataResponse)
		wantBoxes   int
		wantClasses int
		wantValues  int
		want        *predv1.Detection
	}{
		{"yolo", detectorMetadata(t, yolo, 7, 6400), nil, 6400, 3, 7 * 6400, spec.Detection(nil)},
		{"yolo with its own defaults", detectorMetadata(t, yolo, 7, 100), func(md *predv1.ModelMetadataResponse) {
			md.Detection = &predv1.Detection{ConfidenceThreshold: 0.5, IouThreshold: 0.6, MaxDetections: 10}
		}, 100, 3, 700, &predv1.Detection{ConfidenceThreshold: 0.5, IouThreshold: 0.6, MaxDetections: 10}},
		{"yolo from a pred that sends no defaults", detectorMetadata(t, yolo, 7, 100), func(md *predv1.ModelMetadataResponse) {
			md.Detection = nil
		}, 100, 3, 700, spec.Detection(nil)},
		{"yolo without labels", detectorMetadata(t, yolo, 7, 100), func(md *predv1.ModelMetadataResponse) { md.Labels = nil }, 100, 3, 700, spec.Detection(nil)},
		{"yolo unbatched, own batch dimension", detectorMetadata(t, yolo, 7, 100), func(md *predv1.ModelMetadataResponse) {
			md.MaxBatchSize = 0
			md.Inputs[0].Shape = []int64{1, 3, 32, 32}
			md.Outputs[0].Shape = []int64{1, 7, 100}
		}, 100, 3, 700, spec.Detection(nil)},
		{"detections", detectorMetadata(t, detections, 300, 6), nil, 300, 3, 1800, spec.Detection(nil)},
		{"detections without labels", detectorMetadata(t, detections, 300, 6), func(md *predv1.ModelMetadataResponse) { md.Labels = nil }, 300, 0, 1800, spec.Detection(nil)},
		{"detections with more labels than classes seen", detectorMetadata(t, detections, 5, 6), func(md *predv1.ModelMetadataResponse) {
			md.Labels = []string{"a", "b", "c", "d", "e", "f", "g"}
		}, 5, 7, 30, spec.Detection(nil)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.edit != nil {
				tt.edit(tt.md)
			}
			ct, err := newContract(tt.md, "colors", 0, imageprep.Limits{})
			if err != nil {
				t.Fatalf("newContract: %v", err)
			}
			d := ct.Detector
			if !ct.IsDetector() || d.Boxes != tt.wantBoxes || d.Classes != tt.wantClasses || ct.Classes != tt.wantValues {
				t.Fatalf("detector %+v, values %d; want %d boxes, %d classes, %d values", d, ct.Classes, tt.wantBoxes, tt.wantClasses, tt.wantValues)
			}
			if !proto.Equal(d.Defaults, tt.want) {
				t.Errorf("defaults %v, want %v", d.Defaults, tt.want)
			}
		})
	}
	ct, err := newContract(fakepred.ColorsMetadata(), "colors", 0, imageprep.Limits{})
	if err != nil || ct.IsDetector() || ct.Detector != nil {
		t.Errorf("the colors classifier: %v, contract %+v", err, ct)
	}
}

func TestNewContractRefusesDetectors(t *testing.T) {
	yolo, detections := predv1.OutputKind_OUTPUT_KIND_YOLO, predv1.OutputKind_OUTPUT_KIND_DETECTIONS
	tests := []struct {
		name string
		md   *predv1.ModelMetadataResponse
		edit func(md *predv1.ModelMetadataResponse)
		want string
	}{
		{"unknown output kind", detectorMetadata(t, yolo, 7, 100), func(md *predv1.ModelMetadataResponse) { md.OutputKind = 99 },
			"output_kind 99: prep knows LOGITS, PROBABILITIES, YOLO and DETECTIONS only"},
		{"unknown resize mode", detectorMetadata(t, yolo, 7, 100), func(md *predv1.ModelMetadataResponse) {
			md.Preprocess.ResizeMode = 99
			refingerprint(t, md)
		}, "resize_mode 99 is not supported by this prep (knows SQUASH, SHORTER_SIDE_CENTER_CROP, LETTERBOX)"},
		{"pad color out of range", detectorMetadata(t, yolo, 7, 100), func(md *predv1.ModelMetadataResponse) {
			md.Preprocess.PadColor = []uint32{114, 114, 999}
			refingerprint(t, md)
		}, "pad_color[2] 999"},
		{"yolo without classes", detectorMetadata(t, yolo, 4, 100), nil, "OUTPUT_KIND_YOLO needs [4 + classes, anchors]"},
		{"yolo flat", detectorMetadata(t, yolo, 700), nil, "OUTPUT_KIND_YOLO needs [4 + classes, anchors]"},
		{"yolo labels", detectorMetadata(t, yolo, 8, 100), nil, "3 labels for the 4 classes"},
		{"detections columns", detectorMetadata(t, detections, 300, 7), nil, "OUTPUT_KIND_DETECTIONS needs [K, 6]"},
		{"detection out of range", detectorMetadata(t, yolo, 7, 100), func(md *predv1.ModelMetadataResponse) {
			md.Detection = &predv1.Detection{IouThreshold: 1.5}
		}, "detection settings: iou_threshold 1.5"},
		{"classifier with detection settings", fakepred.ColorsMetadata(), func(md *predv1.ModelMetadataResponse) {
			md.Detection = spec.Detection(nil)
		}, "output_kind OUTPUT_KIND_LOGITS is a classifier's, but the model announces detection settings"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.edit != nil {
				tt.edit(tt.md)
			}
			ct, err := newContract(tt.md, "colors", 0, imageprep.Limits{})
			if err == nil || ct != nil {
				t.Fatalf("newContract accepted %v", tt.md)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("newContract error = %q, want it to contain %q", err, tt.want)
			}
		})
	}
}
