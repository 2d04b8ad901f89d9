package repository

import (
	predv1 "github.com/prepred/prepred/api/gen/prepred/pred/v1"
	"github.com/prepred/prepred/api/spec"
)

// Shapes of the detector output kinds (see OutputKind in config.proto).
const (
	// yoloBoxRows are the rows of an OUTPUT_KIND_YOLO output before the
	// class scores: cx, cy, w, h.
	yoloBoxRows = 4
	// detectionColumns are the values of an OUTPUT_KIND_DETECTIONS row:
	// x1, y1, x2, y2, score, class.
	detectionColumns = 6
)

// validateDetection checks the detection settings, and for the detector
// kinds the shape of the first output.
func validateDetection(p *problems, cfg *predv1.ModelConfig) {
	kind := cfg.GetOutputKind()
	if !spec.IsDetector(kind) {
		if cfg.GetDetection() != nil {
			p.addf("detection is set but output_kind is %v; it configures the detector kinds OUTPUT_KIND_YOLO and OUTPUT_KIND_DETECTIONS only", kind)
		}
		return
	}
	if err := spec.CheckDetection(cfg.GetDetection()); err != nil {
		p.addf("detection.%v", err)
	}
	outs := cfg.GetOutputs()
	if len(outs) == 0 {
		return // reported by validateTensors
	}
	out := outs[0]
	dims := perImageShape(out.GetShape(), cfg.GetMaxBatchSize())
	fixed := len(dims) == 2 && dims[0] > 0 && dims[1] > 0
	switch kind {
	case predv1.OutputKind_OUTPUT_KIND_YOLO:
		if !fixed || dims[0] <= yoloBoxRows {
			p.addf("outputs[0] %q has shape %v (batch dimension excluded); OUTPUT_KIND_YOLO needs fixed [4 + classes, anchors], e.g. [84, 8400] for 80 classes", out.GetName(), dims)
		}
	case predv1.OutputKind_OUTPUT_KIND_DETECTIONS:
		if !fixed || dims[1] != detectionColumns {
			p.addf("outputs[0] %q has shape %v (batch dimension excluded); OUTPUT_KIND_DETECTIONS needs fixed [K, 6] (x1, y1, x2, y2, score, class)", out.GetName(), dims)
		}
	}
}

// perImageShape is a configured output shape without its batch dimension:
// the shape itself when max_batch_size > 0 (configs exclude it), the shape
// less its first dimension when max_batch_size is 0 and the model has a
// batch dimension of its own (3 dimensions, the first 1 or -1).
func perImageShape(shape []int64, mbs int32) []int64 {
	if mbs == 0 && len(shape) == 3 && (shape[0] == 1 || shape[0] == -1) {
		return shape[1:]
	}
	return shape
}

// yoloClasses is the number of classes of an OUTPUT_KIND_YOLO output
// (validated: [4 + classes, anchors] per image), 0 when its shape is not
// that.
func yoloClasses(cfg *predv1.ModelConfig) int64 {
	dims := perImageShape(cfg.GetOutputs()[0].GetShape(), cfg.GetMaxBatchSize())
	if len(dims) != 2 {
		return 0
	}
	return max(dims[0]-yoloBoxRows, 0)
}
