// Package procfs reads what Linux's /proc says about processes: the fields
// of /proc/<pid>/stat the process spawner and the tests need, a variable of
// the environment a process started with, and the list of processes. It
// reads with plain system calls, because the spawner's stops make passes
// over every process on the machine.
package procfs

import (
	"bytes"
	"errors"
	"os"
	"strconv"
	"strings"
	"syscall"
)

// Stat is what /proc/<pid>/stat says about one process.
type Stat struct {
	PID, PPID, PGID, SID int
	// State is R, S, D, Z, ...
	State byte
	// Start is the start time in clock ticks after boot (field 22): with
	// the PID, it names a process that PID reuse cannot fake.
	Start uint64
}

// Dead reports a process that has exited and only waits to be reaped: it
// holds no resources and runs nothing, so it does not count as left over.
func (p Stat) Dead() bool { return p.State == 'Z' || p.State == 'X' }

// ReadStat parses /proc/<pid>/stat. The command name (field 2) may contain
// spaces and parentheses, so fields are counted from its last ')'.
func ReadStat(pid int) (Stat, error) {
	var buf [512]byte
	b, err := Read("/proc/"+strconv.Itoa(pid)+"/stat", buf[:0])
	if err != nil {
		return Stat{}, err
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return Stat{}, errors.New("malformed /proc stat")
	}
	f := strings.Fields(string(b[i+1:]))
	// f[0] is field 3 (state), so field n is f[n-3].
	if len(f) < 20 || len(f[0]) != 1 {
		return Stat{}, errors.New("malformed /proc stat")
	}
	p := Stat{PID: pid, State: f[0][0]}
	if p.PPID, err = strconv.Atoi(f[4-3]); err != nil {
		return Stat{}, err
	}
	if p.PGID, err = strconv.Atoi(f[5-3]); err != nil {
		return Stat{}, err
	}
	if p.SID, err = strconv.Atoi(f[6-3]); err != nil {
		return Stat{}, err
	}
	if p.Start, err = strconv.ParseUint(f[22-3], 10, 64); err != nil {
		return Stat{}, err
	}
	return p, nil
}

// PIDs lists the processes in /proc.
func PIDs() ([]int, error) {
	d, err := os.Open("/proc")
	if err != nil {
		return nil, err
	}
	defer d.Close()
	names, err := d.Readdirnames(-1)
	if err != nil {
		return nil, err
	}
	out := make([]int, 0, len(names))
	for _, n := range names {
		if pid, err := strconv.Atoi(n); err == nil && pid > 0 {
			out = append(out, pid)
		}
	}
	return out, nil
}

// Env returns the value of variable name in the environment pid started
// with, or "" (not set, process gone, or not readable by us), reading it
// into buf; it returns buf, grown, for the next call.
func Env(pid int, name string, buf []byte) (string, []byte) {
	b, err := Read("/proc/"+strconv.Itoa(pid)+"/environ", buf[:0])
	if err != nil {
		return "", b
	}
	key := []byte(name + "=")
	for kv := range bytes.SplitSeq(b, []byte{0}) {
		if bytes.HasPrefix(kv, key) {
			return string(kv[len(key):]), b
		}
	}
	return "", b
}

// Read appends the content of a /proc file to buf. It calls the system
// directly: os.ReadFile would also stat the file and try to add it to the
// runtime's poller, tripling the system calls of a pass over /proc, which
// makes two such calls per process on the machine.
func Read(path string, buf []byte) ([]byte, error) {
	fd, err := syscall.Open(path, syscall.O_RDONLY|syscall.O_CLOEXEC, 0)
	if err != nil {
		return buf, err
	}
	defer syscall.Close(fd)
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := syscall.Read(fd, buf[len(buf):cap(buf)])
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			return buf, err
		}
		if n == 0 {
			return buf, nil
		}
		buf = buf[:len(buf)+n]
	}
}

// Capabilities Linux numbers, for HasCapabilities.
const (
	CapSetGID = 6
	CapSetUID = 7
)

// HasCapabilities reports whether this process holds every capability
// named (by number) in its effective set: what decides, rather than being
// root, whether it may switch users (a container's root often lacks them).
func HasCapabilities(caps ...int) (bool, error) {
	b, err := Read("/proc/self/status", nil)
	if err != nil {
		return false, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		hex, ok := strings.CutPrefix(line, "CapEff:")
		if !ok {
			continue
		}
		set, err := strconv.ParseUint(strings.TrimSpace(hex), 16, 64)
		if err != nil {
			return false, err
		}
		for _, c := range caps {
			if set&(1<<c) == 0 {
				return false, nil
			}
		}
		return true, nil
	}
	return false, errors.New("procfs: no CapEff in /proc/self/status")
}
