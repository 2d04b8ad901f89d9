package imageprep

import (
	"bytes"
	"encoding/binary"
	"hash/crc32"
	"image"
	"image/color"
	"image/png"
	"slices"
	"testing"
)

// rechunkPNG rewrites a PNG with its image data split into IDAT chunks of
// at most size bytes, after edit (if not nil) has changed the zlib stream.
// Every chunk gets a correct CRC, so the file still parses.
func rechunkPNG(t *testing.T, img []byte, size int, edit func([]byte) []byte) []byte {
	t.Helper()
	var before, after bytes.Buffer
	var z []byte
	before.Write(img[:8])
	for i := 8; i+12 <= len(img); {
		n := int(binary.BigEndian.Uint32(img[i:]))
		chunk := img[i : i+12+n]
		switch string(img[i+4 : i+8]) {
		case "IDAT":
			z = append(z, img[i+8:i+8+n]...)
		case "IEND":
			after.Write(chunk)
		default:
			if z == nil {
				before.Write(chunk)
			} else {
				after.Write(chunk)
			}
		}
		i += 12 + n
	}
	if edit != nil {
		z = edit(slices.Clone(z))
	}
	out := before
	for len(z) > 0 {
		k := min(size, len(z))
		var hdr [8]byte
		binary.BigEndian.PutUint32(hdr[:], uint32(k))
		copy(hdr[4:], "IDAT")
		out.Write(hdr[:])
		out.Write(z[:k])
		crc := crc32.ChecksumIEEE(append([]byte("IDAT"), z[:k]...))
		out.Write(binary.BigEndian.AppendUint32(nil, crc))
		z = z[k:]
	}
	out.Write(after.Bytes())
	return out.Bytes()
}

// testPNG encodes a w x h RGBA image whose rows use every PNG filter.
func testPNG(t *testing.T, w, h int) []byte {
	t.Helper()
	m := image.NewNRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			m.SetNRGBA(x, y, color.NRGBA{uint8(x * 7), uint8(y * 5), uint8((x ^ y) * 3), uint8(128 + (x+y)%128)})
		}
	}
	var b bytes.Buffer
	if err := png.Encode(&b, m); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// TestPNGInflatePaths checks that PNG image data gives the same tensor
// however it is split into IDAT chunks (one, several, one byte each), and
// that damaged streams fail as they did before one-piece inflation: a
// wrong Adler-32 and missing rows are invalid images. A stream whose
// Adler-32 is missing but whose rows are all there, which one-piece
// inflation refuses, is still read by the cgo build's streaming zlib
// (image/png, in the pure-Go build, refuses it).
func TestPNGInflatePaths(t *testing.T) {
	p, err := New(resnet50Spec(), Limits{})
	if err != nil {
		t.Fatal(err)
	}
	orig := testPNG(t, 300, 200)
	want := make([]float32, p.TensorLen())
	if err := p.Process(orig, want); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		size int
		edit func([]byte) []byte
		ok   bool
	}{
		{"one chunk", 1 << 30, nil, true},
		{"8 KiB chunks", 8 << 10, nil, true},
		{"1-byte chunks", 1, nil, true},
		{"no Adler-32", 1000, func(z []byte) []byte { return z[:len(z)-4] }, nativeJPEG},
		{"wrong Adler-32", 1 << 30, func(z []byte) []byte { z[len(z)-1] ^= 0xff; return z }, false},
		{"half the data", 1 << 30, func(z []byte) []byte { return z[:len(z)/2] }, false},
	} {
		got := make([]float32, p.TensorLen())
		err := p.Process(rechunkPNG(t, orig, c.size, c.edit), got)
		switch {
		case !c.ok:
			if errorCode(err) != CodeInvalidImage {
				t.Errorf("%s: error %v, want %s", c.name, err, CodeInvalidImage)
			}
		case err != nil:
			t.Errorf("%s: %v", c.name, err)
		case !slices.Equal(got, want):
			t.Errorf("%s: tensor differs from the original file's (mean |diff| %g)", c.name, meanAbsDiff(got, want))
		}
	}
}
