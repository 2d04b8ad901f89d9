package ortserver

import (
	"errors"
	"fmt"

	onnxpb "github.com/prepred/prepred/api/gen/onnx"
	predv1 "github.com/prepred/prepred/api/gen/prepred/pred/v1"
	"github.com/prepred/prepred/pred/internal/tensor"
)

// stringField is the TensorProto field of STRING elements. ONNX allows no
// other, raw_data included: STRING elements vary in size.
const stringField = "string_data"

// DecodeTensor returns the element type, shape and raw little-endian bytes
// of an ONNX TensorProto, from raw_data or from the typed field ONNX stores
// the type in: float_data (FLOAT), double_data (DOUBLE), int64_data
// (INT64), uint64_data (UINT32, UINT64) and int32_data (INT8, INT16, INT32,
// UINT8, UINT16, BOOL, and FLOAT16 as its bit pattern). STRING elements
// come from string_data only (see decodeStrings). Raw bytes are used in
// place, not copied. The result has no name.
func DecodeTensor(tp *onnxpb.TensorProto) (tensor.Tensor, error) {
	onnxType := onnxpb.TensorProto_DataType(tp.GetDataType())
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
	if tensor.IsString(dtype) {
		return decodeStrings(tp)
	}
	size, err := tensor.ByteSize(dtype, tp.GetDims())
	if err != nil {
		return tensor.Tensor{}, fmt.Errorf("dims %v: %w", tp.GetDims(), err)
	}
	t := tensor.Tensor{DType: dtype, Shape: tp.GetDims()}

	fields := dataFields(tp)
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

// dataField is a typed value field of a TensorProto and how many values
// it holds.
type dataField struct {
	name string
	len  int
}

// dataFields returns the typed value fields of tp (all but raw_data).
func dataFields(tp *onnxpb.TensorProto) []dataField {
	return []dataField{
		{"float_data", len(tp.GetFloatData())},
		{"int32_data", len(tp.GetInt32Data())},
		{stringField, len(tp.GetStringData())},
		{"int64_data", len(tp.GetInt64Data())},
		{"double_data", len(tp.GetDoubleData())},
		{"uint64_data", len(tp.GetUint64Data())},
	}
}

// decodeStrings decodes a STRING TensorProto: one string_data value per
// element of dims, encoded as tensor.FromStrings does. The element count
// is checked against tensor.MaxStringElements and string_data before
// anything is allocated, so the result costs no more than the request.
func decodeStrings(tp *onnxpb.TensorProto) (tensor.Tensor, error) {
	if len(tp.GetRawData()) > 0 {
		return tensor.Tensor{}, fmt.Errorf("raw_data is set: ONNX does not allow raw_data for STRING tensors; send the values in %s, one per element", stringField)
	}
	for _, f := range dataFields(tp) {
		if f.name != stringField && f.len > 0 {
			return tensor.Tensor{}, fmt.Errorf("data_type STRING keeps its values in %s, not %s", stringField, f.name)
		}
	}
	n, err := tensor.ElementCount(tp.GetDims())
	if err != nil {
		return tensor.Tensor{}, fmt.Errorf("dims %v: %w", tp.GetDims(), err)
	}
	if n > tensor.MaxStringElements {
		return tensor.Tensor{}, fmt.Errorf("dims %v have %d elements; a STRING tensor holds at most %d", tp.GetDims(), n, tensor.MaxStringElements)
	}
	switch got := int64(len(tp.GetStringData())); {
	case got == n:
	case got == 0:
		return tensor.Tensor{}, fmt.Errorf("no data: dims %v need %d values in %s", tp.GetDims(), n, stringField)
	default:
		return tensor.Tensor{}, fmt.Errorf("%s has %d values; dims %v need %d", stringField, got, tp.GetDims(), n)
	}
	return tensor.Tensor{
		DType: predv1.DataType_DATA_TYPE_STRING,
		Shape: tp.GetDims(),
		Data:  tensor.FromStrings(tp.GetStringData()),
	}, nil
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

// EncodeTensor returns t as an ONNX TensorProto: a fixed-size type in
// raw_data (which aliases t.Data), STRING in string_data (whose values
// alias t.Data), as ONNX allows no raw_data for STRING. It fails only when
// the Data of a STRING tensor does not hold its shape's elements.
func EncodeTensor(t tensor.Tensor) (*onnxpb.TensorProto, error) {
	dt := int32(tensor.ONNXType(t.DType))
	tp := &onnxpb.TensorProto{Dims: t.Shape, DataType: &dt}
	if !tensor.IsString(t.DType) {
		tp.RawData = t.Data
		return tp, nil
	}
	n, err := tensor.ElementCount(t.Shape)
	if err != nil {
		return nil, fmt.Errorf("shape %v: %w", t.Shape, err)
	}
	if tp.StringData, err = tensor.Strings(t.Data, n); err != nil {
		return nil, fmt.Errorf("shape %v: %w", t.Shape, err)
	}
	return tp, nil
}
