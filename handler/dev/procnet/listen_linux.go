// Package procnet tells whether a child process really listens on a port.
package procnet

import (
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// ListensOn reports whether a process in the process group pgid holds the
// listening socket of addr, read from /proc: a port chosen free may have
// been taken by another server since, and a dial alone would take that
// server for the child. Where /proc cannot tell, it says yes.
func ListensOn(pgid int, addr string) bool {
	_, portText, err := net.SplitHostPort(addr)
	if err != nil {
		return true
	}
	port, _ := strconv.Atoi(portText)
	inodes := map[string]bool{} // socket inodes listening on port
	for _, f := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		raw, err := os.ReadFile(f)
		if err != nil {
			return true
		}
		for _, line := range strings.Split(string(raw), "\n")[1:] {
			fields := strings.Fields(line)
			if len(fields) < 10 || fields[3] != "0A" { // 0A: LISTEN
				continue
			}
			_, hexPort, _ := strings.Cut(fields[1], ":")
			if p, err := strconv.ParseInt(hexPort, 16, 32); err == nil && int(p) == port {
				inodes["socket:["+fields[9]+"]"] = true
			}
		}
	}
	procs, _ := filepath.Glob("/proc/[0-9]*")
	for _, dir := range procs {
		pid, _ := strconv.Atoi(filepath.Base(dir))
		if g, err := syscall.Getpgid(pid); err != nil || g != pgid {
			continue
		}
		fds, _ := os.ReadDir(filepath.Join(dir, "fd"))
		for _, fd := range fds {
			if link, err := os.Readlink(filepath.Join(dir, "fd", fd.Name())); err == nil && inodes[link] {
				return true
			}
		}
	}
	return false
}
