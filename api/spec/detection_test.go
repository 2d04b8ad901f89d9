package spec

import (
	"strings"
	"testing"

	predv1 "github.com/prepred/prepred/api/gen/prepred/pred/v1"
)

func TestDetectionDefaults(t *testing.T) {
	d := Detection(nil)
	if d.GetConfidenceThreshold() != DefaultConfidenceThreshold || d.GetIouThreshold() != DefaultIoUThreshold || d.GetMaxDetections() != DefaultMaxDetections {
		t.Fatalf("Detection(nil) = %v, want the defaults", d)
	}
	in := &predv1.Detection{ConfidenceThreshold: 0.5, MaxDetections: 7}
	d = Detection(in)
	if d.GetConfidenceThreshold() != 0.5 || d.GetIouThreshold() != DefaultIoUThreshold || d.GetMaxDetections() != 7 {
		t.Fatalf("Detection(%v) = %v", in, d)
	}
	if in.GetIouThreshold() != 0 {
		t.Fatalf("Detection modified its argument: %v", in)
	}
}

func TestCheckDetection(t *testing.T) {
	for _, tc := range []struct {
		d    *predv1.Detection
		want string // "" for valid
	}{
		{nil, ""},
		{&predv1.Detection{ConfidenceThreshold: 1, IouThreshold: 1, MaxDetections: MaxDetectionsLimit}, ""},
		{&predv1.Detection{ConfidenceThreshold: 1.5}, "confidence_threshold 1.5 is outside 0..1"},
		{&predv1.Detection{ConfidenceThreshold: -0.1}, "confidence_threshold"},
		{&predv1.Detection{IouThreshold: 1.01}, "iou_threshold 1.01 is outside (0, 1]"},
		{&predv1.Detection{IouThreshold: -1}, "iou_threshold"},
		{&predv1.Detection{MaxDetections: -3}, "max_detections -3 is outside 1..10000"},
		{&predv1.Detection{MaxDetections: MaxDetectionsLimit + 1}, "max_detections"},
	} {
		err := CheckDetection(tc.d)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("CheckDetection(%v) = %v, want nil", tc.d, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("CheckDetection(%v) = %v, want an error containing %q", tc.d, err, tc.want)
		}
	}
}

func TestIsDetector(t *testing.T) {
	for k, want := range map[predv1.OutputKind]bool{
		predv1.OutputKind_OUTPUT_KIND_UNSPECIFIED:   false,
		predv1.OutputKind_OUTPUT_KIND_LOGITS:        false,
		predv1.OutputKind_OUTPUT_KIND_PROBABILITIES: false,
		predv1.OutputKind_OUTPUT_KIND_YOLO:          true,
		predv1.OutputKind_OUTPUT_KIND_DETECTIONS:    true,
		99:                                          false,
	} {
		if got := IsDetector(k); got != want {
			t.Errorf("IsDetector(%v) = %v, want %v", k, got, want)
		}
	}
}
