package redistest

import "syscall"

// sysProcAttr makes the kernel kill the server if the test binary dies
// without running its cleanups (a -timeout panic, a SIGKILL), so no
// redis-server outlives its test.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
