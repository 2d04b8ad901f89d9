package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"math"
	"os"
	"path/filepath"
	"testing"

	"google.golang.org/protobuf/encoding/prototext"
	"google.golang.org/protobuf/proto"

	onnxpb "github.com/prepred/prepred/api/gen/onnx"
	predv1 "github.com/prepred/prepred/api/gen/prepred/pred/v1"
	"github.com/prepred/prepred/pred/modelgen"
)

// colorsModel reads the colors model of dir: its spec and Gemm parameters.
func colorsModel(t *testing.T, dir string) (*predv1.PreprocessSpec, [][]float32, []float32) {
	t.Helper()
	text, err := os.ReadFile(filepath.Join(dir, "colors", "config.pbtxt"))
	if err != nil {
		t.Fatal(err)
	}
	var cfg predv1.ModelConfig
	if err := prototext.Unmarshal(text, &cfg); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(dir, "colors", "1", "model.onnx"))
	if err != nil {
		t.Fatal(err)
	}
	var m onnxpb.ModelProto
	if err := proto.Unmarshal(data, &m); err != nil {
		t.Fatal(err)
	}
	var w [][]float32
	var bias []float32
	for _, init := range m.GetGraph().GetInitializer() {
		raw := init.GetRawData()
		vals := make([]float32, len(raw)/4)
		for i := range vals {
			vals[i] = math.Float32frombits(binary.LittleEndian.Uint32(raw[4*i:]))
		}
		switch init.GetName() {
		case "color_centers.weight":
			cols := int(init.GetDims()[1])
			for r := range int(init.GetDims()[0]) {
				w = append(w, vals[r*cols:(r+1)*cols])
			}
		case "color_centers.bias":
			bias = vals
		}
	}
	if len(w) != 3 || len(bias) != len(modelgen.ColorLabels) {
		t.Fatalf("%s: weight %d rows, bias %d values", dir, len(w), len(bias))
	}
	return cfg.GetPreprocess(), w, bias
}

// label runs the colors model's Gemm on the mean tensor of a solid color
// prepared with spec s: what prep and pred compute for a one-color image.
func label(s *predv1.PreprocessSpec, w [][]float32, bias []float32, rgb [3]uint8) string {
	order := [3]int{0, 1, 2}
	if s.GetColorOrder() == predv1.ColorOrder_COLOR_ORDER_BGR {
		order = [3]int{2, 1, 0}
	}
	var x [3]float32
	for c, src := range order {
		x[c] = (float32(rgb[src])*s.GetScale() - s.GetMean()[c]) / s.GetStd()[c]
	}
	best, bestScore := 0, float32(math.Inf(-1))
	for k := range bias {
		score := bias[k]
		for c := range x {
			score += x[c] * w[c][k]
		}
		if score > bestScore {
			best, bestScore = k, score
		}
	}
	return modelgen.ColorLabels[best]
}

func TestColorsColorOrder(t *testing.T) {
	std, bgr := t.TempDir(), t.TempDir()
	var out bytes.Buffer
	if err := run(context.Background(), []string{"-out", std, "-model", "colors"}, os.Getenv, &out); err != nil {
		t.Fatal(err)
	}
	if err := run(context.Background(), []string{"-out", bgr, "-model", "colors", "-colors-color-order", "BGR"}, os.Getenv, &out); err != nil {
		t.Fatal(err)
	}
	stdSpec, stdW, stdB := colorsModel(t, std)
	bgrSpec, bgrW, bgrB := colorsModel(t, bgr)
	if got := bgrSpec.GetColorOrder(); got != predv1.ColorOrder_COLOR_ORDER_BGR {
		t.Fatalf("color_order %s, want BGR", got)
	}
	if proto.Equal(stdSpec, bgrSpec) {
		t.Fatal("the BGR release announces the same spec")
	}
	if m := bgrSpec.GetMean(); m[0] != modelgen.ImageNetMean[2] || m[2] != modelgen.ImageNetMean[0] {
		t.Errorf("BGR mean %v: want ImageNet's in B, G, R order", m)
	}
	for k, center := range modelgen.ColorCenters {
		want := modelgen.ColorLabels[k]
		if got := label(stdSpec, stdW, stdB, center); got != want {
			t.Errorf("standard model on %s: %s", want, got)
		}
		if got := label(bgrSpec, bgrW, bgrB, center); got != want {
			t.Errorf("BGR model with its own spec on %s: %s", want, got)
		}
	}
	// The standard spec's tensor in the BGR model: a mismatch shows.
	if got := label(stdSpec, bgrW, bgrB, [3]uint8{255, 0, 0}); got != "blue" {
		t.Errorf("BGR model given an RGB tensor of red: %s, want blue", got)
	}
	if matches, _ := filepath.Glob(filepath.Join(bgr, "colors", completeMarkers)); len(matches) != 0 {
		t.Errorf("variant keeps the completeness marker %v: a plain run would not restore the standard model", matches)
	}
	if err := run(context.Background(), []string{"-out", bgr, "-model", "colors", "-colors-color-order", "GBR"}, os.Getenv, &out); err == nil {
		t.Error("-colors-color-order GBR: no error")
	}
}
