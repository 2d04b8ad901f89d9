//go:build !linux

package preptest

import "os/exec"

// dieWithParent is a no-op where the kernel cannot kill a child with its
// parent.
func dieWithParent(*exec.Cmd) {}
