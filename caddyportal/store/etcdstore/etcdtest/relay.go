package etcdtest

import (
	"net"
	"strings"
	"sync"
	"testing"
)

// Relay is a TCP relay between etcd clients and a server, which a test can
// cut to put the clients behind a network partition: while cut, no byte
// passes in either direction and new connections are held, but nothing is
// closed or reset, as when a link silently drops packets. Mend lets
// everything through again.
type Relay struct {
	t      testing.TB
	ln     net.Listener
	target string

	mu     sync.Mutex
	cut    bool
	mended *sync.Cond
	conns  []net.Conn
	closed bool
}

// NewRelay relays to the client URL endpoint (http://host:port) of a
// server and registers its shutdown with t.Cleanup.
func NewRelay(t testing.TB, endpoint string) *Relay {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &Relay{t: t, ln: ln, target: strings.TrimPrefix(endpoint, "http://")}
	r.mended = sync.NewCond(&r.mu)
	t.Cleanup(r.close)
	go r.accept()
	return r
}

// Endpoint is the client URL to give the etcd client instead of the
// server's.
func (r *Relay) Endpoint() string { return "http://" + r.ln.Addr().String() }

// Cut stops every byte from passing until Mend.
func (r *Relay) Cut() {
	r.mu.Lock()
	r.cut = true
	r.mu.Unlock()
}

// Mend lets bytes pass again, those held during the cut first.
func (r *Relay) Mend() {
	r.mu.Lock()
	r.cut = false
	r.mended.Broadcast()
	r.mu.Unlock()
}

// pass blocks while the relay is cut; false means it is shutting down.
func (r *Relay) pass() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for r.cut && !r.closed {
		r.mended.Wait()
	}
	return !r.closed
}

func (r *Relay) accept() {
	for {
		c, err := r.ln.Accept()
		if err != nil {
			return
		}
		go r.serve(c)
	}
}

// track keeps c to close at shutdown; false when that has begun.
func (r *Relay) track(c net.Conn) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return false
	}
	r.conns = append(r.conns, c)
	return true
}

func (r *Relay) serve(c net.Conn) {
	if !r.track(c) {
		c.Close()
		return
	}
	if !r.pass() {
		return
	}
	up, err := net.Dial("tcp", r.target)
	if err != nil {
		c.Close()
		return
	}
	if !r.track(up) {
		up.Close()
		return
	}
	go r.copy(up, c)
	r.copy(c, up)
}

// copy moves bytes from src to dst, holding each read while the relay is
// cut; it closes both when either side ends.
func (r *Relay) copy(dst, src net.Conn) {
	defer dst.Close()
	defer src.Close()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			if !r.pass() {
				return
			}
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

func (r *Relay) close() {
	r.mu.Lock()
	r.closed = true
	conns := r.conns
	r.conns = nil
	r.mended.Broadcast()
	r.mu.Unlock()
	r.ln.Close()
	for _, c := range conns {
		c.Close()
	}
}
