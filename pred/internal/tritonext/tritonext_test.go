package tritonext

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	inferencepb "github.com/prepred/prepred/api/gen/inference"
	predv1 "github.com/prepred/prepred/api/gen/prepred/pred/v1"
	"github.com/prepred/prepred/pred/internal/batcher"
	"github.com/prepred/prepred/pred/internal/infer"
	"github.com/prepred/prepred/pred/internal/metrics"
	"github.com/prepred/prepred/pred/internal/registry"
)

func TestModelConfigSettings(t *testing.T) {
	cfg := &predv1.ModelConfig{
		Name: "m", MaxBatchSize: 16, LabelsFile: "sub/labels.json",
		Inputs:        []*predv1.TensorSpec{{Name: "x", Dtype: predv1.DataType_DATA_TYPE_UINT8, Shape: []int64{-1, 3}}},
		Outputs:       []*predv1.TensorSpec{{Name: "p", Dtype: predv1.DataType_DATA_TYPE_FLOAT64, Shape: []int64{2}}, {Name: "e", Dtype: predv1.DataType_DATA_TYPE_FLOAT16, Shape: []int64{4}}},
		VersionPolicy: &predv1.VersionPolicy{Policy: &predv1.VersionPolicy_Specific_{Specific: &predv1.VersionPolicy_Specific{Versions: []int64{1, 3}}}},
	}
	c := &infer.Config{Version: 3, Config: cfg, Labels: []string{"no", "yes"}, Serving: registry.Serving{
		Batching: batcher.Config{
			MaxBatchSize: 16, Dynamic: true, MaxQueueDelay: 1500 * time.Microsecond,
			PreferredBatchSizes: []int64{4, 8}, MaxQueueSize: 100, Instances: 3,
		},
		ExecutionProvider: "cuda", DeviceID: 1,
	}}
	got := ModelConfig("m", c)
	want := &inferencepb.ModelConfig{
		Name: "m", Platform: Platform, Backend: Backend, MaxBatchSize: 16, DefaultModelFilename: DefaultModelFilename,
		VersionPolicy: &inferencepb.ModelVersionPolicy{PolicyChoice: &inferencepb.ModelVersionPolicy_Specific_{
			Specific: &inferencepb.ModelVersionPolicy_Specific{Versions: []int64{1, 3}},
		}},
		Input: []*inferencepb.ModelInput{{Name: "x", DataType: inferencepb.DataType_TYPE_UINT8, Dims: []int64{-1, 3}}},
		Output: []*inferencepb.ModelOutput{
			{Name: "p", DataType: inferencepb.DataType_TYPE_FP64, Dims: []int64{2}, LabelFilename: "labels.json"},
			{Name: "e", DataType: inferencepb.DataType_TYPE_FP16, Dims: []int64{4}},
		},
		SchedulingChoice: &inferencepb.ModelConfig_DynamicBatching{DynamicBatching: &inferencepb.ModelDynamicBatching{
			PreferredBatchSize: []int32{4, 8}, MaxQueueDelayMicroseconds: 1500,
			DefaultQueuePolicy: &inferencepb.ModelQueuePolicy{MaxQueueSize: 100},
		}},
		InstanceGroup: []*inferencepb.ModelInstanceGroup{{Name: "m_0", Kind: inferencepb.ModelInstanceGroup_KIND_GPU, Count: 3, Gpus: []int32{1}}},
	}
	if !proto.Equal(got, want) {
		t.Errorf("ModelConfig =\n%v\nwant\n%v", got, want)
	}

	for _, tt := range []struct {
		policy *predv1.VersionPolicy
		want   string
	}{
		{nil, "latest:{num_versions:1}"},
		{&predv1.VersionPolicy{Policy: &predv1.VersionPolicy_Latest_{Latest: &predv1.VersionPolicy_Latest{NumVersions: 2}}}, "latest:{num_versions:2}"},
		{&predv1.VersionPolicy{Policy: &predv1.VersionPolicy_All_{All: &predv1.VersionPolicy_All{}}}, "all:{}"},
	} {
		if got := strings.ReplaceAll(versionPolicy(tt.policy).String(), " ", ""); got != strings.ReplaceAll(tt.want, " ", "") {
			t.Errorf("versionPolicy(%v) = %s, want %s", tt.policy, got, tt.want)
		}
	}
	for d := range predv1.DataType_name {
		if d != 0 && DataType(predv1.DataType(d)) == inferencepb.DataType_TYPE_INVALID {
			t.Errorf("no Triton data type for %s", predv1.DataType(d))
		}
	}
}

// TestMarshalJSON: Triton's JSON has 64-bit integers as numbers, in nested
// messages and lists too, and every field.
func TestMarshalJSON(t *testing.T) {
	resp := ModelStatistics([]metrics.Stats{{
		Model: "m", Version: "2", InferenceCount: 1 << 60, ExecutionCount: 3,
		LastInference: time.UnixMilli(1_700_000_000_123),
		Success:       metrics.Duration{Count: 3, Total: 1500 * time.Nanosecond},
		Batches:       []metrics.BatchStats{{Size: 4, ComputeInfer: metrics.Duration{Count: 1, Total: time.Millisecond}}},
	}})
	b, err := MarshalJSON(resp)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		`"inference_count":1152921504606846976`, `"execution_count":3`, `"last_inference":1700000000123`,
		`"success":{"count":3,"ns":1500}`, `"fail":{"count":0,"ns":0}`,
		`"batch_stats":[{"batch_size":4,"compute_infer":{"count":1,"ns":1000000},"compute_input":{"count":0,"ns":0}`,
		`"name":"m"`, `"version":"2"`,
	} {
		if !strings.Contains(string(b), want) {
			t.Errorf("%s\nlacks %s", b, want)
		}
	}
	var back struct {
		ModelStats []struct {
			InferenceCount uint64 `json:"inference_count"`
		} `json:"model_stats"`
	}
	if err := json.Unmarshal(b, &back); err != nil || back.ModelStats[0].InferenceCount != 1<<60 {
		t.Errorf("decoded %+v, %v", back, err)
	}

	cfg, err := MarshalJSON(&inferencepb.ModelConfig{Input: []*inferencepb.ModelInput{{Dims: []int64{-1, 3}}},
		VersionPolicy: &inferencepb.ModelVersionPolicy{PolicyChoice: &inferencepb.ModelVersionPolicy_Specific_{Specific: &inferencepb.ModelVersionPolicy_Specific{Versions: []int64{7}}}}})
	if err != nil || !strings.Contains(string(cfg), `"dims":[-1,3]`) || !strings.Contains(string(cfg), `"versions":[7]`) {
		t.Errorf("config JSON %s, %v", cfg, err)
	}
	if empty := ModelStatistics(nil); !slices.Equal(empty.GetModelStats(), nil) {
		t.Errorf("no versions: %v", empty)
	}
}
