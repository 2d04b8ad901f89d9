package imageprep

import (
	"math/bits"
	"sync"
)

// Buffers are pooled by power-of-two capacity class, so that a request is
// served by a buffer of the right size instead of whichever one a single
// pool hands out.

// maxPooledClass is the largest pooled capacity, 1<<26 elements: a 16 MP
// RGBX image in bytes. Larger buffers, for rarer inputs, are left to the GC.
const maxPooledClass = 26

// slicePool hands out slices of T by size class.
type slicePool[T any] struct {
	classes [maxPooledClass + 1]sync.Pool // *[]T with cap 1<<class
}

// get returns a slice of length n (contents undefined), reused when possible.
func (p *slicePool[T]) get(n int) *[]T {
	c := bits.Len(uint(max(n, 1) - 1))
	if c > maxPooledClass {
		s := make([]T, n)
		return &s
	}
	if s, ok := p.classes[c].Get().(*[]T); ok {
		*s = (*s)[:n]
		return s
	}
	s := make([]T, n, 1<<c)
	return &s
}

// put returns s, from get, to the pool.
func (p *slicePool[T]) put(s *[]T) {
	if c := bits.Len(uint(cap(*s)) - 1); c <= maxPooledClass && cap(*s) == 1<<c {
		p.classes[c].Put(s)
	}
}

var (
	bytePool  slicePool[byte]
	int64Pool slicePool[int64]
)

func getBuf(n int) *[]byte { return bytePool.get(n) }
func putBuf(b *[]byte)     { bytePool.put(b) }

// getImageBuf returns a buffer for a w x h RGBX image plus imagePad bytes.
func getImageBuf(w, h int) *[]byte { return getBuf(w*h*pixelSize + imagePad) }

func getInt64s(n int) *[]int64 { return int64Pool.get(n) }
func putInt64s(b *[]int64)     { int64Pool.put(b) }
