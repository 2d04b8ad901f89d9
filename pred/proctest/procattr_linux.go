package proctest

import (
	"os/exec"
	"syscall"
)

// dieWithParent makes the kernel kill the process if the test process dies
// without stopping it (e.g. killed by go test's timeout).
func dieWithParent(cmd *exec.Cmd) {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
}
