package localrunner

import "syscall"

// childAttr: Windows has neither process groups in this sense nor a
// parent-death signal; the runner stops its children on every orderly exit.
func childAttr() *syscall.SysProcAttr { return nil }
