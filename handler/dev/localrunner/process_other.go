//go:build !linux && !windows

package localrunner

import "syscall"

// childAttr puts a child process in its own process group, so that a
// Ctrl-C in the terminal reaches the runner only and the runner stops its
// children in order. Outside Linux there is no parent-death signal.
func childAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
