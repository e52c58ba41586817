// Package etcdtest runs a real single-member etcd server for tests: the
// etcd store's own tests and end-to-end tests with several portal replicas
// sharing one etcd.
//
// The server is the etcd binary installed on the machine (Debian package
// etcd-server, /usr/bin/etcd), started on free 127.0.0.1 ports with its data
// in a fresh directory (on /dev/shm when available, because etcd syncs its
// write-ahead log on every commit and tmpfs makes that cheap). A missing
// binary fails the test with instructions; it never skips.
package etcdtest

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// DefaultBinary is where the Debian package etcd-server installs etcd. The
// environment variable ETCD_BIN overrides it.
const DefaultBinary = "/usr/bin/etcd"

// readyWithin bounds how long Start and Restart wait for the server to
// report itself healthy. It is a liveness guard, not a speed assertion.
const readyWithin = 30 * time.Second

// Server is a running (or stopped) etcd server owned by one test.
type Server struct {
	t         testing.TB
	bin       string
	dir       string
	clientURL string
	peerURL   string
	args      []string

	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{} // closed when cmd has exited
	out    *syncBuffer
}

// Start starts an etcd server and registers its shutdown and the removal of
// its data with t.Cleanup. extraArgs are appended to the etcd command line
// (for example "--max-txn-ops", "8"). Start fails the test if etcd is not
// installed or does not become healthy.
func Start(t testing.TB, extraArgs ...string) *Server {
	t.Helper()
	bin := os.Getenv("ETCD_BIN")
	if bin == "" {
		bin = DefaultBinary
	}
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("etcdtest: the etcd server binary %s is missing (%v); these tests need a real etcd: "+
			"install it with `apt-get install -y etcd-server` or point ETCD_BIN at an etcd binary", bin, err)
	}
	dir := dataDir(t)
	s := &Server{t: t, bin: bin, dir: dir, args: extraArgs}
	t.Cleanup(func() {
		s.Stop()
		os.RemoveAll(dir)
	})
	// Free ports are picked by binding and releasing them, so another
	// process can take one before etcd binds it: retry with new ports.
	var err error
	for range 3 {
		s.clientURL = "http://" + freeAddr(t)
		s.peerURL = "http://" + freeAddr(t)
		if err = s.start(); err == nil {
			return s
		}
		s.Stop()
		os.RemoveAll(dir)
		if mkErr := os.MkdirAll(dir, 0o700); mkErr != nil {
			t.Fatalf("etcdtest: %v", mkErr)
		}
	}
	t.Fatalf("etcdtest: starting etcd: %v", err)
	return nil
}

// Endpoints returns the client URLs to give the etcd client.
func (s *Server) Endpoints() []string { return []string{s.clientURL} }

// Client returns a plain etcd client of the server, closed on cleanup, for
// tests to look behind a store's back.
func (s *Server) Client(t testing.TB) *clientv3.Client {
	t.Helper()
	cli, err := clientv3.New(clientv3.Config{Endpoints: s.Endpoints(), DialTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	return cli
}

// Stop kills the server (SIGKILL, like a crash) and waits for it to exit.
// Its data stays, so Restart brings back the same cluster. Stopping a
// stopped server does nothing.
func (s *Server) Stop() {
	s.mu.Lock()
	cmd, exited := s.cmd, s.exited
	s.cmd = nil
	s.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Kill()
	<-exited
}

// Restart starts a stopped server again on the same ports and data
// directory and waits until it is healthy. It fails the test on error.
func (s *Server) Restart() {
	s.t.Helper()
	s.Stop()
	if err := s.start(); err != nil {
		s.t.Fatalf("etcdtest: restarting etcd: %v", err)
	}
}

func (s *Server) start() error {
	const name = "etcdtest"
	args := []string{
		"--name", name,
		"--data-dir", s.dir,
		"--listen-client-urls", s.clientURL,
		"--advertise-client-urls", s.clientURL,
		"--listen-peer-urls", s.peerURL,
		"--initial-advertise-peer-urls", s.peerURL,
		"--initial-cluster", name + "=" + s.peerURL,
		"--initial-cluster-state", "new",
		"--initial-cluster-token", "etcdtest",
		"--logger", "zap",
		"--log-level", "error",
		// A single member elects itself after one election timeout; short
		// timings keep start and restart fast on a loaded test machine.
		"--heartbeat-interval", "20",
		"--election-timeout", "200",
	}
	args = append(args, s.args...)
	cmd := exec.Command(s.bin, args...)
	out := &syncBuffer{}
	cmd.Stdout = out
	cmd.Stderr = out
	if err := cmd.Start(); err != nil {
		return err
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()
	s.mu.Lock()
	s.cmd, s.exited, s.out = cmd, exited, out
	s.mu.Unlock()
	return s.waitHealthy(exited, out)
}

// waitHealthy polls the /health endpoint, which reports true once the
// member has a leader and serves requests.
func (s *Server) waitHealthy(exited <-chan struct{}, out *syncBuffer) error {
	ctx, cancel := context.WithTimeout(context.Background(), readyWithin)
	defer cancel()
	client := &http.Client{Timeout: time.Second}
	var last string
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, s.clientURL+"/health", nil)
		resp, err := client.Do(req)
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK && bytes.Contains(body, []byte(`"health":"true"`)) {
				return nil
			}
			last = fmt.Sprintf("%s: %s", resp.Status, body)
		} else {
			last = err.Error()
		}
		select {
		case <-exited:
			return fmt.Errorf("etcd exited during start-up; its output:\n%s", out.String())
		case <-ctx.Done():
			return fmt.Errorf("etcd at %s not healthy within %v (last answer: %s); its output:\n%s",
				s.clientURL, readyWithin, last, out.String())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// dataDir makes an empty, private data directory.
func dataDir(t testing.TB) string {
	t.Helper()
	if fi, err := os.Stat("/dev/shm"); err == nil && fi.IsDir() {
		if dir, err := os.MkdirTemp("/dev/shm", "etcdtest-"); err == nil {
			return dir
		}
	}
	dir, err := os.MkdirTemp("", "etcdtest-")
	if err != nil {
		t.Fatalf("etcdtest: %v", err)
	}
	return dir
}

// freeAddr returns a 127.0.0.1 address with a port that was free a moment ago.
func freeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("etcdtest: finding a free port: %v", err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// syncBuffer collects the server's output for failure messages.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return strings.TrimSpace(b.buf.String())
}
