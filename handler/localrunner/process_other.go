//go:build !linux

package localrunner

import "syscall"

// childAttr: outside Linux there is no parent-death signal; the runner
// stops its children on every orderly exit.
func childAttr() *syscall.SysProcAttr { return nil }
