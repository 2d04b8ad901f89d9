package imageprep

import (
	"bytes"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"os"
	"path/filepath"
	"testing"
)

// encoded returns a w x h solid image encoded by enc.
func encoded(t testing.TB, w, h int, enc func(*bytes.Buffer, image.Image) error) []byte {
	t.Helper()
	m := image.NewRGBA(image.Rect(0, 0, w, h))
	for i := range m.Pix {
		m.Pix[i] = 0xFF
	}
	m.Set(0, 0, color.RGBA{R: 200, A: 255})
	var b bytes.Buffer
	if err := enc(&b, m); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func encodeJPEG(b *bytes.Buffer, m image.Image) error { return jpeg.Encode(b, m, nil) }
func encodePNG(b *bytes.Buffer, m image.Image) error  { return png.Encode(b, m) }

func TestPixels(t *testing.T) {
	tests := []struct {
		name string
		img  []byte
		want int64
	}{
		{"JPEG", encoded(t, 64, 48, encodeJPEG), 64 * 48},
		{"PNG", encoded(t, 20, 30, encodePNG), 600},
		{"text", []byte("hello"), 0},
		{"truncated JPEG header", encoded(t, 8, 8, encodeJPEG)[:30], 0},
		{"truncated PNG header", encoded(t, 8, 8, encodePNG)[:20], 0},
	}
	for _, tt := range tests {
		if got := Pixels(tt.img); got != tt.want {
			t.Errorf("%s: %d pixels, want %d", tt.name, got, tt.want)
		}
	}
	// The header walk agrees with the standard decoders on every test
	// image: progressive, CMYK, EXIF-rotated, grayscale JPEGs, PNG, GIF,
	// WebP, BMP.
	var paths []string
	for _, pattern := range []string{"testdata/images/*", "testdata/images/*/*", "testdata/golden/inputs/*"} {
		p, err := filepath.Glob(filepath.Join(repoRoot, pattern))
		if err != nil {
			t.Fatal(err)
		}
		paths = append(paths, p...)
	}
	n := 0
	for _, path := range paths {
		img, err := os.ReadFile(path)
		if err != nil {
			continue // a directory
		}
		f := sniff(img)
		if f == formatUnknown {
			continue
		}
		cfg, err := decodeConfigFuncs[f](bytes.NewReader(img))
		if err != nil {
			continue // truncated before the header
		}
		n++
		if got, want := Pixels(img), int64(cfg.Width)*int64(cfg.Height); got != want {
			t.Errorf("%s: %d pixels, want %d", filepath.Base(path), got, want)
		}
	}
	if n < 30 {
		t.Errorf("only %d test images checked", n)
	}
}

// BenchmarkPixels measures reading the size of a 500x375 JPEG from its
// header, as prep does for every image before decoding it.
func BenchmarkPixels(b *testing.B) {
	img := readImage(b, "testdata/images/photo-500x375.jpg")
	b.ReportAllocs()
	for b.Loop() {
		if Pixels(img) != 500*375 {
			b.Fatal("wrong size")
		}
	}
}
