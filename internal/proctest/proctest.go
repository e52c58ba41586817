// Package proctest catches dashboard processes a test run left behind.
// The portal deliberately leaves running environments to the next start
// (which adopts them), so a test that ends without ending its sessions
// leaks their processes into the machine and the next test run; Exit
// makes that a failure of the run instead of a silent leftover.
package proctest

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/caddyportal/caddyportal/internal/procfs"
)

// Marked returns the PIDs of this process's descendants whose environment
// sets variable name, not empty (the process spawner's marker).
func Marked(name string) []int {
	pids, _ := procfs.PIDs()
	parent := map[int]int{}
	for _, pid := range pids {
		if p, err := procfs.ReadStat(pid); err == nil {
			parent[pid] = p.PPID
		}
	}
	self := os.Getpid()
	var out []int
	var env []byte
	for pid := range parent {
		if !descends(pid, self, parent) {
			continue
		}
		var v string
		if v, env = procfs.Env(pid, name, env); v != "" {
			out = append(out, pid)
		}
	}
	return out
}

// descends reports whether pid has ancestor among its parents.
func descends(pid, ancestor int, parent map[int]int) bool {
	for range len(parent) {
		p, ok := parent[pid]
		if !ok || p <= 1 {
			return false
		}
		if p == ancestor {
			return true
		}
		pid = p
	}
	return false
}

// Exit ends a test binary with code, or with 1 if descendants marked
// with name are still running; those are named on stderr and killed
// (with their process groups) so the leak ends with the run.
func Exit(code int, name string) {
	if left := Marked(name); len(left) > 0 {
		fmt.Fprintf(os.Stderr, "the tests left %d processes marked %s running: %s\n", len(left), name, describe(left))
		for _, pid := range left {
			_ = syscall.Kill(-pid, syscall.SIGKILL)
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		code = max(code, 1)
	}
	os.Exit(code)
}

// describe names each PID with its command line.
func describe(pids []int) string {
	var parts []string
	for _, pid := range pids {
		cmd, _ := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "cmdline"))
		parts = append(parts, fmt.Sprintf("%d (%s)", pid, strings.TrimSpace(string(bytes.ReplaceAll(cmd, []byte{0}, []byte{' '})))))
	}
	return strings.Join(parts, ", ")
}
