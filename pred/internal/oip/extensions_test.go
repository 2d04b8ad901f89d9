package oip_test

import (
	"slices"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	inferencepb "github.com/prepred/prepred/api/gen/inference"
	"github.com/prepred/prepred/pred/internal/grpcserver"
	"github.com/prepred/prepred/pred/internal/infertest"
	"github.com/prepred/prepred/pred/internal/management"
	"github.com/prepred/prepred/pred/internal/oip"
)

func TestModelConfig(t *testing.T) {
	c, _ := client(t)
	for _, version := range []string{"", "1"} {
		resp, err := c.ModelConfig(ctx(t), &inferencepb.ModelConfigRequest{Name: "colors", Version: version})
		if err != nil {
			t.Fatalf("ModelConfig(colors, %q): %v", version, err)
		}
		want := &inferencepb.ModelConfig{
			Name: "colors", Platform: "onnxruntime_onnx", Backend: "onnxruntime", MaxBatchSize: 8,
			VersionPolicy: &inferencepb.ModelVersionPolicy{PolicyChoice: &inferencepb.ModelVersionPolicy_Latest_{
				Latest: &inferencepb.ModelVersionPolicy_Latest{NumVersions: 1},
			}},
			Input:  []*inferencepb.ModelInput{{Name: "input", DataType: inferencepb.DataType_TYPE_FP32, Dims: []int64{3, 32, 32}}},
			Output: []*inferencepb.ModelOutput{{Name: "output", DataType: inferencepb.DataType_TYPE_FP32, Dims: []int64{9}, LabelFilename: "labels.json"}},
			SchedulingChoice: &inferencepb.ModelConfig_DynamicBatching{DynamicBatching: &inferencepb.ModelDynamicBatching{
				DefaultQueuePolicy: &inferencepb.ModelQueuePolicy{MaxQueueSize: 64},
			}},
			InstanceGroup:        []*inferencepb.ModelInstanceGroup{{Name: "colors_0", Kind: inferencepb.ModelInstanceGroup_KIND_CPU, Count: 1}},
			DefaultModelFilename: "model.onnx",
		}
		if !proto.Equal(resp.GetConfig(), want) {
			t.Errorf("ModelConfig(colors, %q) =\n%v\nwant\n%v", version, resp.GetConfig(), want)
		}
	}

	// A model that batches without dynamic batching: dims per item, no
	// dynamic_batching, STRING tensors.
	resp, err := c.ModelConfig(ctx(t), &inferencepb.ModelConfigRequest{Name: "identity_string"})
	if err != nil {
		t.Fatal(err)
	}
	cfg := resp.GetConfig()
	if cfg.GetMaxBatchSize() != 8 || cfg.GetDynamicBatching() != nil || len(cfg.GetInput()) != 1 ||
		cfg.GetInput()[0].GetDataType() != inferencepb.DataType_TYPE_STRING || !slices.Equal(cfg.GetInput()[0].GetDims(), []int64{3}) ||
		cfg.GetOutput()[0].GetLabelFilename() != "" {
		t.Errorf("identity_string config = %v", cfg)
	}

	for _, tt := range []struct {
		name, version string
		code          codes.Code
		substr        string
	}{
		{"nosuch", "", codes.NotFound, `model "nosuch" is not served`},
		{"colors", "99", codes.NotFound, "has no version 99"},
		{"colors", "x", codes.InvalidArgument, "not a positive integer"},
		{"", "", codes.InvalidArgument, "model is required"},
	} {
		_, err := c.ModelConfig(ctx(t), &inferencepb.ModelConfigRequest{Name: tt.name, Version: tt.version})
		wantCode(t, err, tt.code, tt.substr)
	}
}

// colorsStats returns the statistics of colors version 1.
func colorsStats(t *testing.T, c inferencepb.GRPCInferenceServiceClient) *inferencepb.ModelStatistics {
	t.Helper()
	resp, err := c.ModelStatistics(ctx(t), &inferencepb.ModelStatisticsRequest{Name: "colors", Version: "1"})
	if err != nil {
		t.Fatalf("ModelStatistics: %v", err)
	}
	if len(resp.GetModelStats()) != 1 || resp.GetModelStats()[0].GetName() != "colors" || resp.GetModelStats()[0].GetVersion() != "1" {
		t.Fatalf("ModelStatistics(colors, 1) = %v", resp)
	}
	return resp.GetModelStats()[0]
}

// batchCount returns the executions of a batch size in s.
func batchCount(s *inferencepb.ModelStatistics, size uint64) uint64 {
	for _, b := range s.GetBatchStats() {
		if b.GetBatchSize() == size {
			return b.GetComputeInfer().GetCount()
		}
	}
	return 0
}

// TestModelStatistics sends a known number of requests, one after the
// other so that none share an execution, and checks that each statistic
// moved by exactly what they make.
func TestModelStatistics(t *testing.T) {
	c, _ := client(t)
	env := infertest.Setup(t)
	infer := func(images ...[3]uint8) error {
		_, err := c.ModelInfer(ctx(t), &inferencepb.ModelInferRequest{
			ModelName: "colors", ModelVersion: "1",
			Inputs:           []*inferencepb.ModelInferRequest_InferInputTensor{{Name: "input", Datatype: "FP32", Shape: []int64{int64(len(images)), 3, 32, 32}}},
			RawInputContents: [][]byte{env.Images(images...)},
		})
		return err
	}
	before := colorsStats(t, c)
	start := time.Now()
	const single = 5
	for range single {
		if err := infer([3]uint8{255, 0, 0}); err != nil {
			t.Fatal(err)
		}
	}
	if err := infer([3]uint8{0, 255, 0}, [3]uint8{0, 0, 255}, [3]uint8{9, 9, 9}); err != nil {
		t.Fatal(err)
	}
	// Two requests the model version refuses: a batch above max_batch_size.
	var nine [][3]uint8
	for range 9 {
		nine = append(nine, [3]uint8{1, 2, 3})
	}
	for range 2 {
		if err := infer(nine...); err == nil {
			t.Fatal("batch of 9 accepted")
		}
	}
	after := colorsStats(t, c)

	const requests = single + 1
	is, was := after.GetInferenceStats(), before.GetInferenceStats()
	for _, d := range []struct {
		name      string
		got, want uint64
	}{
		{"inference_count", after.GetInferenceCount() - before.GetInferenceCount(), single + 3},
		{"execution_count", after.GetExecutionCount() - before.GetExecutionCount(), requests},
		{"success.count", is.GetSuccess().GetCount() - was.GetSuccess().GetCount(), requests},
		{"fail.count", is.GetFail().GetCount() - was.GetFail().GetCount(), 2},
		{"queue.count", is.GetQueue().GetCount() - was.GetQueue().GetCount(), requests},
		{"compute_input.count", is.GetComputeInput().GetCount() - was.GetComputeInput().GetCount(), requests},
		{"compute_infer.count", is.GetComputeInfer().GetCount() - was.GetComputeInfer().GetCount(), requests},
		{"compute_output.count", is.GetComputeOutput().GetCount() - was.GetComputeOutput().GetCount(), requests},
		{"batch_stats[1]", batchCount(after, 1) - batchCount(before, 1), single},
		{"batch_stats[3]", batchCount(after, 3) - batchCount(before, 3), 1},
	} {
		if d.got != d.want {
			t.Errorf("%s moved by %d, want %d", d.name, d.got, d.want)
		}
	}
	for _, d := range []struct {
		name     string
		now, was *inferencepb.StatisticDuration
	}{
		{"success", is.GetSuccess(), was.GetSuccess()}, {"fail", is.GetFail(), was.GetFail()},
		{"compute_infer", is.GetComputeInfer(), was.GetComputeInfer()},
	} {
		if d.now.GetNs() <= d.was.GetNs() {
			t.Errorf("%s.ns did not grow: %d -> %d", d.name, d.was.GetNs(), d.now.GetNs())
		}
	}
	if is.GetComputeInfer().GetNs() > is.GetSuccess().GetNs() {
		t.Errorf("compute_infer.ns %d exceeds success.ns %d", is.GetComputeInfer().GetNs(), is.GetSuccess().GetNs())
	}
	if last := time.UnixMilli(int64(after.GetLastInference())); last.Before(start.Truncate(time.Millisecond)) || last.After(time.Now()) {
		t.Errorf("last_inference %v, want between %v and now", last, start)
	}

	// Every model, every version of one, and errors as for ModelConfig.
	all, err := c.ModelStatistics(ctx(t), &inferencepb.ModelStatisticsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, s := range all.GetModelStats() {
		names = append(names, s.GetName()+"/"+s.GetVersion())
	}
	if !slices.Contains(names, "colors/1") || !slices.Contains(names, "resnet50/1") || !slices.IsSorted(names) {
		t.Errorf("ModelStatistics() lists %v", names)
	}
	one, err := c.ModelStatistics(ctx(t), &inferencepb.ModelStatisticsRequest{Name: "colors"})
	if err != nil || len(one.GetModelStats()) != 1 || one.GetModelStats()[0].GetVersion() != "1" {
		t.Errorf("ModelStatistics(colors) = %v, %v", one, err)
	}
	_, err = c.ModelStatistics(ctx(t), &inferencepb.ModelStatisticsRequest{Name: "nosuch"})
	wantCode(t, err, codes.NotFound, `model "nosuch" is not served`)
	_, err = c.ModelStatistics(ctx(t), &inferencepb.ModelStatisticsRequest{Name: "colors", Version: "7"})
	wantCode(t, err, codes.NotFound, "has no version 7")
}

// fields decodes a message into its fields by number: varints as uint64,
// length-delimited fields as []byte.
func fields(t *testing.T, b []byte) map[protowire.Number][]any {
	t.Helper()
	out := map[protowire.Number][]any{}
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			t.Fatal("bad tag")
		}
		b = b[n:]
		switch typ {
		case protowire.VarintType:
			v, n := protowire.ConsumeVarint(b)
			if n < 0 {
				t.Fatalf("bad varint field %d", num)
			}
			out[num], b = append(out[num], v), b[n:]
		case protowire.BytesType:
			v, n := protowire.ConsumeBytes(b)
			if n < 0 {
				t.Fatalf("bad field %d", num)
			}
			out[num], b = append(out[num], v), b[n:]
		default:
			t.Fatalf("field %d has wire type %d", num, typ)
		}
	}
	return out
}

// sub decodes the only occurrence of a message field.
func sub(t *testing.T, f map[protowire.Number][]any, n protowire.Number) map[protowire.Number][]any {
	t.Helper()
	if len(f[n]) != 1 {
		t.Fatalf("field %d occurs %d times, want 1", n, len(f[n]))
	}
	return fields(t, f[n][0].([]byte))
}

// TestWireModelConfig asks for a ModelConfig encoded by hand from the field
// numbers of Triton's grpc_service.proto and decodes the answer with those
// of its model_config.proto, as perf_analyzer does to read max_batch_size.
func TestWireModelConfig(t *testing.T) {
	_, conn := client(t)
	var req []byte
	req = protowire.AppendTag(req, 1, protowire.BytesType) // name
	req = protowire.AppendString(req, "colors")
	var resp []byte
	if err := conn.Invoke(ctx(t), "/inference.GRPCInferenceService/ModelConfig", &req, &resp, grpc.ForceCodec(rawCodec{})); err != nil {
		t.Fatalf("ModelConfig: %v", err)
	}
	cfg := sub(t, fields(t, resp), 1) // config
	for n, want := range map[protowire.Number]string{1: "colors", 2: "onnxruntime_onnx", 17: "onnxruntime", 8: "model.onnx"} {
		if got := cfg[n]; len(got) != 1 || string(got[0].([]byte)) != want {
			t.Errorf("config field %d = %q, want %q", n, got, want)
		}
	}
	if got := cfg[4]; len(got) != 1 || got[0].(uint64) != 8 { // max_batch_size
		t.Errorf("max_batch_size (4) = %v, want 8", got)
	}
	in := sub(t, cfg, 5) // input
	var dims []uint64
	for b := in[4][0].([]byte); len(b) > 0; { // dims, packed
		v, n := protowire.ConsumeVarint(b)
		if n < 0 {
			t.Fatal("bad packed dims")
		}
		dims, b = append(dims, v), b[n:]
	}
	if string(in[1][0].([]byte)) != "input" || in[2][0].(uint64) != 11 || !slices.Equal(dims, []uint64{3, 32, 32}) { // TYPE_FP32 = 11
		t.Errorf("input = name %q data_type %v dims %v", in[1][0], in[2], dims)
	}
	out := sub(t, cfg, 6) // output
	if string(out[1][0].([]byte)) != "output" || string(out[4][0].([]byte)) != "labels.json" {
		t.Errorf("output = %v", out)
	}
	group := sub(t, cfg, 7)                                     // instance_group
	if group[4][0].(uint64) != 2 || group[2][0].(uint64) != 1 { // KIND_CPU = 2, count 1
		t.Errorf("instance_group = %v", group)
	}
	queue := sub(t, sub(t, cfg, 11), 6) // dynamic_batching.default_queue_policy
	if queue[4][0].(uint64) != 64 {
		t.Errorf("max_queue_size = %v, want 64", queue[4])
	}
	if latest := sub(t, sub(t, cfg, 3), 1); latest[1][0].(uint64) != 1 { // version_policy.latest.num_versions
		t.Errorf("version_policy.latest = %v", latest)
	}
}

// TestWireModelStatistics does the same for ModelStatistics, whose
// counters perf_analyzer subtracts before and after its run.
func TestWireModelStatistics(t *testing.T) {
	c, conn := client(t)
	env := infertest.Setup(t)
	stats := func() (inferences, executions, successes uint64) {
		var req []byte
		req = protowire.AppendTag(req, 1, protowire.BytesType) // name
		req = protowire.AppendString(req, "colors")
		req = protowire.AppendTag(req, 2, protowire.BytesType) // version
		req = protowire.AppendString(req, "1")
		var resp []byte
		if err := conn.Invoke(ctx(t), "/inference.GRPCInferenceService/ModelStatistics", &req, &resp, grpc.ForceCodec(rawCodec{})); err != nil {
			t.Fatalf("ModelStatistics: %v", err)
		}
		s := sub(t, fields(t, resp), 1) // model_stats
		if string(s[1][0].([]byte)) != "colors" || string(s[2][0].([]byte)) != "1" || len(s[3]) != 1 {
			t.Fatalf("model_stats = %v", s)
		}
		success := sub(t, sub(t, s, 6), 1) // inference_stats.success
		return s[4][0].(uint64), s[5][0].(uint64), success[1][0].(uint64)
	}
	i0, e0, s0 := stats()
	if _, err := c.ModelInfer(ctx(t), &inferencepb.ModelInferRequest{
		ModelName:        "colors",
		Inputs:           []*inferencepb.ModelInferRequest_InferInputTensor{{Name: "input", Datatype: "FP32", Shape: []int64{2, 3, 32, 32}}},
		RawInputContents: [][]byte{env.Images([3]uint8{255, 0, 0}, [3]uint8{0, 0, 255})},
	}); err != nil {
		t.Fatal(err)
	}
	i1, e1, s1 := stats()
	if i1-i0 != 2 || e1-e0 != 1 || s1-s0 != 1 {
		t.Errorf("one request of batch 2 moved inference_count by %d, execution_count by %d, success.count by %d; want 2, 1, 1", i1-i0, e1-e0, s1-s0)
	}
}

// TestModelStatisticsBatched sends requests at once, so that the dynamic
// batcher may merge them, and checks what holds however it batched them:
// every request counted once, every execution in exactly one batch size,
// and the items of the batches adding up to inference_count.
func TestModelStatisticsBatched(t *testing.T) {
	c, _ := client(t)
	env := infertest.Setup(t)
	const requests = 24
	before := colorsStats(t, c)
	errs := make(chan error, requests)
	for i := range requests {
		go func() {
			images := [][3]uint8{{uint8(i), 0, 0}}
			if i%3 == 0 {
				images = append(images, [3]uint8{0, uint8(i), 0})
			}
			_, err := c.ModelInfer(ctx(t), &inferencepb.ModelInferRequest{
				ModelName:        "colors",
				Inputs:           []*inferencepb.ModelInferRequest_InferInputTensor{{Name: "input", Datatype: "FP32", Shape: []int64{int64(len(images)), 3, 32, 32}}},
				RawInputContents: [][]byte{env.Images(images...)},
			})
			errs <- err
		}()
	}
	for range requests {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	after := colorsStats(t, c)

	is, was := after.GetInferenceStats(), before.GetInferenceStats()
	items := uint64(requests + requests/3)
	if d := after.GetInferenceCount() - before.GetInferenceCount(); d != items {
		t.Errorf("inference_count moved by %d, want %d", d, items)
	}
	for name, d := range map[string]uint64{
		"success":        is.GetSuccess().GetCount() - was.GetSuccess().GetCount(),
		"queue":          is.GetQueue().GetCount() - was.GetQueue().GetCount(),
		"compute_input":  is.GetComputeInput().GetCount() - was.GetComputeInput().GetCount(),
		"compute_infer":  is.GetComputeInfer().GetCount() - was.GetComputeInfer().GetCount(),
		"compute_output": is.GetComputeOutput().GetCount() - was.GetComputeOutput().GetCount(),
	} {
		if d != requests {
			t.Errorf("%s.count moved by %d, want %d", name, d, requests)
		}
	}
	var execs, batchedItems uint64
	sizes := map[uint64]uint64{}
	for _, b := range before.GetBatchStats() {
		sizes[b.GetBatchSize()] = b.GetComputeInfer().GetCount()
	}
	for _, b := range after.GetBatchStats() {
		n := b.GetComputeInfer().GetCount() - sizes[b.GetBatchSize()]
		if b.GetComputeInput().GetCount() != b.GetComputeInfer().GetCount() || b.GetComputeOutput().GetCount() != b.GetComputeInfer().GetCount() {
			t.Errorf("batch size %d: compute counts differ: %v", b.GetBatchSize(), b)
		}
		execs += n
		batchedItems += n * b.GetBatchSize()
	}
	if d := after.GetExecutionCount() - before.GetExecutionCount(); d != execs || d < 1 || d > requests {
		t.Errorf("execution_count moved by %d; the batch sizes add up to %d executions", d, execs)
	}
	if batchedItems != items {
		t.Errorf("the new executions hold %d items, want %d", batchedItems, items)
	}
	t.Logf("%d requests of %d items ran in %d executions", requests, items, execs)
}

// TestWireRepositoryIndex asks for the index of ready models encoded by
// hand from Triton's field numbers, as Triton's clients and model_analyzer
// ask for it.
func TestWireRepositoryIndex(t *testing.T) {
	env := infertest.Setup(t)
	svc := oip.New(env.Runner, oip.Options{Repository: management.NewGRPC(env.Registry, management.Options{Enabled: true})})
	conn := infertest.Serve(t, grpcserver.Service{Desc: &inferencepb.GRPCInferenceService_ServiceDesc, Impl: svc})
	var req []byte
	req = protowire.AppendTag(req, 2, protowire.VarintType) // ready
	req = protowire.AppendVarint(req, 1)
	var resp []byte
	if err := conn.Invoke(ctx(t), "/inference.GRPCInferenceService/RepositoryIndex", &req, &resp, grpc.ForceCodec(rawCodec{})); err != nil {
		t.Fatalf("RepositoryIndex: %v", err)
	}
	var got []string
	for _, m := range fields(t, resp)[1] { // models
		e := fields(t, m.([]byte))
		got = append(got, string(e[1][0].([]byte))+"/"+string(e[2][0].([]byte))+" "+string(e[3][0].([]byte)))
	}
	if !slices.Contains(got, "colors/1 READY") || !slices.Contains(got, "resnet50/1 READY") {
		t.Errorf("index = %q", got)
	}

	// A service without a repository answers UNAVAILABLE.
	c, _ := client(t)
	_, err := c.RepositoryIndex(ctx(t), &inferencepb.RepositoryIndexRequest{})
	wantCode(t, err, codes.Unavailable, "not served")
}
