package oiprest

import (
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"unsafe"

	predv1 "github.com/prepred/prepred/api/gen/prepred/pred/v1"
	"github.com/prepred/prepred/pred/internal/tensor"
)

// FuzzDecodeData parses arbitrary JSON tensor data for every element type:
// it must fail or return exactly the bytes the element count needs, and
// what it returns must survive a trip through appendData.
func FuzzDecodeData(f *testing.F) {
	for _, s := range []string{`[1,2,3]`, `[[1.5],[-0.25,3e38]]`, `[true,false,true]`, `["NaN","Infinity","-Infinity"]`,
		`[-128,0,127]`, `[18446744073709551615,0,4]`, `[[[[0.1]]],[[2]],[-1e300]]`, `[]`, `[ 1 , 2 ,3 ]`} {
		for d := range 13 {
			f.Add([]byte(s), uint8(d), uint16(3))
		}
	}
	f.Fuzz(func(t *testing.T, raw []byte, d uint8, n uint16) {
		dtype := predv1.DataType(d % 13)
		out, err := decodeData(raw, dtype, int64(n))
		if err != nil {
			return
		}
		if len(out) != int(n)*tensor.ElementSize(dtype) {
			t.Fatalf("%d bytes for %d elements of %v", len(out), n, dtype)
		}
		again := appendData(nil, tensor.Tensor{DType: dtype, Shape: []int64{int64(n)}, Data: out})
		back, err := decodeData(again, dtype, int64(n))
		if err != nil {
			t.Fatalf("re-parsing %s: %v", again, err)
		}
		// The text is a fixed point (NaN payloads aside, the bytes too).
		if twice := appendData(nil, tensor.Tensor{DType: dtype, Data: back}); string(twice) != string(again) {
			t.Fatalf("%s -> %x -> %s -> %x -> %s", raw, out, again, back, twice)
		}
	})
}

// TestReadBodyAlignsBinaryData: the bytes after the JSON header land
// 8-aligned, so ONNX Runtime takes them without a copy.
func TestReadBodyAlignsBinaryData(t *testing.T) {
	for _, n := range []int{0, 1, 13, 64, 1001} {
		body := strings.Repeat("h", n) + strings.Repeat("d", 4096)
		req := httptest.NewRequest("POST", "/v2/models/m/infer", strings.NewReader(body))
		req.Header.Set(HeaderLength, strconv.Itoa(n))
		got, err := readBody(httptest.NewRecorder(), req)
		if err != nil || string(got) != body {
			t.Fatalf("header %d: %d bytes, %v", n, len(got), err)
		}
		if addr := uintptr(unsafe.Pointer(&got[n])); addr%dataAlignment != 0 {
			t.Errorf("header %d: binary data at %#x", n, addr)
		}
	}
}
