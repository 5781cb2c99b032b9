//go:build !linux

package testbin

import "os/exec"

// DieWithParent does nothing where the kernel cannot tie a child's life to
// its parent's.
func DieWithParent(cmd *exec.Cmd) {}
