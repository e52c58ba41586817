package process

import (
	"errors"
	"net"
	"strconv"
	"testing"
)

// TestDiagListenersMatchesProc: sock_diag finds the same listening socket
// as /proc/net/tcp, and nothing for a port nobody listens on.
func TestDiagListenersMatchesProc(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	port := l.Addr().(*net.TCPAddr).Port
	got, err := diagListeners(port)
	if err != nil {
		t.Fatalf("sock_diag: %v", err)
	}
	want := procListeners(port)
	if len(got) != 1 || len(want) != 1 {
		t.Fatalf("sock_diag %v, /proc %v: want one listener each", got, want)
	}
	for k := range want {
		if !got[k] {
			t.Fatalf("sock_diag %v, /proc %v", got, want)
		}
	}
	l.Close()
	if got, err := diagListeners(port); err != nil || len(got) != 0 {
		t.Fatalf("after close: %v, %v", got, err)
	}
}

// TestListenerAtFindsTheSocketAConnectionReaches: the exact sock_diag
// question names the listener a connection to the address would reach,
// whether it bound the address, a wildcard or the IPv6 dual-stack wildcard,
// and nothing when nobody listens; a host name is left to the fallback.
func TestListenerAtFindsTheSocketAConnectionReaches(t *testing.T) {
	var d diagConn
	defer d.Close()
	cases := []struct{ listen, host string }{
		{"127.0.0.1:0", "127.0.0.1"},
		{"0.0.0.0:0", "127.0.0.1"},
		{"0.0.0.0:0", "0.0.0.0"},
		{"[::]:0", "127.0.0.1"},
		{"[::]:0", "::1"},
		{"[::1]:0", "::"},
	}
	for _, c := range cases {
		l, err := net.Listen("tcp", c.listen)
		if err != nil {
			t.Fatalf("listen %s: %v", c.listen, err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		want := procListeners(port)
		got, err := d.listenerAt(dialedIP(c.host), port)
		if err != nil || len(want) != 1 || !want[strconv.FormatUint(uint64(got), 10)] {
			t.Errorf("listening on %s, asked for %s: inode %d, %v; /proc says %v", c.listen, c.host, got, err, want)
		}
		l.Close()
		if got, err := d.listenerAt(dialedIP(c.host), port); got != 0 || err != nil {
			t.Errorf("closed listener on %s, asked for %s: inode %d, %v", c.listen, c.host, got, err)
		}
	}
	// An IPv6-only listener is not what a connection to the IPv4 address
	// reaches.
	l6, err := net.Listen("tcp6", "[::1]:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l6.Close()
	if got, err := d.listenerAt(dialedIP("127.0.0.1"), l6.Addr().(*net.TCPAddr).Port); got != 0 || err != nil {
		t.Errorf("[::1] listener asked for 127.0.0.1: inode %d, %v", got, err)
	}
	if _, err := d.listenerAt(dialedIP("localhost"), 80); !errors.Is(err, errNotAnIP) {
		t.Errorf("host name: %v", err)
	}
	// Closed, it still answers (each question on a socket of its own).
	d.Close()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if got, err := d.listenerAt(dialedIP("127.0.0.1"), l.Addr().(*net.TCPAddr).Port); got == 0 || err != nil {
		t.Errorf("after Close: inode %d, %v", got, err)
	}
}
