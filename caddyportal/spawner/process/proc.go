package process

import (
	"bytes"
	"errors"
	"os"
	"strconv"
	"strings"
)

// procInfo is what /proc/<pid>/stat says about one process.
type procInfo struct {
	pid, pgid, sid int
	state          byte   // R, S, D, Z, ...
	start          uint64 // start time in clock ticks after boot (field 22)
}

// dead reports a process that has exited and only waits to be reaped: it
// holds no resources and runs nothing, so it does not count as left over.
func (p procInfo) dead() bool { return p.state == 'Z' || p.state == 'X' }

// readStat parses /proc/<pid>/stat. The command name (field 2) may contain
// spaces and parentheses, so fields are counted from its last ')'.
func readStat(pid int) (procInfo, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return procInfo{}, err
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return procInfo{}, errors.New("malformed /proc stat")
	}
	f := strings.Fields(string(b[i+1:]))
	// f[0] is field 3 (state), so field n is f[n-3].
	if len(f) < 20 || len(f[0]) != 1 {
		return procInfo{}, errors.New("malformed /proc stat")
	}
	p := procInfo{pid: pid, state: f[0][0]}
	if p.pgid, err = strconv.Atoi(f[5-3]); err != nil {
		return procInfo{}, err
	}
	if p.sid, err = strconv.Atoi(f[6-3]); err != nil {
		return procInfo{}, err
	}
	if p.start, err = strconv.ParseUint(f[22-3], 10, 64); err != nil {
		return procInfo{}, err
	}
	return p, nil
}

// pids lists the processes in /proc.
func pids() ([]int, error) {
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

// markerOf returns the value of the marker variable in the environment pid
// started with, or "" (no marker, process gone, or not readable by us).
func markerOf(pid int) string {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/environ")
	if err != nil {
		return ""
	}
	key := []byte(markerVar + "=")
	for _, kv := range bytes.Split(b, []byte{0}) {
		if bytes.HasPrefix(kv, key) {
			return string(kv[len(key):])
		}
	}
	return ""
}

// scanned is one live process of interest found in /proc.
type scanned struct {
	procInfo
	marker string
}

// scan returns every live (not zombie) process whose marker starts with
// prefix, or whose process group or session is in groups.
func scan(prefix string, groups map[int]bool) ([]scanned, error) {
	list, err := pids()
	if err != nil {
		return nil, err
	}
	self := os.Getpid()
	var out []scanned
	for _, pid := range list {
		if pid == self {
			continue
		}
		p, err := readStat(pid)
		if err != nil || p.dead() {
			continue
		}
		m := markerOf(pid)
		if (m != "" && strings.HasPrefix(m, prefix)) || groups[p.pgid] || groups[p.sid] {
			out = append(out, scanned{procInfo: p, marker: m})
		}
	}
	return out, nil
}

// listeners returns the socket inodes listening on TCP port (any address,
// IPv4 or IPv6) in the portal's network namespace, which a dashboard shares
// (bubblewrap keeps the network).
func listeners(port int) map[string]bool {
	if out, err := diagListeners(port); err == nil {
		return out
	}
	// No sock_diag (a kernel without it, a seccomp filter): the same from
	// /proc, which is slower.
	return procListeners(port)
}

// procListeners is listeners from /proc/net/tcp and /proc/net/tcp6.
func procListeners(port int) map[string]bool {
	out := map[string]bool{}
	hexPort := strings.ToUpper(strconv.FormatInt(int64(port), 16))
	for _, f := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n")[1:] {
			fields := strings.Fields(line)
			if len(fields) < 10 || fields[3] != "0A" { // 0A: LISTEN
				continue
			}
			_, p, ok := strings.Cut(fields[1], ":")
			if ok && strings.TrimLeft(p, "0") == hexPort {
				out[fields[9]] = true
			}
		}
	}
	return out
}

// ownsSocket reports whether pid has one of the socket inodes open.
func ownsSocket(pid int, inodes map[string]bool) bool {
	dir := "/proc/" + strconv.Itoa(pid) + "/fd"
	d, err := os.Open(dir)
	if err != nil {
		return false
	}
	defer d.Close()
	names, _ := d.Readdirnames(-1)
	for _, n := range names {
		link, err := os.Readlink(dir + "/" + n)
		if err == nil && strings.HasPrefix(link, "socket:[") && inodes[strings.TrimSuffix(link[len("socket:["):], "]")] {
			return true
		}
	}
	return false
}
