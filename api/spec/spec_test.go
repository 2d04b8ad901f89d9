package spec

import (
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	predv1 "github.com/prepred/prepred/api/gen/prepred/pred/v1"
)

func imagenetSpec() *predv1.PreprocessSpec {
	return &predv1.PreprocessSpec{
		SchemaVersion: 1,
		Input:         "input",
		ColorOrder:    predv1.ColorOrder_COLOR_ORDER_RGB,
		ResizeMode:    predv1.ResizeMode_RESIZE_MODE_SQUASH,
		Interpolation: predv1.Interpolation_INTERPOLATION_BICUBIC,
		Width:         224,
		Height:        224,
		Scale:         1.0 / 255,
		Mean:          []float32{0.485, 0.456, 0.406},
		Std:           []float32{0.229, 0.224, 0.225},
		Layout:        predv1.Layout_LAYOUT_NCHW,
		Dtype:         predv1.DataType_DATA_TYPE_FLOAT32,
	}
}

func mustFingerprint(t *testing.T, s *predv1.PreprocessSpec) string {
	t.Helper()
	fp, err := Fingerprint(s)
	if err != nil {
		t.Fatal(err)
	}
	return fp
}

func TestFingerprintStable(t *testing.T) {
	a := mustFingerprint(t, imagenetSpec())
	b := mustFingerprint(t, imagenetSpec())
	if a != b {
		t.Fatalf("fingerprint of equal specs differs: %s vs %s", a, b)
	}
	if !strings.HasPrefix(a, "sha256:") || len(a) != len("sha256:")+32 {
		t.Fatalf("unexpected fingerprint format %q", a)
	}
	// Survives a round trip through the wire, as it does between pred and prep.
	wire, err := proto.Marshal(imagenetSpec())
	if err != nil {
		t.Fatal(err)
	}
	var decoded predv1.PreprocessSpec
	if err := proto.Unmarshal(wire, &decoded); err != nil {
		t.Fatal(err)
	}
	if got := mustFingerprint(t, &decoded); got != a {
		t.Fatalf("fingerprint changed over the wire: %s vs %s", got, a)
	}
}

func TestFingerprintChangesWithEveryField(t *testing.T) {
	base := mustFingerprint(t, imagenetSpec())
	edits := map[string]func(*predv1.PreprocessSpec){
		"schema_version":      func(s *predv1.PreprocessSpec) { s.SchemaVersion = 2 },
		"input":               func(s *predv1.PreprocessSpec) { s.Input = "data" },
		"color_order":         func(s *predv1.PreprocessSpec) { s.ColorOrder = predv1.ColorOrder_COLOR_ORDER_BGR },
		"resize_mode":         func(s *predv1.PreprocessSpec) { s.ResizeMode = predv1.ResizeMode_RESIZE_MODE_SHORTER_SIDE_CENTER_CROP },
		"interpolation":       func(s *predv1.PreprocessSpec) { s.Interpolation = predv1.Interpolation_INTERPOLATION_BILINEAR },
		"width":               func(s *predv1.PreprocessSpec) { s.Width = 225 },
		"height":              func(s *predv1.PreprocessSpec) { s.Height = 225 },
		"resize_shorter_side": func(s *predv1.PreprocessSpec) { s.ResizeShorterSide = 256 },
		"scale":               func(s *predv1.PreprocessSpec) { s.Scale = 1 },
		"mean":                func(s *predv1.PreprocessSpec) { s.Mean[2] = 0.407 },
		"std":                 func(s *predv1.PreprocessSpec) { s.Std[0] = 0.23 },
		"background":          func(s *predv1.PreprocessSpec) { s.Background = []uint32{0, 0, 0} },
		"pad_color":           func(s *predv1.PreprocessSpec) { s.PadColor = []uint32{114, 114, 114} },
		"layout":              func(s *predv1.PreprocessSpec) { s.Layout = predv1.Layout_LAYOUT_UNSPECIFIED },
		"dtype":               func(s *predv1.PreprocessSpec) { s.Dtype = predv1.DataType_DATA_TYPE_FLOAT16 },
	}
	fields := imagenetSpec().ProtoReflect().Descriptor().Fields()
	for i := range fields.Len() {
		if name := string(fields.Get(i).Name()); edits[name] == nil {
			t.Errorf("no edit of field %s", name)
		}
	}
	edits["resize_mode letterbox"] = func(s *predv1.PreprocessSpec) { s.ResizeMode = predv1.ResizeMode_RESIZE_MODE_LETTERBOX }
	for name, edit := range edits {
		s := imagenetSpec()
		edit(s)
		if got := mustFingerprint(t, s); got == base {
			t.Errorf("changing %s did not change the fingerprint", name)
		}
	}
}

// A field this release does not know (added by a newer pred) still changes
// the fingerprint, so a prep that ignores it can never match.
func TestFingerprintCoversUnknownFields(t *testing.T) {
	s := imagenetSpec()
	base := mustFingerprint(t, s)
	var unknown []byte
	unknown = protowire.AppendTag(unknown, 99, protowire.VarintType)
	unknown = protowire.AppendVarint(unknown, 1)
	s.ProtoReflect().SetUnknown(unknown)
	if got := mustFingerprint(t, s); got == base {
		t.Fatal("an unknown field did not change the fingerprint")
	}
}

func TestFingerprintNil(t *testing.T) {
	if got := mustFingerprint(t, nil); got != "" {
		t.Fatalf("nil spec: got %q, want empty", got)
	}
}
