package main

import (
	"encoding/json"
	"math"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	inferencepb "github.com/prepred/prepred/api/gen/inference"
	predv1 "github.com/prepred/prepred/api/gen/prepred/pred/v1"
	"github.com/prepred/prepred/pred/predtest"
)

// TestTritonStatistics drives a running pred through all three inference
// protocols, checks that ModelStatistics moved by exactly the requests
// sent, that it reports what /metrics reports, and that REST /stats
// answers the same; and that ModelConfig reports the instances pred runs.
func TestTritonStatistics(t *testing.T) {
	repo := t.TempDir()
	copyModel(t, repo, "colors")
	srv := predtest.Start(t, "--model-repository", repo, "--instance-count", "2")
	conn := srv.Dial(t)
	oip := inferencepb.NewGRPCInferenceServiceClient(conn)

	cfg, err := oip.ModelConfig(testCtx(t), &inferencepb.ModelConfigRequest{Name: "colors"})
	if err != nil {
		t.Fatal(err)
	}
	if c := cfg.GetConfig(); c.GetMaxBatchSize() != 8 || len(c.GetInstanceGroup()) != 1 || c.GetInstanceGroup()[0].GetCount() != 2 ||
		c.GetInstanceGroup()[0].GetKind() != inferencepb.ModelInstanceGroup_KIND_CPU {
		t.Errorf("ModelConfig = %v", c)
	}

	native := predv1.NewPredServiceClient(conn)
	image := redImage(t, conn)
	for range 3 {
		if _, err := oip.ModelInfer(testCtx(t), &inferencepb.ModelInferRequest{
			ModelName:        "colors",
			Inputs:           []*inferencepb.ModelInferRequest_InferInputTensor{{Name: "input", Datatype: "FP32", Shape: []int64{1, 3, 32, 32}}},
			RawInputContents: [][]byte{image},
		}); err != nil {
			t.Fatal(err)
		}
	}
	for range 2 {
		if _, err := native.Predict(testCtx(t), colorsRequest(t, conn, [3]uint8{0, 0, 255}, 2)); err != nil {
			t.Fatal(err)
		}
	}
	header := `{"inputs":[{"name":"input","shape":[1,3,32,32],"datatype":"FP32","parameters":{"binary_data_size":12288}}]}`
	if code, _, body := httpDo(t, "POST", "http://"+srv.HTTPAddr+"/v2/models/colors/infer",
		map[string]string{"Inference-Header-Content-Length": strconv.Itoa(len(header))}, append([]byte(header), image...)); code != 200 {
		t.Fatalf("REST infer: %d %s", code, body)
	}

	resp, err := oip.ModelStatistics(testCtx(t), &inferencepb.ModelStatisticsRequest{Name: "colors", Version: "1"})
	if err != nil || len(resp.GetModelStats()) != 1 {
		t.Fatalf("ModelStatistics = %v, %v", resp, err)
	}
	s := resp.GetModelStats()[0]
	is := s.GetInferenceStats()
	batch := map[uint64]uint64{}
	for _, b := range s.GetBatchStats() {
		batch[b.GetBatchSize()] = b.GetComputeInfer().GetCount()
	}
	// A fresh pred: the statistics are exactly the six requests (3 + 2 + 1,
	// sent one after the other, so each ran alone).
	for _, c := range []struct {
		name      string
		got, want uint64
	}{
		{"inference_count", s.GetInferenceCount(), 3 + 2*2 + 1},
		{"execution_count", s.GetExecutionCount(), 6},
		{"success.count", is.GetSuccess().GetCount(), 6},
		{"fail.count", is.GetFail().GetCount(), 0},
		{"queue.count", is.GetQueue().GetCount(), 6},
		{"compute_infer.count", is.GetComputeInfer().GetCount(), 6},
		{"batch_stats[1]", batch[1], 4},
		{"batch_stats[2]", batch[2], 2},
	} {
		if c.got != c.want {
			t.Errorf("%s = %d, want %d", c.name, c.got, c.want)
		}
	}

	// The same numbers on /metrics: counts exactly, durations to the
	// nanosecond (they are the same float64 sums).
	labels := `{model="colors",version="1"}`
	for _, c := range []struct {
		sample string
		got    uint64
		scale  float64
	}{
		{"pred_inference_request_success_total" + labels, is.GetSuccess().GetCount(), 1},
		{"pred_inference_count_total" + labels, s.GetInferenceCount(), 1},
		{"pred_inference_exec_count_total" + labels, s.GetExecutionCount(), 1},
		{"pred_inference_queue_duration_seconds_count" + labels, is.GetQueue().GetCount(), 1},
		{"pred_inference_request_duration_seconds_sum" + labels, is.GetSuccess().GetNs(), 1e9},
		{"pred_inference_queue_duration_seconds_sum" + labels, is.GetQueue().GetNs(), 1e9},
		{`pred_inference_request_compute_seconds_total{model="colors",stage="infer",version="1"}`, is.GetComputeInfer().GetNs(), 1e9},
		{`pred_inference_batch_exec_count_total{batch_size="2",model="colors",version="1"}`, batch[2], 1},
	} {
		if want := uint64(math.Round(metric(t, srv, c.sample) * c.scale)); c.got != want {
			t.Errorf("statistics %d, /metrics %s gives %d", c.got, c.sample, want)
		}
	}

	code, body := httpGet(t, "http://"+srv.HTTPAddr+"/v2/models/colors/versions/1/stats")
	var rest struct {
		ModelStats []struct {
			InferenceCount uint64 `json:"inference_count"`
			ExecutionCount uint64 `json:"execution_count"`
			LastInference  uint64 `json:"last_inference"`
			InferenceStats struct {
				Success struct{ Count, Ns uint64 }
			} `json:"inference_stats"`
		} `json:"model_stats"`
	}
	if err := json.Unmarshal([]byte(body), &rest); code != 200 || err != nil || len(rest.ModelStats) != 1 {
		t.Fatalf("GET stats = %d %s (%v)", code, body, err)
	}
	r := rest.ModelStats[0]
	if r.InferenceCount != s.GetInferenceCount() || r.ExecutionCount != s.GetExecutionCount() || r.LastInference != s.GetLastInference() ||
		r.InferenceStats.Success.Count != is.GetSuccess().GetCount() || r.InferenceStats.Success.Ns != is.GetSuccess().GetNs() {
		t.Errorf("REST stats %+v differ from gRPC's %v", r, s)
	}
}

// TestTritonRepositoryRPCs manages a running pred's models with Triton's
// repository RPCs, under the rule of the HTTP repository API.
func TestTritonRepositoryRPCs(t *testing.T) {
	repo := t.TempDir()
	copyModel(t, repo, "colors")
	off := predtest.Start(t, "--model-repository", repo)
	_, err := inferencepb.NewGRPCInferenceServiceClient(off.Dial(t)).RepositoryIndex(testCtx(t), &inferencepb.RepositoryIndexRequest{})
	if status.Code(err) != codes.Unavailable || !strings.Contains(err.Error(), "disabled") {
		t.Errorf("RepositoryIndex without --management-api = %v, want UNAVAILABLE ... disabled", err)
	}
	off.Stop()

	srv := predtest.Start(t, "--model-repository", repo, "--management-api")
	c := inferencepb.NewGRPCInferenceServiceClient(srv.Dial(t))
	index := func(ready bool) string {
		t.Helper()
		resp, err := c.RepositoryIndex(testCtx(t), &inferencepb.RepositoryIndexRequest{Ready: ready})
		if err != nil {
			t.Fatalf("RepositoryIndex: %v", err)
		}
		var parts []string
		for _, m := range resp.GetModels() {
			parts = append(parts, m.GetName()+"/"+m.GetVersion()+" "+m.GetState())
		}
		return strings.Join(parts, ", ")
	}
	ready := func() bool {
		t.Helper()
		r, err := c.ModelReady(testCtx(t), &inferencepb.ModelReadyRequest{Name: "colors"})
		if err != nil {
			t.Fatalf("ModelReady: %v", err)
		}
		return r.GetReady()
	}
	if got := index(false); got != "colors/1 READY" {
		t.Errorf("index = %q", got)
	}
	if _, err := c.RepositoryModelUnload(testCtx(t), &inferencepb.RepositoryModelUnloadRequest{ModelName: "colors"}); err != nil {
		t.Fatalf("unload: %v", err)
	}
	if ready() {
		t.Error("colors ready after unload")
	}
	if got := index(true); got != "" {
		t.Errorf("ready index after unload = %q, want none", got)
	}
	// An unloaded model has no configuration or statistics to report.
	_, err = c.ModelConfig(testCtx(t), &inferencepb.ModelConfigRequest{Name: "colors"})
	if status.Code(err) != codes.Unavailable {
		t.Errorf("ModelConfig after unload = %v, want UNAVAILABLE", err)
	}
	_, err = c.ModelStatistics(testCtx(t), &inferencepb.ModelStatisticsRequest{Name: "colors"})
	if status.Code(err) != codes.Unavailable {
		t.Errorf("ModelStatistics(colors) after unload = %v, want UNAVAILABLE", err)
	}
	if all, err := c.ModelStatistics(testCtx(t), &inferencepb.ModelStatisticsRequest{}); err != nil || len(all.GetModelStats()) != 0 {
		t.Errorf("ModelStatistics() after unload = %v, %v; want none", all, err)
	}
	if _, err := c.RepositoryModelLoad(testCtx(t), &inferencepb.RepositoryModelLoadRequest{ModelName: "colors"}); err != nil {
		t.Fatalf("load: %v", err)
	}
	if !ready() || index(true) != "colors/1 READY" {
		t.Errorf("after load: ready %v, index %q", ready(), index(true))
	}
	_, err = c.RepositoryModelLoad(testCtx(t), &inferencepb.RepositoryModelLoadRequest{ModelName: "nosuch"})
	if status.Code(err) != codes.NotFound {
		t.Errorf("load nosuch = %v, want NOT_FOUND", err)
	}
	_, err = c.RepositoryModelLoad(testCtx(t), &inferencepb.RepositoryModelLoadRequest{ModelName: "colors", Parameters: map[string]*inferencepb.ModelRepositoryParameter{
		"config": {ParameterChoice: &inferencepb.ModelRepositoryParameter_StringParam{StringParam: "{}"}},
	}})
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "not supported") {
		t.Errorf("load with a config override = %v, want INVALID_ARGUMENT", err)
	}
	srv.WaitLog(t, time.Minute, func(l string) bool {
		return strings.Contains(l, `"msg":"model repository request"`) && strings.Contains(l, `"protocol":"grpc"`) && strings.Contains(l, `"action":"load"`)
	})
	srv.Stop()

	tok := predtest.Start(t, "--model-repository", repo, "--management-api", "--management-token", "s3cret")
	tc := inferencepb.NewGRPCInferenceServiceClient(tok.Dial(t))
	for _, tt := range []struct {
		authorization string
		code          codes.Code
	}{{"", codes.PermissionDenied}, {"Bearer wrong", codes.PermissionDenied}, {"Bearer s3cret", codes.OK}} {
		ctx := testCtx(t)
		if tt.authorization != "" {
			ctx = metadata.AppendToOutgoingContext(ctx, "authorization", tt.authorization)
		}
		_, err := tc.RepositoryIndex(ctx, &inferencepb.RepositoryIndexRequest{})
		if status.Code(err) != tt.code || tt.code != codes.OK && !strings.Contains(err.Error(), "management token") {
			t.Errorf("RepositoryIndex with %q = %v, want %v", tt.authorization, err, tt.code)
		}
	}
}
