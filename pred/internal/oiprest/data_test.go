package oiprest

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"unsafe"

	predv1 "github.com/prepred/prepred/api/gen/prepred/pred/v1"
	"github.com/prepred/prepred/pred/internal/tensor"
)

// dataTypes is how many element types FuzzDecodeData tries: every
// predv1.DataType up to STRING, the last.
const dataTypes = int(predv1.DataType_DATA_TYPE_STRING) + 1

// FuzzDecodeData parses arbitrary JSON tensor data for every element type:
// it must fail or return exactly the encoding of the element count, and
// what it returns must survive a trip through jsonData. BYTES data must
// also agree with encoding/json.
func FuzzDecodeData(f *testing.F) {
	for _, s := range []string{`[1,2,3]`, `[[1.5],[-0.25,3e38]]`, `[true,false,true]`, `["NaN","Infinity","-Infinity"]`,
		`[-128,0,127]`, `[18446744073709551615,0,4]`, `[[[[0.1]]],[[2]],[-1e300]]`, `[]`, `[ 1 , 2 ,3 ]`,
		`["","héllo","日本 text"]`, `[["a\"b"],["\u00e9\n\ud83d\ude00","\ud800 <&>"]]`, `["a\\","\/","\u0000"]`} {
		for d := range dataTypes {
			f.Add([]byte(s), uint8(d), uint16(3))
		}
	}
	f.Fuzz(func(t *testing.T, raw []byte, d uint8, n uint16) {
		dtype := predv1.DataType(int(d) % dataTypes)
		out, err := decodeData(raw, dtype, int64(n))
		if err != nil {
			return
		}
		shape := []int64{int64(n)}
		if err := tensor.CheckData(dtype, shape, out); err != nil {
			t.Fatalf("%d bytes for %d elements of %v: %v", len(out), n, dtype, err)
		}
		if tensor.IsString(dtype) {
			checkStringsAgainstJSON(t, raw, out, n)
		}
		again, err := jsonData(tensor.Tensor{DType: dtype, Shape: shape, Data: out})
		if err != nil {
			t.Fatalf("encoding %x: %v", out, err)
		}
		back, err := decodeData(again, dtype, int64(n))
		if err != nil {
			t.Fatalf("re-parsing %s: %v", again, err)
		}
		if tensor.IsString(dtype) && !bytes.Equal(back, out) {
			t.Fatalf("%s -> %q -> %s -> %q", raw, out, again, back)
		}
		// The text is a fixed point (NaN payloads aside, the bytes too).
		if twice, err := jsonData(tensor.Tensor{DType: dtype, Shape: shape, Data: back}); err != nil || string(twice) != string(again) {
			t.Fatalf("%s -> %x -> %s -> %x -> %s (%v)", raw, out, again, back, twice, err)
		}
	})
}

// checkStringsAgainstJSON checks that the STRING data decodeData made of
// raw holds the strings encoding/json finds in it, flattened.
func checkStringsAgainstJSON(t *testing.T, raw, out []byte, n uint16) {
	t.Helper()
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		t.Fatalf("decodeData took %q, encoding/json does not: %v", raw, err)
	}
	want, ok := flattenStrings(v, nil)
	got, err := tensor.Strings(out, int64(n))
	if !ok || err != nil || len(got) != len(want) {
		t.Fatalf("%q: decodeData %q (%v), encoding/json %q", raw, got, err, want)
	}
	for i := range got {
		if string(got[i]) != want[i] {
			t.Fatalf("%q: element %d is %q, encoding/json says %q", raw, i, got[i], want[i])
		}
	}
}

// flattenStrings appends the strings of v, arrays of strings nested in any
// way, to dst; ok is false when v holds anything else.
func flattenStrings(v any, dst []string) (_ []string, ok bool) {
	switch v := v.(type) {
	case string:
		return append(dst, v), true
	case []any:
		for _, e := range v {
			if dst, ok = flattenStrings(e, dst); !ok {
				return nil, false
			}
		}
		return dst, true
	}
	return nil, false
}

// TestDecodeStrings covers what the request's JSON parse lets through to
// decodeData for BYTES, and what it refuses itself.
func TestDecodeStrings(t *testing.T) {
	tests := []struct {
		raw  string
		n    int64
		want []string
		err  string
	}{
		{`["a", "b"]`, 2, []string{"a", "b"}, ""},
		{`[["\"",[]],[["\\"]]]`, 2, []string{`"`, `\`}, ""},
		{`["\u00e9\ud83d\ude00\ud800"]`, 1, []string{"é😀\ufffd"}, ""},
		{`[]`, 0, []string{}, ""},
		{`["a","b\"]`, 2, nil, "data ends inside a string"},
		{`["a","\x"]`, 2, nil, "value 1: not a valid JSON string"},
		{"[\"a\nb\"]", 1, nil, "value 0: not a valid JSON string"},
		{"[\"\xc3\"]", 1, nil, "value 0: the string is not valid UTF-8"},
		{`["a",1]`, 2, nil, "value 1: 1 is not a string"},
		{`["a",]`, 2, nil, "unexpected ']' in the data array"},
		{`"a"`, 1, nil, "data must be a JSON array"},
		{`["a"] x`, 1, nil, "unexpected 'x' after the data array"},
		{`["a","b"]`, 1, nil, "data has more than the 1 values"},
		{`[""]`, 2, nil, "data holds fewer than the 2 strings"},
		{`[""]`, tensor.MaxStringElements + 1, nil, "a BYTES tensor holds at most 262144 elements"},
	}
	for _, tt := range tests {
		out, err := decodeData([]byte(tt.raw), predv1.DataType_DATA_TYPE_STRING, tt.n)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("%s: error %v, want %q", tt.raw, err, tt.err)
			}
			continue
		}
		got, serr := tensor.Strings(out, tt.n)
		if err != nil || serr != nil || len(got) != len(tt.want) {
			t.Errorf("%s: %q, %v, %v; want %q", tt.raw, got, err, serr, tt.want)
			continue
		}
		for i := range got {
			if string(got[i]) != tt.want[i] {
				t.Errorf("%s: element %d is %q, want %q", tt.raw, i, got[i], tt.want[i])
			}
		}
	}
}

// TestAppendJSONString: every single byte and a few runes come out as JSON
// strings that encoding/json reads back unchanged.
func TestAppendJSONString(t *testing.T) {
	for c := range 0x80 {
		for _, s := range []string{string(rune(c)), "x" + string(rune(c)) + "y"} {
			var back string
			enc := appendJSONString(nil, []byte(s))
			if err := json.Unmarshal(enc, &back); err != nil || back != s {
				t.Errorf("%q -> %s -> %q (%v)", s, enc, back, err)
			}
		}
	}
	for _, s := range []string{"é", "日本", "😀", "\u2028", "<&>"} {
		if enc := appendJSONString(nil, []byte(s)); string(enc) != `"`+s+`"` {
			t.Errorf("%q -> %s, want it unescaped", s, enc)
		}
	}
}

// TestJSONDataNotUTF8: a STRING tensor with an element that is not valid
// UTF-8 has no JSON data; one that is valid has.
func TestJSONDataNotUTF8(t *testing.T) {
	bad := tensor.Tensor{DType: predv1.DataType_DATA_TYPE_STRING, Shape: []int64{2}, Data: tensor.FromStrings([]string{"ok", "\xff"})}
	if _, err := jsonData(bad); !errors.Is(err, errNotUTF8) {
		t.Errorf("jsonData of %q: %v, want errNotUTF8", bad.Data, err)
	}
	good := tensor.Tensor{DType: predv1.DataType_DATA_TYPE_STRING, Shape: []int64{2}, Data: tensor.FromStrings([]string{"ok", "\n\""})}
	if b, err := jsonData(good); err != nil || string(b) != `["ok","\n\""]` {
		t.Errorf("jsonData of %q: %s, %v", good.Data, b, err)
	}
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
