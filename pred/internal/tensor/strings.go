package tensor

import (
	"encoding/binary"
	"fmt"

	predv1 "github.com/prepred/prepred/api/gen/prepred/pred/v1"
)

// MaxStringElements is the most elements a STRING tensor may hold. Each
// element costs a string header in Go and a C string in ONNX Runtime on top
// of its bytes, so this ceiling is far below MaxElements: 1<<18 elements
// are a quarter of a million strings, ample for text models, and keep the
// bookkeeping of a hostile request to a few MiB.
const MaxStringElements = 1 << 18

// stringPrefix is the size of the length before each STRING element.
const stringPrefix = 4

// IsString reports whether d is DATA_TYPE_STRING. A STRING tensor's Data
// holds each element as a 4-byte little-endian length followed by that
// many bytes, element after element: the BYTES serialization of the Open
// Inference Protocol.
func IsString(d predv1.DataType) bool { return d == predv1.DataType_DATA_TYPE_STRING }

// Supported reports whether pred serves tensors of element type d.
func Supported(d predv1.DataType) bool { return ElementSize(d) > 0 || IsString(d) }

// AppendString appends s to dst as one STRING element.
func AppendString[S ~string | ~[]byte](dst []byte, s S) []byte {
	dst = binary.LittleEndian.AppendUint32(dst, uint32(len(s)))
	return append(dst, s...)
}

// FromStrings encodes vals as the Data of a STRING tensor.
func FromStrings[S ~string | ~[]byte](vals []S) []byte {
	size := 0
	for _, s := range vals {
		size += stringPrefix + len(s)
	}
	data := make([]byte, 0, size)
	for _, s := range vals {
		data = AppendString(data, s)
	}
	return data
}

// Strings decodes the Data of a STRING tensor of n elements. The returned
// elements alias data. It fails unless data holds exactly n well-formed
// elements, and never allocates for more elements than data can hold.
func Strings(data []byte, n int64) ([][]byte, error) {
	if err := checkStringCount(data, n); err != nil {
		return nil, err
	}
	out := make([][]byte, 0, n)
	err := EachString(data, n, func(_ int, s []byte) error {
		out = append(out, s)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// EachString calls fn on each of the n elements of a STRING tensor's Data,
// in order, without allocating; each element aliases data. It fails as
// Strings does, or with fn's first error.
func EachString(data []byte, n int64, fn func(i int, s []byte) error) error {
	if err := checkStringCount(data, n); err != nil {
		return err
	}
	rest := data
	for i := range int(n) {
		s, r, err := nextString(rest, i)
		if err != nil {
			return err
		}
		if err := fn(i, s); err != nil {
			return err
		}
		rest = r
	}
	if len(rest) != 0 {
		return fmt.Errorf("%d bytes follow the %d STRING elements of the shape", len(rest), n)
	}
	return nil
}

// checkStringCount refuses n elements that exceed the ceiling or that
// data is too short to hold.
func checkStringCount(data []byte, n int64) error {
	if n < 0 || n > MaxStringElements {
		return fmt.Errorf("a STRING tensor holds at most %d elements, not %d", MaxStringElements, n)
	}
	if n > int64(len(data)/stringPrefix) {
		return fmt.Errorf("%d bytes cannot hold %d STRING elements (each takes a %d-byte length and its bytes)", len(data), n, stringPrefix)
	}
	return nil
}

// nextString splits the element at the start of data off the rest.
func nextString(data []byte, i int) (s, rest []byte, err error) {
	if len(data) < stringPrefix {
		return nil, nil, fmt.Errorf("STRING element %d: %d bytes left, too few for its %d-byte length", i, len(data), stringPrefix)
	}
	n := binary.LittleEndian.Uint32(data)
	data = data[stringPrefix:]
	if uint64(n) > uint64(len(data)) {
		return nil, nil, fmt.Errorf("STRING element %d: its length is %d but only %d bytes follow", i, n, len(data))
	}
	return data[:n:n], data[n:], nil
}

// CheckData checks that data is exactly the encoding of a tensor of
// element type d and the given shape: for fixed-size types, its length;
// for STRING, every element.
func CheckData(d predv1.DataType, shape []int64, data []byte) error {
	n, err := ElementCount(shape)
	if err != nil {
		return err
	}
	if IsString(d) {
		return EachString(data, n, func(int, []byte) error { return nil })
	}
	size := ElementSize(d)
	if size == 0 {
		return fmt.Errorf("unsupported data type %v", d)
	}
	if want := n * int64(size); int64(len(data)) != want {
		return fmt.Errorf("has %d bytes; shape %v of %v (%d bytes each) needs %d", len(data), shape, d, size, want)
	}
	return nil
}

// SplitRows splits t along its first dimension into tensors of rows[i]
// rows each, which must add up to that dimension. The parts alias t.Data.
func SplitRows(t Tensor, rows []int64) ([]Tensor, error) {
	var total int64
	for _, r := range rows {
		total += r
	}
	if len(t.Shape) == 0 || t.Shape[0] != total {
		return nil, fmt.Errorf("tensor %q of shape %v cannot be split into %d rows", t.Name, t.Shape, total)
	}
	perRow, err := ElementCount(t.Shape[1:])
	if err != nil {
		return nil, err
	}
	parts := make([]Tensor, len(rows))
	rest := t.Data
	for i, r := range rows {
		var size int
		if IsString(t.DType) {
			size, err = stringsSize(rest, r*perRow)
			if err != nil {
				return nil, fmt.Errorf("tensor %q: %w", t.Name, err)
			}
		} else {
			size = int(r * perRow * int64(ElementSize(t.DType)))
			if size > len(rest) {
				return nil, fmt.Errorf("tensor %q of shape %v has only %d bytes", t.Name, t.Shape, len(t.Data))
			}
		}
		shape := append([]int64{r}, t.Shape[1:]...)
		parts[i] = Tensor{Name: t.Name, DType: t.DType, Shape: shape, Data: rest[:size:size]}
		rest = rest[size:]
	}
	if len(rest) != 0 {
		return nil, fmt.Errorf("tensor %q of shape %v has %d bytes too many", t.Name, t.Shape, len(rest))
	}
	return parts, nil
}

// stringsSize returns how many bytes the first n STRING elements of data
// take.
func stringsSize(data []byte, n int64) (int, error) {
	rest := data
	for i := range n {
		_, r, err := nextString(rest, int(i))
		if err != nil {
			return 0, err
		}
		rest = r
	}
	return len(data) - len(rest), nil
}
