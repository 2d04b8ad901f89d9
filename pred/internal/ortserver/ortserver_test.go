package ortserver_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	onnxpb "github.com/prepred/prepred/api/gen/onnx"
	ortserverpb "github.com/prepred/prepred/api/gen/onnxruntime/server"
	predv1 "github.com/prepred/prepred/api/gen/prepred/pred/v1"
	"github.com/prepred/prepred/pred/internal/grpcserver"
	"github.com/prepred/prepred/pred/internal/httpapi"
	"github.com/prepred/prepred/pred/internal/infertest"
	"github.com/prepred/prepred/pred/internal/ortserver"
	"github.com/prepred/prepred/pred/internal/tensor"
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

func client(t testing.TB, o ortserver.Options) ortserverpb.PredictionServiceClient {
	t.Helper()
	env := infertest.Setup(t)
	conn := infertest.Serve(t, grpcserver.Service{Desc: &ortserverpb.PredictionService_ServiceDesc, Impl: ortserver.New(env.Runner, o)})
	return ortserverpb.NewPredictionServiceClient(conn)
}

func ctx(t testing.TB, kv ...string) context.Context {
	c, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return metadata.AppendToOutgoingContext(c, kv...)
}

func wantCode(t *testing.T, err error, code codes.Code, substr string) {
	t.Helper()
	if status.Code(err) != code || !strings.Contains(status.Convert(err).Message(), substr) {
		t.Errorf("error = %v, want %v containing %q", err, code, substr)
	}
}

func dataType(t onnxpb.TensorProto_DataType) *int32 { return proto.Int32(int32(t)) }

// colorsRequest is a request as the classic Python client makes it: one
// float tensor in raw_data, keyed by the input's name.
func colorsRequest(t testing.TB, colors ...[3]uint8) *ortserverpb.PredictRequest {
	env := infertest.Setup(t)
	return &ortserverpb.PredictRequest{Inputs: map[string]*onnxpb.TensorProto{"input": {
		Dims: []int64{int64(len(colors)), 3, 32, 32}, DataType: dataType(onnxpb.TensorProto_FLOAT), RawData: env.Images(colors...),
	}}}
}

func TestPredictColors(t *testing.T) {
	c := client(t, ortserver.Options{})
	typed := colorsRequest(t, [3]uint8{255, 0, 0})
	in := typed.Inputs["input"]
	in.FloatData, in.RawData = predtest.Float32s(in.RawData), nil
	typed.OutputFilter = []string{"output"}
	for name, req := range map[string]*ortserverpb.PredictRequest{"raw_data": colorsRequest(t, [3]uint8{255, 0, 0}), "float_data": typed} {
		t.Run(name, func(t *testing.T) {
			resp, err := c.Predict(ctx(t, "model-name", "colors", "model-version", "1"), req)
			if err != nil {
				t.Fatal(err)
			}
			out := resp.GetOutputs()["output"]
			if len(resp.GetOutputs()) != 1 || !slices.Equal(out.GetDims(), []int64{1, 9}) || out.GetDataType() != int32(onnxpb.TensorProto_FLOAT) {
				t.Fatalf("outputs %v", resp.GetOutputs())
			}
			if label := infertest.ColorLabel(out.GetRawData(), 0); label != "red" {
				t.Errorf("red image: %s", label)
			}
		})
	}
}

func TestPredictDefaultModel(t *testing.T) {
	req := colorsRequest(t, [3]uint8{0, 0, 255})
	// The shared repository serves many models: a request without a model
	// needs a default.
	_, err := client(t, ortserver.Options{}).Predict(ctx(t), req)
	wantCode(t, err, codes.InvalidArgument, `the request names no model and pred serves`)
	if err != nil && !strings.Contains(err.Error(), "colors, ") {
		t.Errorf("the error does not name the choices: %v", err)
	}

	resp, err := client(t, ortserver.Options{DefaultModel: "colors"}).Predict(ctx(t), req)
	if err != nil {
		t.Fatal(err)
	}
	if label := infertest.ColorLabel(resp.GetOutputs()["output"].GetRawData(), 0); label != "blue" {
		t.Errorf("blue image: %s", label)
	}

	_, err = client(t, ortserver.Options{DefaultModel: "colors"}).Predict(ctx(t, "model-version", "1"), req)
	wantCode(t, err, codes.InvalidArgument, "model-version is set without model-name")
	_, err = client(t, ortserver.Options{DefaultModel: "gone"}).Predict(ctx(t), req)
	wantCode(t, err, codes.NotFound, `model "gone" is not served`)
}

// sampleStrings returns the elements of a STRING sample.
func sampleStrings(t testing.TB, s testmodels.Sample) [][]byte {
	t.Helper()
	elems, err := tensor.Strings(s.Raw, 3)
	if err != nil {
		t.Fatalf("sample %s: %v", s.Name, err)
	}
	return elems
}

// rawTensor returns a sample as clients send it in bulk: in raw_data, or
// for STRING (which ONNX allows no raw_data for) in string_data.
func rawTensor(t testing.TB, s testmodels.Sample) *onnxpb.TensorProto {
	tp := &onnxpb.TensorProto{Dims: []int64{1, 3}, DataType: dataType(tensor.ONNXType(s.DType))}
	if tensor.IsString(s.DType) {
		tp.StringData = sampleStrings(t, s)
	} else {
		tp.RawData = s.Raw
	}
	return tp
}

// stringTensor returns a STRING TensorProto of the given dims and values.
func stringTensor(dims []int64, vals ...string) *onnxpb.TensorProto {
	tp := &onnxpb.TensorProto{Dims: dims, DataType: dataType(onnxpb.TensorProto_STRING)}
	for _, v := range vals {
		tp.StringData = append(tp.StringData, []byte(v))
	}
	return tp
}

// typedTensor returns a sample in the TensorProto field ONNX keeps its
// type in.
func typedTensor(t *testing.T, s testmodels.Sample) *onnxpb.TensorProto {
	t.Helper()
	tp := &onnxpb.TensorProto{Dims: []int64{1, 3}, DataType: dataType(tensor.ONNXType(s.DType))}
	switch s.Name {
	case "fp32":
		tp.FloatData = []float32{1.5, -0.25, 3e38}
	case "fp16":
		tp.Int32Data = []int32{int32(tensor.Float16Bits(1.5)), int32(tensor.Float16Bits(-2)), int32(tensor.Float16Bits(65504))}
	case "fp64":
		tp.DoubleData = []float64{0.1, -1e300, 2}
	case "int8":
		tp.Int32Data = []int32{-128, 0, 127}
	case "int16":
		tp.Int32Data = []int32{-32768, 1, 32767}
	case "int32":
		tp.Int32Data = []int32{math.MinInt32, -1, math.MaxInt32}
	case "int64":
		tp.Int64Data = []int64{math.MinInt64, 42, math.MaxInt64}
	case "uint8":
		tp.Int32Data = []int32{0, 1, 255}
	case "uint16":
		tp.Int32Data = []int32{0, 2, 65535}
	case "uint32":
		tp.Uint64Data = []uint64{0, 3, math.MaxUint32}
	case "uint64":
		tp.Uint64Data = []uint64{0, 4, math.MaxUint64}
	case "bool":
		tp.Int32Data = []int32{1, 0, 1}
	case "string":
		tp.StringData = [][]byte{[]byte(""), []byte("héllo"), []byte("日本 text")}
	default:
		t.Fatalf("no typed values for %s", s.Name)
	}
	return tp
}

// TestPredictEveryDType runs every element type through the dtypes model,
// as raw_data (string_data for STRING) and in the typed fields, with an
// output filter. Outputs come back in raw_data, STRING in string_data.
func TestPredictEveryDType(t *testing.T) {
	c := client(t, ortserver.Options{})
	samples := testmodels.Samples()
	raw := &ortserverpb.PredictRequest{Inputs: map[string]*onnxpb.TensorProto{}}
	typed := &ortserverpb.PredictRequest{Inputs: map[string]*onnxpb.TensorProto{}}
	for _, s := range samples {
		raw.Inputs[s.Name] = rawTensor(t, s)
		typed.Inputs[s.Name] = typedTensor(t, s)
	}
	typed.OutputFilter = []string{"fp16_out", "bool_out", "uint32_out", "string_out"}
	for name, req := range map[string]*ortserverpb.PredictRequest{"raw": raw, "typed": typed} {
		t.Run(name, func(t *testing.T) {
			resp, err := c.Predict(ctx(t, "model-name", testmodels.DTypes), req)
			if err != nil {
				t.Fatal(err)
			}
			want := len(samples)
			if req.OutputFilter != nil {
				want = len(req.OutputFilter)
			}
			if len(resp.GetOutputs()) != want {
				t.Errorf("%d outputs, want %d", len(resp.GetOutputs()), want)
			}
			for _, s := range samples {
				o, ok := resp.GetOutputs()[testmodels.Output(s.Name)]
				if !ok {
					continue
				}
				if o.GetDataType() != int32(tensor.ONNXType(s.DType)) || !slices.Equal(o.GetDims(), []int64{1, 3}) {
					t.Errorf("%s: %v, want data_type %v dims [1 3]", s.Name, o, tensor.ONNXType(s.DType))
				}
				if tensor.IsString(s.DType) {
					if want := sampleStrings(t, s); len(o.GetRawData()) != 0 || !slices.EqualFunc(o.GetStringData(), want, bytes.Equal) {
						t.Errorf("%s: raw_data %x, string_data %q, want string_data %q", s.Name, o.GetRawData(), o.GetStringData(), want)
					}
				} else if !bytes.Equal(o.GetRawData(), s.Raw) || len(o.GetStringData()) != 0 {
					t.Errorf("%s: %v, want raw %x", s.Name, o, s.Raw)
				}
			}
		})
	}
}

func TestPredictErrors(t *testing.T) {
	c := client(t, ortserver.Options{})
	tests := []struct {
		name  string
		model string
		edit  func(in *onnxpb.TensorProto, r *ortserverpb.PredictRequest)
		code  codes.Code
		msg   string
	}{
		{"strings for float model", "colors", func(_ *onnxpb.TensorProto, r *ortserverpb.PredictRequest) {
			r.Inputs["input"] = stringTensor([]int64{1, 3, 32, 32}, make([]string, 3072)...)
		}, codes.InvalidArgument, "dtype is DATA_TYPE_STRING"},
		{"string raw_data", "identity_string", func(_ *onnxpb.TensorProto, r *ortserverpb.PredictRequest) {
			x := stringTensor([]int64{1, 3})
			x.RawData = tensor.FromStrings([]string{"a", "b", "c"})
			r.Inputs = map[string]*onnxpb.TensorProto{"x": x}
		}, codes.InvalidArgument, `input "x": raw_data is set: ONNX does not allow raw_data for STRING tensors; send the values in string_data, one per element`},
		{"string raw_data and string_data", "identity_string", func(_ *onnxpb.TensorProto, r *ortserverpb.PredictRequest) {
			x := stringTensor([]int64{1, 3}, "a", "b", "c")
			x.RawData = tensor.FromStrings([]string{"a", "b", "c"})
			r.Inputs = map[string]*onnxpb.TensorProto{"x": x}
		}, codes.InvalidArgument, "ONNX does not allow raw_data for STRING tensors"},
		{"string count", "identity_string", func(_ *onnxpb.TensorProto, r *ortserverpb.PredictRequest) {
			r.Inputs = map[string]*onnxpb.TensorProto{"x": stringTensor([]int64{1, 3}, "a", "b")}
		}, codes.InvalidArgument, `input "x": string_data has 2 values; dims [1 3] need 3`},
		{"string no data", "identity_string", func(_ *onnxpb.TensorProto, r *ortserverpb.PredictRequest) {
			r.Inputs = map[string]*onnxpb.TensorProto{"x": stringTensor([]int64{1, 3})}
		}, codes.InvalidArgument, `input "x": no data: dims [1 3] need 3 values in string_data`},
		{"string wrong field", "identity_string", func(_ *onnxpb.TensorProto, r *ortserverpb.PredictRequest) {
			x := stringTensor([]int64{1, 3})
			x.Int32Data = []int32{1, 2, 3}
			r.Inputs = map[string]*onnxpb.TensorProto{"x": x}
		}, codes.InvalidArgument, "data_type STRING keeps its values in string_data, not int32_data"},
		{"string elements", "identity_string", func(_ *onnxpb.TensorProto, r *ortserverpb.PredictRequest) {
			r.Inputs = map[string]*onnxpb.TensorProto{"x": stringTensor([]int64{1, tensor.MaxStringElements + 1}, "a")}
		}, codes.InvalidArgument, fmt.Sprintf("dims [1 %d] have %d elements; a STRING tensor holds at most %d", tensor.MaxStringElements+1, tensor.MaxStringElements+1, tensor.MaxStringElements)},
		{"string NUL", "identity_string", func(_ *onnxpb.TensorProto, r *ortserverpb.PredictRequest) {
			r.Inputs = map[string]*onnxpb.TensorProto{"x": stringTensor([]int64{1, 3}, "a", "b\x00c", "d")}
		}, codes.InvalidArgument, `input "x": STRING element 1 contains a NUL byte`},
		{"string for int8 model", "identity_int8", func(_ *onnxpb.TensorProto, r *ortserverpb.PredictRequest) {
			r.Inputs = map[string]*onnxpb.TensorProto{"x": stringTensor([]int64{1, 3}, "1", "2", "3")}
		}, codes.InvalidArgument, "dtype is DATA_TYPE_STRING"},
		{"string_data for int8", "identity_int8", func(_ *onnxpb.TensorProto, r *ortserverpb.PredictRequest) {
			x := stringTensor([]int64{1, 3}, "1", "2", "3")
			x.DataType = dataType(onnxpb.TensorProto_INT8)
			r.Inputs = map[string]*onnxpb.TensorProto{"x": x}
		}, codes.InvalidArgument, "data_type INT8 keeps its values in int32_data (or raw_data), not string_data"},
		{"bfloat16", "colors", func(in *onnxpb.TensorProto, _ *ortserverpb.PredictRequest) {
			in.DataType = dataType(onnxpb.TensorProto_BFLOAT16)
		}, codes.InvalidArgument, "data_type 16 (BFLOAT16) is not supported"},
		{"no data_type", "colors", func(in *onnxpb.TensorProto, _ *ortserverpb.PredictRequest) { in.DataType = nil }, codes.InvalidArgument, "data_type is not set"},
		{"segment", "colors", func(in *onnxpb.TensorProto, _ *ortserverpb.PredictRequest) {
			in.Segment = &onnxpb.TensorProto_Segment{}
		}, codes.InvalidArgument, "segmented tensors"},
		{"short raw", "colors", func(in *onnxpb.TensorProto, _ *ortserverpb.PredictRequest) { in.RawData = in.RawData[4:] }, codes.InvalidArgument, "raw_data has 12284 bytes; dims [1 3 32 32] of FLOAT need 12288"},
		{"raw and typed", "colors", func(in *onnxpb.TensorProto, _ *ortserverpb.PredictRequest) { in.FloatData = []float32{1} }, codes.InvalidArgument, "has both raw_data and float_data"},
		{"no data", "colors", func(in *onnxpb.TensorProto, _ *ortserverpb.PredictRequest) { in.RawData = nil }, codes.InvalidArgument, "no data: dims [1 3 32 32] need 3072 values in raw_data or float_data"},
		{"wrong field", "colors", func(in *onnxpb.TensorProto, _ *ortserverpb.PredictRequest) {
			in.RawData, in.DoubleData = nil, make([]float64, 3072)
		}, codes.InvalidArgument, "data_type FLOAT keeps its values in float_data (or raw_data), not double_data"},
		{"typed count", "colors", func(in *onnxpb.TensorProto, _ *ortserverpb.PredictRequest) {
			in.RawData, in.FloatData = nil, make([]float32, 3)
		}, codes.InvalidArgument, "float_data has 3 values; dims [1 3 32 32] need 3072"},
		{"int8 range", "identity_int8", func(in *onnxpb.TensorProto, _ *ortserverpb.PredictRequest) {
			in.Dims, in.DataType, in.RawData, in.Int32Data = []int64{1, 3}, dataType(onnxpb.TensorProto_INT8), nil, []int32{1, -129, 0}
		}, codes.InvalidArgument, "int32_data: element 1 is -129, outside the range"},
		{"bool range", "identity_bool", func(in *onnxpb.TensorProto, _ *ortserverpb.PredictRequest) {
			in.Dims, in.DataType, in.RawData, in.Int32Data = []int64{1, 3}, dataType(onnxpb.TensorProto_BOOL), nil, []int32{1, 2, 0}
		}, codes.InvalidArgument, "element 1 is 2, outside the range of DATA_TYPE_BOOL"},
		{"fp16 bits range", "identity_fp16", func(in *onnxpb.TensorProto, _ *ortserverpb.PredictRequest) {
			in.Dims, in.DataType, in.RawData, in.Int32Data = []int64{1, 3}, dataType(onnxpb.TensorProto_FLOAT16), nil, []int32{1, 65536, 0}
		}, codes.InvalidArgument, "outside the range of DATA_TYPE_UINT16"},
		{"huge dims", "colors", func(in *onnxpb.TensorProto, _ *ortserverpb.PredictRequest) { in.Dims = []int64{1 << 40, 1 << 40} }, codes.InvalidArgument, "more than"},
		{"wrong type for model", "colors", func(in *onnxpb.TensorProto, _ *ortserverpb.PredictRequest) {
			in.DataType, in.RawData = dataType(onnxpb.TensorProto_DOUBLE), append(in.RawData, in.RawData...)
		}, codes.InvalidArgument, "dtype is DATA_TYPE_FLOAT64"},
		{"unknown input", "colors", func(in *onnxpb.TensorProto, r *ortserverpb.PredictRequest) {
			r.Inputs = map[string]*onnxpb.TensorProto{"image": in}
		}, codes.InvalidArgument, `unknown input "image"`},
		{"unknown output", "colors", func(_ *onnxpb.TensorProto, r *ortserverpb.PredictRequest) { r.OutputFilter = []string{"probs"} }, codes.InvalidArgument, `unknown output "probs"`},
		{"unknown model", "nope", func(*onnxpb.TensorProto, *ortserverpb.PredictRequest) {}, codes.NotFound, `model "nope" is not served`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := colorsRequest(t, [3]uint8{1, 2, 3})
			tt.edit(req.Inputs["input"], req)
			_, err := c.Predict(ctx(t, "model-name", tt.model), req)
			wantCode(t, err, tt.code, tt.msg)
		})
	}
}

// httpServer serves the HTTP endpoint of the shared setup as pred mounts
// it.
func httpServer(t *testing.T, o ortserver.Options) string {
	t.Helper()
	env := infertest.Setup(t)
	srv := httptest.NewServer(httpapi.Handler(httpapi.Options{
		Ready:     func() bool { return true },
		Gatherer:  env.Metrics.Registry,
		ORTServer: ortserver.New(env.Runner, o).HTTPHandler(),
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

func post(t *testing.T, url string, header map[string]string, body []byte) (int, http.Header, []byte) {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx(t), "POST", url, bytes.NewReader(body))
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
	return resp.StatusCode, resp.Header, b
}

// TestHTTPJSON posts a PredictRequest written by hand in protobuf's JSON
// mapping, as ONNX Runtime Server's documentation shows.
func TestHTTPJSON(t *testing.T) {
	base := httpServer(t, ortserver.Options{})
	env := infertest.Setup(t)
	body := `{"inputs":{"input":{"dims":["1","3","32","32"],"dataType":1,"rawData":"` +
		base64.StdEncoding.EncodeToString(env.Images([3]uint8{255, 0, 0})) + `"}},"outputFilter":["output"]}`
	code, header, resp := post(t, base+"/v1/models/colors/versions/1:predict",
		map[string]string{"Content-Type": "application/json", "Accept": "application/json", "X-Ms-Client-Request-Id": "c-1"}, []byte(body))
	if code != 200 || header.Get("Content-Type") != "application/json" {
		t.Fatalf("%d %s: %s", code, header.Get("Content-Type"), resp)
	}
	if header.Get("X-Ms-Request-Id") == "" || header.Get("X-Ms-Client-Request-Id") != "c-1" {
		t.Errorf("request id headers %v", header)
	}
	var out struct {
		Outputs map[string]struct {
			Dims     []string `json:"dims"`
			DataType int      `json:"dataType"`
			RawData  []byte   `json:"rawData"`
		} `json:"outputs"`
	}
	if err := json.Unmarshal(resp, &out); err != nil {
		t.Fatal(err)
	}
	o := out.Outputs["output"]
	if fmt.Sprint(o.Dims) != "[1 9]" || o.DataType != 1 {
		t.Fatalf("output %+v", o)
	}
	if label := infertest.ColorLabel(o.RawData, 0); label != "red" {
		t.Errorf("red image: %s", label)
	}
}

// TestHTTPProtobuf posts binary PredictRequests and negotiates the answer's
// type.
func TestHTTPProtobuf(t *testing.T) {
	base := httpServer(t, ortserver.Options{})
	body, err := proto.Marshal(colorsRequest(t, [3]uint8{0, 255, 0}))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		contentType, accept, want string
	}{
		{"application/octet-stream", "", "application/octet-stream"},
		{"application/x-protobuf", "*/*", "application/x-protobuf"},
		{"application/vnd.google.protobuf", "application/x-protobuf", "application/x-protobuf"},
		{"application/octet-stream", "text/html, application/json;q=0.9", "application/json"},
	}
	for _, tt := range tests {
		t.Run(tt.contentType+" accept "+tt.accept, func(t *testing.T) {
			code, header, resp := post(t, base+"/v1/models/colors:predict", map[string]string{"Content-Type": tt.contentType, "Accept": tt.accept}, body)
			if code != 200 || header.Get("Content-Type") != tt.want {
				t.Fatalf("%d %s: %s", code, header.Get("Content-Type"), resp)
			}
			if tt.want == "application/json" {
				if !bytes.Contains(resp, []byte(`"rawData"`)) {
					t.Errorf("JSON response %s", resp)
				}
				return
			}
			var out ortserverpb.PredictResponse
			if err := proto.Unmarshal(resp, &out); err != nil {
				t.Fatal(err)
			}
			if label := infertest.ColorLabel(out.GetOutputs()["output"].GetRawData(), 0); label != "green" {
				t.Errorf("green image: %s", label)
			}
		})
	}
}

// TestHTTPModelFallback: ONNX Runtime Server ignored the URL's model name;
// pred uses the default model for a name it does not serve.
func TestHTTPModelFallback(t *testing.T) {
	body, err := proto.Marshal(colorsRequest(t, [3]uint8{255, 255, 255}))
	if err != nil {
		t.Fatal(err)
	}
	header := map[string]string{"Content-Type": "application/octet-stream"}
	code, _, resp := post(t, httpServer(t, ortserver.Options{DefaultModel: "colors"})+"/v1/models/mymodel/versions/3:predict", header, body)
	var out ortserverpb.PredictResponse
	if err := proto.Unmarshal(resp, &out); code != 200 || err != nil {
		t.Fatalf("%d %v: %s", code, err, resp)
	}
	if label := infertest.ColorLabel(out.GetOutputs()["output"].GetRawData(), 0); label != "white" {
		t.Errorf("white image: %s", label)
	}
	// Without a default (several models, no --default-model), the name
	// must be served.
	code, _, resp = post(t, httpServer(t, ortserver.Options{})+"/v1/models/mymodel/versions/3:predict", header, body)
	if code != 404 || !bytes.Contains(resp, []byte(`"error_code":404`)) || !bytes.Contains(resp, []byte(`model \"mymodel\" is not served`)) {
		t.Errorf("%d %s, want 404", code, resp)
	}
}

func TestHTTPErrors(t *testing.T) {
	base := httpServer(t, ortserver.Options{})
	good, err := proto.Marshal(colorsRequest(t, [3]uint8{1, 2, 3}))
	if err != nil {
		t.Fatal(err)
	}
	bad := colorsRequest(t, [3]uint8{1, 2, 3})
	bad.Inputs["input"].Dims = []int64{2, 3, 32, 32}
	badBody, err := proto.Marshal(bad)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, method, path, contentType, accept string
		body                                    []byte
		code                                    int
		msg                                     string
	}{
		{"bad JSON", "POST", "/v1/models/colors:predict", "application/json", "", []byte(`{"inputs":`), 400, "is not a application/json PredictRequest"},
		{"unknown JSON field", "POST", "/v1/models/colors:predict", "application/json", "", []byte(`{"input":{}}`), 400, "unknown field"},
		{"bad protobuf", "POST", "/v1/models/colors:predict", "application/octet-stream", "", []byte{0xff, 0xff}, 400, "is not a application/octet-stream PredictRequest"},
		{"bad tensor", "POST", "/v1/models/colors:predict", "application/octet-stream", "", badBody, 400, "raw_data has 12288 bytes; dims [2 3 32 32] of FLOAT need 24576"},
		{"content type", "POST", "/v1/models/colors:predict", "text/plain", "", good, 415, `content type "text/plain" is not supported`},
		{"accept", "POST", "/v1/models/colors:predict", "application/octet-stream", "text/html", good, 406, "names no supported type"},
		{"method", "GET", "/v1/models/colors:predict", "", "", nil, 405, "use POST"},
		{"path", "POST", "/v1/models/colors/predict", "application/octet-stream", "", good, 404, "unknown path"},
		{"empty version", "POST", "/v1/models/colors/versions/:predict", "application/octet-stream", "", good, 404, "unknown path"},
		{"bad version", "POST", "/v1/models/colors/versions/x:predict", "application/octet-stream", "", good, 400, `model version "x"`},
		{"missing version", "POST", "/v1/models/colors/versions/4:predict", "application/octet-stream", "", good, 404, "has no version 4"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, err := http.NewRequestWithContext(ctx(t), tt.method, base+tt.path, bytes.NewReader(tt.body))
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Content-Type", tt.contentType)
			req.Header.Set("Accept", tt.accept)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var e struct {
				Code    int    `json:"error_code"`
				Message string `json:"error_message"`
			}
			if err := json.NewDecoder(resp.Body).Decode(&e); err != nil {
				t.Fatalf("status %d: the body is not an error object: %v", resp.StatusCode, err)
			}
			if resp.StatusCode != tt.code || e.Code != tt.code || !strings.Contains(e.Message, tt.msg) {
				t.Errorf("%d %+v, want %d containing %q", resp.StatusCode, e, tt.code, tt.msg)
			}
		})
	}
}

// TestStringsBatch sends STRING tensors of several rows, empty elements and
// a multi-byte one through the identity_string model, which returns them
// in string_data.
func TestStringsBatch(t *testing.T) {
	c := client(t, ortserver.Options{})
	vals := []string{"a", "", "ß\xff\x01", strings.Repeat("long ", 1000), "日本", ""}
	req := &ortserverpb.PredictRequest{Inputs: map[string]*onnxpb.TensorProto{"x": stringTensor([]int64{2, 3}, vals...)}}
	resp, err := c.Predict(ctx(t, "model-name", "identity_string"), req)
	if err != nil {
		t.Fatal(err)
	}
	y := resp.GetOutputs()["y"]
	got := make([]string, len(y.GetStringData()))
	for i, b := range y.GetStringData() {
		got[i] = string(b)
	}
	if y.GetDataType() != int32(onnxpb.TensorProto_STRING) || !slices.Equal(y.GetDims(), []int64{2, 3}) || len(y.GetRawData()) != 0 || !slices.Equal(got, vals) {
		t.Errorf("y = data_type %d dims %v raw_data %x string_data %q, want STRING [2 3] %q", y.GetDataType(), y.GetDims(), y.GetRawData(), got, vals)
	}
}

// TestHTTPJSONStrings posts a STRING tensor in protobuf's JSON mapping,
// where string_data is base64 (it is repeated bytes).
func TestHTTPJSONStrings(t *testing.T) {
	b64 := base64.StdEncoding.EncodeToString
	body := `{"inputs":{"x":{"dims":["1","3"],"dataType":8,"stringData":["` + b64([]byte("héllo")) + `","","` + b64([]byte("wörld")) + `"]}}}`
	code, _, resp := post(t, httpServer(t, ortserver.Options{})+"/v1/models/identity_string:predict", map[string]string{"Content-Type": "application/json"}, []byte(body))
	if code != 200 {
		t.Fatalf("%d: %s", code, resp)
	}
	var out struct {
		Outputs map[string]struct {
			Dims       []string `json:"dims"`
			DataType   int      `json:"dataType"`
			StringData [][]byte `json:"stringData"`
			RawData    []byte   `json:"rawData"`
		} `json:"outputs"`
	}
	if err := json.Unmarshal(resp, &out); err != nil {
		t.Fatal(err)
	}
	y := out.Outputs["y"]
	if fmt.Sprint(y.Dims) != "[1 3]" || y.DataType != 8 || y.RawData != nil || fmt.Sprintf("%q", y.StringData) != `["héllo" "" "wörld"]` {
		t.Errorf("output %s", resp)
	}

	bad := `{"inputs":{"x":{"dims":["1","3"],"dataType":8,"rawData":"` + b64(tensor.FromStrings([]string{"a", "b", "c"})) + `"}}}`
	code, _, resp = post(t, httpServer(t, ortserver.Options{})+"/v1/models/identity_string:predict", map[string]string{"Content-Type": "application/json"}, []byte(bad))
	if code != 400 || !bytes.Contains(resp, []byte("ONNX does not allow raw_data for STRING tensors")) {
		t.Errorf("raw_data for STRING: %d %s, want 400", code, resp)
	}
}

// TestDecodeTensorStrings checks the encoding of string_data, and that an
// empty STRING tensor needs no string_data.
func TestDecodeTensorStrings(t *testing.T) {
	got, err := ortserver.DecodeTensor(stringTensor([]int64{2}, "ab", ""))
	if err != nil {
		t.Fatal(err)
	}
	if want := tensor.FromStrings([]string{"ab", ""}); got.DType != predv1.DataType_DATA_TYPE_STRING || !bytes.Equal(got.Data, want) {
		t.Errorf("DecodeTensor = %v %x, want STRING %x", got.DType, got.Data, want)
	}
	got, err = ortserver.DecodeTensor(stringTensor([]int64{0, 3}))
	if err != nil || got.DType != predv1.DataType_DATA_TYPE_STRING || len(got.Data) != 0 {
		t.Errorf("empty: DecodeTensor = %v %x, %v", got.DType, got.Data, err)
	}
}

// TestEncodeTensorStrings checks that STRING outputs go in string_data and
// that malformed Data is an error, not a panic.
func TestEncodeTensorStrings(t *testing.T) {
	tp, err := ortserver.EncodeTensor(tensor.Tensor{DType: predv1.DataType_DATA_TYPE_STRING, Shape: []int64{2}, Data: tensor.FromStrings([]string{"", "x"})})
	if err != nil {
		t.Fatal(err)
	}
	if tp.GetDataType() != int32(onnxpb.TensorProto_STRING) || tp.RawData != nil || fmt.Sprintf("%q", tp.GetStringData()) != `["" "x"]` {
		t.Errorf("EncodeTensor = %v", tp)
	}
	if _, err := ortserver.EncodeTensor(tensor.Tensor{DType: predv1.DataType_DATA_TYPE_STRING, Shape: []int64{3}, Data: tensor.FromStrings([]string{"", "x"})}); err == nil {
		t.Error("EncodeTensor of 2 elements for shape [3]: no error")
	}
}

// TestDecodeTensorFloat16 checks the FLOAT16 bit patterns in int32_data.
func TestDecodeTensorFloat16(t *testing.T) {
	tp := &onnxpb.TensorProto{Dims: []int64{2}, DataType: dataType(onnxpb.TensorProto_FLOAT16), Int32Data: []int32{0x3c00, 0xc000}}
	got, err := ortserver.DecodeTensor(tp)
	if err != nil {
		t.Fatal(err)
	}
	if got.DType != predv1.DataType_DATA_TYPE_FLOAT16 || !bytes.Equal(got.Data, []byte{0x00, 0x3c, 0x00, 0xc0}) {
		t.Errorf("DecodeTensor = %v %x", got.DType, got.Data)
	}
}
