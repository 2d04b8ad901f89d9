package oiprest_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prepred/prepred/pred/internal/httpapi"
	"github.com/prepred/prepred/pred/internal/infertest"
	"github.com/prepred/prepred/pred/internal/oip"
	"github.com/prepred/prepred/pred/internal/oiprest"
	"github.com/prepred/prepred/pred/internal/testmodels"
	"github.com/prepred/prepred/pred/predtest"
)

func TestMain(m *testing.M) {
	code := m.Run()
	if err := infertest.Teardown(); err != nil {
		fmt.Fprintln(os.Stderr, "teardown:", err)
		code = 1
	}
	os.Exit(code)
}

// server serves the REST API of the shared setup, mounted as pred mounts
// it, on loopback.
func server(t testing.TB) string {
	t.Helper()
	env := infertest.Setup(t)
	h := httpapi.Handler(httpapi.Options{
		Ready:    func() bool { return true },
		Gatherer: env.Metrics.Registry,
		OIP:      oiprest.New(env.Runner, oiprest.Options{Version: "1.2.3"}),
	})
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv.URL
}

type response struct {
	code   int
	header http.Header
	body   []byte
}

func do(t testing.TB, method, url string, header map[string]string, body []byte) response {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return response{resp.StatusCode, resp.Header, b}
}

func TestMetadataAndReadiness(t *testing.T) {
	base := server(t)
	tests := []struct {
		method, path string
		code         int
		body         string // exact, or the error's start for non-200
	}{
		{"GET", "/v2", 200, `{"name":"prepred-pred","version":"1.2.3","extensions":["binary_tensor_data","classification","model_configuration","statistics","model_repository"]}`},
		{"GET", "/v2/models/colors", 200, `{"name":"colors","versions":["1"],"platform":"onnxruntime_onnx",` +
			`"inputs":[{"name":"input","datatype":"FP32","shape":[-1,3,32,32]}],"outputs":[{"name":"output","datatype":"FP32","shape":[-1,9]}]}`},
		{"GET", "/v2/models/identity_uint16/versions/1", 200, `{"name":"identity_uint16","versions":["1"],"platform":"onnxruntime_onnx",` +
			`"inputs":[{"name":"x","datatype":"UINT16","shape":[-1,3]}],"outputs":[{"name":"y","datatype":"UINT16","shape":[-1,3]}]}`},
		{"GET", "/v2/models/identity_string", 200, `{"name":"identity_string","versions":["1"],"platform":"onnxruntime_onnx",` +
			`"inputs":[{"name":"x","datatype":"BYTES","shape":[-1,3]}],"outputs":[{"name":"y","datatype":"BYTES","shape":[-1,3]}]}`},
		{"GET", "/v2/models/colors/ready", 200, `{"name":"colors","ready":true}`},
		{"GET", "/v2/models/colors/versions/1/ready", 200, `{"name":"colors","ready":true}`},
		{"GET", "/v2/models/nope", 404, `{"error":"model \"nope\" is not served; served models: colors, `},
		{"GET", "/v2/models/nope/ready", 404, `{"error":"model \"nope\" is not served`},
		{"GET", "/v2/models/colors/versions/2/ready", 404, `{"error":"model \"colors\" has no version 2`},
		{"GET", "/v2/models/colors/versions/x", 400, `{"error":"model version \"x\" is not a positive integer`},
		{"GET", "/v2/models/colors/nosuch", 404, ``},
		{"POST", "/v2/models/colors", 405, ``},
		{"GET", "/v2/models/colors/infer", 405, ``},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.path, func(t *testing.T) {
			r := do(t, tt.method, base+tt.path, nil, nil)
			if r.code != tt.code {
				t.Fatalf("status %d, want %d: %s", r.code, tt.code, r.body)
			}
			if tt.code == 200 && string(r.body) != tt.body || tt.code != 200 && !strings.HasPrefix(string(r.body), tt.body) {
				t.Errorf("body\n%s\nwant\n%s", r.body, tt.body)
			}
			if tt.body != "" && r.header.Get("Content-Type") != "application/json" {
				t.Errorf("Content-Type %q", r.header.Get("Content-Type"))
			}
		})
	}
}

// floatsJSON writes float32 values as a JSON array.
func floatsJSON(v []float32) string {
	parts := make([]string, len(v))
	for i, f := range v {
		parts[i] = strconv.FormatFloat(float64(f), 'g', -1, 32)
	}
	return "[" + strings.Join(parts, ",") + "]"
}

// nestedJSON writes a [1,3,32,32] tensor as nested arrays.
func nestedJSON(v []float32) string {
	var b strings.Builder
	b.WriteString("[[")
	for c := range 3 {
		if c > 0 {
			b.WriteString(",")
		}
		b.WriteString("[")
		for y := range 32 {
			if y > 0 {
				b.WriteString(",")
			}
			b.WriteString(floatsJSON(v[(c*32+y)*32 : (c*32+y+1)*32]))
		}
		b.WriteString("]")
	}
	b.WriteString("]]")
	return b.String()
}

type inferResponse struct {
	ModelName    string `json:"model_name"`
	ModelVersion string `json:"model_version"`
	ID           string `json:"id"`
	Outputs      []struct {
		Name       string          `json:"name"`
		Datatype   string          `json:"datatype"`
		Shape      []int64         `json:"shape"`
		Parameters map[string]any  `json:"parameters"`
		Data       json.RawMessage `json:"data"`
	} `json:"outputs"`
}

// split parses a response: its JSON header and the binary data after it.
func split(t *testing.T, r response) (inferResponse, []byte) {
	t.Helper()
	if r.code != 200 {
		t.Fatalf("status %d: %s", r.code, r.body)
	}
	header, bin := r.body, []byte(nil)
	if h := r.header.Get("Inference-Header-Content-Length"); h != "" {
		n, err := strconv.Atoi(h)
		if err != nil || n > len(r.body) {
			t.Fatalf("Inference-Header-Content-Length %q for %d bytes", h, len(r.body))
		}
		header, bin = r.body[:n], r.body[n:]
	}
	var resp inferResponse
	if err := json.Unmarshal(header, &resp); err != nil {
		t.Fatalf("response header %s: %v", header, err)
	}
	return resp, bin
}

func TestInferJSON(t *testing.T) {
	base := server(t)
	env := infertest.Setup(t)
	img := predtest.Float32s(env.Images([3]uint8{255, 0, 0}))
	for name, data := range map[string]string{"flat": floatsJSON(img), "nested": nestedJSON(img)} {
		t.Run(name, func(t *testing.T) {
			body := `{"id":"json-1","inputs":[{"name":"input","shape":[1,3,32,32],"datatype":"FP32","data":` + data + `}]}`
			r := do(t, "POST", base+"/v2/models/colors/infer", map[string]string{"Content-Type": "application/json"}, []byte(body))
			resp, bin := split(t, r)
			if r.header.Get("Content-Type") != "application/json" || bin != nil {
				t.Errorf("Content-Type %q, %d binary bytes; want a JSON response", r.header.Get("Content-Type"), len(bin))
			}
			if resp.ModelName != "colors" || resp.ModelVersion != "1" || resp.ID != "json-1" || len(resp.Outputs) != 1 {
				t.Fatalf("response %+v", resp)
			}
			o := resp.Outputs[0]
			var logits []float32
			if err := json.Unmarshal(o.Data, &logits); err != nil {
				t.Fatal(err)
			}
			if o.Name != "output" || o.Datatype != "FP32" || fmt.Sprint(o.Shape) != "[1 9]" || len(logits) != 9 {
				t.Fatalf("output %s %s %v %s", o.Name, o.Datatype, o.Shape, o.Data)
			}
			if label := infertest.ColorLabel(predtest.Float32Bytes(logits), 0); label != "red" {
				t.Errorf("red image: %s", label)
			}
		})
	}
}

// TestInferBinary sends the body Triton's HTTP client sends: a JSON header
// whose inputs have binary_data_size, then the bytes, with the header's
// length in Inference-Header-Content-Length, and binary outputs asked for.
func TestInferBinary(t *testing.T) {
	base := server(t)
	env := infertest.Setup(t)
	raw := env.Images([3]uint8{255, 0, 0}, [3]uint8{0, 255, 0})
	header := `{"inputs":[{"name":"input","shape":[2,3,32,32],"datatype":"FP32","parameters":{"binary_data_size":24576}}],` +
		`"outputs":[{"name":"output","parameters":{"binary_data":true}}]}`
	r := do(t, "POST", base+"/v2/models/colors/versions/1/infer",
		map[string]string{"Inference-Header-Content-Length": strconv.Itoa(len(header)), "Content-Type": "application/octet-stream"},
		append([]byte(header), raw...))
	resp, bin := split(t, r)
	if r.header.Get("Content-Type") != "application/octet-stream" {
		t.Errorf("Content-Type %q", r.header.Get("Content-Type"))
	}
	o := resp.Outputs[0]
	if o.Data != nil || o.Parameters["binary_data_size"] != float64(72) || len(bin) != 72 {
		t.Fatalf("output %s params %v data %s, %d binary bytes", o.Name, o.Parameters, o.Data, len(bin))
	}
	if a, b := infertest.ColorLabel(bin, 0), infertest.ColorLabel(bin, 1); a != "red" || b != "green" {
		t.Errorf("labels %s, %s; want red, green", a, b)
	}
}

// TestInferResNet50Binary: Triton's client, given no outputs, asks for all
// of them as binary with binary_data_output.
func TestInferResNet50Binary(t *testing.T) {
	base := server(t)
	img := make([]float32, 3*224*224)
	for i := range img {
		img[i] = float32(math.Cos(float64(i) * 0.003))
	}
	header := `{"inputs":[{"name":"input","shape":[1,3,224,224],"datatype":"FP32","parameters":{"binary_data_size":602112}}],` +
		`"parameters":{"binary_data_output":true}}`
	r := do(t, "POST", base+"/v2/models/resnet50/infer",
		map[string]string{"Inference-Header-Content-Length": strconv.Itoa(len(header))},
		append([]byte(header), predtest.Float32Bytes(img)...))
	resp, bin := split(t, r)
	if len(resp.Outputs) != 1 || resp.Outputs[0].Parameters["binary_data_size"] != float64(4000) || len(bin) != 4000 {
		t.Fatalf("outputs %+v, %d binary bytes", resp.Outputs, len(bin))
	}
	for i, f := range predtest.Float32s(bin) {
		if math.IsNaN(float64(f)) || math.IsInf(float64(f), 0) {
			t.Fatalf("logit %d is %v", i, f)
		}
	}
}

// TestInferEveryDType sends every element type as JSON and as binary data
// and reads each back both ways.
func TestInferEveryDType(t *testing.T) {
	base := server(t)
	samples := testmodels.Samples()
	var inputs, outputs []string
	var bin []byte
	for i, s := range samples {
		dt := oip.DataTypeName(s.DType)
		// Even inputs go as JSON, odd ones as binary; outputs the other
		// way round.
		if i%2 == 0 {
			inputs = append(inputs, fmt.Sprintf(`{"name":%q,"shape":[1,3],"datatype":%q,"data":%s}`, s.Name, dt, s.JSON))
			outputs = append(outputs, fmt.Sprintf(`{"name":%q,"parameters":{"binary_data":true}}`, testmodels.Output(s.Name)))
		} else {
			inputs = append(inputs, fmt.Sprintf(`{"name":%q,"shape":[1,3],"datatype":%q,"parameters":{"binary_data_size":%d}}`, s.Name, dt, len(s.Raw)))
			outputs = append(outputs, fmt.Sprintf(`{"name":%q}`, testmodels.Output(s.Name)))
			bin = append(bin, s.Raw...)
		}
	}
	header := `{"inputs":[` + strings.Join(inputs, ",") + `],"outputs":[` + strings.Join(outputs, ",") + `]}`
	r := do(t, "POST", base+"/v2/models/dtypes/infer", map[string]string{"Inference-Header-Content-Length": strconv.Itoa(len(header))}, append([]byte(header), bin...))
	resp, out := split(t, r)
	if len(resp.Outputs) != len(samples) {
		t.Fatalf("%d outputs", len(resp.Outputs))
	}
	for i, s := range samples {
		o := resp.Outputs[i]
		if o.Name != testmodels.Output(s.Name) {
			t.Errorf("output %d is %s", i, o.Name)
			continue
		}
		if i%2 == 0 {
			if len(out) < len(s.Raw) || !bytes.Equal(out[:len(s.Raw)], s.Raw) || o.Parameters["binary_data_size"] != float64(len(s.Raw)) {
				t.Errorf("%s: binary output %x (%v), want %x", s.Name, out[:min(len(out), len(s.Raw))], o.Parameters, s.Raw)
			}
			out = out[min(len(out), len(s.Raw)):]
		} else if string(o.Data) != s.JSON {
			t.Errorf("%s: JSON output %s, want %s", s.Name, o.Data, s.JSON)
		}
	}
	if len(out) != 0 {
		t.Errorf("%d binary bytes left over", len(out))
	}
}

// TestInferNonFinite: NaN and infinities travel as protobuf's JSON mapping
// writes them.
func TestInferNonFinite(t *testing.T) {
	base := server(t)
	body := `{"inputs":[{"name":"x","shape":[1,3],"datatype":"FP32","data":["NaN","Infinity","-Infinity"]}]}`
	resp, _ := split(t, do(t, "POST", base+"/v2/models/identity_fp32/infer", nil, []byte(body)))
	if got := string(resp.Outputs[0].Data); got != `["NaN","Infinity","-Infinity"]` {
		t.Errorf("output data %s", got)
	}
}

func TestInferErrors(t *testing.T) {
	base := server(t)
	env := infertest.Setup(t)
	red := env.Images([3]uint8{255, 0, 0})
	binHeader := func(h string, bin []byte) (map[string]string, []byte) {
		return map[string]string{"Inference-Header-Content-Length": strconv.Itoa(len(h))}, append([]byte(h), bin...)
	}
	const colorsBinary = `{"inputs":[{"name":"input","shape":[1,3,32,32],"datatype":"FP32","parameters":{"binary_data_size":12288}}]}`
	tests := []struct {
		name   string
		path   string
		header map[string]string
		body   []byte
		code   int
		msg    string
	}{
		{"not JSON", "colors", nil, []byte(`{"inputs":`), 400, "not valid inference request JSON"},
		{"header length beyond body", "colors", map[string]string{"Inference-Header-Content-Length": "999"}, []byte(`{}`), 400, "it must be the length of the JSON part"},
		{"header length not a number", "colors", map[string]string{"Inference-Header-Content-Length": "x"}, []byte(`{}`), 400, "Inference-Header-Content-Length is \"x\""},
		{"short binary", "colors", nil, nil, 400, "only 12287 bytes of binary data are left"},
		{"binary left over", "colors", nil, nil, 400, "12289 bytes of binary data after the JSON"},
		{"binary size mismatch", "colors", nil, nil, 400, "binary_data_size is 12"},
		{"binary size not a number", "colors", nil, []byte(`{"inputs":[{"name":"input","shape":[1],"datatype":"FP32","parameters":{"binary_data_size":"4"}}]}`), 400, "binary_data_size must be a non-negative integer"},
		{"data and binary", "colors", nil, []byte(`{"inputs":[{"name":"input","shape":[1],"datatype":"FP32","data":[1],"parameters":{"binary_data_size":4}}]}`), 400, "has both data and the parameter binary_data_size"},
		{"no data", "colors", nil, []byte(`{"inputs":[{"name":"input","shape":[1,3,32,32],"datatype":"FP32"}]}`), 400, "input \"input\": no data"},
		{"no shape", "colors", nil, []byte(`{"inputs":[{"name":"input","datatype":"FP32","data":[1]}]}`), 400, "shape is missing"},
		{"too few values", "identity_fp32", nil, []byte(`{"inputs":[{"name":"x","shape":[1,3],"datatype":"FP32","data":[1,2]}]}`), 400, "data has 2 values; the shape needs 3"},
		{"too many values", "identity_fp32", nil, []byte(`{"inputs":[{"name":"x","shape":[1,3],"datatype":"FP32","data":[1,2,3,4]}]}`), 400, "data has more than the 3 values"},
		{"claimed shape beyond data", "colors", nil, []byte(`{"inputs":[{"name":"input","shape":[8,3,32,32],"datatype":"FP32","data":[1]}]}`), 400, "fewer than the 24576 values"},
		{"huge shape", "colors", nil, []byte(`{"inputs":[{"name":"input","shape":[1000000,1000000],"datatype":"FP32","data":[1]}]}`), 400, "more than 8388608 elements"},
		{"string value", "identity_fp32", nil, []byte(`{"inputs":[{"name":"x","shape":[1,3],"datatype":"FP32","data":[1,"2",3]}]}`), 400, `value 1: "2" is not a number`},
		{"object value", "identity_fp32", nil, []byte(`{"inputs":[{"name":"x","shape":[1,3],"datatype":"FP32","data":[1,{},3]}]}`), 400, "unexpected '{'"},
		{"int range", "identity_int8", nil, []byte(`{"inputs":[{"name":"x","shape":[1,3],"datatype":"INT8","data":[1,2,128]}]}`), 400, "value 2: 128 is not an integer in the range of INT8"},
		{"int fraction", "identity_int64", nil, []byte(`{"inputs":[{"name":"x","shape":[1,3],"datatype":"INT64","data":[1,2.5,3]}]}`), 400, "2.5 is not an integer"},
		{"negative unsigned", "identity_uint32", nil, []byte(`{"inputs":[{"name":"x","shape":[1,3],"datatype":"UINT32","data":[1,-2,3]}]}`), 400, "-2 is not an integer in the range of UINT32"},
		{"bool as number", "identity_bool", nil, []byte(`{"inputs":[{"name":"x","shape":[1,3],"datatype":"BOOL","data":[1,0,1]}]}`), 400, "1 is not a boolean"},
		{"bytes to a numeric model", "identity_fp32", nil, []byte(`{"inputs":[{"name":"x","shape":[1,3],"datatype":"BYTES","data":["a","b","c"]}]}`), 400, "dtype is DATA_TYPE_STRING"},
		{"unknown datatype", "identity_string", nil, []byte(`{"inputs":[{"name":"x","shape":[1,3],"datatype":"STRING","data":["a","b","c"]}]}`), 400, `unknown datatype "STRING" (want BOOL, UINT8, UINT16, UINT32, UINT64, INT8, INT16, INT32, INT64, FP16, FP32, FP64 or BYTES)`},
		{"wrong datatype", "identity_fp32", nil, []byte(`{"inputs":[{"name":"x","shape":[1,3],"datatype":"FP64","data":[1,2,3]}]}`), 400, "dtype is DATA_TYPE_FLOAT64"},
		{"unknown model", "nope", nil, []byte(`{"inputs":[]}`), 404, `model "nope" is not served`},
		{"bad version", "colors/versions/one", nil, []byte(`{"inputs":[]}`), 400, `model version "one"`},
		{"unknown output", "identity_fp32", nil, []byte(`{"inputs":[{"name":"x","shape":[1,3],"datatype":"FP32","data":[1,2,3]}],"outputs":[{"name":"z"}]}`), 400, `unknown output "z"`},
		{"binary_data not bool", "identity_fp32", nil, []byte(`{"inputs":[{"name":"x","shape":[1,3],"datatype":"FP32","data":[1,2,3]}],"outputs":[{"name":"y","parameters":{"binary_data":1}}]}`), 400, `parameter "binary_data" must be true or false`},
		{"classification not a number", "identity_fp32", nil, []byte(`{"inputs":[{"name":"x","shape":[1,3],"datatype":"FP32","data":[1,2,3]}],"outputs":[{"name":"y","parameters":{"classification":"2"}}]}`), 400, `parameter "classification" must be an integer number of classes`},
		{"classification of BYTES", "identity_string", nil, []byte(`{"inputs":[{"name":"x","shape":[1,3],"datatype":"BYTES","data":["a","b","c"]}],"outputs":[{"name":"y","parameters":{"classification":2}}]}`), 400, "class result not available for output due to unsupported type"},
		{"fingerprint", "colors", nil, nil, 400, "spec_fingerprint mismatch"},
		{"gzip", "colors", map[string]string{"Content-Encoding": "gzip"}, []byte(`{}`), 415, "Content-Encoding"},
	}
	for i := range tests {
		tt := &tests[i]
		switch tt.name {
		case "short binary":
			tt.header, tt.body = binHeader(colorsBinary, red[1:])
		case "binary left over":
			tt.header, tt.body = binHeader(colorsBinary, append(slicesClone(red), 0))
			tt.msg = "12289 bytes of binary data after the JSON, the inputs' binary_data_size parameters account for 12288"
		case "binary size mismatch":
			tt.header, tt.body = binHeader(strings.Replace(colorsBinary, "12288", "12", 1), red)
		case "fingerprint":
			tt.header, tt.body = binHeader(strings.Replace(colorsBinary, `]}`, `],"parameters":{"spec_fingerprint":"sha256:0"}}`, 1), red)
		}
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := do(t, "POST", base+"/v2/models/"+tt.path+"/infer", tt.header, tt.body)
			var e struct {
				Error string `json:"error"`
			}
			if err := json.Unmarshal(r.body, &e); err != nil {
				t.Fatalf("body %s is not an error object: %v", r.body, err)
			}
			if r.code != tt.code || !strings.Contains(e.Error, tt.msg) {
				t.Errorf("%d %q, want %d containing %q", r.code, e.Error, tt.code, tt.msg)
			}
		})
	}
}

func slicesClone(b []byte) []byte { return append([]byte(nil), b...) }

// TestBodyLimit: a body over MaxBodyBytes is refused with 413, announced
// or not, before it is read in full.
func TestBodyLimit(t *testing.T) {
	env := infertest.Setup(t)
	h := oiprest.New(env.Runner, oiprest.Options{})
	announced := httptest.NewRequest("POST", "/v2/models/colors/infer", strings.NewReader("{}"))
	announced.ContentLength = oiprest.MaxBodyBytes + 1
	chunked := httptest.NewRequest("POST", "/v2/models/colors/infer", io.LimitReader(zeros{}, oiprest.MaxBodyBytes+1))
	chunked.ContentLength = -1
	for name, req := range map[string]*http.Request{"announced": announced, "chunked": chunked} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != http.StatusRequestEntityTooLarge || !strings.Contains(rec.Body.String(), "exceeds") {
			t.Errorf("%s: %d %s, want 413", name, rec.Code, rec.Body)
		}
	}
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

// BenchmarkRESTBinaryResNet50 posts one ResNet-50 input as binary tensor
// data and reads the logits back as binary, over loopback HTTP.
func BenchmarkRESTBinaryResNet50(b *testing.B) {
	base := server(b)
	header := `{"inputs":[{"name":"input","shape":[1,3,224,224],"datatype":"FP32","parameters":{"binary_data_size":602112}}],"parameters":{"binary_data_output":true}}`
	body := append([]byte(header), make([]byte, 602112)...)
	h := map[string]string{"Inference-Header-Content-Length": strconv.Itoa(len(header))}
	b.ReportAllocs()
	for b.Loop() {
		if r := do(b, "POST", base+"/v2/models/resnet50/infer", h, body); r.code != 200 {
			b.Fatalf("%d %s", r.code, r.body)
		}
	}
}

// BenchmarkRESTJSONColors posts a colors input as JSON numbers: the cost
// of the JSON codec on 3072 values.
func BenchmarkRESTJSONColors(b *testing.B) {
	base := server(b)
	env := infertest.Setup(b)
	body := []byte(`{"inputs":[{"name":"input","shape":[1,3,32,32],"datatype":"FP32","data":` + floatsJSON(predtest.Float32s(env.Images([3]uint8{255, 0, 0}))) + `}]}`)
	b.ReportAllocs()
	for b.Loop() {
		if r := do(b, "POST", base+"/v2/models/colors/infer", nil, body); r.code != 200 {
			b.Fatalf("%d %s", r.code, r.body)
		}
	}
}
