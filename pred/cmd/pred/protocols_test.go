package main

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/proto"

	inferencepb "github.com/prepred/prepred/api/gen/inference"
	onnxpb "github.com/prepred/prepred/api/gen/onnx"
	ortserverpb "github.com/prepred/prepred/api/gen/onnxruntime/server"
	predv1 "github.com/prepred/prepred/api/gen/prepred/pred/v1"
	"github.com/prepred/prepred/pred/modelgen"
	"github.com/prepred/prepred/pred/predtest"
)

func TestParseConfigDefaultModel(t *testing.T) {
	for _, tt := range []struct {
		args []string
		env  map[string]string
		want string
	}{
		{want: ""},
		{env: map[string]string{"PRED_DEFAULT_MODEL": "colors"}, want: "colors"},
		{args: []string{"--default-model", "resnet50"}, env: map[string]string{"PRED_DEFAULT_MODEL": "colors"}, want: "resnet50"},
	} {
		c, err := parseConfig(tt.args, func(k string) string { return tt.env[k] }, io.Discard)
		if err != nil || c.defaultModel != tt.want {
			t.Errorf("parseConfig(%v, %v) = %q, %v; want %q", tt.args, tt.env, c.defaultModel, err, tt.want)
		}
	}
}

// redImage is the colors model's input for one red image.
func redImage(t *testing.T, conn *grpc.ClientConn) []byte {
	t.Helper()
	md, err := predv1.NewPredServiceClient(conn).ModelMetadata(testCtx(t), &predv1.ModelMetadataRequest{Model: "colors"})
	if err != nil {
		t.Fatal(err)
	}
	return predtest.ConstantImages(md.GetPreprocess(), [3]uint8{255, 0, 0})
}

func colorLabel(t *testing.T, logits []byte) string {
	t.Helper()
	v := predtest.Float32s(logits)
	if len(v) != len(modelgen.ColorLabels) {
		t.Fatalf("%d logits", len(v))
	}
	return modelgen.ColorLabels[predtest.Argmax(v)]
}

func httpDo(t *testing.T, method, url string, header map[string]string, body []byte) (int, http.Header, []byte) {
	t.Helper()
	req, err := http.NewRequestWithContext(testCtx(t), method, url, bytes.NewReader(body))
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

// TestStandardProtocols runs the pred binary and asks the colors model
// about a red image through every protocol it speaks: each must say red.
func TestStandardProtocols(t *testing.T) {
	srv := predtest.Start(t, "--log-level", "debug", "--default-model", "colors")
	conn := srv.Dial(t)
	red := redImage(t, conn)
	base := "http://" + srv.HTTPAddr

	for _, service := range []string{"inference.GRPCInferenceService", "onnxruntime.server.PredictionService"} {
		resp, err := healthpb.NewHealthClient(conn).Check(testCtx(t), &healthpb.HealthCheckRequest{Service: service})
		if err != nil || resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
			t.Errorf("health of %s: %v, %v", service, resp, err)
		}
	}

	t.Run("OIP gRPC", func(t *testing.T) {
		c := inferencepb.NewGRPCInferenceServiceClient(conn)
		ready, err := c.ServerReady(testCtx(t), &inferencepb.ServerReadyRequest{})
		if err != nil || !ready.GetReady() {
			t.Errorf("ServerReady = %v, %v", ready, err)
		}
		md, err := c.ModelMetadata(testCtx(t), &inferencepb.ModelMetadataRequest{Name: "resnet50"})
		if err != nil || md.GetInputs()[0].GetDatatype() != "FP32" || !slices.Equal(md.GetInputs()[0].GetShape(), []int64{-1, 3, 224, 224}) {
			t.Errorf("ModelMetadata(resnet50) = %v, %v", md, err)
		}
		resp, err := c.ModelInfer(testCtx(t), &inferencepb.ModelInferRequest{
			ModelName:        "colors",
			Inputs:           []*inferencepb.ModelInferRequest_InferInputTensor{{Name: "input", Datatype: "FP32", Shape: []int64{1, 3, 32, 32}}},
			RawInputContents: [][]byte{red},
		})
		if err != nil {
			t.Fatal(err)
		}
		if got := colorLabel(t, resp.GetRawOutputContents()[0]); got != "red" {
			t.Errorf("red image: %s", got)
		}
		resp, err = c.ModelInfer(testCtx(t), &inferencepb.ModelInferRequest{
			ModelName:        "resnet50",
			Inputs:           []*inferencepb.ModelInferRequest_InferInputTensor{{Name: "input", Datatype: "FP32", Shape: []int64{1, 3, 224, 224}}},
			RawInputContents: [][]byte{make([]byte, 3*224*224*4)},
		})
		if err != nil || len(resp.GetRawOutputContents()[0]) != 4000 {
			t.Errorf("ModelInfer(resnet50) = %v, %v", resp.GetOutputs(), err)
		}
	})

	t.Run("OIP REST", func(t *testing.T) {
		if code, _, body := httpDo(t, "GET", base+"/v2/models/colors/ready", nil, nil); code != 200 || string(body) != `{"name":"colors","ready":true}` {
			t.Errorf("ready: %d %s", code, body)
		}
		parts := make([]string, 0, len(red)/4)
		for _, f := range predtest.Float32s(red) {
			parts = append(parts, strconv.FormatFloat(float64(f), 'g', -1, 32))
		}
		body := `{"inputs":[{"name":"input","shape":[1,3,32,32],"datatype":"FP32","data":[` + strings.Join(parts, ",") + `]}]}`
		code, header, resp := httpDo(t, "POST", base+"/v2/models/colors/infer", map[string]string{"X-Request-ID": "rest-1"}, []byte(body))
		if code != 200 || header.Get("X-Request-ID") != "rest-1" {
			t.Fatalf("%d (request id %q): %s", code, header.Get("X-Request-ID"), resp)
		}
		var out struct {
			Outputs []struct {
				Data []float32 `json:"data"`
			} `json:"outputs"`
		}
		if err := json.Unmarshal(resp, &out); err != nil {
			t.Fatal(err)
		}
		if got := colorLabel(t, predtest.Float32Bytes(out.Outputs[0].Data)); got != "red" {
			t.Errorf("red image: %s", got)
		}
		srv.WaitLog(t, time.Minute, func(l string) bool {
			return strings.Contains(l, `"request_id":"rest-1"`) && strings.Contains(l, `"model":"colors"`) && strings.Contains(l, `"status":200`)
		})

		header2 := `{"inputs":[{"name":"input","shape":[1,3,224,224],"datatype":"FP32","parameters":{"binary_data_size":602112}}],"parameters":{"binary_data_output":true}}`
		code, h, resp := httpDo(t, "POST", base+"/v2/models/resnet50/infer",
			map[string]string{"Inference-Header-Content-Length": strconv.Itoa(len(header2))}, append([]byte(header2), make([]byte, 602112)...))
		if n, _ := strconv.Atoi(h.Get("Inference-Header-Content-Length")); code != 200 || len(resp)-n != 4000 {
			t.Errorf("binary resnet50: %d, header length %q, %d bytes", code, h.Get("Inference-Header-Content-Length"), len(resp))
		}
	})

	ortRequest := &ortserverpb.PredictRequest{Inputs: map[string]*onnxpb.TensorProto{"input": {
		Dims: []int64{1, 3, 32, 32}, DataType: proto.Int32(int32(onnxpb.TensorProto_FLOAT)), RawData: red,
	}}}

	t.Run("ONNX Runtime Server gRPC", func(t *testing.T) {
		// No model named: --default-model picks colors.
		resp, err := ortserverpb.NewPredictionServiceClient(conn).Predict(testCtx(t), ortRequest)
		if err != nil {
			t.Fatal(err)
		}
		if got := colorLabel(t, resp.GetOutputs()["output"].GetRawData()); got != "red" {
			t.Errorf("red image: %s", got)
		}
		ctx := metadata.AppendToOutgoingContext(testCtx(t), "model-name", "resnet50")
		if _, err := ortserverpb.NewPredictionServiceClient(conn).Predict(ctx, ortRequest); err == nil || !strings.Contains(err.Error(), `model "resnet50" expects 224`) {
			t.Errorf("colors input to resnet50 named in metadata: %v", err)
		}
	})

	t.Run("ONNX Runtime Server HTTP", func(t *testing.T) {
		body, err := proto.Marshal(ortRequest)
		if err != nil {
			t.Fatal(err)
		}
		code, _, resp := httpDo(t, "POST", base+"/v1/models/colors/versions/1:predict", map[string]string{"Content-Type": "application/octet-stream"}, body)
		var out ortserverpb.PredictResponse
		if err := proto.Unmarshal(resp, &out); code != 200 || err != nil {
			t.Fatalf("%d %v: %s", code, err, resp)
		}
		if got := colorLabel(t, out.GetOutputs()["output"].GetRawData()); got != "red" {
			t.Errorf("red image: %s", got)
		}
	})

	// Every protocol's requests count in the same metrics: one successful
	// colors request each over OIP gRPC and REST, ONNX Runtime Server gRPC
	// and HTTP.
	code, _, metrics := httpDo(t, "GET", base+"/metrics", nil, nil)
	if want := `pred_inference_requests_total{code="OK",model="colors",version="1"} 4`; code != 200 || !strings.Contains(string(metrics), want) {
		t.Errorf("metrics: want %q in\n%s", want, metrics)
	}
}

// TestORTServerDefaultsToTheOnlyModel: with one model served, ONNX Runtime
// Server requests run it without --default-model.
func TestORTServerDefaultsToTheOnlyModel(t *testing.T) {
	repo := t.TempDir()
	copyModel(t, repo, "colors")
	srv := predtest.Start(t, "--model-repository", repo)
	conn := srv.Dial(t)
	resp, err := ortserverpb.NewPredictionServiceClient(conn).Predict(testCtx(t), &ortserverpb.PredictRequest{Inputs: map[string]*onnxpb.TensorProto{"input": {
		Dims: []int64{1, 3, 32, 32}, DataType: proto.Int32(int32(onnxpb.TensorProto_FLOAT)), RawData: redImage(t, conn),
	}}})
	if err != nil {
		t.Fatal(err)
	}
	if got := colorLabel(t, resp.GetOutputs()["output"].GetRawData()); got != "red" {
		t.Errorf("red image: %s", got)
	}
}
