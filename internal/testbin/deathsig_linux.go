package testbin

import (
	"os/exec"
	"syscall"
)

// DieWithParent has the kernel kill cmd's process when the test binary
// that started it dies: a test binary killed by its timeout must not leave
// servers behind holding database connections and ports for the packages
// tested after it.
func DieWithParent(cmd *exec.Cmd) {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
}
