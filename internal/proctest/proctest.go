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
)

// Marked returns the PIDs of this process's descendants whose environment
// holds a variable named name (the process spawner's marker).
func Marked(name string) []int {
	entries, _ := os.ReadDir("/proc")
	parent := map[int]int{}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if ppid, ok := parentOf(pid); ok {
			parent[pid] = ppid
		}
	}
	self := os.Getpid()
	key := []byte(name + "=")
	var out []int
	for pid := range parent {
		if !descends(pid, self, parent) {
			continue
		}
		env, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "environ"))
		if err != nil {
			continue
		}
		for _, v := range bytes.Split(env, []byte{0}) {
			if bytes.HasPrefix(v, key) {
				out = append(out, pid)
				break
			}
		}
	}
	return out
}

// parentOf reads pid's parent from /proc/<pid>/stat; the command name
// in parentheses may hold spaces and parentheses, so the fields are
// counted from its last ')'.
func parentOf(pid int) (int, bool) {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return 0, false
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, false
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 2 {
		return 0, false
	}
	ppid, err := strconv.Atoi(f[1])
	return ppid, err == nil
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
