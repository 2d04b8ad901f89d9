package registry

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/encoding/prototext"

	predv1 "github.com/prepred/prepred/api/gen/prepred/pred/v1"
	"github.com/prepred/prepred/pred/internal/repository"
	"github.com/prepred/prepred/pred/internal/tensor"
	"github.com/prepred/prepred/pred/internal/testmodels"
)

// writeStringModel writes the STRING identity model (input "x", output
// "y", [N 3]) into repo, with dynamic batching that runs only full
// batches.
func writeStringModel(t *testing.T, repo string) string {
	t.Helper()
	name := testmodels.Identity(testmodels.StringSample())
	if err := testmodels.Write(repo, name); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(repo, name, repository.ConfigTextFile)
	text, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := repository.ParseConfig(text, false)
	if err != nil {
		t.Fatal(err)
	}
	cfg.DynamicBatching = &predv1.DynamicBatching{MaxQueueDelayMicroseconds: hourDelay}
	if text, err = prototext.Marshal(cfg); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, text, 0o644); err != nil {
		t.Fatal(err)
	}
	return name
}

// TestStringModelBatchesAndValidates runs a full batch of STRING requests
// of different byte sizes through ONNX Runtime, each of which must get its
// own strings back, and refuses malformed STRING inputs.
func TestStringModelBatchesAndValidates(t *testing.T) {
	repo := t.TempDir()
	name := writeStringModel(t, repo)
	f := loadWith(t, repo, Options{})
	v := f.acquire(t, name, 0)
	str := predv1.DataType_DATA_TYPE_STRING
	row := func(i int) tensor.Tensor {
		return tensor.Tensor{Name: "x", DType: str, Shape: []int64{1, 3}, Data: tensor.FromStrings([]string{
			fmt.Sprint(i), string(bytes.Repeat([]byte{'a' + byte(i)}, i*100)), "日本"[:3*(i%2+1)],
		})}
	}

	ctx := testContext(t)
	const requests = 8 // the model's max_batch_size: one full batch
	results := make([]<-chan outcome, requests)
	for i := range results {
		results[i] = predictAsync(ctx, v, row(i))
	}
	for i, ch := range results {
		got := await(t, ch)
		if got.err != nil {
			t.Fatalf("request %d: %v", i, got.err)
		}
		want := row(i)
		if o := got.outs[0]; o.DType != str || !slices.Equal(o.Shape, want.Shape) || !bytes.Equal(o.Data, want.Data) {
			t.Errorf("request %d: output %v %v %q, want %v %q", i, o.DType, o.Shape, o.Data, want.Shape, want.Data)
		}
	}
	if got := f.metric(t, "pred_inference_exec_count_total", "model", name); got != 1 {
		t.Errorf("%v executions, want 1 batch of %d", got, requests)
	}

	valid := testmodels.StringSample().Raw
	for _, tt := range []struct {
		name string
		data []byte
		msg  string
	}{
		{"NUL byte", tensor.FromStrings([]string{"a", "b\x00c", "d"}), "STRING element 1 contains a NUL byte"},
		{"truncated", valid[:len(valid)-1], "only"},
		{"trailing bytes", append(slices.Clone(valid), 0), "1 bytes follow the 3 STRING elements"},
		{"too few elements", tensor.FromStrings([]string{"aaaa", "bbbb"}), "element 2"},
	} {
		in := tensor.Tensor{Name: "x", DType: str, Shape: []int64{1, 3}, Data: tt.data}
		_, err := v.Predict(ctx, []tensor.Tensor{in})
		wantCode(t, err, codes.InvalidArgument, tt.msg)
		if t.Failed() {
			t.Logf("case %s", tt.name)
		}
	}
}
