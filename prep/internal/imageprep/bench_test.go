package imageprep

import (
	"os"
	"path/filepath"
	"testing"

	predv1 "github.com/prepred/prepred/api/gen/prepred/pred/v1"
)

// resnet50Spec is the resnet50 model's PreprocessSpec.
func resnet50Spec() *predv1.PreprocessSpec {
	return &predv1.PreprocessSpec{
		SchemaVersion: 1,
		Input:         "input",
		ColorOrder:    predv1.ColorOrder_COLOR_ORDER_RGB,
		ResizeMode:    predv1.ResizeMode_RESIZE_MODE_SQUASH,
		Interpolation: predv1.Interpolation_INTERPOLATION_BICUBIC,
		Width:         224,
		Height:        224,
		Scale:         1.0 / 255,
		Mean:          []float32{0.485, 0.456, 0.406},
		Std:           []float32{0.229, 0.224, 0.225},
		Layout:        predv1.Layout_LAYOUT_NCHW,
		Dtype:         predv1.DataType_DATA_TYPE_FLOAT32,
	}
}

// benchImages are the files scripts/bench-pillow.py times too.
var benchImages = []string{
	"photo-500x375.jpg",
	"photo-1024x768.jpg",
	"chelsea.png",
}

func BenchmarkProcess(b *testing.B) {
	p, err := New(resnet50Spec(), Limits{MaxPixels: 50_000_000})
	if err != nil {
		b.Fatal(err)
	}
	for _, name := range benchImages {
		img, err := os.ReadFile(filepath.Join(repoRoot, "testdata/images", name))
		if err != nil {
			b.Fatal(err)
		}
		b.Run(name, func(b *testing.B) {
			dst := make([]float32, p.TensorLen())
			b.ReportAllocs()
			b.SetBytes(int64(len(img)))
			defer cpuTimer(b)()
			for b.Loop() {
				if err := p.Process(img, dst); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkProcessLetterbox is BenchmarkProcess with the squares detector's
// spec: a 640x640 letterbox on gray 114, bilinear, scale only.
func BenchmarkProcessLetterbox(b *testing.B) {
	s := resnet50Spec()
	s.ResizeMode = predv1.ResizeMode_RESIZE_MODE_LETTERBOX
	s.Interpolation = predv1.Interpolation_INTERPOLATION_BILINEAR
	s.Width, s.Height = 640, 640
	s.Mean, s.Std = []float32{0, 0, 0}, []float32{1, 1, 1}
	p, err := New(s, Limits{MaxPixels: 50_000_000})
	if err != nil {
		b.Fatal(err)
	}
	for _, name := range benchImages {
		img, err := os.ReadFile(filepath.Join(repoRoot, "testdata/images", name))
		if err != nil {
			b.Fatal(err)
		}
		b.Run(name, func(b *testing.B) {
			dst := make([]float32, p.TensorLen())
			b.ReportAllocs()
			b.SetBytes(int64(len(img)))
			defer cpuTimer(b)()
			for b.Loop() {
				if err := p.Process(img, dst); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
