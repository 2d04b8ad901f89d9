package detect

import (
	"encoding/binary"
	"errors"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/prepred/prepred/prep/internal/postprocess"
)

// anchor is one anchor of a hand-written YOLO output: its box in tensor
// pixels and one score per class.
type anchor struct {
	cx, cy, w, h float32
	scores       []float32
}

// yoloOutput lays anchors out as [4+classes, anchors] FLOAT32 (or FLOAT64)
// bytes.
func yoloOutput(classes int, f64 bool, anchors ...anchor) ([]byte, Output) {
	o := Output{Layout: LayoutYOLO, Classes: classes, Boxes: len(anchors), Float64: f64}
	vals := make([]float64, o.Values())
	n := len(anchors)
	for a, an := range anchors {
		vals[a], vals[n+a], vals[2*n+a], vals[3*n+a] = float64(an.cx), float64(an.cy), float64(an.w), float64(an.h)
		for c, s := range an.scores {
			vals[(4+c)*n+a] = float64(s)
		}
	}
	return encode(vals, f64), o
}

func encode(vals []float64, f64 bool) []byte {
	if f64 {
		b := make([]byte, 8*len(vals))
		for i, v := range vals {
			binary.LittleEndian.PutUint64(b[8*i:], math.Float64bits(v))
		}
		return b
	}
	b := make([]byte, 4*len(vals))
	for i, v := range vals {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(float32(v)))
	}
	return b
}

// identity maps a 640x640 tensor onto a 640x640 image.
var identity = Geometry{Width: 640, Height: 640, ScaleX: 1, ScaleY: 1}

var defaults = Params{Confidence: 0.25, IoU: 0.45, MaxDetections: 300}

var (
	nan = float32(math.NaN())
	inf = float32(math.Inf(1))
)

func TestDecodeYOLO(t *testing.T) {
	tests := []struct {
		name    string
		classes int
		anchors []anchor
		p       Params
		g       Geometry
		want    []Box
	}{{
		name:    "one box, center to corners",
		classes: 2,
		anchors: []anchor{{50, 50, 20, 10, []float32{0.1, 0.9}}},
		want:    []Box{{40, 45, 60, 55, 0.9, 1}},
	}, {
		name:    "empty: every score at or below the threshold",
		classes: 2,
		anchors: []anchor{{50, 50, 20, 10, []float32{0.25, 0.1}}, {100, 100, 20, 20, []float32{0, 0}}},
		want:    nil,
	}, {
		// IoU of [0,0,10,10] and [5,0,15,10] is 50/150 = 1/3.
		name:    "overlap above the IoU threshold: the lower score is suppressed",
		classes: 1,
		anchors: []anchor{{5, 5, 10, 10, []float32{0.8}}, {10, 5, 10, 10, []float32{0.9}}},
		p:       Params{Confidence: 0.25, IoU: 0.3, MaxDetections: 10},
		want:    []Box{{5, 0, 15, 10, 0.9, 0}},
	}, {
		name:    "overlap below the IoU threshold: both kept",
		classes: 1,
		anchors: []anchor{{5, 5, 10, 10, []float32{0.8}}, {10, 5, 10, 10, []float32{0.9}}},
		p:       Params{Confidence: 0.25, IoU: 0.34, MaxDetections: 10},
		want:    []Box{{5, 0, 15, 10, 0.9, 0}, {0, 0, 10, 10, 0.8, 0}},
	}, {
		name:    "class-wise: the same box in two classes is two boxes",
		classes: 2,
		anchors: []anchor{{50, 50, 20, 20, []float32{0.9, 0}}, {50, 50, 20, 20, []float32{0, 0.7}}},
		want:    []Box{{40, 40, 60, 60, 0.9, 0}, {40, 40, 60, 60, 0.7, 1}},
	}, {
		name:    "many anchors on one object merge into the best",
		classes: 1,
		anchors: []anchor{
			{50, 50, 20, 20, []float32{0.6}}, {51, 50, 20, 20, []float32{0.95}},
			{50, 51, 20, 20, []float32{0.7}}, {49, 49, 20, 20, []float32{0.8}},
		},
		want: []Box{{41, 40, 61, 60, 0.95, 0}},
	}, {
		name:    "equal scores: the first anchor wins and suppresses the second",
		classes: 1,
		anchors: []anchor{{50, 50, 20, 20, []float32{0.5}}, {51, 50, 20, 20, []float32{0.5}}, {200, 200, 10, 10, []float32{0.5}}},
		want:    []Box{{40, 40, 60, 60, 0.5, 0}, {195, 195, 205, 205, 0.5, 0}},
	}, {
		name:    "equal class scores on one anchor: the first class",
		classes: 3,
		anchors: []anchor{{50, 50, 20, 20, []float32{0.1, 0.6, 0.6}}},
		want:    []Box{{40, 40, 60, 60, 0.6, 1}},
	}, {
		name:    "max detections keeps the highest scores",
		classes: 1,
		anchors: []anchor{
			{10, 10, 10, 10, []float32{0.3}}, {100, 10, 10, 10, []float32{0.9}},
			{200, 10, 10, 10, []float32{0.5}}, {300, 10, 10, 10, []float32{0.7}},
		},
		p:    Params{Confidence: 0.25, IoU: 0.45, MaxDetections: 2},
		want: []Box{{95, 5, 105, 15, 0.9, 0}, {295, 5, 305, 15, 0.7, 0}},
	}, {
		name:    "NaN and infinite scores never win",
		classes: 3,
		anchors: []anchor{
			{50, 50, 20, 20, []float32{nan, 0.6, inf}},
			{150, 50, 20, 20, []float32{inf, nan, -inf}},
			{250, 50, 20, 20, []float32{nan, nan, nan}},
		},
		want: []Box{{40, 40, 60, 60, 0.6, 1}},
	}, {
		name:    "non-finite and degenerate boxes are skipped",
		classes: 1,
		anchors: []anchor{
			{nan, 50, 20, 20, []float32{0.9}}, {50, inf, 20, 20, []float32{0.9}},
			{50, 50, inf, 20, []float32{0.9}}, {50, 50, 20, nan, []float32{0.9}},
			{50, 50, 0, 20, []float32{0.9}}, {50, 50, 20, -5, []float32{0.9}},
			{300, 300, 2, 2, []float32{0.4}},
		},
		want: []Box{{299, 299, 301, 301, 0.4, 0}},
	}, {
		// 1280x720 letterboxed into 640x640: r = 0.5, 640x360 at top 140.
		name:    "letterbox maps back and clips to the image",
		classes: 1,
		anchors: []anchor{
			{200, 300, 200, 200, []float32{0.9}}, // (100,200)-(300,400)
			{600, 150, 100, 40, []float32{0.8}},  // (550,130)-(650,170): over the edge
			{300, 60, 50, 50, []float32{0.7}},    // in the top padding only
		},
		g:    Letterbox(1280, 720, 640, 360, 0, 140),
		want: []Box{{200, 120, 600, 520, 0.9, 0}, {1100, 0, 1280, 60, 0.8, 0}},
	}, {
		// 300x600 letterboxed into 640x640: r = 640/600, 320x640 at left 160.
		name:    "letterbox padding on the x axis",
		classes: 1,
		anchors: []anchor{{320, 320, 160, 320, []float32{0.9}}},
		g:       Letterbox(300, 600, 320, 640, 160, 0),
		want:    []Box{{75, 150, 225, 450, 0.9, 0}},
	}}
	for _, tt := range tests {
		for _, f64 := range []bool{false, true} {
			raw, o := yoloOutput(tt.classes, f64, tt.anchors...)
			p, g := tt.p, tt.g
			if p == (Params{}) {
				p = defaults
			}
			if g == (Geometry{}) {
				g = identity
			}
			got, err := Decode(nil, raw, o, p, g)
			if err != nil {
				t.Fatalf("%s (float64 %v): %v", tt.name, f64, err)
			}
			if !boxesNear(got, tt.want) {
				t.Errorf("%s (float64 %v):\n got %v\nwant %v", tt.name, f64, got, tt.want)
			}
		}
	}
}

// boxesNear compares boxes with a tolerance of float32 rounding.
func boxesNear(got, want []Box) bool {
	if len(got) != len(want) {
		return false
	}
	near := func(a, b float32) bool { return math.Abs(float64(a-b)) <= 1e-3*max(1, math.Abs(float64(b))) }
	for i := range got {
		g, w := got[i], want[i]
		if g.Class != w.Class || !near(g.Score, w.Score) || !near(g.X1, w.X1) || !near(g.Y1, w.Y1) || !near(g.X2, w.X2) || !near(g.Y2, w.Y2) {
			return false
		}
	}
	return true
}

func TestDecodeDetections(t *testing.T) {
	rows := [][6]float64{
		{10, 10, 50, 50, 0.6, 0},
		{12, 12, 52, 52, 0.9, 0},      // overlaps the first: kept, the model did NMS
		{0, 0, 0, 0, 0, 0},            // padding
		{100, 100, 120, 130, 0.8, 2},  // class 2
		{1, 1, 5, 5, 0.9, 1.5},        // class not an integer
		{1, 1, 5, 5, 0.9, 3},          // class out of range
		{1, 1, 5, 5, 0.9, -1},         // negative class
		{1, 1, 5, 5, math.NaN(), 0},   // NaN score
		{1, 1, 5, 5, math.Inf(1), 0},  // infinite score
		{30, 30, 20, 40, 0.9, 0},      // x2 < x1
		{1, 1, 5, math.NaN(), 0.9, 0}, // NaN corner
		{600, 600, 700, 700, 0.3, 1},  // clipped to 640
		{200, 200, 220, 220, 0.25, 1}, // at the threshold: not above
	}
	for _, f64 := range []bool{false, true} {
		var vals []float64
		for _, r := range rows {
			vals = append(vals, r[:]...)
		}
		o := Output{Layout: LayoutDetections, Classes: 3, Boxes: len(rows), Float64: f64}
		got, err := Decode(nil, encode(vals, f64), o, defaults, identity)
		if err != nil {
			t.Fatal(err)
		}
		want := []Box{{12, 12, 52, 52, 0.9, 0}, {100, 100, 120, 130, 0.8, 2}, {10, 10, 50, 50, 0.6, 0}, {600, 600, 640, 640, 0.3, 1}}
		if !boxesNear(got, want) {
			t.Errorf("float64 %v:\n got %v\nwant %v", f64, got, want)
		}
		got, _ = Decode(got, encode(vals, f64), o, Params{Confidence: 0.5, IoU: 1, MaxDetections: 1}, identity)
		if !boxesNear(got, want[:1]) {
			t.Errorf("float64 %v, max 1 above 0.5: got %v, want %v", f64, got, want[:1])
		}
	}
	// No labels: any integer class is a class.
	o := Output{Layout: LayoutDetections, Boxes: 1}
	got, err := Decode(nil, encode([]float64{1, 2, 3, 4, 0.5, 79}, false), o, defaults, identity)
	if err != nil || len(got) != 1 || got[0].Class != 79 {
		t.Errorf("class 79 without labels: %v, %v", got, err)
	}
}

func TestDecodeErrors(t *testing.T) {
	raw, o := yoloOutput(2, false, anchor{50, 50, 20, 20, []float32{0.9, 0}})
	var oe *postprocess.OutputError
	if _, err := Decode(nil, raw[:len(raw)-4], o, defaults, identity); !errors.As(err, &oe) {
		t.Errorf("short output: %v, want an OutputError", err)
	}
	o.Float64 = true
	if _, err := Decode(nil, raw, o, defaults, identity); !errors.As(err, &oe) {
		t.Errorf("float32 bytes read as float64: %v, want an OutputError", err)
	}
	o.Float64 = false
	if got, err := Decode(nil, raw, o, defaults, Geometry{}); err != nil || len(got) != 0 {
		t.Errorf("an image without pixels: %v, %v, want no boxes", got, err)
	}
	if got, err := Decode(nil, nil, Output{Layout: LayoutYOLO, Classes: 3}, defaults, identity); err != nil || len(got) != 0 {
		t.Errorf("no anchors: %v, %v", got, err)
	}
}

func TestDecodeAllocates(t *testing.T) {
	raw, o := randomYOLO(80, 8400, 50)
	dst := make([]Box, 0, 300)
	dst, _ = Decode(dst, raw, o, defaults, identity)
	if len(dst) == 0 {
		t.Fatal("no boxes in the random output")
	}
	if n := testing.AllocsPerRun(5, func() { _, _ = Decode(dst, raw, o, defaults, identity) }); n != 0 {
		t.Errorf("Decode allocates %v times per call once warm", n)
	}
}

// randomYOLO is a plausible 640x640 YOLO head: background scores below
// 0.2 everywhere, and objects each seen by a cluster of anchors with
// jittered boxes and scores 0.5..0.95 in one class.
func randomYOLO(classes, anchors, objects int) ([]byte, Output) {
	r := rand.New(rand.NewPCG(1, 2))
	o := Output{Layout: LayoutYOLO, Classes: classes, Boxes: anchors}
	vals := make([]float64, o.Values())
	for a := range anchors {
		vals[a], vals[anchors+a] = r.Float64()*640, r.Float64()*640
		vals[2*anchors+a], vals[3*anchors+a] = 10+r.Float64()*100, 10+r.Float64()*100
	}
	for i := range vals[4*anchors:] {
		vals[4*anchors+i] = r.Float64() * 0.2
	}
	for range objects {
		cx, cy, w, h := r.Float64()*600+20, r.Float64()*600+20, 20+r.Float64()*150, 20+r.Float64()*150
		c := r.IntN(classes)
		for range 20 {
			a := r.IntN(anchors)
			vals[a], vals[anchors+a] = cx+r.Float64()*4-2, cy+r.Float64()*4-2
			vals[2*anchors+a], vals[3*anchors+a] = w*(0.95+r.Float64()*0.1), h*(0.95+r.Float64()*0.1)
			vals[(4+c)*anchors+a] = 0.5 + r.Float64()*0.45
		}
	}
	return encode(vals, false), o
}

// BenchmarkDecodeYOLO8400x80 decodes a YOLOv8 head at 640x640 (8400
// anchors, 80 classes): the default threshold, and Ultralytics' 0.001 of
// validation runs, with which every anchor goes into NMS.
func BenchmarkDecodeYOLO8400x80(b *testing.B) {
	raw, o := randomYOLO(80, 8400, 50)
	g := Letterbox(1280, 720, 640, 360, 0, 140)
	for _, p := range []struct {
		name string
		p    Params
	}{{"conf=0.25", defaults}, {"conf=0.001", Params{Confidence: 0.001, IoU: 0.7, MaxDetections: 300}}} {
		b.Run(p.name, func(b *testing.B) {
			dst := make([]Box, 0, 300)
			b.ReportAllocs()
			b.SetBytes(int64(len(raw)))
			for b.Loop() {
				dst, _ = Decode(dst, raw, o, p.p, g)
			}
			b.ReportMetric(float64(len(dst)), "boxes")
		})
	}
}

func TestIoU(t *testing.T) {
	a, b := Box{X1: 0, Y1: 0, X2: 10, Y2: 10}, Box{X1: 5, Y1: 0, X2: 15, Y2: 10}
	if got := IoU(a, b); math.Abs(got-1.0/3) > 1e-9 {
		t.Errorf("IoU = %v, want 1/3", got)
	}
	if got := IoU(a, Box{X1: 20, Y1: 20, X2: 30, Y2: 30}); got != 0 {
		t.Errorf("IoU of disjoint boxes = %v", got)
	}
	if got := IoU(a, a); got != 1 {
		t.Errorf("IoU of a box with itself = %v", got)
	}
	if got := IoU(Box{}, Box{}); got != 0 {
		t.Errorf("IoU of empty boxes = %v", got)
	}
}

// TestYOLOScanMatchesNaive checks the four-anchors-at-a-time scan of
// FLOAT32 scores against a plain one, on random scores sprinkled with NaN
// and infinities, for anchor counts that are and are not multiples of 4.
func TestYOLOScanMatchesNaive(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for _, anchors := range []int{1, 3, 4, 5, 64, 8403} {
		raw, o := randomYOLO(7, anchors, 3)
		vals := make([]float32, o.Values())
		for i := range vals {
			vals[i] = math.Float32frombits(binary.LittleEndian.Uint32(raw[4*i:]))
			if i >= 4*anchors && r.IntN(50) == 0 {
				vals[i] = []float32{nan, inf, -inf, 0.99}[r.IntN(4)]
				binary.LittleEndian.PutUint32(raw[4*i:], math.Float32bits(vals[i]))
			}
		}
		const conf = 0.25
		s := new(scratch)
		s.yoloCandidates(raw, o, conf, candidate{x1: -1e9, y1: -1e9, x2: 1e9, y2: 1e9})
		for a := range anchors {
			best, class := float32(conf), int32(-1)
			for c := range o.Classes {
				if v := vals[(4+c)*anchors+a]; v > best && v <= math.MaxFloat32 {
					best, class = v, int32(c)
				}
			}
			if s.class[a] != class || (class >= 0 && s.best[a] != best) {
				t.Fatalf("%d anchors: anchor %d: class %d score %v, want %d %v", anchors, a, s.class[a], s.best[a], class, best)
			}
		}
	}
}
