package tensor

import (
	"bytes"
	"math"
	"strings"
	"testing"

	onnxpb "github.com/prepred/prepred/api/gen/onnx"
	predv1 "github.com/prepred/prepred/api/gen/prepred/pred/v1"
)

func TestFloat16(t *testing.T) {
	// Every binary16 value converts to float32 and back unchanged.
	for h := range 1 << 16 {
		f := Float16Float32(uint16(h))
		if math.IsNaN(float64(f)) {
			if got := Float16Bits(f); got&0x7c00 != 0x7c00 || got&0x3ff == 0 {
				t.Fatalf("NaN %#04x came back as %#04x", h, got)
			}
			continue
		}
		if got := Float16Bits(f); got != uint16(h) {
			t.Fatalf("%#04x -> %v -> %#04x", h, f, got)
		}
	}
	tests := []struct {
		f    float32
		want uint16
	}{
		{1, 0x3c00},
		{-2, 0xc000},
		{65504, 0x7bff},
		{65520, 0x7c00}, // rounds up to infinity
		{1e10, 0x7c00},
		{float32(math.Inf(-1)), 0xfc00},
		{1 + 1.0/2048, 0x3c00},            // tie: round to even (down)
		{1 + 3.0/2048, 0x3c02},            // tie: round to even (up)
		{1 + 1.0/2048 + 1.0/8192, 0x3c01}, // above the tie
		{5.960464477539063e-08, 0x0001},   // smallest subnormal
		{2.9802322387695312e-08, 0x0000},  // half of it: tie to even, zero
		{4.470348358154297e-08, 0x0001},   // 0.75 of it
		{6.097555160522461e-05, 0x03ff},   // largest subnormal
		{float32(math.Copysign(0, -1)), 0x8000},
		{1e-30, 0},
	}
	for _, tt := range tests {
		if got := Float16Bits(tt.f); got != tt.want {
			t.Errorf("Float16Bits(%v) = %#04x, want %#04x", tt.f, got, tt.want)
		}
	}
}

func TestFromInts(t *testing.T) {
	got, err := FromInts(predv1.DataType_DATA_TYPE_INT16, []int32{-2, 258})
	if err != nil || !bytes.Equal(got, []byte{0xfe, 0xff, 0x02, 0x01}) {
		t.Errorf("FromInts(INT16) = %x, %v", got, err)
	}
	got, err = FromInts(predv1.DataType_DATA_TYPE_UINT64, []uint64{math.MaxUint64})
	if err != nil || !bytes.Equal(got, bytes.Repeat([]byte{0xff}, 8)) {
		t.Errorf("FromInts(UINT64) = %x, %v", got, err)
	}
	errs := []struct {
		d    predv1.DataType
		vals []int64
	}{
		{predv1.DataType_DATA_TYPE_INT8, []int64{-129}},
		{predv1.DataType_DATA_TYPE_UINT32, []int64{-1}},
		{predv1.DataType_DATA_TYPE_UINT32, []int64{1 << 32}},
		{predv1.DataType_DATA_TYPE_BOOL, []int64{2}},
	}
	for _, e := range errs {
		if _, err := FromInts(e.d, e.vals); err == nil || !strings.Contains(err.Error(), "outside the range") {
			t.Errorf("FromInts(%v, %v) = %v, want a range error", e.d, e.vals, err)
		}
	}
	if _, err := FromInts(predv1.DataType_DATA_TYPE_INT64, []uint64{1 << 63}); err == nil {
		t.Error("FromInts(INT64, 1<<63) succeeded")
	}
	if _, err := FromInts(predv1.DataType_DATA_TYPE_FLOAT32, []int32{1}); err == nil {
		t.Error("FromInts(FLOAT32) succeeded")
	}
}

func TestFromFloats(t *testing.T) {
	got, err := FromFloats(predv1.DataType_DATA_TYPE_FLOAT16, []float64{1.5})
	if err != nil || !bytes.Equal(got, []byte{0x00, 0x3e}) {
		t.Errorf("FromFloats(FLOAT16) = %x, %v", got, err)
	}
	got, err = FromFloats(predv1.DataType_DATA_TYPE_FLOAT64, []float32{0.5})
	if err != nil || !bytes.Equal(got, []byte{0, 0, 0, 0, 0, 0, 0xe0, 0x3f}) {
		t.Errorf("FromFloats(FLOAT64) = %x, %v", got, err)
	}
	if _, err := FromFloats(predv1.DataType_DATA_TYPE_INT32, []float32{1}); err == nil {
		t.Error("FromFloats(INT32) succeeded")
	}
	if got := FromBools([]bool{true, false}); !bytes.Equal(got, []byte{1, 0}) {
		t.Errorf("FromBools = %x", got)
	}
}

func TestONNXTypes(t *testing.T) {
	for d := range predv1.DataType_name {
		dt := predv1.DataType(d)
		if dt == predv1.DataType_DATA_TYPE_UNSPECIFIED {
			continue
		}
		o := ONNXType(dt)
		back, ok := FromONNXType(o)
		if o == onnxpb.TensorProto_UNDEFINED || !ok || back != dt {
			t.Errorf("%v -> %v -> %v, %v", dt, o, back, ok)
		}
	}
	for _, o := range []onnxpb.TensorProto_DataType{onnxpb.TensorProto_COMPLEX64, onnxpb.TensorProto_BFLOAT16, onnxpb.TensorProto_UNDEFINED} {
		if _, ok := FromONNXType(o); ok {
			t.Errorf("FromONNXType(%v) is supported", o)
		}
	}
}
