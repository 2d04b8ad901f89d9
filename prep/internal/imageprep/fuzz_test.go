package imageprep

import (
	"bytes"
	"compress/zlib"
	"encoding/binary"
	"hash/crc32"
	"os"
	"path/filepath"
	"testing"
)

// fuzzMaxPixels keeps fuzzed headers from asking for large buffers.
const fuzzMaxPixels = 1 << 20

// FuzzProcess checks that no input makes Process panic (or crash in C),
// and that every failure it reports for an input is an *Error.
func FuzzProcess(f *testing.F) {
	var seeds []string
	for _, dir := range []string{"testdata/images", "testdata/images/orientation", "testdata/golden/inputs"} {
		entries, err := os.ReadDir(filepath.Join(repoRoot, dir))
		if err != nil {
			f.Fatal(err)
		}
		for _, e := range entries {
			info, err := e.Info()
			if err != nil || e.IsDir() || info.Size() > 64<<10 || filepath.Ext(e.Name()) == ".md" {
				continue
			}
			seeds = append(seeds, filepath.Join(repoRoot, dir, e.Name()))
		}
	}
	for _, path := range seeds {
		b, err := os.ReadFile(path)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	for _, h := range hugeHeaders() {
		f.Add(h)
	}
	s := colorsSpec()
	s.ResizeMode = 2
	s.ResizeShorterSide = 40
	crop, err := New(s, Limits{MaxPixels: fuzzMaxPixels})
	if err != nil {
		f.Fatal(err)
	}
	squash, err := New(colorsSpec(), Limits{MaxPixels: fuzzMaxPixels})
	if err != nil {
		f.Fatal(err)
	}
	dst := make([]float32, squash.TensorLen())
	f.Fuzz(func(t *testing.T, img []byte) {
		for _, p := range []*Preprocessor{squash, crop} {
			if err := p.Process(img, dst); err != nil && errorCode(err) == "" {
				t.Fatalf("Process returned %T %v, want *Error", err, err)
			}
		}
	})
}

// FuzzPNGData feeds arbitrary image data and header fields to the PNG
// decoder behind valid chunk framing (FuzzProcess's mutations mostly break
// the CRCs, so they rarely get that far).
func FuzzPNGData(f *testing.F) {
	var zdata bytes.Buffer
	zw := zlib.NewWriter(&zdata)
	zw.Write(bytes.Repeat([]byte{0, 10, 200, 30, 4, 1, 2, 3, 4}, 40))
	zw.Close()
	for _, ct := range []uint8{0, 2, 3, 4, 6} {
		for _, d := range []uint8{1, 8, 16} {
			f.Add(ct, d, uint16(5), uint16(7), []byte{3}, zdata.Bytes())
		}
	}
	p, err := New(colorsSpec(), Limits{MaxPixels: fuzzMaxPixels})
	if err != nil {
		f.Fatal(err)
	}
	dst := make([]float32, p.TensorLen())
	f.Fuzz(func(t *testing.T, colorType, depth uint8, w, h uint16, trns, data []byte) {
		img := buildPNG(colorType, depth, int(w), int(h), trns, data)
		if err := p.Process(img, dst); err != nil && errorCode(err) == "" {
			t.Fatalf("Process returned %T %v, want *Error", err, err)
		}
	})
}

// buildPNG frames the given fields as a PNG with correct CRCs; color type 3
// gets a 256-entry palette.
func buildPNG(colorType, depth uint8, w, h int, trns, data []byte) []byte {
	var b bytes.Buffer
	b.WriteString("\x89PNG\r\n\x1a\n")
	chunk := func(typ string, d []byte) {
		binary.Write(&b, binary.BigEndian, uint32(len(d)))
		c := append([]byte(typ), d...)
		b.Write(c)
		binary.Write(&b, binary.BigEndian, crc32.ChecksumIEEE(c))
	}
	ihdr := binary.BigEndian.AppendUint32(nil, uint32(w))
	ihdr = binary.BigEndian.AppendUint32(ihdr, uint32(h))
	chunk("IHDR", append(ihdr, depth, colorType, 0, 0, 0))
	if colorType == 3 {
		plte := make([]byte, 768)
		for i := range plte {
			plte[i] = byte(i * 7)
		}
		chunk("PLTE", plte)
	}
	if len(trns) > 0 {
		chunk("tRNS", trns)
	}
	chunk("IDAT", data)
	chunk("IEND", nil)
	return b.Bytes()
}
