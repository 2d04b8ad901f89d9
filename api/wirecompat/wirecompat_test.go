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
	"onnxruntime.server.PredictRequest":              {"inputs": 2, "output_filter": 3},
	"onnxruntime.server.PredictResponse":             {"outputs": 1},
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
	"inference.GRPCInferenceService":       {"ServerLive", "ServerReady", "ModelReady", "ServerMetadata", "ModelMetadata", "ModelInfer"},
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
