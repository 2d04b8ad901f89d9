// Package wirecompat pins the wire identity (full names and field numbers) of
// the protocols defined by others, so that an edit that would break existing
// Triton/KServe, ONNX Runtime Server or ONNX clients fails here.
package wirecompat

import (
	"testing"

	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	_ "github.com/prepred/prepred/api/gen/inference"
	_ "github.com/prepred/prepred/api/gen/onnx"
	_ "github.com/prepred/prepred/api/gen/onnxruntime/server"
)

// published lists message full name -> field name -> field number, as in
// the published specifications.
var published = map[string]map[string]protoreflect.FieldNumber{
	"inference.ModelInferRequest": {
		"model_name": 1, "model_version": 2, "id": 3, "parameters": 4, "inputs": 5, "outputs": 6, "raw_input_contents": 7,
	},
	"inference.ModelInferRequest.InferInputTensor": {
		"name": 1, "datatype": 2, "shape": 3, "parameters": 4, "contents": 5,
	},
	"inference.ModelInferRequest.InferRequestedOutputTensor": {"name": 1, "parameters": 2},
	"inference.ModelInferResponse": {
		"model_name": 1, "model_version": 2, "id": 3, "parameters": 4, "outputs": 5, "raw_output_contents": 6,
	},
	"inference.ModelInferResponse.InferOutputTensor": {
		"name": 1, "datatype": 2, "shape": 3, "parameters": 4, "contents": 5,
	},
	"inference.InferParameter": {
		"bool_param": 1, "int64_param": 2, "string_param": 3, "double_param": 4, "uint64_param": 5,
	},
	"inference.InferTensorContents": {
		"bool_contents": 1, "int_contents": 2, "int64_contents": 3, "uint_contents": 4,
		"uint64_contents": 5, "fp32_contents": 6, "fp64_contents": 7, "bytes_contents": 8,
	},
	"inference.ModelMetadataResponse":                {"name": 1, "versions": 2, "platform": 3, "inputs": 4, "outputs": 5},
	"inference.ModelMetadataResponse.TensorMetadata": {"name": 1, "datatype": 2, "shape": 3},
	"inference.ModelMetadataRequest":                 {"name": 1, "version": 2},
	"inference.ModelReadyRequest":                    {"name": 1, "version": 2},
	"inference.ServerMetadataResponse":               {"name": 1, "version": 2, "extensions": 3},
	"inference.ServerLiveResponse":                   {"live": 1},
	"inference.ServerReadyResponse":                  {"ready": 1},
	"inference.ModelReadyResponse":                   {"ready": 1},
	// Triton's model_config.proto and grpc_service.proto extensions.
	"inference.ModelConfig": {
		"name": 1, "platform": 2, "backend": 17, "version_policy": 3, "max_batch_size": 4, "input": 5, "output": 6,
		"dynamic_batching": 11, "instance_group": 7, "default_model_filename": 8,
	},
	"inference.ModelInput":                  {"name": 1, "data_type": 2, "format": 3, "dims": 4},
	"inference.ModelOutput":                 {"name": 1, "data_type": 2, "dims": 3, "label_filename": 4},
	"inference.ModelInstanceGroup":          {"name": 1, "kind": 4, "count": 2, "gpus": 3},
	"inference.ModelVersionPolicy":          {"latest": 1, "all": 2, "specific": 3},
	"inference.ModelVersionPolicy.Latest":   {"num_versions": 1},
	"inference.ModelVersionPolicy.Specific": {"versions": 1},
	"inference.ModelDynamicBatching": {
		"preferred_batch_size": 1, "max_queue_delay_microseconds": 2, "preserve_ordering": 3, "default_queue_policy": 6,
	},
	"inference.ModelQueuePolicy": {
		"timeout_action": 1, "default_timeout_microseconds": 2, "allow_timeout_override": 3, "max_queue_size": 4,
	},
	"inference.ModelConfigRequest":     {"name": 1, "version": 2},
	"inference.ModelConfigResponse":    {"config": 1},
	"inference.ModelStatisticsRequest": {"name": 1, "version": 2},
	"inference.StatisticDuration":      {"count": 1, "ns": 2},
	"inference.InferStatistics": {
		"success": 1, "fail": 2, "queue": 3, "compute_input": 4, "compute_infer": 5, "compute_output": 6,
	},
	"inference.InferBatchStatistics": {"batch_size": 1, "compute_input": 2, "compute_infer": 3, "compute_output": 4},
	"inference.ModelStatistics": {
		"name": 1, "version": 2, "last_inference": 3, "inference_count": 4, "execution_count": 5,
		"inference_stats": 6, "batch_stats": 7,
	},
	"inference.ModelStatisticsResponse":            {"model_stats": 1},
	"inference.ModelRepositoryParameter":           {"bool_param": 1, "int64_param": 2, "string_param": 3, "bytes_param": 4},
	"inference.RepositoryIndexRequest":             {"repository_name": 1, "ready": 2},
	"inference.RepositoryIndexResponse":            {"models": 1},
	"inference.RepositoryIndexResponse.ModelIndex": {"name": 1, "version": 2, "state": 3, "reason": 4},
	"inference.RepositoryModelLoadRequest":         {"repository_name": 1, "model_name": 2, "parameters": 3},
	"inference.RepositoryModelUnloadRequest":       {"repository_name": 1, "model_name": 2, "parameters": 3},
	"onnxruntime.server.PredictRequest":            {"inputs": 2, "output_filter": 3},
	"onnxruntime.server.PredictResponse":           {"outputs": 1},
	"onnx.TensorProto": {
		"dims": 1, "data_type": 2, "segment": 3, "float_data": 4, "int32_data": 5, "string_data": 6,
		"int64_data": 7, "name": 8, "raw_data": 9, "double_data": 10, "uint64_data": 11, "doc_string": 12,
	},
	"onnx.ModelProto": {
		"ir_version": 1, "producer_name": 2, "producer_version": 3, "domain": 4, "model_version": 5,
		"doc_string": 6, "graph": 7, "opset_import": 8, "metadata_props": 14,
	},
	"onnx.GraphProto": {
		"node": 1, "name": 2, "initializer": 5, "doc_string": 10, "input": 11, "output": 12, "value_info": 13,
	},
	"onnx.NodeProto": {"input": 1, "output": 2, "name": 3, "op_type": 4, "attribute": 5, "doc_string": 6, "domain": 7},
	"onnx.AttributeProto": {
		"name": 1, "f": 2, "i": 3, "s": 4, "t": 5, "g": 6, "floats": 7, "ints": 8, "strings": 9,
		"tensors": 10, "graphs": 11, "doc_string": 13, "type": 20, "ref_attr_name": 21,
	},
	"onnx.ValueInfoProto":             {"name": 1, "type": 2, "doc_string": 3},
	"onnx.TypeProto":                  {"tensor_type": 1, "denotation": 6},
	"onnx.TypeProto.Tensor":           {"elem_type": 1, "shape": 2},
	"onnx.TensorShapeProto":           {"dim": 1},
	"onnx.TensorShapeProto.Dimension": {"dim_value": 1, "dim_param": 2, "denotation": 3},
	"onnx.OperatorSetIdProto":         {"domain": 1, "version": 2},
}

// publishedServices lists service full name -> methods.
var publishedServices = map[string][]string{
	"inference.GRPCInferenceService": {
		"ServerLive", "ServerReady", "ModelReady", "ServerMetadata", "ModelMetadata", "ModelInfer",
		"ModelConfig", "ModelStatistics", "RepositoryIndex", "RepositoryModelLoad", "RepositoryModelUnload",
	},
	"onnxruntime.server.PredictionService": {"Predict"},
}

func TestPublishedFieldNumbers(t *testing.T) {
	for msgName, fields := range published {
		d, err := protoregistry.GlobalFiles.FindDescriptorByName(protoreflect.FullName(msgName))
		if err != nil {
			t.Errorf("%s: %v", msgName, err)
			continue
		}
		md := d.(protoreflect.MessageDescriptor)
		for name, num := range fields {
			f := md.Fields().ByName(protoreflect.Name(name))
			if f == nil {
				t.Errorf("%s.%s: missing", msgName, name)
				continue
			}
			if f.Number() != num {
				t.Errorf("%s.%s: field number %d, published %d", msgName, name, f.Number(), num)
			}
		}
	}
}

// publishedEnums lists enum full name -> value name -> number.
var publishedEnums = map[string]map[string]protoreflect.EnumNumber{
	"inference.DataType": {
		"TYPE_INVALID": 0, "TYPE_BOOL": 1, "TYPE_UINT8": 2, "TYPE_UINT16": 3, "TYPE_UINT32": 4, "TYPE_UINT64": 5,
		"TYPE_INT8": 6, "TYPE_INT16": 7, "TYPE_INT32": 8, "TYPE_INT64": 9, "TYPE_FP16": 10, "TYPE_FP32": 11,
		"TYPE_FP64": 12, "TYPE_STRING": 13, "TYPE_BF16": 14,
	},
	"inference.ModelInstanceGroup.Kind":        {"KIND_AUTO": 0, "KIND_GPU": 1, "KIND_CPU": 2, "KIND_MODEL": 3},
	"inference.ModelInput.Format":              {"FORMAT_NONE": 0, "FORMAT_NHWC": 1, "FORMAT_NCHW": 2},
	"inference.ModelQueuePolicy.TimeoutAction": {"REJECT": 0, "DELAY": 1},
}

func TestPublishedEnums(t *testing.T) {
	for enumName, values := range publishedEnums {
		d, err := protoregistry.GlobalFiles.FindDescriptorByName(protoreflect.FullName(enumName))
		if err != nil {
			t.Errorf("%s: %v", enumName, err)
			continue
		}
		ed := d.(protoreflect.EnumDescriptor)
		for name, num := range values {
			v := ed.Values().ByName(protoreflect.Name(name))
			if v == nil {
				t.Errorf("%s.%s: missing", enumName, name)
				continue
			}
			if v.Number() != num {
				t.Errorf("%s.%s = %d, published %d", enumName, name, v.Number(), num)
			}
		}
	}
}

func TestPublishedServices(t *testing.T) {
	for svcName, methods := range publishedServices {
		d, err := protoregistry.GlobalFiles.FindDescriptorByName(protoreflect.FullName(svcName))
		if err != nil {
			t.Errorf("%s: %v", svcName, err)
			continue
		}
		sd := d.(protoreflect.ServiceDescriptor)
		for _, m := range methods {
			if sd.Methods().ByName(protoreflect.Name(m)) == nil {
				t.Errorf("%s/%s: missing", svcName, m)
			}
		}
	}
}
