package process

import (
	"net"
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
