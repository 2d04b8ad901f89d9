package repository

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/encoding/prototext"
	"google.golang.org/protobuf/proto"

	predv1 "github.com/prepred/prepred/api/gen/prepred/pred/v1"
)

// configText returns a valid colors-like configuration named name, with
// extra fields appended (prototext allows a field to be set again; the
// last value wins for scalars and messages).
func configText(name string, extra ...string) string {
	return fmt.Sprintf(`
name: %q
platform: "onnxruntime_onnx"
max_batch_size: 8
inputs { name: "input" dtype: DATA_TYPE_FLOAT32 shape: [3, 32, 32] }
outputs { name: "output" dtype: DATA_TYPE_FLOAT32 shape: [4] }
labels_file: "labels.json"
output_kind: OUTPUT_KIND_LOGITS
preprocess {
  schema_version: 1 input: "input" color_order: COLOR_ORDER_RGB
  resize_mode: RESIZE_MODE_SQUASH interpolation: INTERPOLATION_BILINEAR
  width: 32 height: 32 scale: 0.003921569
  mean: [0.485, 0.456, 0.406] std: [0.229, 0.224, 0.225]
  layout: LAYOUT_NCHW dtype: DATA_TYPE_FLOAT32
}
`, name) + strings.Join(extra, "\n")
}

// configWith returns the text of configText(name) changed by edit.
func configWith(t *testing.T, name string, edit func(*predv1.ModelConfig)) string {
	t.Helper()
	cfg := parseText(t, configText(name))
	edit(cfg)
	b, err := prototext.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func parseText(t *testing.T, text string) *predv1.ModelConfig {
	t.Helper()
	cfg, err := ParseConfig([]byte(text), false)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

var fourLabels = []string{"a", "b", "c", "d"}

// modelDir describes a model directory to write.
type modelDir struct {
	config     string // written as config.pbtxt unless empty
	configJSON string // written as config.json unless empty
	labels     any    // JSON-encoded into labels.json unless nil
	versions   []string
}

func writeRepo(t *testing.T, models map[string]modelDir) string {
	t.Helper()
	repo := t.TempDir()
	for name, m := range models {
		dir := filepath.Join(repo, name)
		mustMkdir(t, dir)
		if m.config != "" {
			mustWrite(t, filepath.Join(dir, ConfigTextFile), m.config)
		}
		if m.configJSON != "" {
			mustWrite(t, filepath.Join(dir, ConfigJSONFile), m.configJSON)
		}
		if m.labels != nil {
			b, err := json.Marshal(m.labels)
			if err != nil {
				t.Fatal(err)
			}
			mustWrite(t, filepath.Join(dir, "labels.json"), string(b))
		}
		for _, v := range m.versions {
			mustMkdir(t, filepath.Join(dir, v))
			mustWrite(t, filepath.Join(dir, v, ModelFile), "onnx bytes")
		}
	}
	return repo
}

func mustMkdir(t *testing.T, dir string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
}

func mustWrite(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func scanOne(t *testing.T, repo, name string) Model {
	t.Helper()
	models, err := Scan(repo)
	if err != nil {
		t.Fatalf("Scan: %v", err)
	}
	for _, m := range models {
		if m.Name == name {
			return m
		}
	}
	t.Fatalf("Scan found no model %q in %v", name, models)
	return Model{}
}

func versionNumbers(vs []Version) []int64 {
	out := make([]int64, len(vs))
	for i, v := range vs {
		out[i] = v.Number
	}
	return out
}

func TestScanValidModel(t *testing.T) {
	repo := writeRepo(t, map[string]modelDir{
		"colors": {config: configText("colors"), labels: fourLabels, versions: []string{"1", "3", "2"}},
	})
	m := scanOne(t, repo, "colors")
	if m.Err != nil {
		t.Fatalf("Err = %v", m.Err)
	}
	if got := versionNumbers(m.Versions); fmt.Sprint(got) != "[3]" {
		t.Errorf("versions = %v, want [3] (default policy: latest 1)", got)
	}
	if m.Versions[0].Err != nil || m.Versions[0].Path != filepath.Join(repo, "colors", "3", ModelFile) {
		t.Errorf("version = %+v", m.Versions[0])
	}
	if fmt.Sprint(m.Labels) != fmt.Sprint(fourLabels) {
		t.Errorf("labels = %v", m.Labels)
	}
	if m.Config.GetPreprocess().GetWidth() != 32 || m.Config.GetMaxBatchSize() != 8 {
		t.Errorf("config not parsed: %v", m.Config)
	}
}

func TestScanJSONConfig(t *testing.T) {
	cfg, err := ParseConfig([]byte(configText("colors")), false)
	if err != nil {
		t.Fatal(err)
	}
	js, err := protojson.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	repo := writeRepo(t, map[string]modelDir{
		"colors": {configJSON: string(js), labels: fourLabels, versions: []string{"1"}},
		"both":   {config: configText("both"), configJSON: string(js), labels: fourLabels, versions: []string{"1"}},
	})
	m := scanOne(t, repo, "colors")
	if m.Err != nil {
		t.Fatalf("Err = %v", m.Err)
	}
	if !proto.Equal(m.Config, cfg) {
		t.Errorf("config from JSON = %v, want %v", m.Config, cfg)
	}
	if m := scanOne(t, repo, "both"); m.Err == nil || !strings.Contains(m.Err.Error(), "keep one") {
		t.Errorf("both config files: Err = %v", m.Err)
	}
}

func TestScanVersionPolicies(t *testing.T) {
	versions := []string{"1", "2", "10", "0", "007", "latest", "-1"}
	tests := []struct {
		policy  string
		want    string
		wantErr map[int64]string // version -> error substring
	}{
		{policy: "", want: "[10]"},
		{policy: "version_policy { latest { num_versions: 2 } }", want: "[2 10]"},
		{policy: "version_policy { latest { num_versions: 9 } }", want: "[1 2 10]"},
		{policy: "version_policy { all {} }", want: "[1 2 10]"},
		{policy: "version_policy { specific { versions: [2, 5, 1, 2] } }", want: "[1 2 5]",
			wantErr: map[int64]string{5: "has no directory"}},
	}
	for _, tt := range tests {
		t.Run(tt.policy, func(t *testing.T) {
			repo := writeRepo(t, map[string]modelDir{
				"m": {config: configText("m", tt.policy), labels: fourLabels, versions: versions},
			})
			m := scanOne(t, repo, "m")
			if m.Err != nil {
				t.Fatalf("Err = %v", m.Err)
			}
			if got := fmt.Sprint(versionNumbers(m.Versions)); got != tt.want {
				t.Errorf("versions = %s, want %s", got, tt.want)
			}
			for _, v := range m.Versions {
				want := tt.wantErr[v.Number]
				switch {
				case want == "" && v.Err != nil:
					t.Errorf("version %d: Err = %v", v.Number, v.Err)
				case want != "" && (v.Err == nil || !strings.Contains(v.Err.Error(), want)):
					t.Errorf("version %d: Err = %v, want it to contain %q", v.Number, v.Err, want)
				}
			}
			if w := strings.Join(m.Warnings, "\n"); !strings.Contains(w, `"0"`) || !strings.Contains(w, `"007"`) {
				t.Errorf("warnings = %q, want ones for \"0\" and \"007\"", m.Warnings)
			}
		})
	}
}

func TestScanSpecificVersionWithoutModelFile(t *testing.T) {
	repo := writeRepo(t, map[string]modelDir{
		"m": {config: configText("m", "version_policy { specific { versions: 4 } }"), labels: fourLabels, versions: []string{"1"}},
	})
	mustMkdir(t, filepath.Join(repo, "m", "4"))
	m := scanOne(t, repo, "m")
	if len(m.Versions) != 1 || m.Versions[0].Err == nil || !strings.Contains(m.Versions[0].Err.Error(), ModelFile) {
		t.Fatalf("versions = %+v, want version 4 failing for a missing %s", m.Versions, ModelFile)
	}
}

// TestScanBadModels checks that each broken model is reported with a
// reason while a good model beside it still loads.
func TestScanBadModels(t *testing.T) {
	tests := []struct {
		name    string
		model   modelDir
		setup   func(t *testing.T, repo string)
		wantErr string
	}{
		{name: "noconfig", model: modelDir{labels: fourLabels, versions: []string{"1"}}, wantErr: "no config.pbtxt or config.json"},
		{name: "syntax", model: modelDir{config: "name: \"syntax\" platform", versions: []string{"1"}}, wantErr: "parse config.pbtxt"},
		{name: "unknownfield", model: modelDir{config: configText("unknownfield", `max_batch: 3`), labels: fourLabels, versions: []string{"1"}}, wantErr: "max_batch"},
		{name: "badjson", model: modelDir{configJSON: `{"name": "badjson", "maxBatch": 3}`, versions: []string{"1"}}, wantErr: "parse config.json"},
		{name: "wrongname", model: modelDir{config: configText("other"), labels: fourLabels, versions: []string{"1"}}, wantErr: `name is "other" but the model directory is "wrongname"`},
		{name: "platform", model: modelDir{config: configWith(t, "platform", func(c *predv1.ModelConfig) { c.Platform = "tensorflow" }), labels: fourLabels, versions: []string{"1"}}, wantErr: `platform is "tensorflow"`},
		{name: "nolabels", model: modelDir{config: configText("nolabels"), versions: []string{"1"}}, wantErr: "labels_file"},
		{name: "labelcount", model: modelDir{config: configText("labelcount"), labels: []string{"a", "b"}, versions: []string{"1"}}, wantErr: "has 2 labels, output \"output\" has 4 classes"},
		{name: "labelsnotstrings", model: modelDir{config: configText("labelsnotstrings"), labels: []int{1, 2, 3, 4}, versions: []string{"1"}}, wantErr: "JSON array of strings"},
		{name: "labelsescape", model: modelDir{config: configWith(t, "labelsescape", func(c *predv1.ModelConfig) { c.LabelsFile = "../colors/labels.json" }), versions: []string{"1"}}, wantErr: "relative path inside the model directory"},
		{name: "labelsabsolute", model: modelDir{config: configWith(t, "labelsabsolute", func(c *predv1.ModelConfig) { c.LabelsFile = "/etc/passwd" }), versions: []string{"1"}}, wantErr: "relative path inside the model directory"},
		{
			name:  "labelssymlink",
			model: modelDir{config: configWith(t, "labelssymlink", func(c *predv1.ModelConfig) { c.LabelsFile = "outside.json" }), versions: []string{"1"}},
			setup: func(t *testing.T, repo string) {
				outside := filepath.Join(t.TempDir(), "labels.json")
				mustWrite(t, outside, `["a","b","c","d"]`)
				if err := os.Symlink(outside, filepath.Join(repo, "labelssymlink", "outside.json")); err != nil {
					t.Fatal(err)
				}
			},
			wantErr: "escapes",
		},
		{name: "noversions", model: modelDir{config: configText("noversions"), labels: fourLabels, versions: []string{"v1", "0"}}, wantErr: "no version directories"},
		{name: "nopreprocess", model: modelDir{config: configWith(t, "nopreprocess", func(c *predv1.ModelConfig) { c.Preprocess = nil }), labels: fourLabels, versions: []string{"1"}}, wantErr: "preprocess is missing"},
		{name: "badinput", model: modelDir{config: configText("badinput", `inputs { name: "input" dtype: DATA_TYPE_UNSPECIFIED shape: [3, 0, 32] }`), labels: fourLabels, versions: []string{"1"}}, wantErr: "duplicate name"},
		{name: "bad name!", model: modelDir{config: configText("bad name!"), labels: fourLabels, versions: []string{"1"}}, wantErr: "invalid model name"},
		{
			name: "dirsymlink",
			setup: func(t *testing.T, repo string) {
				outside := t.TempDir()
				mustWrite(t, filepath.Join(outside, ConfigTextFile), configText("dirsymlink"))
				if err := os.Symlink(outside, filepath.Join(repo, "dirsymlink")); err != nil {
					t.Fatal(err)
				}
			},
			wantErr: "escapes",
		},
	}
	models := map[string]modelDir{
		"colors": {config: configText("colors"), labels: fourLabels, versions: []string{"1"}},
	}
	for _, tt := range tests {
		if tt.model.versions != nil || tt.model.config != "" || tt.model.configJSON != "" {
			models[tt.name] = tt.model
		}
	}
	repo := writeRepo(t, models)
	for _, tt := range tests {
		if tt.setup != nil {
			tt.setup(t, repo)
		}
	}
	// Hidden directories and plain files are not models.
	mustMkdir(t, filepath.Join(repo, ".git"))
	mustWrite(t, filepath.Join(repo, "README"), "models")

	scanned, err := Scan(repo)
	if err != nil {
		t.Fatalf("Scan: %v", err)
	}
	if len(scanned) != len(tests)+1 {
		t.Errorf("Scan returned %d models, want %d", len(scanned), len(tests)+1)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := scanOne(t, repo, tt.name)
			if m.Err == nil || !strings.Contains(m.Err.Error(), tt.wantErr) {
				t.Errorf("Err = %v, want it to contain %q", m.Err, tt.wantErr)
			}
		})
	}
	if m := scanOne(t, repo, "colors"); m.Err != nil || len(m.Versions) != 1 {
		t.Errorf("colors beside broken models: Err = %v, versions %v", m.Err, m.Versions)
	}
}

func TestScanMissingRepository(t *testing.T) {
	if _, err := Scan(filepath.Join(t.TempDir(), "absent")); err == nil {
		t.Fatal("Scan of a missing directory succeeded")
	}
}

func TestValidName(t *testing.T) {
	for name, want := range map[string]bool{
		"resnet50": true, "colors": true, "a.b-c_1": true,
		"": false, ".": false, "..": false, "../x": false, "a/b": false, `a\b`: false,
		".hidden": false, "-flag": false, "a b": false, strings.Repeat("a", 129): false,
	} {
		if got := ValidName(name); got != want {
			t.Errorf("ValidName(%q) = %v, want %v", name, got, want)
		}
	}
}

func TestValidate(t *testing.T) {
	type cfg = predv1.ModelConfig
	tests := []struct {
		name    string
		edit    func(c *cfg)
		wantErr string // empty: valid
	}{
		{name: "valid", edit: func(*cfg) {}},
		{name: "valid with batching", edit: func(c *cfg) {
			c.DynamicBatching = &predv1.DynamicBatching{MaxQueueDelayMicroseconds: 100, PreferredBatchSize: []int32{4, 8}}
		}},
		{name: "valid runtime", edit: func(c *cfg) {
			c.Runtime = &predv1.RuntimeOptions{IntraOpThreads: 2, GraphOptimizationLevel: "basic", ExecutionProvider: "cpu"}
		}},
		{name: "valid variable dims", edit: func(c *cfg) { c.Outputs[0].Shape = []int64{-1} }},
		{name: "valid fixed float16 output", edit: func(c *cfg) { c.Outputs[0].Dtype = predv1.DataType_DATA_TYPE_FLOAT16 }},
		{name: "variable float16 output", edit: func(c *cfg) {
			c.Outputs[0].Dtype = predv1.DataType_DATA_TYPE_FLOAT16
			c.Outputs[0].Shape = []int64{-1}
		}, wantErr: "a FLOAT16 output needs fixed dimensions"},
		{name: "batch too large", edit: func(c *cfg) { c.MaxBatchSize = 100000 }, wantErr: "max_batch_size 100000 is outside"},
		{name: "negative batch", edit: func(c *cfg) { c.MaxBatchSize = -1 }, wantErr: "max_batch_size -1 is outside"},
		{name: "no outputs", edit: func(c *cfg) { c.Outputs = nil }, wantErr: "outputs is empty"},
		{name: "no inputs", edit: func(c *cfg) { c.Inputs = nil }, wantErr: "inputs is empty"},
		{name: "unnamed output", edit: func(c *cfg) { c.Outputs[0].Name = "" }, wantErr: "outputs[0] has no name"},
		{name: "duplicate input", edit: func(c *cfg) { c.Inputs = append(c.Inputs, c.Inputs[0]) }, wantErr: "duplicate name"},
		{name: "zero dim", edit: func(c *cfg) { c.Outputs[0].Shape = []int64{0} }, wantErr: "a dimension is -1 (variable) or positive"},
		{name: "scalar without batch", edit: func(c *cfg) {
			c.MaxBatchSize = 0
			c.Outputs[0].Shape = nil
		}, wantErr: "scalars are not supported"},
		{name: "unsupported dtype", edit: func(c *cfg) { c.Outputs[0].Dtype = 0 }, wantErr: "dtype DATA_TYPE_UNSPECIFIED is not supported"},
		{name: "too many elements", edit: func(c *cfg) { c.Outputs[0].Shape = []int64{100000, 100000} }, wantErr: "more than"},
		{name: "unknown output kind", edit: func(c *cfg) { c.OutputKind = 7 }, wantErr: "output_kind 7 is not a known"},
		{name: "spec input missing", edit: func(c *cfg) { c.Preprocess.Input = "image" }, wantErr: `preprocess.input "image" is not one of the inputs`},
		{name: "spec size mismatch", edit: func(c *cfg) { c.Preprocess.Width = 64 }, wantErr: "preprocess (NCHW) makes [3 32 64]"},
		{name: "spec schema", edit: func(c *cfg) { c.Preprocess.SchemaVersion = 2 }, wantErr: "schema_version is 2"},
		{name: "spec schema unset", edit: func(c *cfg) { c.Preprocess.SchemaVersion = 0 }, wantErr: "schema_version is 0"},
		{name: "spec enum unset", edit: func(c *cfg) { c.Preprocess.ColorOrder = 0 }, wantErr: "preprocess.color_order must be set"},
		{name: "spec enum unknown", edit: func(c *cfg) { c.Preprocess.Interpolation = 9 }, wantErr: "preprocess.interpolation must be set to a known value (got 9)"},
		{name: "spec std zero", edit: func(c *cfg) { c.Preprocess.Std[1] = 0 }, wantErr: "preprocess.std[1] must be positive"},
		{name: "spec mean length", edit: func(c *cfg) { c.Preprocess.Mean = []float32{0.5} }, wantErr: "need 3 values each (got 1 and 3)"},
		{name: "spec scale", edit: func(c *cfg) { c.Preprocess.Scale = 0 }, wantErr: "preprocess.scale must be positive"},
		{name: "spec crop", edit: func(c *cfg) {
			c.Preprocess.ResizeMode = predv1.ResizeMode_RESIZE_MODE_SHORTER_SIDE_CENTER_CROP
			c.Preprocess.ResizeShorterSide = 16
		}, wantErr: "resize_shorter_side 16 must be at least"},
		{name: "spec crop valid", edit: func(c *cfg) {
			c.Preprocess.ResizeMode = predv1.ResizeMode_RESIZE_MODE_SHORTER_SIDE_CENTER_CROP
			c.Preprocess.ResizeShorterSide = 36
		}},
		{name: "spec background", edit: func(c *cfg) { c.Preprocess.Background = []uint32{255, 256, 0} }, wantErr: "preprocess.background"},
		{name: "spec dtype", edit: func(c *cfg) { c.Preprocess.Dtype = predv1.DataType_DATA_TYPE_UINT8 }, wantErr: "preprocess.dtype DATA_TYPE_UINT8 differs"},
		{name: "latest zero", edit: func(c *cfg) {
			c.VersionPolicy = &predv1.VersionPolicy{Policy: &predv1.VersionPolicy_Latest_{Latest: &predv1.VersionPolicy_Latest{}}}
		}, wantErr: "num_versions must be at least 1"},
		{name: "specific negative", edit: func(c *cfg) {
			c.VersionPolicy = &predv1.VersionPolicy{Policy: &predv1.VersionPolicy_Specific_{Specific: &predv1.VersionPolicy_Specific{Versions: []int64{-2}}}}
		}, wantErr: "-2 is not a positive version"},
		{name: "preferred batch", edit: func(c *cfg) {
			c.DynamicBatching = &predv1.DynamicBatching{PreferredBatchSize: []int32{16}}
		}, wantErr: "preferred_batch_size 16 is outside"},
		{name: "optimization level", edit: func(c *cfg) { c.Runtime = &predv1.RuntimeOptions{GraphOptimizationLevel: "max"} }, wantErr: `graph_optimization_level "max"`},
		{name: "provider", edit: func(c *cfg) { c.Runtime = &predv1.RuntimeOptions{ExecutionProvider: "tpu"} }, wantErr: `execution_provider "tpu"`},
		{name: "tensorrt", edit: func(c *cfg) {
			c.Runtime = &predv1.RuntimeOptions{ExecutionProvider: "tensorrt", DeviceId: 1, ProviderOptions: map[string]string{"trt_fp16_enable": "1"}}
		}},
		{name: "instance count", edit: func(c *cfg) { c.InstanceCount = 2 }},
		{name: "instance count too large", edit: func(c *cfg) { c.InstanceCount = 65 }, wantErr: "instance_count 65 is outside 0..64"},
		{name: "negative device", edit: func(c *cfg) { c.Runtime = &predv1.RuntimeOptions{ExecutionProvider: "cuda", DeviceId: -1} }, wantErr: "device_id -1"},
		{name: "provider options on cpu", edit: func(c *cfg) {
			c.Runtime = &predv1.RuntimeOptions{ProviderOptions: map[string]string{"trt_fp16_enable": "1"}}
		}, wantErr: "provider_options need runtime.execution_provider cuda or tensorrt"},
		{name: "letterbox", edit: func(c *cfg) { c.Preprocess.ResizeMode = predv1.ResizeMode_RESIZE_MODE_LETTERBOX }},
		{name: "letterbox pad color", edit: func(c *cfg) {
			c.Preprocess.ResizeMode = predv1.ResizeMode_RESIZE_MODE_LETTERBOX
			c.Preprocess.PadColor = []uint32{0, 128, 255}
		}},
		{name: "letterbox pad color range", edit: func(c *cfg) {
			c.Preprocess.ResizeMode = predv1.ResizeMode_RESIZE_MODE_LETTERBOX
			c.Preprocess.PadColor = []uint32{0, 128, 256}
		}, wantErr: "preprocess.pad_color is empty or 3 values in 0..255 (got [0 128 256])"},
		{name: "letterbox pad color length", edit: func(c *cfg) {
			c.Preprocess.ResizeMode = predv1.ResizeMode_RESIZE_MODE_LETTERBOX
			c.Preprocess.PadColor = []uint32{114}
		}, wantErr: "preprocess.pad_color is empty or 3 values"},
		{name: "pad color without letterbox", edit: func(c *cfg) { c.Preprocess.PadColor = []uint32{114, 114, 114} },
			wantErr: "preprocess.pad_color is only used by RESIZE_MODE_LETTERBOX"},
		{name: "letterbox shorter side", edit: func(c *cfg) {
			c.Preprocess.ResizeMode = predv1.ResizeMode_RESIZE_MODE_LETTERBOX
			c.Preprocess.ResizeShorterSide = 40
		}, wantErr: "resize_shorter_side is only used by RESIZE_MODE_SHORTER_SIDE_CENTER_CROP"},
		{name: "yolo", edit: func(c *cfg) { toYOLO(c, 8, 100) }},
		{name: "yolo with detection", edit: func(c *cfg) {
			toYOLO(c, 8, 100)
			c.Detection = &predv1.Detection{ConfidenceThreshold: 0.5, IouThreshold: 0.7, MaxDetections: 100}
		}},
		{name: "yolo own batch dimension", edit: func(c *cfg) {
			toYOLO(c, 8, 100)
			c.MaxBatchSize = 0
			c.Inputs[0].Shape = []int64{1, 3, 32, 32}
			c.Outputs[0].Shape = []int64{1, 8, 100}
		}},
		{name: "yolo no classes", edit: func(c *cfg) { toYOLO(c, 4, 100) },
			wantErr: `outputs[0] "output" has shape [4 100] (batch dimension excluded); OUTPUT_KIND_YOLO needs fixed [4 + classes, anchors]`},
		{name: "yolo variable anchors", edit: func(c *cfg) { toYOLO(c, 8, -1) }, wantErr: "OUTPUT_KIND_YOLO needs fixed [4 + classes, anchors]"},
		{name: "yolo flat", edit: func(c *cfg) {
			toYOLO(c, 8, 100)
			c.Outputs[0].Shape = []int64{800}
		}, wantErr: "OUTPUT_KIND_YOLO needs fixed"},
		{name: "detections", edit: func(c *cfg) {
			c.OutputKind = predv1.OutputKind_OUTPUT_KIND_DETECTIONS
			c.Outputs[0].Shape = []int64{300, 6}
		}},
		{name: "detections columns", edit: func(c *cfg) {
			c.OutputKind = predv1.OutputKind_OUTPUT_KIND_DETECTIONS
			c.Outputs[0].Shape = []int64{300, 7}
		}, wantErr: `outputs[0] "output" has shape [300 7] (batch dimension excluded); OUTPUT_KIND_DETECTIONS needs fixed [K, 6]`},
		{name: "detection on a classifier", edit: func(c *cfg) { c.Detection = &predv1.Detection{MaxDetections: 10} },
			wantErr: "detection is set but output_kind is OUTPUT_KIND_LOGITS"},
		{name: "detection confidence", edit: func(c *cfg) {
			toYOLO(c, 8, 100)
			c.Detection = &predv1.Detection{ConfidenceThreshold: 2}
		}, wantErr: "detection.confidence_threshold 2 is outside 0..1"},
		{name: "detection iou", edit: func(c *cfg) {
			toYOLO(c, 8, 100)
			c.Detection = &predv1.Detection{IouThreshold: -0.5}
		}, wantErr: "detection.iou_threshold -0.5 is outside (0, 1]"},
		{name: "detection max", edit: func(c *cfg) {
			toYOLO(c, 8, 100)
			c.Detection = &predv1.Detection{MaxDetections: 20000}
		}, wantErr: "detection.max_detections 20000 is outside 1..10000"},
		{name: "device in provider options", edit: func(c *cfg) {
			c.Runtime = &predv1.RuntimeOptions{ExecutionProvider: "cuda", ProviderOptions: map[string]string{"device_id": "1"}}
		}, wantErr: "set the GPU with runtime.device_id"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := parseText(t, configText("m"))
			tt.edit(c)
			err := Validate(c, "m")
			if tt.wantErr == "" {
				if err != nil {
					t.Errorf("Validate: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("Validate = %v, want an error containing %q", err, tt.wantErr)
			}
		})
	}
}

// toYOLO makes c a letterboxed OUTPUT_KIND_YOLO detector whose output is
// [rows, anchors] per image.
func toYOLO(c *predv1.ModelConfig, rows, anchors int64) {
	c.OutputKind = predv1.OutputKind_OUTPUT_KIND_YOLO
	c.Outputs[0].Shape = []int64{rows, anchors}
	c.Preprocess.ResizeMode = predv1.ResizeMode_RESIZE_MODE_LETTERBOX
}

// TestScanDetectorLabels checks the labels file against the detector
// kinds: one label per class row for YOLO (not per anchor, the last
// dimension), any number for DETECTIONS.
func TestScanDetectorLabels(t *testing.T) {
	yolo := func(name string) string {
		return configWith(t, name, func(c *predv1.ModelConfig) { c.Name = name; toYOLO(c, 8, 100) })
	}
	detections := configWith(t, "detections", func(c *predv1.ModelConfig) {
		c.Name = "detections"
		c.OutputKind = predv1.OutputKind_OUTPUT_KIND_DETECTIONS
		c.Outputs[0].Shape = []int64{300, 6}
	})
	repo := writeRepo(t, map[string]modelDir{
		"yolo":       {config: yolo("yolo"), labels: fourLabels, versions: []string{"1"}},
		"yolo2":      {config: yolo("yolo2"), labels: []string{"a", "b"}, versions: []string{"1"}},
		"detections": {config: detections, labels: []string{"a", "b"}, versions: []string{"1"}},
	})
	if m := scanOne(t, repo, "yolo"); m.Err != nil || len(m.Labels) != 4 {
		t.Errorf("yolo with 4 labels for [8, 100]: Err = %v, labels %v", m.Err, m.Labels)
	}
	if m := scanOne(t, repo, "yolo2"); m.Err == nil || !strings.Contains(m.Err.Error(), `has 2 labels, output "output" has 4 classes`) {
		t.Errorf("yolo with 2 labels for [8, 100]: Err = %v", m.Err)
	}
	if m := scanOne(t, repo, "detections"); m.Err != nil || len(m.Labels) != 2 {
		t.Errorf("detections with 2 labels: Err = %v, labels %v", m.Err, m.Labels)
	}
}

func TestValidatePairsPreprocessAndOutputKind(t *testing.T) {
	cfg, err := ParseConfig([]byte(configText("m")), false)
	if err != nil {
		t.Fatal(err)
	}
	noSpec := proto.Clone(cfg).(*predv1.ModelConfig)
	noSpec.Preprocess = nil
	if err := Validate(noSpec, "m"); err == nil || !strings.Contains(err.Error(), "preprocess is missing") {
		t.Errorf("output_kind without preprocess: %v", err)
	}
	noKind := proto.Clone(cfg).(*predv1.ModelConfig)
	noKind.OutputKind = predv1.OutputKind_OUTPUT_KIND_UNSPECIFIED
	if err := Validate(noKind, "m"); err == nil || !strings.Contains(err.Error(), "output_kind is missing") {
		t.Errorf("preprocess without output_kind: %v", err)
	}
	raw := proto.Clone(noSpec).(*predv1.ModelConfig)
	raw.OutputKind = predv1.OutputKind_OUTPUT_KIND_UNSPECIFIED
	if err := Validate(raw, "m"); err != nil {
		t.Errorf("a raw tensor model without preprocess and output_kind: %v", err)
	}
}
