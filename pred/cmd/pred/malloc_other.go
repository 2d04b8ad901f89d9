//go:build !linux || !cgo

package main

// configureMalloc does nothing where the C allocator is not glibc's.
func configureMalloc(func(string) string) bool { return false }
