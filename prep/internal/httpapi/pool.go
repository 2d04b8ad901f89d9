package httpapi

import "sync"

// Bounds of the buffers kept for reuse; larger ones, from rare large
// requests, are left to the garbage collector instead of pinning memory.
const (
	maxPooledBytes  = 8 << 20 // request bodies and encoded images
	maxPooledFloats = 4 << 20 // tensors: 3x1182x1182 and below
)

// slicePool recycles slices so that a request allocates no buffer
// proportional to its image.
type slicePool[E any] struct {
	p      sync.Pool
	maxCap int
}

// get returns a slice of length n (contents undefined) to put back later.
func (sp *slicePool[E]) get(n int) *[]E {
	b, _ := sp.p.Get().(*[]E)
	if b == nil {
		b = new([]E)
	}
	if cap(*b) < n {
		*b = make([]E, n)
	}
	*b = (*b)[:n]
	return b
}

func (sp *slicePool[E]) put(b *[]E) {
	if cap(*b) <= sp.maxCap {
		sp.p.Put(b)
	}
}
