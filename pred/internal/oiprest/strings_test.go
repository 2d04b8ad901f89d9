package oiprest_test

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/prepred/prepred/pred/internal/oip"
	"github.com/prepred/prepred/pred/internal/tensor"
	"github.com/prepred/prepred/pred/internal/testmodels"
)

// binaryBody returns the headers and body of a request whose JSON header h
// is followed by the binary data bin.
func binaryBody(h string, bin []byte) (map[string]string, []byte) {
	return map[string]string{"Inference-Header-Content-Length": strconv.Itoa(len(h))}, append([]byte(h), bin...)
}

// TestInferBytesJSON sends BYTES data as JSON strings, flat and nested, with
// escapes, and reads them back as JSON strings.
func TestInferBytesJSON(t *testing.T) {
	base := server(t)
	model := testmodels.Identity(testmodels.StringSample())
	tests := []struct {
		name  string
		shape []int64
		data  string
		want  []string
	}{
		{"flat", []int64{1, 3}, `["a","héllo","日本 text"]`, []string{"a", "héllo", "日本 text"}},
		{"nested", []int64{2, 3}, `[["", "x", "yy"], [ "1" ,"2","3"]]`, []string{"", "x", "yy", "1", "2", "3"}},
		{"escapes", []int64{1, 3}, `["quote \" backslash \\ slash \/", "\u00e9\n\t\r\b\f\u0001", "\ud83d\ude00 <&>"]`,
			[]string{`quote " backslash \ slash /`, "é\n\t\r\b\f\x01", "😀 <&>"}},
		{"unicode", []int64{1, 3}, `["🙂", "Ω", "\u2028"]`, []string{"🙂", "Ω", "\u2028"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			shape, _ := json.Marshal(tt.shape)
			body := `{"inputs":[{"name":"x","shape":` + string(shape) + `,"datatype":"BYTES","data":` + tt.data + `}]}`
			r := do(t, "POST", base+"/v2/models/"+model+"/infer", nil, []byte(body))
			resp, bin := split(t, r)
			if r.header.Get("Content-Type") != "application/json" || bin != nil {
				t.Errorf("Content-Type %q, %d binary bytes; want a JSON response", r.header.Get("Content-Type"), len(bin))
			}
			if len(resp.Outputs) != 1 {
				t.Fatalf("outputs %+v", resp.Outputs)
			}
			o := resp.Outputs[0]
			var got []string
			if err := json.Unmarshal(o.Data, &got); err != nil {
				t.Fatalf("output data %s: %v", o.Data, err)
			}
			if o.Name != "y" || o.Datatype != "BYTES" || !slices.Equal(o.Shape, tt.shape) {
				t.Errorf("output %s %s %v, want y BYTES %v", o.Name, o.Datatype, o.Shape, tt.shape)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("output %q, want %q", got, tt.want)
			}
		})
	}
}

// TestInferBytesBinary sends BYTES as binary data and reads it back as
// binary data, byte for byte, and as JSON.
func TestInferBytesBinary(t *testing.T) {
	base := server(t)
	model := testmodels.Identity(testmodels.StringSample())
	elems := []string{"", strings.Repeat("long ", 100), "\x01\x7f ünï"}
	raw := tensor.FromStrings(elems)
	in := fmt.Sprintf(`{"name":"x","shape":[1,3],"datatype":"BYTES","parameters":{"binary_data_size":%d}}`, len(raw))

	t.Run("binary out", func(t *testing.T) {
		header, body := binaryBody(`{"inputs":[`+in+`],"outputs":[{"name":"y","parameters":{"binary_data":true}}]}`, raw)
		r := do(t, "POST", base+"/v2/models/"+model+"/infer", header, body)
		resp, bin := split(t, r)
		o := resp.Outputs[0]
		if o.Datatype != "BYTES" || o.Data != nil || o.Parameters["binary_data_size"] != float64(len(raw)) {
			t.Fatalf("output %s %v params %v data %s", o.Datatype, o.Shape, o.Parameters, o.Data)
		}
		if !bytes.Equal(bin, raw) {
			t.Errorf("binary output %q, want %q", bin, raw)
		}
	})
	t.Run("JSON out", func(t *testing.T) {
		header, body := binaryBody(`{"inputs":[`+in+`]}`, raw)
		r := do(t, "POST", base+"/v2/models/"+model+"/infer", header, body)
		resp, bin := split(t, r)
		var got []string
		if err := json.Unmarshal(resp.Outputs[0].Data, &got); err != nil || bin != nil {
			t.Fatalf("output data %s (%v), %d binary bytes", resp.Outputs[0].Data, err, len(bin))
		}
		if !slices.Equal(got, elems) {
			t.Errorf("output %q, want %q", got, elems)
		}
	})
}

// TestInferBytesNotUTF8: an output with an element that is not valid UTF-8
// cannot be a JSON string, so it comes back as binary data although JSON
// was asked for, unchanged; the other outputs stay JSON.
func TestInferBytesNotUTF8(t *testing.T) {
	base := server(t)
	notUTF8 := tensor.FromStrings([]string{"ok", "\xff\xfe", "caf\xe9"})
	var inputs []string
	var bin []byte
	for _, s := range testmodels.Samples() {
		raw := s.Raw
		if tensor.IsString(s.DType) {
			raw = notUTF8
		}
		inputs = append(inputs, fmt.Sprintf(`{"name":%q,"shape":[1,3],"datatype":%q,"parameters":{"binary_data_size":%d}}`, s.Name, oip.DataTypeName(s.DType), len(raw)))
		bin = append(bin, raw...)
	}
	header, body := binaryBody(`{"inputs":[`+strings.Join(inputs, ",")+`]}`, bin)
	r := do(t, "POST", base+"/v2/models/"+testmodels.DTypes+"/infer", header, body)
	resp, out := split(t, r)
	if r.header.Get("Content-Type") != "application/octet-stream" || r.header.Get("Inference-Header-Content-Length") == "" {
		t.Errorf("Content-Type %q, Inference-Header-Content-Length %q; want a binary response",
			r.header.Get("Content-Type"), r.header.Get("Inference-Header-Content-Length"))
	}
	samples := testmodels.Samples()
	if len(resp.Outputs) != len(samples) {
		t.Fatalf("%d outputs", len(resp.Outputs))
	}
	for i, s := range samples {
		o := resp.Outputs[i]
		if !tensor.IsString(s.DType) {
			if string(o.Data) != s.JSON || o.Parameters != nil {
				t.Errorf("%s: output %s (%v), want JSON %s", o.Name, o.Data, o.Parameters, s.JSON)
			}
			continue
		}
		if o.Data != nil || o.Parameters["binary_data_size"] != float64(len(notUTF8)) || o.Datatype != "BYTES" {
			t.Errorf("%s: data %s, parameters %v; want binary_data_size %d", o.Name, o.Data, o.Parameters, len(notUTF8))
		}
	}
	if !bytes.Equal(out, notUTF8) {
		t.Errorf("binary data %q, want %q", out, notUTF8)
	}
}

// TestInferBytesErrors: malformed BYTES data, as JSON or binary, is a 400
// whose message names the input and the problem. (Broken JSON strings, such
// as bad escapes, fail the request's JSON parse first; TestDecodeStrings
// covers what decodeData makes of them.)
func TestInferBytesErrors(t *testing.T) {
	base := server(t)
	model := testmodels.Identity(testmodels.StringSample())
	le := binary.LittleEndian
	jsonInput := func(shape, data string) []byte {
		return []byte(`{"inputs":[{"name":"x","shape":` + shape + `,"datatype":"BYTES","data":` + data + `}]}`)
	}
	binaryInput := func(size int, bin []byte) (map[string]string, []byte) {
		return binaryBody(fmt.Sprintf(`{"inputs":[{"name":"x","shape":[1,3],"datatype":"BYTES","parameters":{"binary_data_size":%d}}]}`, size), bin)
	}
	tests := []struct {
		name   string
		header map[string]string
		body   []byte
		msg    string
	}{
		{"number", nil, jsonInput("[1,3]", `["a",2,"c"]`), `input "x": data: value 1: 2 is not a string (BYTES elements are JSON strings)`},
		{"null", nil, jsonInput("[1,3]", `[null,"b","c"]`), "value 0: null is not a string"},
		{"bool", nil, jsonInput("[1,3]", `["a","b",true]`), "value 2: true is not a string"},
		{"object", nil, jsonInput("[1,3]", `["a",{"b":1},"c"]`), `unexpected '{' in the data array`},
		{"too few", nil, jsonInput("[1,3]", `["a","b"]`), "data has 2 values; the shape needs 3"},
		{"too many", nil, jsonInput("[1,3]", `["a","b","c","d"]`), "data has more than the 3 values"},
		{"shape beyond data", nil, jsonInput("[8,3]", `["a","b","c"]`), "data holds fewer than the 24 strings"},
		{"over the string limit", nil, jsonInput("[1000000,3]", `["a"]`), "a BYTES tensor holds at most 262144 elements, not 3000000"},
		{"not UTF-8", nil, jsonInput("[1,3]", "[\"a\",\"\xff\",\"c\"]"), "value 1: the string is not valid UTF-8"},
		{"NUL in JSON", nil, jsonInput("[1,3]", `["a","b\u0000","c"]`), `input "x": STRING element 1 contains a NUL byte`},
		{"NUL in binary", nil, nil, `input "x": STRING element 2 contains a NUL byte`},
		{"length past end", nil, nil, `input "x": binary data (17 bytes) is not the BYTES serialization of shape [1 3]`},
		{"trailing bytes", nil, nil, "2 bytes follow the 3 STRING elements"},
		{"too short for the lengths", nil, nil, "8 bytes cannot hold 3 STRING elements"},
		{"size beyond body", nil, nil, "binary_data_size is 100, but only 12 bytes of binary data are left"},
	}
	for i := range tests {
		tt := &tests[i]
		switch tt.name {
		case "NUL in binary":
			tt.header, tt.body = binaryInput(15, tensor.FromStrings([]string{"a", "b", "\x00"}))
		case "length past end":
			bin := le.AppendUint32(tensor.FromStrings([]string{"a", "b"}), 10)
			bin = append(bin, "abc"...)
			tt.header, tt.body = binaryInput(len(bin), bin)
			tt.msg += " (per element a 4-byte little-endian length, then its bytes): STRING element 2: its length is 10 but only 3 bytes follow"
		case "trailing bytes":
			bin := append(tensor.FromStrings([]string{"a", "b", "c"}), "zz"...)
			tt.header, tt.body = binaryInput(len(bin), bin)
		case "too short for the lengths":
			tt.header, tt.body = binaryInput(8, make([]byte, 8))
		case "size beyond body":
			tt.header, tt.body = binaryInput(100, tensor.FromStrings([]string{"", "", ""}))
		}
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := do(t, "POST", base+"/v2/models/"+model+"/infer", tt.header, tt.body)
			var e struct {
				Error string `json:"error"`
			}
			if err := json.Unmarshal(r.body, &e); err != nil {
				t.Fatalf("body %s is not an error object: %v", r.body, err)
			}
			if r.code != 400 || !strings.Contains(e.Error, tt.msg) || !strings.Contains(e.Error, `input "x"`) {
				t.Errorf("%d %q, want 400 naming input \"x\" and containing %q", r.code, e.Error, tt.msg)
			}
		})
	}
}
