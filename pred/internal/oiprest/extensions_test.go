package oiprest_test

import (
	"encoding/json"
	"strconv"
	"strings"
	"testing"

	"github.com/prepred/prepred/pred/internal/infertest"
)

// TestModelConfig reads the configuration as Triton's REST API gives it:
// proto field names, enum names, 64-bit integers as JSON numbers.
func TestModelConfig(t *testing.T) {
	base := server(t)
	for _, path := range []string{"/v2/models/colors/config", "/v2/models/colors/versions/1/config"} {
		r := do(t, "GET", base+path, nil, nil)
		if r.code != 200 || r.header.Get("Content-Type") != "application/json" {
			t.Fatalf("GET %s: %d %s", path, r.code, r.body)
		}
		for _, want := range []string{
			`"name":"colors"`, `"platform":"onnxruntime_onnx"`, `"backend":"onnxruntime"`, `"max_batch_size":8`,
			`"input":[{"data_type":"TYPE_FP32","dims":[3,32,32],"format":"FORMAT_NONE","name":"input"}]`,
			`"output":[{"data_type":"TYPE_FP32","dims":[9],"label_filename":"labels.json","name":"output"}]`,
			`"max_queue_delay_microseconds":0`, `"max_queue_size":64`, `"preferred_batch_size":[]`,
			`"instance_group":[{"count":1,"gpus":[],"kind":"KIND_CPU","name":"colors_0"}]`,
			`"version_policy":{"latest":{"num_versions":1}}`,
		} {
			if !strings.Contains(string(r.body), want) {
				t.Errorf("GET %s: %s\nlacks %s", path, r.body, want)
			}
		}
	}
	for _, tt := range []struct {
		path string
		code int
		body string
	}{
		{"/v2/models/nope/config", 404, `{"error":"model \"nope\" is not served`},
		{"/v2/models/colors/versions/3/config", 404, `{"error":"model \"colors\" has no version 3`},
		{"/v2/models/colors/versions/0/config", 400, `{"error":"model version \"0\" is not a positive integer`},
	} {
		r := do(t, "GET", base+tt.path, nil, nil)
		if r.code != tt.code || !strings.HasPrefix(string(r.body), tt.body) {
			t.Errorf("GET %s: %d %s, want %d %s", tt.path, r.code, r.body, tt.code, tt.body)
		}
	}
}

type statDuration struct {
	Count uint64 `json:"count"`
	Ns    uint64 `json:"ns"`
}

type modelStats struct {
	Name           string `json:"name"`
	Version        string `json:"version"`
	LastInference  uint64 `json:"last_inference"`
	InferenceCount uint64 `json:"inference_count"`
	ExecutionCount uint64 `json:"execution_count"`
	InferenceStats struct {
		Success, Fail, Queue, ComputeInput, ComputeInfer, ComputeOutput statDuration
	} `json:"inference_stats"`
	BatchStats []struct {
		BatchSize    uint64       `json:"batch_size"`
		ComputeInfer statDuration `json:"compute_infer"`
	} `json:"batch_stats"`
}

// stats GETs a stats path; decoding into uint64 fields fails if the
// numbers came as strings.
func stats(t *testing.T, url string) []modelStats {
	t.Helper()
	r := do(t, "GET", url, nil, nil)
	if r.code != 200 {
		t.Fatalf("GET %s: %d %s", url, r.code, r.body)
	}
	var resp struct {
		ModelStats []modelStats `json:"model_stats"`
	}
	if err := json.Unmarshal(r.body, &resp); err != nil {
		t.Fatalf("GET %s: %v: %s", url, err, r.body)
	}
	return resp.ModelStats
}

// TestModelStats sends REST inference requests and checks that the
// statistics moved by exactly those requests.
func TestModelStats(t *testing.T) {
	base := server(t)
	env := infertest.Setup(t)
	one := func() modelStats {
		s := stats(t, base+"/v2/models/colors/versions/1/stats")
		if len(s) != 1 || s[0].Name != "colors" || s[0].Version != "1" {
			t.Fatalf("stats = %+v", s)
		}
		return s[0]
	}
	before := one()
	const n = 4
	raw := env.Images([3]uint8{255, 0, 0}, [3]uint8{0, 255, 0})
	header := `{"inputs":[{"name":"input","shape":[2,3,32,32],"datatype":"FP32","parameters":{"binary_data_size":24576}}]}`
	for range n {
		r := do(t, "POST", base+"/v2/models/colors/infer", map[string]string{"Inference-Header-Content-Length": strconv.Itoa(len(header))}, append([]byte(header), raw...))
		if r.code != 200 {
			t.Fatalf("infer: %d %s", r.code, r.body)
		}
	}
	after := one()
	batch2 := func(s modelStats) uint64 {
		for _, b := range s.BatchStats {
			if b.BatchSize == 2 {
				return b.ComputeInfer.Count
			}
		}
		return 0
	}
	if d := after.InferenceCount - before.InferenceCount; d != 2*n {
		t.Errorf("inference_count moved by %d, want %d", d, 2*n)
	}
	if d := after.ExecutionCount - before.ExecutionCount; d != n {
		t.Errorf("execution_count moved by %d, want %d", d, n)
	}
	if d := after.InferenceStats.Success.Count - before.InferenceStats.Success.Count; d != n {
		t.Errorf("success.count moved by %d, want %d", d, n)
	}
	if d := batch2(after) - batch2(before); d != n {
		t.Errorf("batch_stats[2] moved by %d, want %d", d, n)
	}
	if after.InferenceStats.Success.Ns <= before.InferenceStats.Success.Ns || after.LastInference == 0 {
		t.Errorf("success.ns %d -> %d, last_inference %d", before.InferenceStats.Success.Ns, after.InferenceStats.Success.Ns, after.LastInference)
	}

	all := stats(t, base+"/v2/models/stats")
	found := false
	for _, s := range all {
		found = found || s.Name == "colors" && s.Version == "1"
	}
	if !found || len(all) < 2 {
		t.Errorf("/v2/models/stats lists %d versions, colors 1 found: %v", len(all), found)
	}
	if s := stats(t, base+"/v2/models/colors/stats"); len(s) != 1 {
		t.Errorf("/v2/models/colors/stats lists %d versions, want 1", len(s))
	}
	if r := do(t, "GET", base+"/v2/models/nope/stats", nil, nil); r.code != 404 {
		t.Errorf("unknown model: %d %s", r.code, r.body)
	}
}

// TestClassification asks for the top 2 classes over REST, as JSON and as
// binary data.
func TestClassification(t *testing.T) {
	base := server(t)
	env := infertest.Setup(t)
	raw := env.Images([3]uint8{255, 0, 0}, [3]uint8{0, 0, 255})
	for _, binary := range []bool{false, true} {
		header := `{"inputs":[{"name":"input","shape":[2,3,32,32],"datatype":"FP32","parameters":{"binary_data_size":24576}}],` +
			`"outputs":[{"name":"output","parameters":{"classification":2,"binary_data":` + strconv.FormatBool(binary) + `}}]}`
		r := do(t, "POST", base+"/v2/models/colors/infer", map[string]string{"Inference-Header-Content-Length": strconv.Itoa(len(header))}, append([]byte(header), raw...))
		resp, bin := split(t, r)
		o := resp.Outputs[0]
		if o.Datatype != "BYTES" || len(o.Shape) != 2 || o.Shape[0] != 2 || o.Shape[1] != 2 {
			t.Fatalf("binary %v: output %s %v", binary, o.Datatype, o.Shape)
		}
		var got []string
		if binary {
			for b := bin; len(b) >= 4; {
				n := int(b[0]) | int(b[1])<<8 | int(b[2])<<16 | int(b[3])<<24
				got, b = append(got, string(b[4:4+n])), b[4+n:]
			}
		} else if err := json.Unmarshal(o.Data, &got); err != nil {
			t.Fatalf("data %s: %v", o.Data, err)
		}
		if len(got) != 4 || !strings.HasSuffix(got[0], ":2:red") || !strings.HasSuffix(got[2], ":4:blue") {
			t.Errorf("binary %v: classification %q, want red then blue first in their rows", binary, got)
		}
		for _, s := range got {
			if parts := strings.Split(s, ":"); len(parts) != 3 || !strings.Contains(parts[0], ".") || len(strings.Split(parts[0], ".")[1]) != 6 {
				t.Errorf("element %q is not score:index:label with six decimals", s)
			}
		}
	}
}
