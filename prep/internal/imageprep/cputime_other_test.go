//go:build !linux

package imageprep

import "testing"

// cpuTimer reports nothing where thread CPU time is not available.
func cpuTimer(*testing.B) func() { return func() {} }
