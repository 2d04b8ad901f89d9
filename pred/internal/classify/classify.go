// Package classify implements Triton's classification extension: an output
// requested with the parameter classification = K comes back, per batch
// item, as its K largest elements, each a BYTES string
// "value:index[:label]", largest first.
package classify

import (
	"cmp"
	"encoding/binary"
	"math"
	"slices"
	"strconv"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	predv1 "github.com/prepred/prepred/api/gen/prepred/pred/v1"
	"github.com/prepred/prepred/pred/internal/tensor"
)

// Parameter is the name of the output parameter that asks for
// classification.
const Parameter = "classification"

// Labeled reports whether labels name the elements of one item of an
// output whose per-item shape is dims: pred's labels file names the
// classes of the outputs with one element per label.
func Labeled(labels []string, dims []int64) bool {
	n, err := tensor.ElementCount(dims)
	return err == nil && len(labels) > 0 && n == int64(len(labels))
}

// TopK returns the classification of t: for each item (each row of the
// first dimension when batched, else the whole tensor), the min(k, item
// size) largest elements as strings "value:index", with ":label" when
// labels name the item's elements. Values are written as Triton's
// std::to_string writes them: integers in decimal, FP32 and FP64 with six
// decimals. Ties keep index order. The result is a STRING tensor of shape
// [batch, k'] when batched, else [k']. FP16, BOOL and STRING outputs have
// no ordering Triton classifies, and are InvalidArgument.
func TopK(t tensor.Tensor, k int64, batched bool, labels []string) (tensor.Tensor, error) {
	if k < 1 {
		return tensor.Tensor{}, status.Errorf(codes.InvalidArgument, "output %q: parameter %q must be a positive number of classes, not %d", t.Name, Parameter, k)
	}
	size := tensor.ElementSize(t.DType)
	if size == 0 || t.DType == predv1.DataType_DATA_TYPE_FLOAT16 || t.DType == predv1.DataType_DATA_TYPE_BOOL {
		return tensor.Tensor{}, status.Errorf(codes.InvalidArgument, "output %q: class result not available for output due to unsupported type %s", t.Name, t.DType)
	}
	items, dims := int64(1), t.Shape
	if batched {
		if len(t.Shape) == 0 {
			return tensor.Tensor{}, status.Errorf(codes.Internal, "output %q of a batching model has no batch dimension", t.Name)
		}
		items, dims = t.Shape[0], t.Shape[1:]
	}
	per, err := tensor.ElementCount(dims)
	if err != nil {
		return tensor.Tensor{}, status.Errorf(codes.Internal, "output %q: shape %v: %v", t.Name, t.Shape, err)
	}
	if int64(len(t.Data)) != items*per*int64(size) {
		return tensor.Tensor{}, status.Errorf(codes.Internal, "output %q has %d bytes for shape %v", t.Name, len(t.Data), t.Shape)
	}
	if !Labeled(labels, dims) {
		labels = nil
	}
	kept := min(k, per)
	value, format := reader(t.DType)
	var out []byte
	vals := make([]float64, per)
	idx := make([]int, 0, per)
	for item := range items {
		base := t.Data[item*per*int64(size):]
		for i := range vals {
			vals[i] = value(base[i*size:])
		}
		for _, i := range top(vals, int(kept), idx[:0]) {
			s := format(base[i*size:]) + ":" + strconv.Itoa(i)
			if labels != nil {
				s += ":" + labels[i]
			}
			out = tensor.AppendString(out, s)
		}
	}
	shape := []int64{kept}
	if batched {
		shape = []int64{items, kept}
	}
	return tensor.Tensor{Name: t.Name, DType: predv1.DataType_DATA_TYPE_STRING, Shape: shape, Data: out}, nil
}

// insertionLimit is the largest k for which top selects by insertion
// (k·n comparisons) rather than sorting every element (n·log n).
const insertionLimit = 32

// top appends to dst the indices of the k largest of vals, largest first,
// equal values in index order, NaN last.
func top(vals []float64, k int, dst []int) []int {
	if k > insertionLimit {
		for i := range vals {
			dst = append(dst, i)
		}
		slices.SortStableFunc(dst, func(a, b int) int { return compareDesc(vals[a], vals[b]) })
		return dst[:k]
	}
	for i, v := range vals {
		// Position after every kept value that orders before or equal
		// to v, so that ties keep index order.
		at := len(dst)
		for at > 0 && compareDesc(vals[dst[at-1]], v) > 0 {
			at--
		}
		if at >= k {
			continue
		}
		if len(dst) < k {
			dst = append(dst, 0)
		}
		copy(dst[at+1:], dst[at:len(dst)-1])
		dst[at] = i
	}
	return dst
}

// compareDesc orders larger values first and NaN last.
func compareDesc(a, b float64) int {
	switch {
	case math.IsNaN(a) && math.IsNaN(b):
		return 0
	case math.IsNaN(a):
		return 1
	case math.IsNaN(b):
		return -1
	}
	return cmp.Compare(b, a)
}

// reader returns, for a dtype, a function reading an element as float64
// for ordering (exact for every integer of up to 53 bits; larger 64-bit
// integers order by their nearest float64) and one formatting it as
// std::to_string does.
func reader(d predv1.DataType) (func([]byte) float64, func([]byte) string) {
	le := binary.LittleEndian
	signed := func(f func([]byte) int64) (func([]byte) float64, func([]byte) string) {
		return func(b []byte) float64 { return float64(f(b)) }, func(b []byte) string { return strconv.FormatInt(f(b), 10) }
	}
	unsigned := func(f func([]byte) uint64) (func([]byte) float64, func([]byte) string) {
		return func(b []byte) float64 { return float64(f(b)) }, func(b []byte) string { return strconv.FormatUint(f(b), 10) }
	}
	float := func(f func([]byte) float64) (func([]byte) float64, func([]byte) string) {
		return f, func(b []byte) string { return formatFloat(f(b)) }
	}
	switch d {
	case predv1.DataType_DATA_TYPE_INT8:
		return signed(func(b []byte) int64 { return int64(int8(b[0])) })
	case predv1.DataType_DATA_TYPE_INT16:
		return signed(func(b []byte) int64 { return int64(int16(le.Uint16(b))) })
	case predv1.DataType_DATA_TYPE_INT32:
		return signed(func(b []byte) int64 { return int64(int32(le.Uint32(b))) })
	case predv1.DataType_DATA_TYPE_INT64:
		return signed(func(b []byte) int64 { return int64(le.Uint64(b)) })
	case predv1.DataType_DATA_TYPE_UINT8:
		return unsigned(func(b []byte) uint64 { return uint64(b[0]) })
	case predv1.DataType_DATA_TYPE_UINT16:
		return unsigned(func(b []byte) uint64 { return uint64(le.Uint16(b)) })
	case predv1.DataType_DATA_TYPE_UINT32:
		return unsigned(func(b []byte) uint64 { return uint64(le.Uint32(b)) })
	case predv1.DataType_DATA_TYPE_UINT64:
		return unsigned(le.Uint64)
	case predv1.DataType_DATA_TYPE_FLOAT64:
		return float(func(b []byte) float64 { return math.Float64frombits(le.Uint64(b)) })
	default: // FLOAT32
		return float(func(b []byte) float64 { return float64(math.Float32frombits(le.Uint32(b))) })
	}
}

// formatFloat writes v as C's "%f" does (std::to_string): six decimals,
// and nan, inf and -inf for the values that have no digits.
func formatFloat(v float64) string {
	switch {
	case math.IsNaN(v):
		return "nan"
	case math.IsInf(v, 1):
		return "inf"
	case math.IsInf(v, -1):
		return "-inf"
	}
	return strconv.FormatFloat(v, 'f', 6, 64)
}
