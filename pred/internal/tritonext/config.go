// Package tritonext expresses pred's state in the messages of Triton's
// protocol extensions, for both bindings of the Open Inference Protocol
// (package oip, gRPC, and package oiprest, REST): a model version's
// configuration as inference.ModelConfig and its statistics as
// inference.ModelStatistics, in protobuf and in Triton's JSON.
package tritonext

import (
	"fmt"
	"path"

	inferencepb "github.com/prepred/prepred/api/gen/inference"
	predv1 "github.com/prepred/prepred/api/gen/prepred/pred/v1"
	"github.com/prepred/prepred/pred/internal/classify"
	"github.com/prepred/prepred/pred/internal/infer"
	"github.com/prepred/prepred/pred/internal/ortrt"
)

// Names pred's models have in Triton's terms: every model is an ONNX model
// that ONNX Runtime runs, from the file every version directory holds.
const (
	Platform             = "onnxruntime_onnx"
	Backend              = "onnxruntime"
	DefaultModelFilename = "model.onnx"
)

// dataTypes pairs pred's element types with Triton's config data types.
var dataTypes = map[predv1.DataType]inferencepb.DataType{
	predv1.DataType_DATA_TYPE_BOOL:    inferencepb.DataType_TYPE_BOOL,
	predv1.DataType_DATA_TYPE_UINT8:   inferencepb.DataType_TYPE_UINT8,
	predv1.DataType_DATA_TYPE_UINT16:  inferencepb.DataType_TYPE_UINT16,
	predv1.DataType_DATA_TYPE_UINT32:  inferencepb.DataType_TYPE_UINT32,
	predv1.DataType_DATA_TYPE_UINT64:  inferencepb.DataType_TYPE_UINT64,
	predv1.DataType_DATA_TYPE_INT8:    inferencepb.DataType_TYPE_INT8,
	predv1.DataType_DATA_TYPE_INT16:   inferencepb.DataType_TYPE_INT16,
	predv1.DataType_DATA_TYPE_INT32:   inferencepb.DataType_TYPE_INT32,
	predv1.DataType_DATA_TYPE_INT64:   inferencepb.DataType_TYPE_INT64,
	predv1.DataType_DATA_TYPE_FLOAT16: inferencepb.DataType_TYPE_FP16,
	predv1.DataType_DATA_TYPE_FLOAT32: inferencepb.DataType_TYPE_FP32,
	predv1.DataType_DATA_TYPE_FLOAT64: inferencepb.DataType_TYPE_FP64,
	predv1.DataType_DATA_TYPE_STRING:  inferencepb.DataType_TYPE_STRING,
}

// DataType returns Triton's config data type of a pred element type
// (TYPE_INVALID for one it lacks).
func DataType(d predv1.DataType) inferencepb.DataType { return dataTypes[d] }

// ModelConfig expresses the configuration a model version serves with as
// Triton's, as Triton reports it: dims per item (without the batch
// dimension when max_batch_size > 0), the settings pred resolved (queue,
// instances, version policy) filled in, the instance group on the device
// the version actually runs on.
func ModelConfig(name string, c *infer.Config) *inferencepb.ModelConfig {
	cfg := c.Config
	out := &inferencepb.ModelConfig{
		Name:                 name,
		Platform:             Platform,
		Backend:              Backend,
		MaxBatchSize:         cfg.GetMaxBatchSize(),
		VersionPolicy:        versionPolicy(cfg.GetVersionPolicy()),
		DefaultModelFilename: DefaultModelFilename,
	}
	for _, in := range cfg.GetInputs() {
		out.Input = append(out.Input, &inferencepb.ModelInput{Name: in.GetName(), DataType: DataType(in.GetDtype()), Dims: in.GetShape()})
	}
	for _, o := range cfg.GetOutputs() {
		// The labels file names the classes of the outputs the
		// classification extension labels.
		mo := &inferencepb.ModelOutput{Name: o.GetName(), DataType: DataType(o.GetDtype()), Dims: o.GetShape()}
		if cfg.GetLabelsFile() != "" && classify.Labeled(c.Labels, o.GetShape()) {
			mo.LabelFilename = path.Base(cfg.GetLabelsFile())
		}
		out.Output = append(out.Output, mo)
	}
	b := c.Serving.Batching
	if b.Dynamic {
		db := &inferencepb.ModelDynamicBatching{
			MaxQueueDelayMicroseconds: uint64(b.MaxQueueDelay.Microseconds()),
			DefaultQueuePolicy:        &inferencepb.ModelQueuePolicy{MaxQueueSize: uint32(b.MaxQueueSize)},
		}
		for _, p := range b.PreferredBatchSizes {
			db.PreferredBatchSize = append(db.PreferredBatchSize, int32(p))
		}
		out.SchedulingChoice = &inferencepb.ModelConfig_DynamicBatching{DynamicBatching: db}
	}
	group := &inferencepb.ModelInstanceGroup{
		Name:  fmt.Sprintf("%s_0", name),
		Kind:  inferencepb.ModelInstanceGroup_KIND_CPU,
		Count: int32(max(b.Instances, 1)),
	}
	if ortrt.IsGPU(c.Serving.ExecutionProvider) {
		group.Kind = inferencepb.ModelInstanceGroup_KIND_GPU
		group.Gpus = []int32{int32(c.Serving.DeviceID)}
	}
	out.InstanceGroup = []*inferencepb.ModelInstanceGroup{group}
	return out
}

// versionPolicy is pred's version policy in Triton's terms; no policy is
// Triton's default, the latest version.
func versionPolicy(p *predv1.VersionPolicy) *inferencepb.ModelVersionPolicy {
	switch p := p.GetPolicy().(type) {
	case *predv1.VersionPolicy_All_:
		return &inferencepb.ModelVersionPolicy{PolicyChoice: &inferencepb.ModelVersionPolicy_All_{All: &inferencepb.ModelVersionPolicy_All{}}}
	case *predv1.VersionPolicy_Specific_:
		return &inferencepb.ModelVersionPolicy{PolicyChoice: &inferencepb.ModelVersionPolicy_Specific_{
			Specific: &inferencepb.ModelVersionPolicy_Specific{Versions: p.Specific.GetVersions()},
		}}
	case *predv1.VersionPolicy_Latest_:
		return latest(p.Latest.GetNumVersions())
	default:
		return latest(1)
	}
}

func latest(n uint32) *inferencepb.ModelVersionPolicy {
	return &inferencepb.ModelVersionPolicy{PolicyChoice: &inferencepb.ModelVersionPolicy_Latest_{
		Latest: &inferencepb.ModelVersionPolicy_Latest{NumVersions: n},
	}}
}
