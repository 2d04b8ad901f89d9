// Package tensor holds pred's in-memory tensor: a name, an element type, a
// shape and the raw little-endian bytes, as they arrive on and leave by the
// wire. Every protocol front end converts to and from this type, and the
// ONNX Runtime wrapper runs on it, so bytes travel without re-encoding.
package tensor

import (
	"fmt"

	predv1 "github.com/prepred/prepred/api/gen/prepred/pred/v1"
)

// MaxElements is the largest number of elements a single tensor may hold,
// checked before any size arithmetic so that hostile shapes can neither
// overflow int64 nor make pred allocate without bound. 1<<23 elements are
// 32 MiB of float32: room for a batch of 8 ResNet-50 inputs (8·3·224·224 =
// 1,204,224 elements) with a wide margin.
const MaxElements = 1 << 23

// Tensor is a dense, row-major tensor whose elements are stored as raw
// little-endian bytes.
type Tensor struct {
	Name  string
	DType predv1.DataType
	Shape []int64
	// Data holds exactly ElementCount(Shape)·ElementSize(DType) bytes, or
	// for STRING the elements' length-prefixed encoding (see IsString).
	Data []byte
}

// ElementSize returns the size in bytes of one element of d, or 0 for
// STRING (whose elements vary in size) and for an unspecified or unknown
// type.
func ElementSize(d predv1.DataType) int {
	switch d {
	case predv1.DataType_DATA_TYPE_FLOAT32, predv1.DataType_DATA_TYPE_INT32, predv1.DataType_DATA_TYPE_UINT32:
		return 4
	case predv1.DataType_DATA_TYPE_FLOAT64, predv1.DataType_DATA_TYPE_INT64, predv1.DataType_DATA_TYPE_UINT64:
		return 8
	case predv1.DataType_DATA_TYPE_FLOAT16, predv1.DataType_DATA_TYPE_INT16, predv1.DataType_DATA_TYPE_UINT16:
		return 2
	case predv1.DataType_DATA_TYPE_INT8, predv1.DataType_DATA_TYPE_UINT8, predv1.DataType_DATA_TYPE_BOOL:
		return 1
	default:
		return 0
	}
}

// ElementCount returns the number of elements of a tensor of the given
// shape. It refuses negative dimensions and counts above MaxElements, and
// never overflows: each step is checked against the ceiling.
func ElementCount(shape []int64) (int64, error) {
	n := int64(1)
	for i, d := range shape {
		if d < 0 {
			return 0, fmt.Errorf("dimension %d is %d; dimensions must not be negative", i, d)
		}
		if d == 0 {
			n = 0
			continue
		}
		if n > MaxElements/d {
			return 0, fmt.Errorf("shape %v has more than %d elements, the most pred accepts in one tensor", shape, MaxElements)
		}
		n *= d
	}
	return n, nil
}

// ByteSize returns the number of bytes of a tensor of the given fixed-size
// type and shape.
func ByteSize(d predv1.DataType, shape []int64) (int64, error) {
	if IsString(d) {
		return 0, fmt.Errorf("%v elements have no fixed size", d)
	}
	size := ElementSize(d)
	if size == 0 {
		return 0, fmt.Errorf("unsupported data type %v", d)
	}
	n, err := ElementCount(shape)
	if err != nil {
		return 0, err
	}
	return n * int64(size), nil
}
