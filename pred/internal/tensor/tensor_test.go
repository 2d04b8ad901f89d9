package tensor

import (
	"math"
	"strings"
	"testing"

	predv1 "github.com/prepred/prepred/api/gen/prepred/pred/v1"
)

func TestElementCount(t *testing.T) {
	tests := []struct {
		shape   []int64
		want    int64
		wantErr string
	}{
		{shape: nil, want: 1},
		{shape: []int64{8, 3, 224, 224}, want: 8 * 3 * 224 * 224},
		{shape: []int64{0, 3}, want: 0},
		{shape: []int64{MaxElements}, want: MaxElements},
		{shape: []int64{MaxElements + 1}, wantErr: "more than"},
		{shape: []int64{1 << 32, 1 << 32, 1 << 32}, wantErr: "more than"},
		{shape: []int64{math.MaxInt64, 2}, wantErr: "more than"},
		{shape: []int64{3, -1}, wantErr: "must not be negative"},
	}
	for _, tt := range tests {
		got, err := ElementCount(tt.shape)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("ElementCount(%v) = %d, %v; want error containing %q", tt.shape, got, err, tt.wantErr)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("ElementCount(%v) = %d, %v; want %d", tt.shape, got, err, tt.want)
		}
	}
}

func TestByteSize(t *testing.T) {
	tests := []struct {
		dtype predv1.DataType
		shape []int64
		want  int64
	}{
		{predv1.DataType_DATA_TYPE_FLOAT32, []int64{2, 3}, 24},
		{predv1.DataType_DATA_TYPE_FLOAT16, []int64{2, 3}, 12},
		{predv1.DataType_DATA_TYPE_INT64, []int64{5}, 40},
		{predv1.DataType_DATA_TYPE_BOOL, []int64{7}, 7},
	}
	for _, tt := range tests {
		if got, err := ByteSize(tt.dtype, tt.shape); err != nil || got != tt.want {
			t.Errorf("ByteSize(%v, %v) = %d, %v; want %d", tt.dtype, tt.shape, got, err, tt.want)
		}
	}
	if _, err := ByteSize(predv1.DataType_DATA_TYPE_UNSPECIFIED, []int64{1}); err == nil {
		t.Error("ByteSize(UNSPECIFIED) succeeded")
	}
	if _, err := ByteSize(predv1.DataType_DATA_TYPE_STRING, []int64{1}); err == nil || !strings.Contains(err.Error(), "no fixed size") {
		t.Errorf("ByteSize(STRING) = %v; want an error saying STRING has no fixed size", err)
	}
	for d := range predv1.DataType_name {
		dt := predv1.DataType(d)
		if dt != predv1.DataType_DATA_TYPE_UNSPECIFIED && !IsString(dt) && ElementSize(dt) == 0 {
			t.Errorf("ElementSize(%v) = 0", dt)
		}
		if dt != predv1.DataType_DATA_TYPE_UNSPECIFIED && !Supported(dt) {
			t.Errorf("Supported(%v) = false", dt)
		}
	}
}
