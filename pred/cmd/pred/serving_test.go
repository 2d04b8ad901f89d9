package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	predv1 "github.com/prepred/prepred/api/gen/prepred/pred/v1"
	"github.com/prepred/prepred/pred/internal/grpcserver"
	"github.com/prepred/prepred/pred/internal/registry"
	"github.com/prepred/prepred/pred/predtest"
)

// defaultServing is servingConfig with every flag at its default.
var defaultServing = servingConfig{
	instanceCount:     1,
	maxQueueSize:      registry.DefaultMaxQueueSize,
	executionProvider: "cpu",
	cudaFallback:      registry.FallbackCPU,
	maxConnectionAge:  grpcserver.DefaultMaxConnectionAge,
}

func TestParseServingConfig(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		env     map[string]string
		want    servingConfig
		wantErr string
	}{
		{name: "defaults", want: defaultServing},
		{
			name: "env",
			env: map[string]string{
				"PRED_REPOSITORY_POLL_INTERVAL": "30s", "PRED_MANAGEMENT_API": "true", "PRED_MANAGEMENT_TOKEN": "t0k",
				"PRED_INSTANCE_COUNT": "2", "PRED_MAX_QUEUE_SIZE": "16", "PRED_EXECUTION_PROVIDER": "cuda",
				"PRED_CUDA_FALLBACK": "fail", "PRED_GRPC_MAX_CONNECTION_AGE": "0",
			},
			want: servingConfig{pollInterval: 30 * time.Second, managementAPI: true, managementToken: "t0k", instanceCount: 2,
				maxQueueSize: 16, executionProvider: "cuda", cudaFallback: "fail"},
		},
		{
			name: "flags win over env",
			args: []string{"--repository-poll-interval", "1m", "--management-api=false", "--instance-count", "3", "--execution-provider", "cpu", "--grpc-max-connection-age", "90s"},
			env:  map[string]string{"PRED_REPOSITORY_POLL_INTERVAL": "30s", "PRED_MANAGEMENT_API": "true", "PRED_INSTANCE_COUNT": "2", "PRED_EXECUTION_PROVIDER": "cuda"},
			want: servingConfig{pollInterval: time.Minute, instanceCount: 3, maxQueueSize: registry.DefaultMaxQueueSize,
				executionProvider: "cpu", cudaFallback: "cpu", maxConnectionAge: 90 * time.Second},
		},
		{name: "bad interval", args: []string{"--repository-poll-interval", "often"}, wantErr: `--repository-poll-interval "often"`},
		{name: "negative interval", args: []string{"--repository-poll-interval", "-1s"}, wantErr: "--repository-poll-interval"},
		{name: "bad bool", env: map[string]string{"PRED_MANAGEMENT_API": "yes please"}, wantErr: "--management-api"},
		{name: "zero instances", args: []string{"--instance-count", "0"}, wantErr: "--instance-count"},
		{name: "huge queue", args: []string{"--max-queue-size", "100000000"}, wantErr: "--max-queue-size"},
		{name: "tensorrt", args: []string{"--execution-provider", "tensorrt"}, want: func() servingConfig {
			c := defaultServing
			c.executionProvider = "tensorrt"
			return c
		}()},
		{name: "unknown provider", args: []string{"--execution-provider", "tpu"}, wantErr: `--execution-provider "tpu"`},
		{name: "unknown fallback", args: []string{"--cuda-fallback", "retry"}, wantErr: "--cuda-fallback"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseConfig(tt.args, func(k string) string { return tt.env[k] }, io.Discard)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("parseConfig = %v, want an error containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.serving != tt.want {
				t.Errorf("serving = %+v, want %+v", got.serving, tt.want)
			}
		})
	}
}

// repositoryCall POSTs to the repository API and returns the status and
// body.
func repositoryCall(t *testing.T, srv *predtest.Server, path, token, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(testCtx(t), "POST", "http://"+srv.HTTPAddr+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
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
	return resp.StatusCode, string(b)
}

// watchHealth returns a function that waits for a model's health status.
func watchHealth(t *testing.T, srv *predtest.Server, model string) func(want healthpb.HealthCheckResponse_ServingStatus) {
	t.Helper()
	stream, err := healthpb.NewHealthClient(srv.Dial(t)).Watch(testCtx(t), &healthpb.HealthCheckRequest{Service: model})
	if err != nil {
		t.Fatal(err)
	}
	return func(want healthpb.HealthCheckResponse_ServingStatus) {
		t.Helper()
		for {
			resp, err := stream.Recv()
			if err != nil {
				t.Fatalf("health watch of %s: %v", model, err)
			}
			if resp.GetStatus() == want {
				return
			}
		}
	}
}

// TestRepositoryAPI loads, lists and unloads models through the
// repository API of a running pred, and checks per model health.
func TestRepositoryAPI(t *testing.T) {
	repo := t.TempDir()
	copyModel(t, repo, "colors")
	srv := predtest.Start(t, "--model-repository", repo, "--management-api")
	conn := srv.Dial(t)
	client := predv1.NewPredServiceClient(conn)

	code, body := repositoryCall(t, srv, "/v2/repository/index", "", "")
	var index []map[string]string
	if err := json.Unmarshal([]byte(body), &index); code != 200 || err != nil {
		t.Fatalf("index = %d %s (%v)", code, body, err)
	}
	if fmt.Sprint(index) != "[map[name:colors state:READY version:1]]" {
		t.Errorf("index = %v", index)
	}

	// A model copied in is served after an explicit load.
	if err := os.CopyFS(filepath.Join(repo, "shades"), os.DirFS(filepath.Join(repo, "colors"))); err != nil {
		t.Fatal(err)
	}
	cfgPath := filepath.Join(repo, "shades", "config.pbtxt")
	text, err := os.ReadFile(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(cfgPath, []byte(strings.Replace(string(text), `name: "colors"`, `name: "shades"`, 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	health := watchHealth(t, srv, "shades")
	health(healthpb.HealthCheckResponse_SERVICE_UNKNOWN)
	if code, body := repositoryCall(t, srv, "/v2/repository/models/shades/load", "", ""); code != 200 || body != "" {
		t.Fatalf("load = %d %q", code, body)
	}
	health(healthpb.HealthCheckResponse_SERVING)
	req := colorsRequest(t, conn, [3]uint8{255, 0, 0}, 1)
	req.Model = "shades"
	if resp, err := client.Predict(testCtx(t), req); err != nil || resp.GetModel() != "shades" {
		t.Fatalf("Predict(shades) = %v, %v", resp, err)
	}

	if code, body := repositoryCall(t, srv, "/v2/repository/models/shades/unload", "", `{"parameters":{"unload_dependents":false}}`); code != 200 {
		t.Fatalf("unload = %d %s", code, body)
	}
	health(healthpb.HealthCheckResponse_NOT_SERVING)
	_, err = client.Predict(testCtx(t), req)
	if status.Code(err) != codes.Unavailable || !strings.Contains(err.Error(), "unloaded") {
		t.Errorf("Predict after unload = %v", err)
	}
	code, body = repositoryCall(t, srv, "/v2/repository/index", "", `{"ready":true}`)
	if code != 200 || body != `[{"name":"colors","version":"1","state":"READY"}]`+"\n" {
		t.Errorf("ready index = %d %s", code, body)
	}

	for _, tt := range []struct {
		path     string
		wantCode int
		wantBody string
	}{
		{"/v2/repository/models/..%2F..%2Fetc/load", 400, "invalid model name"},
		{"/v2/repository/models/..%2Fcolors/unload", 400, "invalid model name"},
		{"/v2/repository/models/nosuch/load", 404, "not in the model repository"},
	} {
		if code, body := repositoryCall(t, srv, tt.path, "", ""); code != tt.wantCode || !strings.Contains(body, tt.wantBody) {
			t.Errorf("POST %s = %d %s, want %d containing %q", tt.path, code, body, tt.wantCode, tt.wantBody)
		}
	}
	srv.WaitLog(t, time.Minute, func(l string) bool {
		return strings.Contains(l, `"msg":"model repository request"`) && strings.Contains(l, `"action":"unload"`)
	})
}

// TestRepositoryAPIAccess: off by default; with a token, only callers that
// present it.
func TestRepositoryAPIAccess(t *testing.T) {
	repo := t.TempDir()
	copyModel(t, repo, "colors")
	off := predtest.Start(t, "--model-repository", repo)
	if code, body := repositoryCall(t, off, "/v2/repository/index", "", ""); code != 403 || !strings.Contains(body, "disabled") {
		t.Errorf("index without --management-api = %d %s", code, body)
	}
	off.Stop()

	on := predtest.Start(t, "--model-repository", repo, "--management-api", "--management-token", "s3cret")
	for _, tt := range []struct {
		token    string
		wantCode int
	}{{"", 401}, {"wrong", 401}, {"s3cret", 200}} {
		if code, body := repositoryCall(t, on, "/v2/repository/index", tt.token, ""); code != tt.wantCode {
			t.Errorf("index with token %q = %d %s, want %d", tt.token, code, body, tt.wantCode)
		}
	}
}

// TestRepositoryPolling adds a version to a running pred's repository:
// the next poll loads it, and it serves once warmed up.
func TestRepositoryPolling(t *testing.T) {
	repo := t.TempDir()
	copyModel(t, repo, "colors")
	srv := predtest.Start(t, "--model-repository", repo, "--repository-poll-interval", "20ms")
	conn := srv.Dial(t)
	if err := os.CopyFS(filepath.Join(repo, "colors", "2"), os.DirFS(filepath.Join(repo, "colors", "1"))); err != nil {
		t.Fatal(err)
	}
	srv.WaitLog(t, time.Minute, func(l string) bool {
		return strings.Contains(l, `"msg":"model version loaded"`) && strings.Contains(l, `"version":2`) && strings.Contains(l, `"warm_up"`)
	})
	srv.WaitLog(t, time.Minute, func(l string) bool {
		return strings.Contains(l, `"msg":"model version unloaded"`) && strings.Contains(l, `"version":1`)
	})
	resp, err := predv1.NewPredServiceClient(conn).Predict(testCtx(t), colorsRequest(t, conn, [3]uint8{0, 0, 255}, 1))
	if err != nil || resp.GetVersion() != 2 {
		t.Fatalf("Predict after the poll = version %d, %v; want version 2", resp.GetVersion(), err)
	}
	if got := colorLabel(t, resp.GetOutputs()[0].GetRawData()); got != "blue" {
		t.Errorf("label %s", got)
	}
}

// TestMetricsAfterRequests checks pred's Triton-style metrics on /metrics
// after a few requests.
func TestMetricsAfterRequests(t *testing.T) {
	repo := t.TempDir()
	copyModel(t, repo, "colors")
	srv := predtest.Start(t, "--model-repository", repo)
	conn := srv.Dial(t)
	client := predv1.NewPredServiceClient(conn)
	for i := range 3 {
		if _, err := client.Predict(testCtx(t), colorsRequest(t, conn, [3]uint8{0, 255, 0}, i+1)); err != nil {
			t.Fatal(err)
		}
	}
	bad := colorsRequest(t, conn, [3]uint8{0, 255, 0}, 1)
	bad.Inputs[0].Shape[1] = 4
	if _, err := client.Predict(testCtx(t), bad); status.Code(err) != codes.InvalidArgument {
		t.Fatalf("bad request: %v", err)
	}
	_, body := httpGet(t, "http://"+srv.HTTPAddr+"/metrics")
	for _, want := range []string{
		`pred_inference_request_success_total{model="colors",version="1"} 3`,
		`pred_inference_request_failure_total{model="colors",reason="InvalidArgument",version="1"} 1`,
		`pred_inference_count_total{model="colors",version="1"} 6`,
		`pred_inference_exec_count_total{model="colors",version="1"} `,
		`pred_inference_pending_request_count{model="colors",version="1"} 0`,
		`pred_inference_request_duration_seconds_count{model="colors",version="1"} 3`,
		`pred_inference_queue_duration_seconds_count{model="colors",version="1"} 3`,
		`pred_inference_compute_input_duration_seconds_bucket{model="colors",version="1",le=`,
		`pred_inference_compute_infer_duration_seconds_sum{model="colors",version="1"} `,
		`pred_inference_compute_output_duration_seconds_count{model="colors",version="1"} `,
		`pred_inference_batch_size_sum{model="colors",version="1"} 6`,
		`pred_model_state{model="colors",state="READY",version="1"} 1`,
		`pred_model_state{model="colors",state="UNAVAILABLE",version="1"} 0`,
		`pred_inference_requests_total{code="OK",model="colors",version="1"} 3`,
		`process_resident_memory_bytes `,
		`go_goroutines `,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics has no line starting %q", want)
		}
	}
	if t.Failed() {
		t.Logf("/metrics:\n%s", body)
	}
}
