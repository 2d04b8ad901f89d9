package spec

import (
	"fmt"
	"math"

	"google.golang.org/protobuf/proto"

	predv1 "github.com/prepred/prepred/api/gen/prepred/pred/v1"
)

// The defaults of a detector's post-processing (Ultralytics' predict
// defaults), taken where a model's Detection leaves a field at 0.
const (
	DefaultConfidenceThreshold = 0.25
	DefaultIoUThreshold        = 0.45
	DefaultMaxDetections       = 300
)

// MaxDetectionsLimit bounds Detection.max_detections (and a request's
// override of it): more boxes than this on one image are no longer a
// detection anyone reads.
const MaxDetectionsLimit = 10000

// IsDetector reports whether k is an output kind whose output holds boxes
// (OUTPUT_KIND_YOLO, OUTPUT_KIND_DETECTIONS) rather than class scores.
func IsDetector(k predv1.OutputKind) bool {
	return k == predv1.OutputKind_OUTPUT_KIND_YOLO || k == predv1.OutputKind_OUTPUT_KIND_DETECTIONS
}

// Detection returns a copy of d with each field left at 0 set to its
// default; d may be nil. It does not check ranges: see CheckDetection.
func Detection(d *predv1.Detection) *predv1.Detection {
	out := &predv1.Detection{}
	if d != nil {
		out = proto.Clone(d).(*predv1.Detection)
	}
	if out.ConfidenceThreshold == 0 {
		out.ConfidenceThreshold = DefaultConfidenceThreshold
	}
	if out.IouThreshold == 0 {
		out.IouThreshold = DefaultIoUThreshold
	}
	if out.MaxDetections == 0 {
		out.MaxDetections = DefaultMaxDetections
	}
	return out
}

// CheckDetection returns an error naming the first field of d (after
// defaults) outside its range: confidence_threshold 0..1, iou_threshold
// (0, 1], max_detections 1..MaxDetectionsLimit.
func CheckDetection(d *predv1.Detection) error {
	d = Detection(d)
	if c := float64(d.GetConfidenceThreshold()); math.IsNaN(c) || c < 0 || c > 1 {
		return fmt.Errorf("confidence_threshold %v is outside 0..1", d.GetConfidenceThreshold())
	}
	if u := float64(d.GetIouThreshold()); math.IsNaN(u) || u <= 0 || u > 1 {
		return fmt.Errorf("iou_threshold %v is outside (0, 1]", d.GetIouThreshold())
	}
	if m := d.GetMaxDetections(); m < 1 || m > MaxDetectionsLimit {
		return fmt.Errorf("max_detections %d is outside 1..%d", m, MaxDetectionsLimit)
	}
	return nil
}
