package ortserver

import (
	"errors"
	"fmt"

	onnxpb "github.com/prepred/prepred/api/gen/onnx"
	predv1 "github.com/prepred/prepred/api/gen/prepred/pred/v1"
	"github.com/prepred/prepred/pred/internal/tensor"
)

// errStrings is the error for a STRING tensor: no model pred serves takes
// strings (pred's model configuration has no string type).
var errStrings = errors.New("data_type STRING: string tensors are not supported (pred serves models whose inputs are numeric or BOOL tensors)")

// DecodeTensor returns the element type, shape and raw little-endian bytes
// of an ONNX TensorProto, from raw_data or from the typed field ONNX stores
// the type in: float_data (FLOAT), double_data (DOUBLE), int64_data
// (INT64), uint64_data (UINT32, UINT64) and int32_data (INT8, INT16, INT32,
// UINT8, UINT16, BOOL, and FLOAT16 as its bit pattern). Raw bytes are used
// in place, not copied. The result has no name.
func DecodeTensor(tp *onnxpb.TensorProto) (tensor.Tensor, error) {
	onnxType := onnxpb.TensorProto_DataType(tp.GetDataType())
	if onnxType == onnxpb.TensorProto_STRING {
		return tensor.Tensor{}, errStrings
	}
	dtype, ok := tensor.FromONNXType(onnxType)
	if !ok {
		if tp.DataType == nil {
			return tensor.Tensor{}, errors.New("data_type is not set")
		}
		return tensor.Tensor{}, fmt.Errorf("data_type %d (%v) is not supported", tp.GetDataType(), onnxType)
	}
	if tp.GetSegment() != nil {
		return tensor.Tensor{}, errors.New("segmented tensors are not supported")
	}
	size, err := tensor.ByteSize(dtype, tp.GetDims())
	if err != nil {
		return tensor.Tensor{}, fmt.Errorf("dims %v: %w", tp.GetDims(), err)
	}
	t := tensor.Tensor{DType: dtype, Shape: tp.GetDims()}

	fields := []struct {
		name string
		len  int
	}{
		{"float_data", len(tp.GetFloatData())},
		{"int32_data", len(tp.GetInt32Data())},
		{"string_data", len(tp.GetStringData())},
		{"int64_data", len(tp.GetInt64Data())},
		{"double_data", len(tp.GetDoubleData())},
		{"uint64_data", len(tp.GetUint64Data())},
	}
	if len(tp.GetRawData()) > 0 {
		for _, f := range fields {
			if f.len > 0 {
				return tensor.Tensor{}, fmt.Errorf("has both raw_data and %s; give one", f.name)
			}
		}
		if int64(len(tp.GetRawData())) != size {
			return tensor.Tensor{}, fmt.Errorf("raw_data has %d bytes; dims %v of %v need %d", len(tp.GetRawData()), tp.GetDims(), onnxType, size)
		}
		t.Data = tp.GetRawData()
		return t, nil
	}

	n := size / int64(tensor.ElementSize(dtype))
	want := typedField(dtype)
	for _, f := range fields {
		if f.name != want && f.len > 0 {
			return tensor.Tensor{}, fmt.Errorf("data_type %v keeps its values in %s (or raw_data), not %s", onnxType, want, f.name)
		}
	}
	for _, f := range fields {
		switch {
		case f.name != want || int64(f.len) == n:
		case f.len == 0:
			return tensor.Tensor{}, fmt.Errorf("no data: dims %v need %d values in raw_data or %s", tp.GetDims(), n, want)
		default:
			return tensor.Tensor{}, fmt.Errorf("%s has %d values; dims %v need %d", want, f.len, tp.GetDims(), n)
		}
	}
	switch want {
	case "float_data":
		t.Data, err = tensor.FromFloats(dtype, tp.GetFloatData())
	case "double_data":
		t.Data, err = tensor.FromFloats(dtype, tp.GetDoubleData())
	case "int64_data":
		t.Data, err = tensor.FromInts(dtype, tp.GetInt64Data())
	case "uint64_data":
		t.Data, err = tensor.FromInts(dtype, tp.GetUint64Data())
	default: // int32_data
		if dtype == predv1.DataType_DATA_TYPE_FLOAT16 {
			// The bit pattern of each value, in the low 16 bits.
			t.Data, err = tensor.FromInts(predv1.DataType_DATA_TYPE_UINT16, tp.GetInt32Data())
		} else {
			t.Data, err = tensor.FromInts(dtype, tp.GetInt32Data())
		}
	}
	if err != nil {
		return tensor.Tensor{}, fmt.Errorf("%s: %w", want, err)
	}
	return t, nil
}

// typedField names the TensorProto field ONNX keeps values of d in.
func typedField(d predv1.DataType) string {
	switch d {
	case predv1.DataType_DATA_TYPE_FLOAT32:
		return "float_data"
	case predv1.DataType_DATA_TYPE_FLOAT64:
		return "double_data"
	case predv1.DataType_DATA_TYPE_INT64:
		return "int64_data"
	case predv1.DataType_DATA_TYPE_UINT32, predv1.DataType_DATA_TYPE_UINT64:
		return "uint64_data"
	default:
		return "int32_data"
	}
}

// EncodeTensor returns t as an ONNX TensorProto with raw_data (which
// aliases t.Data).
func EncodeTensor(t tensor.Tensor) *onnxpb.TensorProto {
	dt := int32(tensor.ONNXType(t.DType))
	return &onnxpb.TensorProto{Dims: t.Shape, DataType: &dt, RawData: t.Data}
}
