//go:build linux && cgo

package main

/*
#include <malloc.h>

// prepred_malloc_config bounds glibc's malloc arenas and lets it return
// freed memory at the top of the heap beyond trim bytes; 0 where the C
// library has no such settings (musl).
static int prepred_malloc_config(int arenas, int trim) {
#if defined(M_ARENA_MAX) && defined(M_TRIM_THRESHOLD)
	return mallopt(M_ARENA_MAX, arenas) && mallopt(M_TRIM_THRESHOLD, trim);
#else
	return 0;
#endif
}
*/
import "C"

// configureMalloc sets the C allocator ONNX Runtime allocates with to
// mallocArenas arenas and a trim threshold of mallocTrimBytes, unless the
// environment configures glibc's malloc itself (GLIBC_TUNABLES,
// MALLOC_ARENA_MAX). It reports whether it did.
func configureMalloc(getenv func(string) string) bool {
	if getenv("GLIBC_TUNABLES") != "" || getenv("MALLOC_ARENA_MAX") != "" {
		return false
	}
	return C.prepred_malloc_config(mallocArenas, mallocTrimBytes) == 1
}
