package tensor

import (
	"encoding/binary"
	"fmt"
	"math"

	predv1 "github.com/prepred/prepred/api/gen/prepred/pred/v1"
)

// Protocols that carry typed values (the Open Inference Protocol's
// contents, JSON, ONNX TensorProto's typed fields) store several element
// types in one wider Go type: int8 in an int32, uint16 in a uint32, bool
// in an int32. The encoders below turn such values into raw bytes of the
// tensor's element type and refuse a value the element type cannot hold,
// instead of truncating it.

// intRange returns the range of the integer element type d; ok is false
// for a type that is not an integer (BOOL counts as the integer range
// 0..1).
func intRange(d predv1.DataType) (lo int64, hi uint64, ok bool) {
	switch d {
	case predv1.DataType_DATA_TYPE_INT8:
		return math.MinInt8, math.MaxInt8, true
	case predv1.DataType_DATA_TYPE_INT16:
		return math.MinInt16, math.MaxInt16, true
	case predv1.DataType_DATA_TYPE_INT32:
		return math.MinInt32, math.MaxInt32, true
	case predv1.DataType_DATA_TYPE_INT64:
		return math.MinInt64, math.MaxInt64, true
	case predv1.DataType_DATA_TYPE_UINT8:
		return 0, math.MaxUint8, true
	case predv1.DataType_DATA_TYPE_UINT16:
		return 0, math.MaxUint16, true
	case predv1.DataType_DATA_TYPE_UINT32:
		return 0, math.MaxUint32, true
	case predv1.DataType_DATA_TYPE_UINT64:
		return 0, math.MaxUint64, true
	case predv1.DataType_DATA_TYPE_BOOL:
		return 0, 1, true
	}
	return 0, 0, false
}

// putUint writes the low ElementSize(d) bytes of v, little-endian, as
// element i of data.
func putUint(data []byte, size, i int, v uint64) {
	switch size {
	case 1:
		data[i] = byte(v)
	case 2:
		binary.LittleEndian.PutUint16(data[2*i:], uint16(v))
	case 4:
		binary.LittleEndian.PutUint32(data[4*i:], uint32(v))
	case 8:
		binary.LittleEndian.PutUint64(data[8*i:], v)
	}
}

// FromInts encodes integers as elements of the integer type (or BOOL) d,
// checking each against d's range. Signed values are stored in two's
// complement.
func FromInts[T int32 | int64 | uint32 | uint64](d predv1.DataType, vals []T) ([]byte, error) {
	lo, hi, ok := intRange(d)
	if !ok {
		return nil, fmt.Errorf("%v is not an integer type", d)
	}
	size := ElementSize(d)
	data := make([]byte, len(vals)*size)
	for i, v := range vals {
		// Exactly one of these holds: v < 0, or v fits in uint64.
		if v < 0 {
			if int64(v) < lo {
				return nil, fmt.Errorf("element %d is %d, outside the range of %v", i, v, d)
			}
		} else if uint64(v) > hi {
			return nil, fmt.Errorf("element %d is %d, outside the range of %v", i, v, d)
		}
		putUint(data, size, i, uint64(v)) // two's complement for negatives
	}
	return data, nil
}

// FromFloats encodes floating-point values as elements of d (FLOAT16,
// FLOAT32 or FLOAT64), rounding to nearest even where d is narrower.
func FromFloats[T float32 | float64](d predv1.DataType, vals []T) ([]byte, error) {
	size := ElementSize(d)
	data := make([]byte, len(vals)*size)
	for i, v := range vals {
		switch d {
		case predv1.DataType_DATA_TYPE_FLOAT16:
			binary.LittleEndian.PutUint16(data[2*i:], Float16Bits(float32(v)))
		case predv1.DataType_DATA_TYPE_FLOAT32:
			binary.LittleEndian.PutUint32(data[4*i:], math.Float32bits(float32(v)))
		case predv1.DataType_DATA_TYPE_FLOAT64:
			binary.LittleEndian.PutUint64(data[8*i:], math.Float64bits(float64(v)))
		default:
			return nil, fmt.Errorf("%v is not a floating-point type", d)
		}
	}
	return data, nil
}

// FromBools encodes booleans as BOOL elements (one byte each, 0 or 1).
func FromBools(vals []bool) []byte {
	data := make([]byte, len(vals))
	for i, v := range vals {
		if v {
			data[i] = 1
		}
	}
	return data
}

// Float16Bits returns the IEEE 754 binary16 bits nearest to f (ties to
// even); values beyond the binary16 range become infinities, NaN stays NaN.
func Float16Bits(f float32) uint16 {
	b := math.Float32bits(f)
	sign := uint16(b>>16) & 0x8000
	exp := int32(b>>23) & 0xff
	mant := b & 0x7fffff
	switch {
	case exp == 0xff: // Inf or NaN
		if mant != 0 {
			return sign | 0x7e00
		}
		return sign | 0x7c00
	case exp-127 > 15: // overflow
		return sign | 0x7c00
	case exp-127 >= -14: // normal binary16
		e := uint32(exp-127+15) << 10
		m := mant >> 13
		h := e | m
		// Round to nearest even on the 13 dropped bits; a carry into the
		// exponent is correct, up to infinity.
		rest := mant & 0x1fff
		if rest > 0x1000 || (rest == 0x1000 && h&1 == 1) {
			h++
		}
		return sign | uint16(h)
	case exp-127 >= -25: // subnormal binary16
		m := mant | 0x800000 // implicit leading one
		shift := uint32(-14-(exp-127)) + 13
		h := m >> shift
		rest := m & (1<<shift - 1)
		half := uint32(1) << (shift - 1)
		if rest > half || (rest == half && h&1 == 1) {
			h++
		}
		return sign | uint16(h)
	default: // underflow to zero
		return sign
	}
}

// Float16Float32 returns the value of the IEEE 754 binary16 bits h.
func Float16Float32(h uint16) float32 {
	sign := uint32(h&0x8000) << 16
	exp := uint32(h>>10) & 0x1f
	mant := uint32(h & 0x3ff)
	switch {
	case exp == 0x1f:
		return math.Float32frombits(sign | 0x7f800000 | mant<<13)
	case exp != 0:
		return math.Float32frombits(sign | (exp+127-15)<<23 | mant<<13)
	case mant == 0:
		return math.Float32frombits(sign)
	default: // subnormal: mant · 2^-24
		f := float32(mant) / (1 << 24)
		if sign != 0 {
			f = -f
		}
		return f
	}
}
