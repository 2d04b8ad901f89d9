// Package detect turns the raw output of an object detector into boxes on
// the original image: the confidence threshold, class-wise non-maximum
// suppression (NMS) and top-K that Ultralytics applies after a YOLOv8 or
// YOLO11 export, then the mapping back through the preprocessing (the
// letterbox) into pixels of the image as the user sees it (after EXIF
// orientation), clipped to it. It also draws the boxes (draw.go).
//
// Two layouts are read, per image, as little-endian FLOAT32 or FLOAT64:
//   - LayoutYOLO, [4+classes, anchors] row-major: rows cx, cy, w, h in
//     tensor pixels, then one score per class (already through the
//     sigmoid), as Ultralytics exports it;
//   - LayoutDetections, [K, 6]: x1, y1, x2, y2, score, class, with NMS
//     already applied by the model; rows below the threshold are padding.
//
// Values that are not finite numbers never make a box: a NaN or infinite
// score is below every threshold, and a box with a non-finite or
// non-positive width or height (a degenerate box) is skipped.
package detect

import (
	"cmp"
	"encoding/binary"
	"fmt"
	"math"
	"slices"
	"sync"

	"github.com/prepred/prepred/prep/internal/postprocess"
)

// Layout is how a detector's output holds its boxes.
type Layout int

const (
	// LayoutYOLO is [4+classes, anchors]: the raw YOLOv8/YOLO11 head.
	LayoutYOLO Layout = iota + 1
	// LayoutDetections is [K, 6]: boxes after the model's own NMS.
	LayoutDetections
)

// detectionColumns are the values of one LayoutDetections row.
const detectionColumns = 6

// boxRows are the rows of a LayoutYOLO output before the class scores.
const boxRows = 4

// MaxCandidates bounds the boxes that go into NMS, the highest-scored
// (Ultralytics' max_nms): with a very low threshold a 8400-anchor head
// would otherwise feed NMS every anchor.
const MaxCandidates = 30000

// maxClassIndex bounds the class index of a LayoutDetections row when the
// model names no classes: it keeps a garbage row from becoming a label.
const maxClassIndex = 1 << 20

// Output describes one image's part of a detector's output tensor.
type Output struct {
	Layout Layout
	// Classes is the number of classes: LayoutYOLO's score rows; for
	// LayoutDetections the bound on the class column (0: any class index
	// below 2^20).
	Classes int
	// Boxes is LayoutYOLO's anchors or LayoutDetections' K.
	Boxes int
	// Float64 says that the values are FLOAT64, not FLOAT32.
	Float64 bool
}

// Values returns the number of values of one image's output.
func (o Output) Values() int {
	if o.Layout == LayoutDetections {
		return o.Boxes * detectionColumns
	}
	return (boxRows + o.Classes) * o.Boxes
}

// Bytes returns the size of one image's output.
func (o Output) Bytes() int {
	if o.Float64 {
		return 8 * o.Values()
	}
	return 4 * o.Values()
}

// Params are the post-processing thresholds.
type Params struct {
	// Confidence keeps boxes whose score is above it (0..1).
	Confidence float32
	// IoU is the intersection over union above which NMS drops the
	// lower-scored of two boxes of the same class ((0, 1]).
	IoU float32
	// MaxDetections is the most boxes kept, the highest-scored.
	MaxDetections int
}

// Geometry maps tensor pixels back to the original image, per axis:
// x' = (x - OffsetX) / ScaleX, clipped to [0, Width]. For a letterbox,
// ScaleX is the resized width over the image's and OffsetX the left
// padding; for a crop, OffsetX is minus the crop's left edge.
type Geometry struct {
	// Width and Height are the original image's, after EXIF orientation.
	Width, Height int
	// ScaleX and ScaleY are resized size over original size.
	ScaleX, ScaleY float64
	// OffsetX and OffsetY are where the resized image's origin lies on
	// the tensor.
	OffsetX, OffsetY float64
}

// Letterbox is the Geometry of an image of w x h resized to nw x nh and
// placed at (left, top) on the tensor.
func Letterbox(w, h, nw, nh, left, top int) Geometry {
	return Geometry{
		Width: w, Height: h,
		ScaleX: float64(nw) / float64(w), ScaleY: float64(nh) / float64(h),
		OffsetX: float64(left), OffsetY: float64(top),
	}
}

// Box is one detection, in original-image pixels: (X1, Y1) the top-left
// corner, (X2, Y2) the bottom-right one, 0 <= X1 < X2 <= Width.
type Box struct {
	X1, Y1, X2, Y2 float32
	Score          float32
	Class          int
}

// candidate is a box above the threshold, in tensor pixels.
type candidate struct {
	x1, y1, x2, y2 float32
	score          float32
	class          int32
	// index is the anchor or row, which orders equal scores.
	index int32
}

// scratch is the working memory of one Decode, pooled.
type scratch struct {
	best  []float32 // LayoutYOLO: best score per anchor so far
	class []int32   // LayoutYOLO: its class, -1 for none above threshold
	cands []candidate
	kept  []candidate
}

var scratchPool = sync.Pool{New: func() any { return new(scratch) }}

// Decode appends the boxes of one image's output raw (o.Bytes() bytes) to
// dst[:0] and returns them, highest score first: those above
// p.Confidence, after class-wise NMS (LayoutYOLO), at most
// p.MaxDetections, mapped through g and clipped. It allocates nothing once
// dst and the pooled working memory have grown. A raw of the wrong size
// is a *postprocess.OutputError.
func Decode(dst []Box, raw []byte, o Output, p Params, g Geometry) ([]Box, error) {
	dst = dst[:0]
	if len(raw) != o.Bytes() {
		return dst, &postprocess.OutputError{Message: fmt.Sprintf("detector output has %d bytes per image, want %d (%d values of %d bytes)", len(raw), o.Bytes(), o.Values(), o.Bytes()/max(1, o.Values()))}
	}
	if p.MaxDetections <= 0 || g.Width <= 0 || g.Height <= 0 || !(g.ScaleX > 0) || !(g.ScaleY > 0) {
		return dst, nil
	}
	s := scratchPool.Get().(*scratch)
	defer scratchPool.Put(s)
	// The image's area on the tensor: a box outside it is in the padding.
	area := candidate{
		x1: float32(g.OffsetX), y1: float32(g.OffsetY),
		x2: float32(g.OffsetX + float64(g.Width)*g.ScaleX), y2: float32(g.OffsetY + float64(g.Height)*g.ScaleY),
	}
	var kept []candidate
	switch o.Layout {
	case LayoutYOLO:
		s.yoloCandidates(raw, o, p.Confidence, area)
		sortCandidates(s.cands)
		kept = s.nms(p)
	case LayoutDetections:
		s.detectionCandidates(raw, o, p.Confidence, area)
		sortCandidates(s.cands)
		kept = s.cands[:min(len(s.cands), p.MaxDetections)]
	default:
		return dst, &postprocess.OutputError{Message: fmt.Sprintf("unknown detector layout %d", o.Layout)}
	}
	w, h := float32(g.Width), float32(g.Height)
	sx, sy := float32(g.ScaleX), float32(g.ScaleY)
	for _, c := range kept {
		b := Box{
			X1: clip((c.x1-area.x1)/sx, w), Y1: clip((c.y1-area.y1)/sy, h),
			X2: clip((c.x2-area.x1)/sx, w), Y2: clip((c.y2-area.y1)/sy, h),
			Score: c.score, Class: int(c.class),
		}
		if b.X2 > b.X1 && b.Y2 > b.Y1 {
			dst = append(dst, b)
		}
	}
	return dst, nil
}

// clip bounds v to [0, limit].
func clip(v, limit float32) float32 {
	return min(max(v, 0), limit)
}

// usable reports whether a candidate box in tensor pixels has finite
// corners, a positive width and height, and overlaps the image's area.
func (c *candidate) usable(area candidate) bool {
	// Comparisons with NaN are false, so a NaN corner fails here; an
	// infinite one fails the finite check.
	return c.x2 > c.x1 && c.y2 > c.y1 &&
		c.x1 < area.x2 && c.x2 > area.x1 && c.y1 < area.y2 && c.y2 > area.y1 &&
		finite(c.x1) && finite(c.x2) && finite(c.y1) && finite(c.y2)
}

func finite(v float32) bool { return v >= -math.MaxFloat32 && v <= math.MaxFloat32 }

// yoloCandidates fills s.cands with the anchors of raw whose best class
// score is above conf, each with that class (the first on ties).
func (s *scratch) yoloCandidates(raw []byte, o Output, conf float32, area candidate) {
	n := o.Boxes
	s.best = slices.Grow(s.best[:0], n)[:n]
	s.class = slices.Grow(s.class[:0], n)[:n]
	best, class := s.best, s.class
	for i := range best {
		best[i] = conf
		class[i] = -1
	}
	// Row by row, the order the bytes lie in: a finite score above the
	// anchor's best so far (at first the threshold) becomes its best.
	// NaN compares false and +Inf fails the last test. Most scores are
	// below the threshold, which is tested first, in a register.
	if o.Float64 {
		for c := range o.Classes {
			row := raw[(boxRows+c)*n*8:][: n*8 : n*8]
			for a := range best {
				v := math.Float64frombits(binary.LittleEndian.Uint64(row[8*a:]))
				if v > float64(conf) && v > float64(best[a]) && v <= math.MaxFloat32 {
					best[a], class[a] = float32(v), int32(c)
				}
			}
		}
	} else {
		for c := range o.Classes {
			row := raw[(boxRows+c)*n*4:][: n*4 : n*4]
			// Four anchors at a time: almost every group has no score
			// above the threshold and costs four loads and compares.
			a := 0
			for j := 0; j+16 <= len(row); j += 16 {
				g := row[j : j+16 : j+16]
				v0 := math.Float32frombits(binary.LittleEndian.Uint32(g[0:]))
				v1 := math.Float32frombits(binary.LittleEndian.Uint32(g[4:]))
				v2 := math.Float32frombits(binary.LittleEndian.Uint32(g[8:]))
				v3 := math.Float32frombits(binary.LittleEndian.Uint32(g[12:]))
				if v0 > conf || v1 > conf || v2 > conf || v3 > conf {
					for k, v := range [4]float32{v0, v1, v2, v3} {
						if v > best[a+k] && v <= math.MaxFloat32 {
							best[a+k], class[a+k] = v, int32(c)
						}
					}
				}
				a += 4
			}
			for ; a < n; a++ {
				v := math.Float32frombits(binary.LittleEndian.Uint32(row[4*a:]))
				if v > best[a] && v <= math.MaxFloat32 {
					best[a], class[a] = v, int32(c)
				}
			}
		}
	}
	s.cands = s.cands[:0]
	for a, c := range class {
		if c < 0 {
			continue
		}
		cx, cy := value(raw, o.Float64, a), value(raw, o.Float64, n+a)
		bw, bh := value(raw, o.Float64, 2*n+a), value(raw, o.Float64, 3*n+a)
		cd := candidate{x1: cx - bw/2, y1: cy - bh/2, x2: cx + bw/2, y2: cy + bh/2, score: best[a], class: c, index: int32(a)}
		if cd.usable(area) {
			s.cands = append(s.cands, cd)
		}
	}
}

// detectionCandidates fills s.cands with the rows of raw whose score is
// above conf and whose class is an integer in range.
func (s *scratch) detectionCandidates(raw []byte, o Output, conf float32, area candidate) {
	classes := o.Classes
	if classes <= 0 {
		classes = maxClassIndex
	}
	s.cands = s.cands[:0]
	for r := range o.Boxes {
		i := r * detectionColumns
		score := value(raw, o.Float64, i+4)
		if !(score > conf && score <= math.MaxFloat32) {
			continue
		}
		cls := value(raw, o.Float64, i+5)
		if !(cls >= 0 && cls < float32(classes)) || cls != float32(math.Trunc(float64(cls))) {
			continue
		}
		cd := candidate{
			x1: value(raw, o.Float64, i), y1: value(raw, o.Float64, i+1),
			x2: value(raw, o.Float64, i+2), y2: value(raw, o.Float64, i+3),
			score: score, class: int32(cls), index: int32(r),
		}
		if cd.usable(area) {
			s.cands = append(s.cands, cd)
		}
	}
}

// value reads the i-th value of raw as float32.
func value(raw []byte, float64s bool, i int) float32 {
	if float64s {
		return float32(math.Float64frombits(binary.LittleEndian.Uint64(raw[8*i:])))
	}
	return math.Float32frombits(binary.LittleEndian.Uint32(raw[4*i:]))
}

// sortCandidates orders c by score, highest first, equal scores by index.
func sortCandidates(c []candidate) {
	slices.SortFunc(c, func(a, b candidate) int {
		if a.score != b.score {
			return cmp.Compare(b.score, a.score)
		}
		return cmp.Compare(a.index, b.index)
	})
}

// nms keeps, in score order, each of the first MaxCandidates candidates
// that overlaps no kept box of its own class by more than p.IoU, until
// p.MaxDetections are kept. Boxes of different classes never suppress
// each other.
func (s *scratch) nms(p Params) []candidate {
	cands := s.cands[:min(len(s.cands), MaxCandidates)]
	kept := s.kept[:0]
	for i := range cands {
		c := &cands[i]
		keep := true
		for j := range kept {
			if kept[j].class == c.class && overlaps(&kept[j], c, p.IoU) {
				keep = false
				break
			}
		}
		if keep {
			kept = append(kept, *c)
			if len(kept) == p.MaxDetections {
				break
			}
		}
	}
	s.kept = kept
	return kept
}

// overlaps reports whether the intersection over union of a and b, which
// have positive areas, is above iou.
func overlaps(a, b *candidate, iou float32) bool {
	iw := min(a.x2, b.x2) - max(a.x1, b.x1)
	ih := min(a.y2, b.y2) - max(a.y1, b.y1)
	if iw <= 0 || ih <= 0 {
		return false
	}
	inter := iw * ih
	union := (a.x2-a.x1)*(a.y2-a.y1) + (b.x2-b.x1)*(b.y2-b.y1) - inter
	return inter > iou*union
}

// IoU returns the intersection over union of two boxes, 0 when either has
// no area.
func IoU(a, b Box) float64 {
	iw := float64(min(a.X2, b.X2) - max(a.X1, b.X1))
	ih := float64(min(a.Y2, b.Y2) - max(a.Y1, b.Y1))
	if iw <= 0 || ih <= 0 {
		return 0
	}
	inter := iw * ih
	union := float64((a.X2-a.X1)*(a.Y2-a.Y1)) + float64((b.X2-b.X1)*(b.Y2-b.Y1)) - inter
	if !(union > 0) {
		return 0
	}
	return inter / union
}
