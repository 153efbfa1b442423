package localrunner

import "syscall"

// childAttr puts a child process in its own process group, so that a
// Ctrl-C in the terminal reaches the runner only and the runner stops its
// children in order, and makes the child die with the runner even when the
// runner is killed without a chance to stop it.
func childAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
