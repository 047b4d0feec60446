package bench

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// procStatus reads a size field of /proc/<pid>/status (VmRSS, VmHWM) in
// bytes.
func procStatus(b testing.TB, pid int, field string) int64 {
	b.Helper()
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		b.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			if err != nil {
				b.Fatalf("/proc/%d/status %s: %v", pid, field, err)
			}
			return kb << 10
		}
	}
	b.Fatalf("/proc/%d/status has no %s", pid, field)
	return 0
}

// processesOf lists the processes whose executable lies in dir (the test's
// CNI bin dir: the plugin, its agent, the reference plugins).
func processesOf(dir string) []string {
	entries, _ := os.ReadDir("/proc")
	var out []string
	for _, e := range entries {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		exe, err := os.Readlink(filepath.Join("/proc", e.Name(), "exe"))
		if err == nil && filepath.Dir(exe) == dir {
			out = append(out, e.Name()+" "+filepath.Base(exe))
		}
	}
	return out
}

// tcpConnsTo counts the established TCP connections that process pid holds
// (sockets among its open files) towards port on 127.0.0.1, read from
// /proc/<pid>/net/tcp, which shows the process's own netns.
func tcpConnsTo(b testing.TB, pid int, port int) int {
	b.Helper()
	inodes := map[string]bool{}
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		b.Fatal(err)
	}
	for _, fd := range fds {
		target, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, fd.Name()))
		if inode, ok := strings.CutPrefix(target, "socket:["); err == nil && ok {
			inodes[strings.TrimSuffix(inode, "]")] = true
		}
	}
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/net/tcp", pid))
	if err != nil {
		b.Fatal(err)
	}
	return countTCP(string(data), inodes, fmt.Sprintf("0100007F:%04X", port))
}

// countTCP counts the lines of a /proc/net/tcp table in state ESTABLISHED
// (01) whose remote address is remote and whose inode is in inodes.
func countTCP(table string, inodes map[string]bool, remote string) int {
	n := 0
	for _, line := range strings.Split(table, "\n")[1:] {
		// sl local rem st tx:rx tr:when retrnsmt uid timeout inode ...
		f := strings.Fields(line)
		if len(f) >= 10 && f[2] == remote && f[3] == "01" && inodes[f[9]] {
			n++
		}
	}
	return n
}

// portOf returns the port of a host:port address.
func portOf(b testing.TB, addr string) int {
	b.Helper()
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		b.Fatal(err)
	}
	port, err := strconv.Atoi(p)
	if err != nil {
		b.Fatalf("port of %q: %v", addr, err)
	}
	return port
}
