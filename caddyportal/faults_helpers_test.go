package caddyportal_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
)

// Fault tests re-run this test binary as a child process: a portal that is
// killed with SIGKILL, or a portal start under a resource limit that must
// not touch the parent. The child is chosen by faultChildEnv before any
// test (or the harness's TestMain) runs.
const (
	faultChildEnv = "CADDYPORTAL_FAULT_CHILD" // "serve" or "start"
	faultDirEnv   = "CADDYPORTAL_FAULT_DIR"   // the portal's data directory
	faultPortEnv  = "CADDYPORTAL_FAULT_PORT"  // the port to listen on
	faultBodyEnv  = "CADDYPORTAL_FAULT_BODY"  // the portal block body
	faultFsizeEnv = "CADDYPORTAL_FAULT_FSIZE" // RLIMIT_FSIZE in bytes ("start")
	faultLogEnv   = "CADDYPORTAL_FAULT_LOG"   // non-empty: Caddy logs to stderr
)

// Lines a child prints on stdout for its parent.
const (
	childReady    = "ready"
	childLoaded   = "loaded"
	childLoadFail = "load-error: "
)

func init() {
	// init of the test package runs after every imported package's init
	// (so Caddy's modules are registered) and before TestMain.
	switch os.Getenv(faultChildEnv) {
	case "serve":
		os.Exit(serveChild())
	case "start":
		os.Exit(startChild())
	}
}

// portalCaddyfile is the harness's Caddyfile (see portal.load) for a
// portal on 127.0.0.1:port with data under dir.
func portalCaddyfile(port int, dir, body string) string {
	return fmt.Sprintf(`{
	admin off
	persist_config off
	storage file_system %s
	grace_period 1s
	log default {
		output discard
	}
}
http://127.0.0.1:%d {
	bind 127.0.0.1
	portal {
%s
	}
	respond "not the portal" 404
}
`, filepath.Join(dir, "caddy"), port, strings.ReplaceAll(body, "{dir}", filepath.Join(dir, "badger")))
}

// loadCaddyfile adapts and loads a Caddyfile into this process's Caddy.
func loadCaddyfile(cf string) error {
	cfg, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(cf), map[string]any{"filename": "Caddyfile"})
	if err != nil {
		return fmt.Errorf("adapt: %w", err)
	}
	return caddy.Load(cfg, true)
}

// childConfig reads the child's Caddyfile from the environment.
func childConfig() (string, error) {
	port, err := strconv.Atoi(os.Getenv(faultPortEnv))
	if err != nil {
		return "", fmt.Errorf("bad %s: %v", faultPortEnv, err)
	}
	cf := portalCaddyfile(port, os.Getenv(faultDirEnv), os.Getenv(faultBodyEnv))
	if os.Getenv(faultLogEnv) != "" {
		cf = strings.Replace(cf, "output discard", "output stderr", 1)
	}
	return cf, nil
}

// serveChild runs a portal until the process is killed.
func serveChild() int {
	cf, err := childConfig()
	if err == nil {
		err = loadCaddyfile(cf)
	}
	if err != nil {
		fmt.Println(childLoadFail + oneLine(err.Error()))
		return 1
	}
	fmt.Println(childReady)
	select {}
}

// startChild starts a portal once, under RLIMIT_FSIZE when asked, reports
// whether the load succeeded, and stops it again.
func startChild() int {
	if s := os.Getenv(faultFsizeEnv); s != "" {
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			fmt.Println(childLoadFail + "bad fsize: " + err.Error())
			return 1
		}
		// Without ignoring SIGXFSZ a write past the limit kills the
		// process; ignored, the write fails with EFBIG like a full disk.
		signal.Ignore(syscall.SIGXFSZ)
		if err := syscall.Setrlimit(syscall.RLIMIT_FSIZE, &syscall.Rlimit{Cur: n, Max: n}); err != nil {
			fmt.Println(childLoadFail + "setrlimit: " + err.Error())
			return 1
		}
	}
	cf, err := childConfig()
	if err == nil {
		err = loadCaddyfile(cf)
	}
	if err != nil {
		fmt.Println(childLoadFail + oneLine(err.Error()))
		return 0
	}
	fmt.Println(childLoaded)
	if err := caddy.Stop(); err != nil {
		fmt.Println("stop: " + oneLine(err.Error()))
	}
	return 0
}

func oneLine(s string) string { return strings.ReplaceAll(s, "\n", " | ") }

// child is a portal process started from this test binary.
type child struct {
	cmd  *exec.Cmd
	port int
	base string
	mu   sync.Mutex
	rest strings.Builder // what the child printed on stderr and after "ready"
	// done is closed when the child's stdout reached EOF (it exited), so
	// that Wait does not close the pipe under a reader.
	done chan struct{}
}

// faultEnv is the environment of a child of the given kind.
func faultEnv(kind, dir string, port int, body string, extra ...string) []string {
	env := append(os.Environ(),
		faultChildEnv+"="+kind,
		faultDirEnv+"="+dir,
		faultPortEnv+"="+strconv.Itoa(port),
		faultBodyEnv+"="+body,
	)
	return append(env, extra...)
}

// startServeChild starts a portal child on port with data in dir and waits
// until it serves.
func startServeChild(t *testing.T, dir string, port int, body string, extra ...string) *child {
	t.Helper()
	c := &child{port: port, base: fmt.Sprintf("http://127.0.0.1:%d", port), done: make(chan struct{})}
	c.cmd = exec.Command(os.Args[0], "-test.run=^$")
	c.cmd.Env = faultEnv("serve", dir, port, body, extra...)
	c.cmd.Stderr = childLog{c}
	stdout, err := c.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := c.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.kill)
	out := bufio.NewReader(stdout)
	// A child that never gets ready is killed, which ends the read below.
	watchdog := time.AfterFunc(2*time.Minute, func() { _ = c.cmd.Process.Kill() })
	line, err := out.ReadString('\n')
	watchdog.Stop()
	go func() {
		_, _ = io.Copy(childLog{c}, out)
		close(c.done)
	}()
	if strings.TrimSpace(line) != childReady {
		c.kill()
		t.Fatalf("portal child did not start: %q %v; output: %s", line, err, c.output())
	}
	return c
}

// childLog collects a child's stderr and late stdout for failure messages.
type childLog struct{ c *child }

func (l childLog) Write(b []byte) (int, error) {
	l.c.mu.Lock()
	defer l.c.mu.Unlock()
	if l.c.rest.Len() < 1<<20 {
		l.c.rest.Write(b)
	}
	return len(b), nil
}

func (c *child) output() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.rest.String()
}

func (c *child) exited() bool { return c.cmd.ProcessState != nil }

// kill sends SIGKILL (no Close, no flush, no deferred code) and reaps the
// child. It is safe to call more than once.
func (c *child) kill() {
	if c.exited() {
		return
	}
	_ = c.cmd.Process.Signal(syscall.SIGKILL)
	<-c.done
	_ = c.cmd.Wait()
}

// startOnce runs a "start" child and returns its verdict line and all its
// output. extra adds environment variables.
func startOnce(t *testing.T, dir string, body string, extra ...string) (verdict, output string, exitErr error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^$")
	cmd.Env = faultEnv("start", dir, freePort(t), body, extra...)
	out, err := cmd.CombinedOutput()
	for _, line := range strings.Split(string(out), "\n") {
		if line == childLoaded || strings.HasPrefix(line, childLoadFail) {
			verdict = line
			break
		}
	}
	return verdict, string(out), err
}

// httpClient is a plain client with a bound on every request, so a hang
// fails the test instead of stalling it.
func httpClient(timeout time.Duration) *http.Client {
	return &http.Client{
		Timeout:       timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// doWith sends a request with client and returns the response, or an error
// for a transport failure (unlike portal.do, which fails the test).
func doWith(client *http.Client, method, rawURL, token string, body io.Reader, hdr map[string]string) (resp, error) {
	req, err := http.NewRequest(method, rawURL, body)
	if err != nil {
		return resp{}, err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	res, err := client.Do(req)
	if err != nil {
		return resp{}, err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		return resp{}, err
	}
	return resp{res.StatusCode, res.Header, b}, nil
}

// isEPERM reports whether err says the operation is not permitted here
// (for example mount in an unprivileged container).
func isEPERM(err error) bool {
	return errors.Is(err, syscall.EPERM) || errors.Is(err, syscall.EACCES)
}
