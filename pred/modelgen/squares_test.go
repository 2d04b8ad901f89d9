package modelgen_test

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/prototext"
	"google.golang.org/protobuf/proto"

	predv1 "github.com/prepred/prepred/api/gen/prepred/pred/v1"
	"github.com/prepred/prepred/pred/internal/ortrt"
	"github.com/prepred/prepred/pred/internal/repository"
	"github.com/prepred/prepred/pred/internal/tensor"
	"github.com/prepred/prepred/pred/modelgen"
	"github.com/prepred/prepred/pred/predtest"
)

// The ONNX Runtime environment is per process; TestMain closes it.
var ort struct {
	once sync.Once
	rt   *ortrt.Runtime
	err  error
}

func ortRuntime(t *testing.T) *ortrt.Runtime {
	t.Helper()
	lib := predtest.ORTLibrary(t)
	ort.once.Do(func() { ort.rt, ort.err = ortrt.New(lib) })
	if ort.err != nil {
		t.Fatalf("ONNX Runtime %s: %v", lib, ort.err)
	}
	return ort.rt
}

const squaresSize = 640

func TestSquaresConfig(t *testing.T) {
	want := &predv1.ModelConfig{
		Name:         "squares",
		Platform:     "onnxruntime_onnx",
		MaxBatchSize: 4,
		Inputs:       []*predv1.TensorSpec{{Name: "images", Dtype: predv1.DataType_DATA_TYPE_FLOAT32, Shape: []int64{3, 640, 640}}},
		Outputs:      []*predv1.TensorSpec{{Name: "output0", Dtype: predv1.DataType_DATA_TYPE_FLOAT32, Shape: []int64{7, 6400}}},
		LabelsFile:   "labels.json",
		Preprocess: &predv1.PreprocessSpec{
			SchemaVersion: 1,
			Input:         "images",
			ColorOrder:    predv1.ColorOrder_COLOR_ORDER_RGB,
			ResizeMode:    predv1.ResizeMode_RESIZE_MODE_LETTERBOX,
			Interpolation: predv1.Interpolation_INTERPOLATION_BILINEAR,
			Width:         640,
			Height:        640,
			Scale:         0.003921569,
			Mean:          []float32{0, 0, 0},
			Std:           []float32{1, 1, 1},
			Layout:        predv1.Layout_LAYOUT_NCHW,
			Dtype:         predv1.DataType_DATA_TYPE_FLOAT32,
			PadColor:      []uint32{114, 114, 114},
		},
		VersionPolicy: &predv1.VersionPolicy{Policy: &predv1.VersionPolicy_Latest_{
			Latest: &predv1.VersionPolicy_Latest{NumVersions: 1},
		}},
		DynamicBatching: &predv1.DynamicBatching{MaxQueueSize: 64},
		OutputKind:      predv1.OutputKind_OUTPUT_KIND_YOLO,
		Detection:       &predv1.Detection{ConfidenceThreshold: 0.5},
	}
	dir := filepath.Join(generatedDir(t), "squares")
	text, err := os.ReadFile(filepath.Join(dir, "config.pbtxt"))
	if err != nil {
		t.Fatal(err)
	}
	got, err := repository.ParseConfig(text, false)
	if err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(got, want) {
		t.Errorf("config.pbtxt =\n%v\nwant\n%v", prototext.Format(got), prototext.Format(want))
	}
	if err := repository.Validate(got, "squares"); err != nil {
		t.Errorf("pred refuses the config: %v", err)
	}
	raw, err := os.ReadFile(filepath.Join(dir, "labels.json"))
	if err != nil {
		t.Fatal(err)
	}
	var labels []string
	if err := json.Unmarshal(raw, &labels); err != nil || strings.Join(labels, ",") != "red,green,blue" {
		t.Errorf("labels.json = %s (%v), want red, green, blue", raw, err)
	}
}

// rgb is an 8-bit color.
type rgb [3]uint8

var (
	white     = rgb{255, 255, 255}
	lightGray = rgb{200, 200, 200}
	padGray   = rgb{114, 114, 114}
	red       = rgb{255, 0, 0}
	green     = rgb{0, 255, 0}
	blue      = rgb{0, 0, 255}
)

// rect is a filled rectangle [x1, x2) x [y1, y2) of a color; class is its
// index in SquaresLabels, or -1 for a color of no class.
type rect struct {
	x1, y1, x2, y2 int
	color          rgb
	class          int
}

// canvas is a 640x640 input image: background, then rects painted in order
// (later ones over earlier ones).
type canvas struct {
	background rgb
	rects      []rect
}

// at returns the rect that paints pixel (x, y) last, or nil.
func (c canvas) at(x, y int) *rect {
	var hit *rect
	for i := range c.rects {
		r := &c.rects[i]
		if x >= r.x1 && x < r.x2 && y >= r.y1 && y < r.y2 {
			hit = r
		}
	}
	return hit
}

// tensor returns the image as the model's input: CHW float32, v/255.
func (c canvas) tensor() []float32 {
	const plane = squaresSize * squaresSize
	t := make([]float32, 3*plane)
	for y := range squaresSize {
		for x := range squaresSize {
			col := c.background
			if r := c.at(x, y); r != nil {
				col = r.color
			}
			for ch := range 3 {
				t[ch*plane+y*squaresSize+x] = float32(col[ch]) * modelgen.ImageScale
			}
		}
	}
	return t
}

// want returns the output the squares model must give for c, [7, 6400]:
// at an anchor inside a rect of a class, the rect's box and, when both its
// sides are SquaresMinSide or more, SquaresScore for its class; zeros
// elsewhere. The rects of a canvas must not overlap (an overlapped rect is
// no longer a rectangle).
func (c canvas) want() []float32 {
	const n = modelgen.SquaresAnchors
	out := make([]float32, 7*n)
	for a := range n {
		x, y := modelgen.SquaresAnchor(a)
		r := c.at(x, y)
		if r == nil || r.class < 0 {
			continue
		}
		out[0*n+a] = float32(r.x1+r.x2) / 2
		out[1*n+a] = float32(r.y1+r.y2) / 2
		out[2*n+a] = float32(r.x2 - r.x1)
		out[3*n+a] = float32(r.y2 - r.y1)
		if r.x2-r.x1 >= modelgen.SquaresMinSide && r.y2-r.y1 >= modelgen.SquaresMinSide {
			out[(4+r.class)*n+a] = modelgen.SquaresScore
		}
	}
	return out
}

func float32Bytes(v []float32) []byte {
	b := make([]byte, 4*len(v))
	for i, f := range v {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(f))
	}
	return b
}

func bytesFloat32(b []byte) []float32 {
	v := make([]float32, len(b)/4)
	for i := range v {
		v[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
	}
	return v
}

// openSquares opens the generated squares model in ONNX Runtime.
func openSquares(t *testing.T) *ortrt.Session {
	t.Helper()
	s, err := ortRuntime(t).Open(filepath.Join(generatedDir(t), modelgen.Squares, "1", "model.onnx"), ortrt.Options{})
	if err != nil {
		t.Fatalf("open squares: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Error(err)
		}
	})
	return s
}

// runSquares runs the model on a batch and returns each image's output.
func runSquares(t *testing.T, s *ortrt.Session, batch ...[]float32) [][]float32 {
	t.Helper()
	var in []float32
	for _, img := range batch {
		in = append(in, img...)
	}
	n := int64(len(batch))
	outs, err := s.Run(context.Background(), []tensor.Tensor{{
		Name: "images", DType: predv1.DataType_DATA_TYPE_FLOAT32, Shape: []int64{n, 3, squaresSize, squaresSize}, Data: float32Bytes(in),
	}}, nil)
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	if got, want := fmt.Sprint(outs[0].Shape), fmt.Sprint([]int64{n, 7, modelgen.SquaresAnchors}); outs[0].Name != "output0" || got != want {
		t.Fatalf("output %q shape %s, want output0 %s", outs[0].Name, got, want)
	}
	all := bytesFloat32(outs[0].Data)
	per := 7 * modelgen.SquaresAnchors
	res := make([][]float32, n)
	for i := range res {
		res[i] = all[i*per : (i+1)*per]
	}
	return res
}

// compare reports every anchor whose output differs from want, and returns
// the number of anchors that score some class.
func compare(t *testing.T, got, want []float32) (detections int) {
	t.Helper()
	const n = modelgen.SquaresAnchors
	bad := 0
	for a := range n {
		scored := false
		for row := range 7 {
			g, w := got[row*n+a], want[row*n+a]
			if g != w && bad < 10 {
				x, y := modelgen.SquaresAnchor(a)
				t.Errorf("anchor %d at (%d,%d) row %d = %v, want %v", a, x, y, row, g, w)
			}
			if g != w {
				bad++
			}
			scored = scored || (row >= 4 && g > 0)
		}
		if scored {
			detections++
		}
	}
	if bad > 0 {
		t.Errorf("%d values differ", bad)
	}
	return detections
}

func TestSquaresSemantics(t *testing.T) {
	s := openSquares(t)
	tests := []struct {
		name string
		c    canvas
		// anchors is how many anchors must score a class: the test's own
		// count of anchor pixels inside rects large enough.
		anchors int
	}{
		{"one of each on white", canvas{white, []rect{
			{100, 100, 180, 180, red, 0},  // 80x80
			{300, 52, 420, 112, green, 1}, // 120x60 rectangle
			{500, 400, 560, 460, blue, 2}, // 60x60
		}}, 10*10 + 15*8 + 8*7},
		{"letterbox bands and light gray", canvas{lightGray, []rect{
			{0, 0, 640, 80, padGray, -1},
			{0, 560, 640, 640, padGray, -1},
			{200, 80, 300, 180, blue, 2}, // touching the top band
			{400, 300, 470, 370, green, 1},
		}}, 12*12 + 9*9},
		{"at the edges", canvas{white, []rect{
			{0, 0, 64, 64, red, 0},
			{576, 576, 640, 640, green, 1},
			{100, 600, 540, 640, blue, 2}, // a bar 40 high on the bottom edge
		}}, 8*8 + 8*8 + 55*5},
		{"too small or too thin", canvas{white, []rect{
			{100, 100, 139, 300, red, 0},   // 39 wide
			{300, 100, 340, 300, red, 0},   // 40 wide: detected
			{400, 100, 430, 130, blue, 2},  // 30x30
			{500, 500, 520, 520, green, 1}, // 20x20
		}}, 5 * 25},
		{"touching squares of two classes", canvas{white, []rect{
			{100, 100, 200, 200, red, 0},
			{200, 100, 300, 200, green, 1},
			{300, 100, 400, 200, red, 0},
		}}, (13 + 12 + 13) * 13},
		{"off-pure colors and grays of no class", canvas{white, []rect{
			{40, 40, 140, 140, rgb{230, 40, 30}, 0},
			{200, 40, 300, 140, rgb{150, 150, 150}, -1},
			{340, 40, 440, 140, rgb{0, 0, 0}, -1},
			{480, 40, 580, 140, rgb{255, 255, 0}, -1}, // yellow: R and G on
		}}, 12 * 12},
		{"nothing", canvas{white, nil}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := runSquares(t, s, tt.c.tensor())[0]
			if d := compare(t, got, tt.c.want()); d != tt.anchors {
				t.Errorf("%d anchors score a class, want %d", d, tt.anchors)
			}
		})
	}

	// A batch: each image gets its own boxes.
	a := canvas{white, []rect{{100, 100, 200, 200, red, 0}}}
	b := canvas{lightGray, []rect{{300, 300, 400, 360, blue, 2}}}
	outs := runSquares(t, s, a.tensor(), b.tensor(), a.tensor())
	for i, c := range []canvas{a, b, a} {
		compare(t, outs[i], c.want())
	}
}

// TestSquaresTiming logs the time of one 640x640 inference in ONNX Runtime
// (Session.Run on a prepared input; the best of a few, after a warm-up
// run). It asserts nothing about it.
func TestSquaresTiming(t *testing.T) {
	s := openSquares(t)
	in := []tensor.Tensor{{
		Name: "images", DType: predv1.DataType_DATA_TYPE_FLOAT32, Shape: []int64{1, 3, squaresSize, squaresSize},
		Data: float32Bytes(canvas{white, []rect{{100, 100, 180, 180, red, 0}}}.tensor()),
	}}
	shapes := [][]int64{{1, 7, modelgen.SquaresAnchors}}
	best := time.Duration(math.MaxInt64)
	for i := range 6 {
		start := time.Now()
		if _, err := s.Run(context.Background(), in, shapes); err != nil {
			t.Fatal(err)
		}
		if i > 0 {
			best = min(best, time.Since(start))
		}
	}
	t.Logf("one 640x640 inference: %v (best of 5, ONNX Runtime %s, default threads)", best, ortRuntime(t).Version())
}
