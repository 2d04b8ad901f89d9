package modelgen

import (
	"fmt"

	onnxpb "github.com/prepred/prepred/api/gen/onnx"
)

// The squares model is an object detector with exactly known semantics,
// written with plain ONNX operators and no trained weights. It finds solid
// red, green and blue axis-aligned rectangles (squares included) whose sides
// are at least SquaresMinSide pixels of its 640x640 input, on a background
// of no class (white, light gray, Ultralytics' pad gray 114), and answers
// in the layout of a YOLOv8/YOLO11 export (OUTPUT_KIND_YOLO), so prep serves
// it through the same code path as a real one.
//
// Input "images" [N, 3, 640, 640]: RGB, letterboxed, 8-bit values scaled
// to [0, 1] (no mean or std). Output "output0" [N, 7, 6400]: one column per
// anchor, anchor a = 80*j + i at pixel (8i+4, 8j+4) (a stride-8 grid), rows
// cx, cy, w, h (input pixels), then the scores of red, green and blue.
//
// Per anchor:
//  1. A pixel is of class red when R > SquaresHigh and G, B < SquaresLow
//     (green and blue likewise); at most one class holds, and the pad gray
//     (0.447), white and light grays are none.
//  2. Along the anchor's row, the run of pixels of the anchor's class that
//     holds the anchor gives x1 (its first pixel) and x2 (one past its
//     last); along its column, y1 and y2. For an anchor inside a solid
//     rectangle these are the rectangle's edges, exactly. The runs come
//     from cumulative maxima over the row and column, computed in 10
//     doubling steps (Pad, Slice, Max) on the 80 anchor rows and columns
//     only, not on the whole image.
//  3. Its box is (cx, cy, w, h) = ((x1+x2)/2, (y1+y2)/2, x2-x1, y2-y1); its
//     score for the class is SquaresScore when w and h are both at least
//     SquaresMinSide, 0 otherwise; the other scores are 0, as is the box
//     of an anchor of no class.
//
// So every anchor inside a rectangle reports the rectangle: the many
// identical boxes are what non-maximum suppression merges, as for a real
// YOLO head. A shape that is not a rectangle gets, per anchor, the extent of
// the row and column through that anchor (a circle: its chords). Anchors
// sample every 8th pixel, so a rectangle of 8 pixels or more per side holds
// at least one; the size threshold then keeps those of SquaresMinSide.
const (
	squaresImageSize = 640
	squaresStride    = 8
	squaresGrid      = squaresImageSize / squaresStride
	// SquaresAnchors is the number of anchors (columns of the output).
	SquaresAnchors = squaresGrid * squaresGrid
	// SquaresMinSide is the shortest side, in input pixels, of a detected
	// rectangle.
	SquaresMinSide = 40
	// SquaresScore is a detected rectangle's score for its class.
	SquaresScore = 0.9
	// SquaresHigh and SquaresLow are the channel levels (in [0, 1]) above
	// which a channel is on and below which it is off.
	SquaresHigh = 0.6
	SquaresLow  = 0.4
	// squaresMaxBatch is the squares model's max_batch_size.
	squaresMaxBatch = 4
	// squaresCummaxSteps doubling steps cover shifts up to 1023 >= 639.
	squaresCummaxSteps = 10
	// squaresConfidence is the model's default confidence threshold:
	// its scores are SquaresScore or 0.
	squaresConfidence = 0.5
)

// SquaresLabels are the squares model's classes, in output order.
var SquaresLabels = [...]string{"red", "green", "blue"}

// SquaresAnchor returns the input pixel that anchor a samples.
func SquaresAnchor(a int) (x, y int) {
	return squaresStride*(a%squaresGrid) + squaresStride/2, squaresStride*(a/squaresGrid) + squaresStride/2
}

// squares builds the graph.
type squares struct {
	*graph
}

// Axes of an NCHW tensor.
const (
	axisC = 1
	axisH = 2
	axisW = 3
)

// scalar returns a float32 scalar initializer, made once per name.
func (s squares) scalar(name string, v float32) string {
	for _, init := range s.g.Initializer {
		if init.GetName() == name {
			return name
		}
	}
	return s.initializer(name, nil, []float32{v})
}

// ints returns a 1-D int64 initializer, made once per name.
func (s squares) ints(name string, v ...int64) string {
	for _, init := range s.g.Initializer {
		if init.GetName() == name {
			return name
		}
	}
	return s.int64Initializer(name, []int64{int64(len(v))}, v)
}

// slice returns x[start:end:step] along axis.
func (s squares) slice(x string, axis, start, end, step int64) string {
	return s.op("Slice", "/Slice", []string{x,
		s.ints(fmt.Sprintf("slice.start_%d", start), start),
		s.ints(fmt.Sprintf("slice.end_%d", end), end),
		s.ints(fmt.Sprintf("slice.axis_%d", axis), axis),
		s.ints(fmt.Sprintf("slice.step_%d", step), step),
	})
}

// anchors samples x at the anchor positions along axis.
func (s squares) anchors(x string, axis int64) string {
	return s.slice(x, axis, squaresStride/2, squaresImageSize, squaresStride)
}

// shift returns x moved by k along axis (toward higher indices for k > 0),
// with zeros shifted in: y[i] = x[i-k].
func (s squares) shift(x string, axis, k int64) string {
	pads := make([]int64, 8)
	var start int64
	if k > 0 {
		pads[axis] = k
	} else {
		pads[4+axis] = -k
		start = -k
	}
	name := fmt.Sprintf("pad.axis%d_shift%d", axis, k)
	padded := s.op("Pad", "/Pad", []string{x, s.ints(name, pads...)})
	return s.slice(padded, axis, start, start+squaresImageSize, 1)
}

// cummax returns the running maximum of x along axis, from low indices to
// high for dir 1 (y[i] = max x[..i]), from high to low for dir -1, in
// doubling steps y[i] = max(y[i], y[i-k]) for k = 1, 2, 4 .. 512. (A
// dilated two-tap MaxPool does one step in one operator, but ONNX
// Runtime's is ten times slower than Pad, Slice and Max.)
func (s squares) cummax(x string, axis, dir int64) string {
	for step := range squaresCummaxSteps {
		x = s.op("Max", "/Max", []string{x, s.shift(x, axis, dir<<step)})
	}
	return x
}

// masks returns the class masks of an RGB tensor [N, 3, ...]: [N, 3, ...]
// of 0 and 1, channel c for class SquaresLabels[c].
func (s squares) masks(x string) string {
	name := s.nodeName("/Split")
	ch := []string{name + "_output_0", name + "_output_1", name + "_output_2"}
	s.node("Split", name, []string{x}, ch, attrInt("axis", axisC))
	hi, lo := s.scalar("level.high", SquaresHigh), s.scalar("level.low", SquaresLow)
	var on, off [3]string
	for c := range 3 {
		on[c] = s.op("Greater", "/Greater", []string{ch[c], hi})
		off[c] = s.op("Less", "/Less", []string{ch[c], lo})
	}
	var classes []string
	for c := range 3 {
		a, b := off[(c+1)%3], off[(c+2)%3]
		classes = append(classes, s.op("And", "/And", []string{s.op("And", "/And", []string{on[c], a}), b}))
	}
	cat := s.op("Concat", "/Concat", classes, attrInt("axis", axisC))
	return s.op("Cast", "/Cast", []string{cat}, attrInt("to", int64(onnxpb.TensorProto_FLOAT)))
}

// extents returns, for every pixel of the class masks m along axis, the
// first pixel and one past the last pixel of the run of its class that
// holds it (meaningful where a mask is 1). The classes share one map
// ([N, 1, ...]): a pixel is of at most one class, so the runs of
// different classes never overlap.
func (s squares) extents(m string, axis int64) (first, end string) {
	pos1 := make([]float32, squaresImageSize) // x + 1
	rev := make([]float32, squaresImageSize)  // 640 - x
	for x := range pos1 {
		pos1[x] = float32(x + 1)
		rev[x] = float32(squaresImageSize - x)
	}
	dims := []int64{squaresImageSize}
	if axis == axisH {
		dims = []int64{squaresImageSize, 1}
	}
	one := s.scalar("one", 1)
	p := s.initializer(fmt.Sprintf("axis%d.position_plus_1", axis), dims, pos1)
	r := s.initializer(fmt.Sprintf("axis%d.size_minus_position", axis), dims, rev)
	classes := s.ints("reduce.axes_class", axisC)
	// edges is 1 where a run starts (m is 1 and its neighbour k away
	// along axis, the predecessor for k = 1, is 0), in any class.
	edges := func(k int64) string {
		open := s.op("Mul", "/Mul", []string{m, s.op("Sub", "/Sub", []string{one, s.shift(m, axis, k)})})
		return s.op("ReduceSum", "/ReduceSum", []string{open, classes}, attrInt("keepdims", 1))
	}

	// The running maximum of start+1 over the starts is the latest start:
	// the run's own.
	starts := s.op("Mul", "/Mul", []string{edges(1), p})
	first = s.op("Sub", "/Sub", []string{s.cummax(starts, axis, 1), one})

	// Likewise from the far side with 640-end at the ends: the run's own
	// end.
	ends := s.op("Mul", "/Mul", []string{edges(-1), r})
	end = s.op("Sub", "/Sub", []string{s.scalar("size_plus_1", squaresImageSize+1), s.cummax(ends, axis, -1)})
	return first, end
}

// buildSquares returns the squares model.
func buildSquares() *onnxpb.ModelProto {
	s := squares{newGraph("main_graph")}
	batch := dim{param: batchParam}
	s.input("images", batch, dim{size: 3}, dim{size: squaresImageSize}, dim{size: squaresImageSize})

	// The anchor rows for the horizontal extents, the anchor columns for
	// the vertical ones.
	rowMasks := s.masks(s.anchors("images", axisH)) // [N, 3, 80, 640]
	colMasks := s.masks(s.anchors("images", axisW)) // [N, 3, 640, 80]
	x1, x2 := s.extents(rowMasks, axisW)
	y1, y2 := s.extents(colMasks, axisH)
	m := s.anchors(rowMasks, axisW) // [N, 3, 80, 80]; x1 .. y2 [N, 1, 80, 80]
	x1, x2 = s.anchors(x1, axisW), s.anchors(x2, axisW)
	y1, y2 = s.anchors(y1, axisH), s.anchors(y2, axisH)

	// The anchor's box, zero where it is of no class.
	any := s.op("ReduceSum", "/ReduceSum", []string{m, s.ints("reduce.axes_class", axisC)}, attrInt("keepdims", 1))
	mul := func(a, b string) string { return s.op("Mul", "/Mul", []string{a, b}) }
	x1, x2, y1, y2 = mul(any, x1), mul(any, x2), mul(any, y1), mul(any, y2)
	half := s.scalar("half", 0.5)
	cx := mul(s.op("Add", "/Add", []string{x1, x2}), half)
	cy := mul(s.op("Add", "/Add", []string{y1, y2}), half)
	w := s.op("Sub", "/Sub", []string{x2, x1})
	h := s.op("Sub", "/Sub", []string{y2, y1})

	// Scores: the class's mask where both sides are long enough.
	minSide := s.scalar("min_side", SquaresMinSide)
	big := s.op("And", "/And", []string{
		s.op("GreaterOrEqual", "/GreaterOrEqual", []string{w, minSide}),
		s.op("GreaterOrEqual", "/GreaterOrEqual", []string{h, minSide}),
	})
	bigF := s.op("Cast", "/Cast", []string{big}, attrInt("to", int64(onnxpb.TensorProto_FLOAT)))
	scores := mul(mul(m, bigF), s.scalar("score", SquaresScore))

	grid := s.op("Concat", "/Concat", []string{cx, cy, w, h, scores}, attrInt("axis", axisC)) // [N, 7, 80, 80]
	rows := int64(4 + len(SquaresLabels))
	s.node("Reshape", "/Reshape", []string{grid, s.ints("output.shape", 0, rows, SquaresAnchors)}, []string{"output0"})
	s.output("output0", batch, dim{size: rows}, dim{size: SquaresAnchors})

	return s.model("Finds solid red, green and blue rectangles of at least 40 pixels a side; YOLOv8 output layout [N, 4+3, 6400].")
}
