// Package postprocess turns the raw output tensor of a classification model
// into probabilities, top-k indices and labels.
package postprocess

import (
	"cmp"
	"encoding/binary"
	"fmt"
	"math"
	"slices"
	"strconv"

	predv1 "github.com/prepred/prepred/api/gen/prepred/pred/v1"
)

// OutputError is a model output that cannot be turned into a prediction:
// the wrong size or type, or values that are not finite numbers.
type OutputError struct {
	Message string
}

func (e *OutputError) Error() string { return e.Message }

// Scores decodes t, which must hold exactly n little-endian FLOAT32 or
// FLOAT64 values (the scores of one item), and checks that every value is
// finite, so that nothing downstream can produce NaN or break JSON encoding.
func Scores(t *predv1.Tensor, n int) ([]float64, error) {
	var size int
	switch t.GetDtype() {
	case predv1.DataType_DATA_TYPE_FLOAT32:
		size = 4
	case predv1.DataType_DATA_TYPE_FLOAT64:
		size = 8
	default:
		return nil, &OutputError{Message: fmt.Sprintf("model output %q has data type %v; only FLOAT32 and FLOAT64 outputs are supported", t.GetName(), t.GetDtype())}
	}
	raw := t.GetRawData()
	if len(raw) != n*size {
		return nil, &OutputError{Message: fmt.Sprintf("model output %q has %d bytes (shape %v), want %d values of %d bytes", t.GetName(), len(raw), t.GetShape(), n, size)}
	}
	out := make([]float64, n)
	for i := range out {
		if size == 4 {
			out[i] = float64(math.Float32frombits(binary.LittleEndian.Uint32(raw[4*i:])))
		} else {
			out[i] = math.Float64frombits(binary.LittleEndian.Uint64(raw[8*i:]))
		}
		if math.IsNaN(out[i]) || math.IsInf(out[i], 0) {
			return nil, &OutputError{Message: fmt.Sprintf("model output %q holds %v at position %d; the model produced a non-finite score", t.GetName(), out[i], i)}
		}
	}
	return out, nil
}

// Probabilities turns finite scores (as returned by Scores) into class
// probabilities according to kind, in place, and returns them: softmax for
// logits, unchanged for probabilities.
func Probabilities(kind predv1.OutputKind, scores []float64) ([]float64, error) {
	switch kind {
	case predv1.OutputKind_OUTPUT_KIND_LOGITS:
		Softmax(scores)
		return scores, nil
	case predv1.OutputKind_OUTPUT_KIND_PROBABILITIES:
		return scores, nil
	default:
		return nil, &OutputError{Message: fmt.Sprintf("unsupported output kind %v", kind)}
	}
}

// Softmax replaces the finite values of x by exp(x_i - max) / sum, computed
// in float64 with the maximum subtracted first so that large logits cannot
// overflow.
func Softmax(x []float64) {
	if len(x) == 0 {
		return
	}
	m := slices.Max(x)
	var sum float64
	for i, v := range x {
		e := math.Exp(v - m)
		x[i] = e
		sum += e
	}
	// sum >= 1: the maximum contributes exp(0).
	for i := range x {
		x[i] /= sum
	}
}

// TopK returns the indices of the k largest values of p, largest first;
// equal values keep index order. k is clamped to [0, len(p)].
func TopK(p []float64, k int) []int {
	k = max(0, min(k, len(p)))
	idx := make([]int, len(p))
	for i := range idx {
		idx[i] = i
	}
	slices.SortStableFunc(idx, func(a, b int) int { return cmp.Compare(p[b], p[a]) })
	return idx[:k:k]
}

// Argmax returns the index of the largest value of p (the first one on
// ties), or -1 for an empty p.
func Argmax(p []float64) int {
	best := -1
	for i, v := range p {
		if best < 0 || v > p[best] {
			best = i
		}
	}
	return best
}

// Label names class i: labels[i], or i in decimal when the model announces
// no labels.
func Label(labels []string, i int) string {
	if i >= 0 && i < len(labels) {
		return labels[i]
	}
	return strconv.Itoa(i)
}
