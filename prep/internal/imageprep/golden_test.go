package imageprep

// The golden data in testdata/golden is computed by Pillow; regenerate it
// from the repository root with
//
//	/usr/bin/python3 scripts/golden/make_golden.py
//
// (Debian's python3-pil and python3-numpy). See that script for the exact
// reference pipeline.

import (
	"cmp"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	predv1 "github.com/prepred/prepred/api/gen/prepred/pred/v1"
)

// repoRoot is the repository root relative to this package.
const repoRoot = "../../.."

type goldenGeometry struct {
	Mode       string   `json:"mode"`
	Interp     string   `json:"interp"`
	Width      uint32   `json:"width"`
	Height     uint32   `json:"height"`
	Shorter    uint32   `json:"shorter"`
	Order      string   `json:"order"`
	Background []uint32 `json:"background"`
	Pad        []uint32 `json:"pad"`
}

type goldenSpec struct {
	Geometry string    `json:"geometry"`
	Scale    float64   `json:"scale"`
	Mean     []float64 `json:"mean"`
	Std      []float64 `json:"std"`
}

type goldenIndex struct {
	Pillow     string                    `json:"pillow"`
	Geometries map[string]goldenGeometry `json:"geometries"`
	Specs      map[string]goldenSpec     `json:"specs"`
	Cases      []struct {
		Image    string `json:"image"`
		Geometry string `json:"geometry"`
		Offset   int    `json:"offset"`
		Shape    []int  `json:"shape"`
	} `json:"cases"`
	Tensors []struct {
		Image  string `json:"image"`
		Spec   string `json:"spec"`
		Offset int    `json:"offset"`
		Shape  []int  `json:"shape"`
	} `json:"tensors"`
}

type golden struct {
	goldenIndex
	pixels  []byte
	tensors []byte
}

func readGzip(t testing.TB, path string) []byte {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func loadGolden(t testing.TB) *golden {
	t.Helper()
	dir := filepath.Join(repoRoot, "testdata/golden")
	b, err := os.ReadFile(filepath.Join(dir, "index.json"))
	if err != nil {
		t.Fatal(err)
	}
	g := &golden{}
	if err := json.Unmarshal(b, &g.goldenIndex); err != nil {
		t.Fatal(err)
	}
	g.pixels = readGzip(t, filepath.Join(dir, "pixels.bin.gz"))
	g.tensors = readGzip(t, filepath.Join(dir, "tensors.bin.gz"))
	for _, name := range requiredGeometries {
		if _, ok := g.Geometries[name]; !ok {
			t.Fatalf("testdata/golden has no geometry %q: it is older than scripts/golden/make_golden.py; run make golden", name)
		}
	}
	return g
}

// requiredGeometries are geometries the golden data must have, so that data
// made by an older make_golden.py fails instead of testing less.
var requiredGeometries = []string{"letterbox64-bilinear", "letterbox72x40-bicubic-bgr", "letterbox150x130-bilinear", "letterbox640-bilinear"}

// specFor builds a spec from a golden geometry and normalization.
func specFor(g goldenGeometry, scale float32, mean, std []float32) *predv1.PreprocessSpec {
	s := &predv1.PreprocessSpec{
		SchemaVersion:     1,
		Input:             "input",
		ColorOrder:        predv1.ColorOrder(predv1.ColorOrder_value["COLOR_ORDER_"+cmp.Or(g.Order, "RGB")]),
		ResizeMode:        predv1.ResizeMode(predv1.ResizeMode_value["RESIZE_MODE_"+g.Mode]),
		Interpolation:     predv1.Interpolation(predv1.Interpolation_value["INTERPOLATION_"+g.Interp]),
		Width:             g.Width,
		Height:            g.Height,
		ResizeShorterSide: g.Shorter,
		Scale:             scale,
		Mean:              mean,
		Std:               std,
		Layout:            predv1.Layout_LAYOUT_NCHW,
		Dtype:             predv1.DataType_DATA_TYPE_FLOAT32,
		Background:        g.Background,
		PadColor:          g.Pad,
	}
	return s
}

// imageClass groups inputs by how exactly Go can reproduce Pillow's decoder.
func imageClass(path string) string {
	switch strings.ToLower(filepath.Ext(path)) {
	case ".jpg", ".jpeg":
		return "jpeg"
	case ".webp":
		if strings.Contains(path, "lossy") {
			return "webp-lossy"
		}
		return "webp-lossless"
	case ".png":
		return "png"
	case ".gif":
		return "gif"
	case ".bmp":
		return "bmp"
	}
	return "other"
}

// maxLevelDiff is the largest difference, in 8-bit levels, allowed between
// a resized pixel and Pillow's. The resampler is Pillow's arithmetic, and
// the decoders produce Pillow's pixels: lossless formats trivially, lossy
// WebP because VP8 decoding is normative and webp.go reproduces libwebp's
// upsampling and color conversion, JPEG because the cgo build decodes with
// libjpeg-turbo as Pillow does. So everything must match exactly, except
// JPEG in the pure-Go build (see jpegLevelBound).
// notShrunk says that some axis of the image was not downscaled.
func maxLevelDiff(class, path string, notShrunk bool) int {
	if class == "jpeg" {
		return jpegLevelBound(path, notShrunk)
	}
	return 0
}

// unshrunk reports whether p keeps or enlarges some axis of img, so that
// no averaging hides a decoder's differences there.
func unshrunk(t testing.TB, p *Preprocessor, img []byte) bool {
	t.Helper()
	w, h, err := p.ImageSize(img)
	if err != nil {
		t.Fatal(err)
	}
	rw, rh, _, _ := p.Geometry(w, h)
	return rw >= w || rh >= h
}

type diffStats struct {
	cases, values, differing int
	maxDiff                  int
	sumDiff                  int64
	worst                    string
}

func (s *diffStats) String() string {
	mean := 0.0
	if s.values > 0 {
		mean = float64(s.sumDiff) / float64(s.values)
	}
	return fmt.Sprintf("%d cases, max %d levels (%s), mean %.4f levels, %.3f%% of values differ",
		s.cases, s.maxDiff, s.worst, mean, 100*float64(s.differing)/float64(max(s.values, 1)))
}

// resampler is one of the implementations a build has.
type resampler struct {
	name              string
	native, portableC bool
}

// resamplers lists the resamplers to test: the C one of the cgo build
// (which also decodes JPEG while resampling) with AVX2 and without, and the
// Go one.
func resamplers() []resampler {
	if nativeResample {
		return []resampler{{"", true, false}, {"/c", true, true}, {"/go", false, false}}
	}
	return []resampler{{"", false, false}}
}

func TestGoldenLevels(t *testing.T) {
	g := loadGolden(t)
	stats := map[string]*diffStats{}
	ones := []float32{1, 1, 1}
	zeros := []float32{0, 0, 0}
	for _, c := range g.Cases {
		for _, r := range resamplers() {
			name := strings.TrimPrefix(c.Image, "testdata/") + "/" + c.Geometry + r.name
			t.Run(name, func(t *testing.T) {
				geom := g.Geometries[c.Geometry]
				p, err := New(specFor(geom, 1, zeros, ones), Limits{})
				if err != nil {
					t.Fatal(err)
				}
				p.native, p.portableC = r.native, r.portableC
				img, err := os.ReadFile(filepath.Join(repoRoot, c.Image))
				if err != nil {
					t.Fatal(err)
				}
				dst := make([]float32, p.TensorLen())
				if err := p.Process(img, dst); err != nil {
					t.Fatal(err)
				}
				h, w := c.Shape[0], c.Shape[1]
				want := g.pixels[c.Offset : c.Offset+h*w*3]
				class := imageClass(c.Image)
				st := stats[class]
				if st == nil {
					st = &diffStats{}
					stats[class] = st
				}
				st.cases++
				caseMax := 0
				for ch := range 3 {
					for y := range h {
						for x := range w {
							got := dst[ch*h*w+y*w+x]
							wv := want[(y*w+x)*3+ch]
							if got != float32(int(got)) || got < 0 || got > 255 {
								t.Fatalf("value %v at c%d y%d x%d is not an 8-bit level", got, ch, y, x)
							}
							d := int(got) - int(wv)
							if d < 0 {
								d = -d
							}
							st.values++
							st.sumDiff += int64(d)
							if d != 0 {
								st.differing++
							}
							caseMax = max(caseMax, d)
						}
					}
				}
				if caseMax > st.maxDiff {
					st.maxDiff, st.worst = caseMax, name
				}
				if limit := maxLevelDiff(class, c.Image, unshrunk(t, p, img)); caseMax > limit {
					t.Errorf("max difference from Pillow %d levels, allowed %d (%s)", caseMax, limit, class)
				}
			})
		}
	}
	classes := make([]string, 0, len(stats))
	for c := range stats {
		classes = append(classes, c)
	}
	sort.Strings(classes)
	for _, c := range classes {
		t.Logf("%-13s %s", c, stats[c])
	}
}

func TestGoldenTensors(t *testing.T) {
	g := loadGolden(t)
	for _, tc := range g.Tensors {
		t.Run(strings.TrimPrefix(tc.Image, "testdata/")+"/"+tc.Spec, func(t *testing.T) {
			s := g.Specs[tc.Spec]
			f32 := func(v []float64) []float32 {
				out := make([]float32, len(v))
				for i, x := range v {
					out[i] = float32(x)
				}
				return out
			}
			p, err := New(specFor(g.Geometries[s.Geometry], float32(s.Scale), f32(s.Mean), f32(s.Std)), Limits{})
			if err != nil {
				t.Fatal(err)
			}
			img, err := os.ReadFile(filepath.Join(repoRoot, tc.Image))
			if err != nil {
				t.Fatal(err)
			}
			dst := make([]float32, p.TensorLen())
			if err := p.Process(img, dst); err != nil {
				t.Fatal(err)
			}
			want := g.tensors[tc.Offset : tc.Offset+4*len(dst)]
			var maxDiff float64
			for i, got := range dst {
				w := math.Float32frombits(uint32(want[4*i]) | uint32(want[4*i+1])<<8 | uint32(want[4*i+2])<<16 | uint32(want[4*i+3])<<24)
				maxDiff = max(maxDiff, math.Abs(float64(got-w)))
			}
			limit := tensorTolerance(maxLevelDiff(imageClass(tc.Image), tc.Image, unshrunk(t, p, img)), s)
			t.Logf("max abs difference %.3g (limit %.3g)", maxDiff, limit)
			if maxDiff > limit {
				t.Errorf("max abs difference from numpy %.6g, allowed %.6g", maxDiff, limit)
			}
		})
	}
}

// tensorTolerance converts maxLevelDiff into normalized units: n levels are
// n*scale/std apart. Exact classes get 0: the normalization is the same
// float32 arithmetic as numpy's.
func tensorTolerance(levels int, s goldenSpec) float64 {
	minStd := math.Inf(1)
	for _, v := range s.Std {
		minStd = math.Min(minStd, math.Abs(v))
	}
	if levels == 0 {
		return 0
	}
	// A little slack for float32 rounding of the scaled values (each is
	// within half a float32 ulp, 2^-24 relative, of the exact one).
	return float64(levels)*s.Scale/minStd*(1+1e-6) + 1e-6
}
