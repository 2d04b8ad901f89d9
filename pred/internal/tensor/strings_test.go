package tensor

import (
	"bytes"
	"encoding/binary"
	"strings"
	"testing"

	predv1 "github.com/prepred/prepred/api/gen/prepred/pred/v1"
)

func TestStringsRoundTrip(t *testing.T) {
	vals := []string{"", "héllo", "a\x00b", strings.Repeat("x", 300)}
	data := FromStrings(vals)
	if want := 4*len(vals) + 0 + len("héllo") + 3 + 300; len(data) != want {
		t.Fatalf("FromStrings: %d bytes, want %d", len(data), want)
	}
	if !bytes.Equal(data[:4], []byte{0, 0, 0, 0}) || binary.LittleEndian.Uint32(data[4:]) != uint32(len("héllo")) {
		t.Fatalf("FromStrings: lengths are not 4-byte little-endian: % x", data[:12])
	}
	got, err := Strings(data, int64(len(vals)))
	if err != nil {
		t.Fatal(err)
	}
	for i, s := range got {
		if string(s) != vals[i] {
			t.Errorf("element %d = %q, want %q", i, s, vals[i])
		}
	}
	if err := CheckData(predv1.DataType_DATA_TYPE_STRING, []int64{2, 2}, data); err != nil {
		t.Errorf("CheckData of a valid [2 2] STRING tensor: %v", err)
	}
	if !bytes.Equal(FromStrings([][]byte{[]byte("ab")}), AppendString(nil, "ab")) {
		t.Error("FromStrings and AppendString disagree")
	}
}

func TestStringsRefusesMalformed(t *testing.T) {
	valid := FromStrings([]string{"ab", "c"})
	tests := []struct {
		name    string
		data    []byte
		n       int64
		wantErr string
	}{
		{"too few bytes for a length", valid[:2], 1, "cannot hold"},
		{"length past the end", valid[:5], 1, "only 1 bytes follow"},
		{"trailing bytes", append(bytes.Clone(valid), 0), 2, "1 bytes follow the 2"},
		{"fewer elements than the shape", valid, 3, "cannot hold"},
		{"a cut length", append(FromStrings([]string{"a", "b"}), 0, 0, 0), 3, "element 2: 3 bytes left"},
		{"more elements than the shape", valid, 1, "follow the 1"},
		{"huge length", []byte{0xff, 0xff, 0xff, 0xff, 'a'}, 1, "length is 4294967295"},
		{"count above the ceiling", make([]byte, 4*(MaxStringElements+1)), MaxStringElements + 1, "at most"},
		{"count the bytes cannot hold", make([]byte, 8), 1 << 17, "cannot hold"},
	}
	for _, tt := range tests {
		_, err := Strings(tt.data, tt.n)
		if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
			t.Errorf("%s: Strings = %v; want an error containing %q", tt.name, err, tt.wantErr)
		}
	}
}

func TestCheckData(t *testing.T) {
	f32 := predv1.DataType_DATA_TYPE_FLOAT32
	if err := CheckData(f32, []int64{2, 3}, make([]byte, 24)); err != nil {
		t.Errorf("CheckData of a valid FLOAT32 tensor: %v", err)
	}
	if err := CheckData(f32, []int64{2, 3}, make([]byte, 23)); err == nil || !strings.Contains(err.Error(), "needs 24") {
		t.Errorf("CheckData of a short FLOAT32 tensor = %v", err)
	}
	if err := CheckData(predv1.DataType_DATA_TYPE_UNSPECIFIED, []int64{1}, nil); err == nil {
		t.Error("CheckData(UNSPECIFIED) succeeded")
	}
	if err := CheckData(f32, []int64{-1}, nil); err == nil {
		t.Error("CheckData with a negative dimension succeeded")
	}
}

func TestSplitRows(t *testing.T) {
	str := predv1.DataType_DATA_TYPE_STRING
	whole := Tensor{Name: "s", DType: str, Shape: []int64{3, 2}, Data: FromStrings([]string{"a", "bb", "", "ccc", "d", "eeee"})}
	parts, err := SplitRows(whole, []int64{1, 2})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(parts[0].Data, FromStrings([]string{"a", "bb"})) || parts[0].Shape[0] != 1 || parts[0].Shape[1] != 2 {
		t.Errorf("first part = %v %q", parts[0].Shape, parts[0].Data)
	}
	if !bytes.Equal(parts[1].Data, FromStrings([]string{"", "ccc", "d", "eeee"})) || parts[1].Shape[0] != 2 {
		t.Errorf("second part = %v %q", parts[1].Shape, parts[1].Data)
	}

	f32 := Tensor{Name: "f", DType: predv1.DataType_DATA_TYPE_FLOAT32, Shape: []int64{3, 2}, Data: make([]byte, 24)}
	parts, err = SplitRows(f32, []int64{2, 1})
	if err != nil || len(parts[0].Data) != 16 || len(parts[1].Data) != 8 {
		t.Errorf("FLOAT32 split: %v, %v", parts, err)
	}

	if _, err := SplitRows(f32, []int64{1, 1}); err == nil {
		t.Error("splitting 3 rows into 2 succeeded")
	}
	short := whole
	short.Data = whole.Data[:len(whole.Data)-1]
	if _, err := SplitRows(short, []int64{1, 2}); err == nil {
		t.Error("splitting a truncated STRING tensor succeeded")
	}
	long := f32
	long.Data = make([]byte, 25)
	if _, err := SplitRows(long, []int64{3}); err == nil {
		t.Error("splitting a FLOAT32 tensor with a spare byte succeeded")
	}
}
