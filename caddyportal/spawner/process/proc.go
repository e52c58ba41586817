package process

import (
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/caddyportal/caddyportal/internal/procfs"
)

// scanned is one live process found in /proc, with its marker ("" for none).
type scanned struct {
	procfs.Stat
	marker string
}

// scanAll returns every live (not zombie) process but this one, with its
// marker.
func scanAll() ([]scanned, error) {
	list, err := procfs.PIDs()
	if err != nil {
		return nil, err
	}
	self := os.Getpid()
	out := make([]scanned, 0, len(list))
	env := make([]byte, 0, 8<<10) // reused: environments are up to a few hundred KB
	for _, pid := range list {
		if pid == self {
			continue
		}
		p, err := procfs.ReadStat(pid)
		if err != nil || p.Dead() {
			continue
		}
		var m string
		m, env = procfs.Env(pid, MarkerVar, env)
		out = append(out, scanned{Stat: p, marker: m})
	}
	return out, nil
}

// procScans shares passes over /proc between concurrent callers. A pass
// reads the environment of every process on the machine, and each stop
// needs one to find its environment's processes and one to confirm none
// is left, so a class of N environments ending together cost 2N passes
// over N processes. One pass runs at a time; callers that need a pass
// while one is under way share the next.
type procScans struct {
	mu      sync.Mutex
	running bool
	last    *procScan // the newest pass begun
	next    *procScan // the pass that begins when the running one ends
}

// procScan is one pass over /proc.
type procScan struct {
	begun time.Time // before /proc was listed
	done  chan struct{}
	procs []scanned // read-only once done is closed
	err   error
}

// since returns the processes of a pass that listed /proc no earlier than
// t: every process alive at t and still alive when the pass listed /proc
// is in it. The slice is shared: callers must not modify it.
func (ps *procScans) since(t time.Time) ([]scanned, error) {
	ps.mu.Lock()
	p := ps.last
	switch {
	case p != nil && !p.begun.Before(t):
	case !ps.running:
		p = &procScan{begun: time.Now(), done: make(chan struct{})}
		ps.last, ps.running = p, true
		ps.mu.Unlock()
		ps.run(p)
		return p.procs, p.err
	default:
		// The pass under way began too early: wait for the next one.
		if ps.next == nil {
			ps.next = &procScan{done: make(chan struct{})}
		}
		p = ps.next
	}
	ps.mu.Unlock()
	<-p.done
	return p.procs, p.err
}

// run makes pass p, then begins the pass callers queued for meanwhile.
func (ps *procScans) run(p *procScan) {
	p.procs, p.err = scanAll()
	close(p.done)
	ps.mu.Lock()
	defer ps.mu.Unlock()
	n := ps.next
	if n == nil {
		ps.running = false
		return
	}
	ps.next = nil
	n.begun = time.Now()
	ps.last = n
	go ps.run(n)
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
