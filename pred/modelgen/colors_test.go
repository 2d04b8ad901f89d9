package modelgen_test

import (
	"encoding/binary"
	"math"
	"path/filepath"
	"testing"

	onnxpb "github.com/prepred/prepred/api/gen/onnx"
	"github.com/prepred/prepred/pred/modelgen"
)

// floats decodes a float32 initializer.
func floats(init *onnxpb.TensorProto) []float32 {
	raw := init.GetRawData()
	out := make([]float32, len(raw)/4)
	for i := range out {
		out[i] = math.Float32frombits(binary.LittleEndian.Uint32(raw[4*i:]))
	}
	return out
}

// colorsModel evaluates the generated colors graph in plain Go:
// ReduceMean over H and W, then Gemm with the file's B [3,9] and C [9].
type colorsModel struct {
	b []float32
	c []float32
}

func loadColors(t *testing.T) colorsModel {
	t.Helper()
	m := readONNX(t, filepath.Join(generatedDir(t), "colors", "1", "model.onnx"))
	g := m.GetGraph()
	nodes := g.GetNode()
	if len(nodes) != 2 || nodes[0].GetOpType() != "ReduceMean" || nodes[1].GetOpType() != "Gemm" {
		t.Fatalf("colors graph is %v, want ReduceMean then Gemm", nodes)
	}
	attrs := map[string]*onnxpb.AttributeProto{}
	for _, a := range nodes[0].GetAttribute() {
		attrs[a.GetName()] = a
	}
	if got := attrs["axes"].GetInts(); len(got) != 2 || got[0] != 2 || got[1] != 3 || attrs["keepdims"].GetI() != 0 {
		t.Fatalf("ReduceMean attributes = %v, want axes [2,3] keepdims 0", nodes[0].GetAttribute())
	}
	for _, a := range nodes[1].GetAttribute() {
		if (a.GetName() == "transA" || a.GetName() == "transB") && a.GetI() != 0 {
			t.Fatalf("Gemm %s = %d, want 0", a.GetName(), a.GetI())
		}
		if (a.GetName() == "alpha" || a.GetName() == "beta") && a.GetF() != 1 {
			t.Fatalf("Gemm %s = %v, want 1", a.GetName(), a.GetF())
		}
	}
	inits := map[string]*onnxpb.TensorProto{}
	for _, i := range g.GetInitializer() {
		inits[i.GetName()] = i
	}
	b, c := inits[nodes[1].GetInput()[1]], inits[nodes[1].GetInput()[2]]
	if shape := b.GetDims(); len(shape) != 2 || shape[0] != 3 || shape[1] != 9 {
		t.Fatalf("B dims = %v, want [3 9]", shape)
	}
	return colorsModel{b: floats(b), c: floats(c)}
}

// classify runs the model on one CHW image and returns the label.
func (m colorsModel) classify(chw []float32, size int) string {
	var mean [3]float32
	for ch := range mean {
		var sum float64
		for _, v := range chw[ch*size*size : (ch+1)*size*size] {
			sum += float64(v)
		}
		mean[ch] = float32(sum / float64(size*size))
	}
	best, arg := float32(math.Inf(-1)), -1
	for k := range m.c {
		logit := m.c[k]
		for ch := range mean {
			logit += mean[ch] * m.b[ch*len(m.c)+k]
		}
		if logit > best {
			best, arg = logit, k
		}
	}
	return modelgen.ColorLabels[arg]
}

// image builds a size x size CHW tensor: every pixel is fill except a
// square of accent in the top left corner, each channel mapped by norm.
func image(size int, fill, accent [3]float32, norm func([3]float32) [3]float32) []float32 {
	f, a := norm(fill), norm(accent)
	chw := make([]float32, 3*size*size)
	for ch := range 3 {
		for y := range size {
			for x := range size {
				v := f[ch]
				if x < size/4 && y < size/4 {
					v = a[ch]
				}
				chw[ch*size*size+y*size+x] = v
			}
		}
	}
	return chw
}

func TestColorsSemantics(t *testing.T) {
	m := loadColors(t)
	const size = 32
	red := [3]float32{255, 0, 0}
	swapRB := func(rgb [3]float32) [3]float32 { return modelgen.Normalize([3]float32{rgb[2], rgb[1], rgb[0]}) }
	scaleOnly := func(rgb [3]float32) [3]float32 {
		return [3]float32{rgb[0] * modelgen.ImageScale, rgb[1] * modelgen.ImageScale, rgb[2] * modelgen.ImageScale}
	}
	tests := []struct {
		name   string
		fill   [3]float32
		accent [3]float32
		norm   func([3]float32) [3]float32
		want   string
	}{
		{"red", red, red, modelgen.Normalize, "red"},
		{"mostly red", [3]float32{230, 20, 30}, [3]float32{20, 200, 40}, modelgen.Normalize, "red"},
		{"dark red", [3]float32{200, 10, 10}, [3]float32{0, 0, 0}, modelgen.Normalize, "red"},
		{"mostly blue", [3]float32{10, 30, 220}, [3]float32{255, 255, 255}, modelgen.Normalize, "blue"},
		{"light gray", [3]float32{150, 150, 150}, [3]float32{150, 150, 150}, modelgen.Normalize, "gray"},
		{"olive", [3]float32{200, 190, 40}, [3]float32{200, 190, 40}, modelgen.Normalize, "yellow"},
		{"red with R and B swapped", red, red, swapRB, "blue"},
		{"mostly red with R and B swapped", [3]float32{230, 20, 30}, [3]float32{20, 200, 40}, swapRB, "blue"},
		{"black without mean/std", [3]float32{0, 0, 0}, [3]float32{0, 0, 0}, scaleOnly, "gray"},
		{"white without mean/std", [3]float32{255, 255, 255}, [3]float32{255, 255, 255}, scaleOnly, "gray"},
		{"red without mean/std", red, red, scaleOnly, "gray"},
	}
	for k, center := range modelgen.ColorCenters {
		rgb := [3]float32{float32(center[0]), float32(center[1]), float32(center[2])}
		tests = append(tests, struct {
			name   string
			fill   [3]float32
			accent [3]float32
			norm   func([3]float32) [3]float32
			want   string
		}{"center " + modelgen.ColorLabels[k], rgb, rgb, modelgen.Normalize, modelgen.ColorLabels[k]})
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := m.classify(image(size, tt.fill, tt.accent, tt.norm), size); got != tt.want {
				t.Errorf("classified as %q, want %q", got, tt.want)
			}
		})
	}
}

func TestNormalize(t *testing.T) {
	got := modelgen.Normalize([3]float32{255, 0, 128})
	want := [3]float64{(1 - 0.485) / 0.229, (0 - 0.456) / 0.224, (128.0/255 - 0.406) / 0.225}
	for c := range got {
		if math.Abs(float64(got[c])-want[c]) > 1e-5 {
			t.Errorf("channel %d = %v, want %v", c, got[c], want[c])
		}
	}
}
