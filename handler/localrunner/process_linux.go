package localrunner

import "syscall"

// childAttr makes a child process die with the runner, even when the runner
// is killed without a chance to stop it.
func childAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
