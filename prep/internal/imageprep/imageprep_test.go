package imageprep

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"image"
	"image/color"
	"image/png"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	predv1 "github.com/prepred/prepred/api/gen/prepred/pred/v1"
)

func readImage(t testing.TB, rel string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot, rel))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// colorsSpec is the colors model's spec.
func colorsSpec() *predv1.PreprocessSpec {
	s := resnet50Spec()
	s.Interpolation = predv1.Interpolation_INTERPOLATION_BILINEAR
	s.Width, s.Height = 32, 32
	return s
}

func cropSpec() *predv1.PreprocessSpec {
	s := resnet50Spec()
	s.ResizeMode = predv1.ResizeMode_RESIZE_MODE_SHORTER_SIDE_CENTER_CROP
	s.ResizeShorterSide = 256
	return s
}

func toCrop(s *predv1.PreprocessSpec, shorter uint32) {
	s.ResizeMode = predv1.ResizeMode_RESIZE_MODE_SHORTER_SIDE_CENTER_CROP
	s.ResizeShorterSide = shorter
}

func TestNewValidation(t *testing.T) {
	for _, tc := range []struct {
		name   string
		mutate func(*predv1.PreprocessSpec)
		want   string // substring of the error; "" means valid
	}{
		{"resnet50", func(*predv1.PreprocessSpec) {}, ""},
		{"crop", func(s *predv1.PreprocessSpec) { toCrop(s, 256) }, ""},
		{"bgr with background", func(s *predv1.PreprocessSpec) {
			s.ColorOrder = predv1.ColorOrder_COLOR_ORDER_BGR
			s.Background = []uint32{0, 0, 0}
		}, ""},
		{"newer schema", func(s *predv1.PreprocessSpec) { s.SchemaVersion = 2 }, "schema_version 2"},
		{"unset schema", func(s *predv1.PreprocessSpec) { s.SchemaVersion = 0 }, "schema_version 0"},
		{"unspecified color order", func(s *predv1.PreprocessSpec) { s.ColorOrder = 0 }, "color_order UNSPECIFIED"},
		{"unknown color order", func(s *predv1.PreprocessSpec) { s.ColorOrder = 9 }, "color_order 9 is not supported by this prep (knows RGB, BGR)"},
		{"unknown resize mode", func(s *predv1.PreprocessSpec) { s.ResizeMode = 7 },
			"resize_mode 7 is not supported by this prep (knows SQUASH, SHORTER_SIDE_CENTER_CROP, LETTERBOX)"},
		{"letterbox", func(s *predv1.PreprocessSpec) { s.ResizeMode = predv1.ResizeMode_RESIZE_MODE_LETTERBOX }, ""},
		{"letterbox pad color", func(s *predv1.PreprocessSpec) {
			s.ResizeMode = predv1.ResizeMode_RESIZE_MODE_LETTERBOX
			s.PadColor = []uint32{0, 255, 7}
		}, ""},
		{"pad color length", func(s *predv1.PreprocessSpec) { s.PadColor = []uint32{114} }, "pad_color has 1 values"},
		{"pad color range", func(s *predv1.PreprocessSpec) { s.PadColor = []uint32{1, 2, 300} }, "pad_color[2] 300"},
		{"unspecified resize mode", func(s *predv1.PreprocessSpec) { s.ResizeMode = 0 }, "resize_mode UNSPECIFIED"},
		{"unknown interpolation", func(s *predv1.PreprocessSpec) { s.Interpolation = 3 }, "interpolation 3"},
		{"unspecified interpolation", func(s *predv1.PreprocessSpec) { s.Interpolation = 0 }, "interpolation UNSPECIFIED"},
		{"zero width", func(s *predv1.PreprocessSpec) { s.Width = 0 }, "width 0"},
		{"huge height", func(s *predv1.PreprocessSpec) { s.Height = 100000 }, "height 100000"},
		{"crop larger than resize", func(s *predv1.PreprocessSpec) { toCrop(s, 200) }, "resize_shorter_side 200"},
		{"crop without resize", func(s *predv1.PreprocessSpec) { toCrop(s, 0) }, "resize_shorter_side 0"},
		{"layout", func(s *predv1.PreprocessSpec) { s.Layout = 0 }, "layout UNSPECIFIED"},
		{"unknown layout", func(s *predv1.PreprocessSpec) { s.Layout = 2 }, "layout 2"},
		{"dtype float16", func(s *predv1.PreprocessSpec) { s.Dtype = predv1.DataType_DATA_TYPE_FLOAT16 }, "dtype FLOAT16"},
		{"mean length", func(s *predv1.PreprocessSpec) { s.Mean = s.Mean[:2] }, "mean has 2 values"},
		{"std length", func(s *predv1.PreprocessSpec) { s.Std = nil }, "std has 0 values"},
		{"zero std", func(s *predv1.PreprocessSpec) { s.Std = []float32{0.2, 0, 0.2} }, "std[1] 0"},
		{"nan mean", func(s *predv1.PreprocessSpec) { s.Mean = []float32{0, float32(math.NaN()), 0} }, "mean[1] NaN"},
		{"zero scale", func(s *predv1.PreprocessSpec) { s.Scale = 0 }, "scale 0"},
		{"background length", func(s *predv1.PreprocessSpec) { s.Background = []uint32{1, 2} }, "background has 2 values"},
		{"background range", func(s *predv1.PreprocessSpec) { s.Background = []uint32{1, 256, 3} }, "background[1] 256"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := resnet50Spec()
			tc.mutate(s)
			p, err := New(s, Limits{})
			if tc.want == "" {
				if err != nil {
					t.Fatalf("New: %v", err)
				}
				if p.TensorLen() != 3*224*224 {
					t.Errorf("TensorLen = %d", p.TensorLen())
				}
				return
			}
			if err == nil {
				t.Fatalf("New accepted the spec, want error containing %q", tc.want)
			}
			if !strings.HasPrefix(err.Error(), "preprocess spec: ") || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q, want it to contain %q", err, tc.want)
			}
		})
	}
	if _, err := New(nil, Limits{}); err == nil {
		t.Error("New(nil) succeeded")
	}
}

func TestShape(t *testing.T) {
	s := resnet50Spec()
	s.Width, s.Height = 40, 30
	p, err := New(s, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if got := p.Shape(); len(got) != 3 || got[0] != 3 || got[1] != 30 || got[2] != 40 {
		t.Errorf("Shape = %v, want [3 30 40]", got)
	}
	if p.TensorLen() != 3*30*40 {
		t.Errorf("TensorLen = %d, want %d", p.TensorLen(), 3*30*40)
	}
}

// errorCode returns the Code of an *Error, or "" for other errors.
func errorCode(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return ""
}

func TestProcessErrors(t *testing.T) {
	jpg := readImage(t, "testdata/images/photo-500x375.jpg")
	png := readImage(t, "testdata/images/chelsea.png")
	random := make([]byte, 4096)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range random {
		random[i] = byte(rng.Uint32())
	}
	corruptJPEG := bytes.Clone(jpg)
	for i := len(corruptJPEG) / 3; i < len(corruptJPEG)/3+64; i++ {
		corruptJPEG[i] = 0xFF // markers in the middle of entropy-coded data
	}
	for _, tc := range []struct {
		name string
		img  []byte
		code string
	}{
		{"empty", nil, CodeUnsupportedFormat},
		{"random bytes", random, CodeUnsupportedFormat},
		{"text", []byte("<html>not an image</html>"), CodeUnsupportedFormat},
		{"JPEG magic only", []byte{0xFF, 0xD8, 0xFF}, CodeInvalidImage},
		{"truncated JPEG header", jpg[:300], CodeInvalidImage},
		{"truncated JPEG data", jpg[:len(jpg)/2], CodeInvalidImage},
		{"truncated progressive JPEG", truncatedProgressive(t), CodeInvalidImage},
		{"PNG magic only", png[:8], CodeInvalidImage},
		{"truncated PNG", png[:len(png)/2], CodeInvalidImage},
		{"GIF header only", []byte("GIF89a"), CodeInvalidImage},
		{"RIFF but no WebP", append([]byte("RIFF\x10\x00\x00\x00WEBP"), make([]byte, 16)...), CodeInvalidImage},
		{"BMP magic only", []byte("BM"), CodeInvalidImage},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := New(resnet50Spec(), Limits{MaxPixels: 50_000_000})
			if err != nil {
				t.Fatal(err)
			}
			err = p.Process(tc.img, make([]float32, p.TensorLen()))
			if got := errorCode(err); got != tc.code {
				t.Errorf("Process: %v (code %q), want code %q", err, got, tc.code)
			}
		})
	}
	t.Run("corrupt JPEG data", func(t *testing.T) {
		// libjpeg and Pillow recover from corrupt entropy-coded data with
		// a warning; either that or invalid_image is acceptable, never a
		// crash or another error.
		p, _ := New(resnet50Spec(), Limits{})
		if err := p.Process(corruptJPEG, make([]float32, p.TensorLen())); err != nil && errorCode(err) != CodeInvalidImage {
			t.Errorf("Process: %v", err)
		}
	})
	t.Run("wrong dst length", func(t *testing.T) {
		p, _ := New(resnet50Spec(), Limits{})
		err := p.Process(jpg, make([]float32, 10))
		if err == nil || errorCode(err) != "" {
			t.Errorf("Process with a short dst: %v, want a non-*Error error", err)
		}
	})
}

// truncatedProgressive cuts a progressive JPEG in the middle of its scans.
// (testdata's video-001.progressive.truncated.jpeg lacks scans but ends
// properly; Pillow and libjpeg decode it, and so does prep.)
func truncatedProgressive(t testing.TB) []byte {
	b := readImage(t, "testdata/images/video-001.progressive.jpeg")
	return b[:len(b)*2/3]
}

// Headers announcing a 50000x50000 image (16383x16383 for WebP, its
// largest) and nothing else.
func hugeHeaders() map[string][]byte {
	const side = 50000
	be16 := func(v int) []byte { return binary.BigEndian.AppendUint16(nil, uint16(v)) }
	le16 := func(v int) []byte { return binary.LittleEndian.AppendUint16(nil, uint16(v)) }
	le32 := func(v int) []byte { return binary.LittleEndian.AppendUint32(nil, uint32(v)) }
	cat := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

	jpeg := cat([]byte{0xFF, 0xD8, 0xFF, 0xC0, 0x00, 0x11, 0x08}, be16(side), be16(side),
		[]byte{3, 1, 0x22, 0, 2, 0x11, 1, 3, 0x11, 1},
		[]byte{0xFF, 0xDA, 0x00, 0x0C, 3, 1, 0, 2, 0x11, 3, 0x11, 0, 0x3F, 0}, make([]byte, 64), []byte{0xFF, 0xD9})

	chunk := func(typ string, data []byte) []byte {
		c := cat(binary.BigEndian.AppendUint32(nil, uint32(len(data))), []byte(typ), data)
		return binary.BigEndian.AppendUint32(c, crc32.ChecksumIEEE(c[4:]))
	}
	ihdr := cat(binary.BigEndian.AppendUint32(nil, side), binary.BigEndian.AppendUint32(nil, side), []byte{8, 2, 0, 0, 0})
	png := cat([]byte("\x89PNG\r\n\x1a\n"), chunk("IHDR", ihdr), chunk("IDAT", []byte{0x78, 0x9c, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01}), chunk("IEND", nil))

	gif := cat([]byte("GIF89a"), le16(side), le16(side), []byte{0, 0, 0},
		[]byte{0x2C}, le16(0), le16(0), le16(side), le16(side), []byte{0, 2, 2, 0x4C, 0x01, 0, 0x3B})

	bmp := cat([]byte("BM"), le32(54), le32(0), le32(54), le32(40), le32(side), le32(side), le16(1), le16(24),
		le32(0), le32(0), le32(0), le32(0), le32(0), le32(0))

	// VP8 key frame header: frame tag (key frame, shown, partition size
	// 16), start code, 14-bit width and height.
	vp8 := cat(le32(1<<4 | 16<<5)[:3], []byte{0x9D, 0x01, 0x2A}, le16(16383), le16(16383), make([]byte, 16))
	webp := cat([]byte("RIFF"), le32(4+8+len(vp8)), []byte("WEBPVP8 "), le32(len(vp8)), vp8)

	return map[string][]byte{"jpeg": jpeg, "png": png, "gif": gif, "bmp": bmp, "webp": webp}
}

func TestImageTooLarge(t *testing.T) {
	p, err := New(resnet50Spec(), Limits{MaxPixels: 50_000_000})
	if err != nil {
		t.Fatal(err)
	}
	dst := make([]float32, p.TensorLen())
	for name, img := range hugeHeaders() {
		t.Run(name, func(t *testing.T) {
			start := time.Now()
			err := p.Process(img, dst)
			elapsed := time.Since(start)
			if errorCode(err) != CodeImageTooLarge {
				t.Fatalf("Process: %v, want %s", err, CodeImageTooLarge)
			}
			if !strings.Contains(err.Error(), "50000x50000") && !strings.Contains(err.Error(), "16383x16383") {
				t.Errorf("error %q does not name the size", err)
			}
			// Refused from the header: fast, and with (almost) no memory.
			if elapsed > 100*time.Millisecond {
				t.Errorf("refusing took %v", elapsed)
			}
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			allocs := testing.AllocsPerRun(20, func() { _ = p.Process(img, dst) })
			runtime.ReadMemStats(&after)
			perRun := (after.TotalAlloc - before.TotalAlloc) / 21
			t.Logf("%v, %.0f allocs and %d bytes per refusal", elapsed, allocs, perRun)
			if allocs > 50 || perRun > 64<<10 {
				t.Errorf("refusing allocated %.0f times, %d bytes; want a header check only", allocs, perRun)
			}
		})
	}
}

func TestNoLimit(t *testing.T) {
	p, err := New(colorsSpec(), Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Process(readImage(t, "testdata/images/photo-1024x768.jpg"), make([]float32, p.TensorLen())); err != nil {
		t.Fatal(err)
	}
	p, _ = New(colorsSpec(), Limits{MaxPixels: 1024*768 - 1})
	if err := p.Process(readImage(t, "testdata/images/photo-1024x768.jpg"), make([]float32, p.TensorLen())); errorCode(err) != CodeImageTooLarge {
		t.Fatalf("one pixel over the limit: %v", err)
	}
}

// identitySpec keeps 8-bit levels in the tensor (scale 1, mean 0, std 1).
func identitySpec(w, h uint32) *predv1.PreprocessSpec {
	s := resnet50Spec()
	s.Width, s.Height = w, h
	s.Scale = 1
	s.Mean = []float32{0, 0, 0}
	s.Std = []float32{1, 1, 1}
	return s
}

func meanAbsDiff(a, b []float32) float64 {
	var sum float64
	for i := range a {
		sum += math.Abs(float64(a[i] - b[i]))
	}
	return sum / float64(len(a))
}

func TestOrientation(t *testing.T) {
	// orientation_N.jpg (N = 1..8) store the picture of orientation_0.jpg
	// transformed so that applying EXIF orientation N restores it.
	p, err := New(identitySpec(25, 35), Limits{})
	if err != nil {
		t.Fatal(err)
	}
	process := func(img []byte) []float32 {
		dst := make([]float32, p.TensorLen())
		if err := p.Process(img, dst); err != nil {
			t.Fatal(err)
		}
		return dst
	}
	want := process(readImage(t, "testdata/images/orientation/orientation_0.jpg"))
	for n := 1; n <= 8; n++ {
		img := readImage(t, "testdata/images/orientation/orientation_"+string(rune('0'+n))+".jpg")
		if got := jpegOrientation(img); got != n {
			t.Errorf("orientation_%d.jpg: read orientation %d", n, got)
		}
		d := meanAbsDiff(process(img), want)
		if d > 3 {
			t.Errorf("orientation_%d.jpg differs from orientation_0.jpg by %.1f levels on average", n, d)
		}
		if n > 1 {
			// Without the EXIF orientation the picture is different.
			raw := removeExif(img)
			if jpegOrientation(raw) != 1 {
				t.Fatal("removeExif failed")
			}
			if d := meanAbsDiff(process(raw), want); d < 10 {
				t.Errorf("orientation_%d.jpg without EXIF is only %.1f levels away: the test cannot tell", n, d)
			}
		}
	}
}

// removeExif renames the APP1 marker of a JPEG so its EXIF block is ignored.
func removeExif(img []byte) []byte {
	out := bytes.Clone(img)
	if i := bytes.Index(out, []byte("Exif\x00")); i >= 4 && out[i-4] == 0xFF && out[i-3] == 0xE1 {
		out[i-3] = 0xEF
	}
	return out
}

func TestColorOrderAndBackground(t *testing.T) {
	// 80x80 (220, 20, 30), rows 0-7 transparent; processed at its own size.
	img := readImage(t, "testdata/images/red-alpha.png")
	run := func(mutate func(*predv1.PreprocessSpec)) []float32 {
		s := identitySpec(80, 80)
		mutate(s)
		p, err := New(s, Limits{})
		if err != nil {
			t.Fatal(err)
		}
		dst := make([]float32, p.TensorLen())
		if err := p.Process(img, dst); err != nil {
			t.Fatal(err)
		}
		return dst
	}
	rgb := run(func(*predv1.PreprocessSpec) {})
	bgr := run(func(s *predv1.PreprocessSpec) { s.ColorOrder = predv1.ColorOrder_COLOR_ORDER_BGR })
	plane := 80 * 80
	if !slicesEqual(rgb[:plane], bgr[2*plane:]) || !slicesEqual(rgb[2*plane:], bgr[:plane]) || !slicesEqual(rgb[plane:2*plane], bgr[plane:2*plane]) {
		t.Error("BGR is not RGB with the first and last planes swapped")
	}
	// Bottom-right pixel: opaque red. Top-left: transparent, so background.
	px := func(t []float32, c, y, x int) float32 { return t[c*plane+y*80+x] }
	if px(rgb, 0, 79, 79) != 220 || px(rgb, 1, 79, 79) != 20 || px(rgb, 2, 79, 79) != 30 {
		t.Errorf("opaque pixel = %v %v %v, want 220 20 30", px(rgb, 0, 79, 79), px(rgb, 1, 79, 79), px(rgb, 2, 79, 79))
	}
	if px(rgb, 0, 0, 0) != 255 || px(rgb, 1, 0, 0) != 255 || px(rgb, 2, 0, 0) != 255 {
		t.Errorf("transparent pixel = %v %v %v, want the default white background", px(rgb, 0, 0, 0), px(rgb, 1, 0, 0), px(rgb, 2, 0, 0))
	}
	blue := run(func(s *predv1.PreprocessSpec) { s.Background = []uint32{0, 0, 255} })
	if px(blue, 0, 0, 0) != 0 || px(blue, 1, 0, 0) != 0 || px(blue, 2, 0, 0) != 255 {
		t.Errorf("transparent pixel = %v %v %v, want the blue background", px(blue, 0, 0, 0), px(blue, 1, 0, 0), px(blue, 2, 0, 0))
	}
}

func slicesEqual(a, b []float32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestNormalization(t *testing.T) {
	// A mostly-red JPEG under the colors spec: R well above 0, G and B
	// well below, in ImageNet-normalized units.
	p, err := New(colorsSpec(), Limits{})
	if err != nil {
		t.Fatal(err)
	}
	dst := make([]float32, p.TensorLen())
	if err := p.Process(readImage(t, "testdata/images/red.jpg"), dst); err != nil {
		t.Fatal(err)
	}
	plane := 32 * 32
	mean := func(c int) float64 {
		var s float64
		for _, v := range dst[c*plane : (c+1)*plane] {
			s += float64(v)
		}
		return s / float64(plane)
	}
	// Pure red normalizes to ((1-0.485)/0.229, -0.456/0.224, -0.406/0.225).
	if r, g, b := mean(0), mean(1), mean(2); r < 1.5 || g > -1.5 || b > -1.3 {
		t.Errorf("channel means %.2f %.2f %.2f, want about 2.2 -2.0 -1.8", r, g, b)
	}
}

func TestConcurrentProcess(t *testing.T) {
	p, err := New(cropSpec(), Limits{MaxPixels: 50_000_000})
	if err != nil {
		t.Fatal(err)
	}
	names := []string{"photo-500x375.jpg", "chelsea.png", "rocket.jpg", "video-001.gif", "red-alpha.png", "astronaut.jpg"}
	want := make([][]float32, len(names))
	imgs := make([][]byte, len(names))
	for i, n := range names {
		imgs[i] = readImage(t, "testdata/images/"+n)
		want[i] = make([]float32, p.TensorLen())
		if err := p.Process(imgs[i], want[i]); err != nil {
			t.Fatal(err)
		}
	}
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			dst := make([]float32, p.TensorLen())
			for r := range 6 {
				i := (g + r) % len(names)
				if err := p.Process(imgs[i], dst); err != nil {
					t.Error(err)
					return
				}
				if !slicesEqual(dst, want[i]) {
					t.Errorf("%s: concurrent result differs", names[i])
				}
			}
		})
	}
	wg.Wait()
}

func TestGray16PNG(t *testing.T) {
	// Pillow 9 clips 16-bit grayscale to 255; prep keeps the high byte,
	// as both do for 16-bit RGB.
	m := image.NewGray16(image.Rect(0, 0, 16, 4))
	for i := range 16 * 4 {
		m.SetGray16(i%16, i/16, color.Gray16{Y: uint16(i * 1000)})
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, m); err != nil {
		t.Fatal(err)
	}
	p, err := New(identitySpec(16, 4), Limits{})
	if err != nil {
		t.Fatal(err)
	}
	dst := make([]float32, p.TensorLen())
	if err := p.Process(buf.Bytes(), dst); err != nil {
		t.Fatal(err)
	}
	for i := range 16 * 4 {
		want := float32(uint16(i*1000) >> 8)
		for c := range 3 {
			if got := dst[c*64+i]; got != want {
				t.Fatalf("pixel %d channel %d = %v, want %v", i, c, got, want)
			}
		}
	}
}

// manyScans repeats the first scan of a progressive JPEG n times: libjpeg
// accepts that (with a warning) and decodes every copy.
func manyScans(t testing.TB, n int) []byte {
	b := readImage(t, "testdata/images/video-001.progressive.jpeg")
	sos := bytes.Index(b, []byte{0xFF, 0xDA})
	end := sos + 2
	for end+1 < len(b) && !(b[end] == 0xFF && b[end+1] != 0 && (b[end+1] < 0xD0 || b[end+1] > 0xD7)) {
		end++
	}
	out := bytes.Clone(b[:sos])
	for range n {
		out = append(out, b[sos:end]...)
	}
	return append(out, b[end:]...)
}

func TestJPEGScanLimit(t *testing.T) {
	if !nativeJPEG {
		t.Skip("the scan limit is libjpeg's (cgo build)")
	}
	p, err := New(colorsSpec(), Limits{})
	if err != nil {
		t.Fatal(err)
	}
	dst := make([]float32, p.TensorLen())
	if err := p.Process(manyScans(t, 100), dst); err != nil {
		t.Fatalf("100 scans: %v", err)
	}
	start := time.Now()
	err = p.Process(manyScans(t, 2000), dst)
	if errorCode(err) != CodeInvalidImage || !strings.Contains(err.Error(), "scans") {
		t.Fatalf("2000 scans: %v, want invalid_image about scans", err)
	}
	t.Logf("refused in %v: %v", time.Since(start), err)
}

func TestElongatedImage(t *testing.T) {
	// 4 x 400000 is only 1.6 MP, but resizing it to 224 wide keeps
	// 400000 rows of 224 pixels between the passes (Pillow does the same):
	// refused rather than allocated.
	m := image.NewGray(image.Rect(0, 0, 4, 400_000))
	var buf bytes.Buffer
	if err := png.Encode(&buf, m); err != nil {
		t.Fatal(err)
	}
	p, err := New(resnet50Spec(), Limits{MaxPixels: 50_000_000})
	if err != nil {
		t.Fatal(err)
	}
	err = p.Process(buf.Bytes(), make([]float32, p.TensorLen()))
	if errorCode(err) != CodeImageTooLarge || !strings.Contains(err.Error(), "elongated") {
		t.Fatalf("Process: %v, want %s (too elongated)", err, CodeImageTooLarge)
	}
	// 4 x 40000 is fine.
	m = image.NewGray(image.Rect(0, 0, 4, 40_000))
	buf.Reset()
	if err := png.Encode(&buf, m); err != nil {
		t.Fatal(err)
	}
	if err := p.Process(buf.Bytes(), make([]float32, p.TensorLen())); err != nil {
		t.Fatal(err)
	}
}
