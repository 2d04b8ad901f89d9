package tensor

import (
	onnxpb "github.com/prepred/prepred/api/gen/onnx"
	predv1 "github.com/prepred/prepred/api/gen/prepred/pred/v1"
)

// onnxTypes pairs pred's element types with ONNX's TensorProto.DataType.
var onnxTypes = []struct {
	pred predv1.DataType
	onnx onnxpb.TensorProto_DataType
}{
	{predv1.DataType_DATA_TYPE_FLOAT32, onnxpb.TensorProto_FLOAT},
	{predv1.DataType_DATA_TYPE_FLOAT16, onnxpb.TensorProto_FLOAT16},
	{predv1.DataType_DATA_TYPE_FLOAT64, onnxpb.TensorProto_DOUBLE},
	{predv1.DataType_DATA_TYPE_INT8, onnxpb.TensorProto_INT8},
	{predv1.DataType_DATA_TYPE_INT16, onnxpb.TensorProto_INT16},
	{predv1.DataType_DATA_TYPE_INT32, onnxpb.TensorProto_INT32},
	{predv1.DataType_DATA_TYPE_INT64, onnxpb.TensorProto_INT64},
	{predv1.DataType_DATA_TYPE_UINT8, onnxpb.TensorProto_UINT8},
	{predv1.DataType_DATA_TYPE_UINT16, onnxpb.TensorProto_UINT16},
	{predv1.DataType_DATA_TYPE_UINT32, onnxpb.TensorProto_UINT32},
	{predv1.DataType_DATA_TYPE_UINT64, onnxpb.TensorProto_UINT64},
	{predv1.DataType_DATA_TYPE_BOOL, onnxpb.TensorProto_BOOL},
	{predv1.DataType_DATA_TYPE_STRING, onnxpb.TensorProto_STRING},
}

// ONNXType returns the ONNX element type of d, or UNDEFINED.
func ONNXType(d predv1.DataType) onnxpb.TensorProto_DataType {
	for _, p := range onnxTypes {
		if p.pred == d {
			return p.onnx
		}
	}
	return onnxpb.TensorProto_UNDEFINED
}

// FromONNXType returns pred's element type for the ONNX element type t;
// ok is false for a type pred does not serve (BFLOAT16, complex, 4-bit and 8-bit floats).
func FromONNXType(t onnxpb.TensorProto_DataType) (d predv1.DataType, ok bool) {
	for _, p := range onnxTypes {
		if p.onnx == t {
			return p.pred, true
		}
	}
	return predv1.DataType_DATA_TYPE_UNSPECIFIED, false
}
