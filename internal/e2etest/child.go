package e2etest

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
)

// Fault tests re-run the test binary as a child process: a portal that is
// killed with SIGKILL, or a portal start under a resource limit that must
// not touch the parent. Main runs the child chosen by faultChildEnv before
// any test runs.
const (
	faultChildEnv = "CADDYPORTAL_FAULT_CHILD" // "serve" or "start"
	faultDirEnv   = "CADDYPORTAL_FAULT_DIR"   // the portal's data directory
	faultPortEnv  = "CADDYPORTAL_FAULT_PORT"  // the port to listen on
	faultBodyEnv  = "CADDYPORTAL_FAULT_BODY"  // the portal block body
	// FaultFsizeEnv is RLIMIT_FSIZE in bytes for a StartOnce child.
	FaultFsizeEnv = "CADDYPORTAL_FAULT_FSIZE"
	// FaultLogEnv, when not empty, makes a child's Caddy log to stderr.
	FaultLogEnv = "CADDYPORTAL_FAULT_LOG"
	// FaultAdminEnv, when not empty, is the address of a child's Caddy
	// admin listener (off otherwise), for tests that look at a killed and
	// restarted portal through the admin API.
	FaultAdminEnv = "CADDYPORTAL_FAULT_ADMIN"
)

// Lines a child prints on stdout for its parent.
const (
	childReady = "ready"
	// ChildLoaded is StartOnce's verdict when the config loaded.
	ChildLoaded = "loaded"
	// ChildLoadFail starts StartOnce's verdict when it did not; the error
	// follows on the same line.
	ChildLoadFail = "load-error: "
)

// runChildIfAsked runs the child this process was started as, if any, and
// exits with its status.
func runChildIfAsked() {
	switch os.Getenv(faultChildEnv) {
	case "serve":
		os.Exit(serveChild())
	case "start":
		os.Exit(startChild())
	}
}

// childConfig reads the child's Caddyfile from the environment.
func childConfig() (string, error) {
	port, err := strconv.Atoi(os.Getenv(faultPortEnv))
	if err != nil {
		return "", fmt.Errorf("bad %s: %v", faultPortEnv, err)
	}
	p := &Portal{Port: port, Dir: os.Getenv(faultDirEnv), Admin: os.Getenv(FaultAdminEnv)}
	cf := p.Caddyfile(os.Getenv(faultBodyEnv))
	if os.Getenv(FaultLogEnv) != "" {
		cf = strings.Replace(cf, "output discard", "output stderr", 1)
	}
	return cf, nil
}

// serveChild runs a portal until the process is killed.
func serveChild() int {
	cf, err := childConfig()
	if err == nil {
		err = LoadCaddyfile(cf)
	}
	if err != nil {
		fmt.Println(ChildLoadFail + oneLine(err.Error()))
		return 1
	}
	fmt.Println(childReady)
	select {}
}

// startChild starts a portal once, under RLIMIT_FSIZE when asked, reports
// whether the load succeeded, and stops it again.
func startChild() int {
	if s := os.Getenv(FaultFsizeEnv); s != "" {
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			fmt.Println(ChildLoadFail + "bad fsize: " + err.Error())
			return 1
		}
		// Without ignoring SIGXFSZ a write past the limit kills the
		// process; ignored, the write fails with EFBIG like a full disk.
		signal.Ignore(syscall.SIGXFSZ)
		if err := syscall.Setrlimit(syscall.RLIMIT_FSIZE, &syscall.Rlimit{Cur: n, Max: n}); err != nil {
			fmt.Println(ChildLoadFail + "setrlimit: " + err.Error())
			return 1
		}
	}
	cf, err := childConfig()
	if err == nil {
		err = LoadCaddyfile(cf)
	}
	if err != nil {
		fmt.Println(ChildLoadFail + oneLine(err.Error()))
		return 0
	}
	fmt.Println(ChildLoaded)
	if err := caddy.Stop(); err != nil {
		fmt.Println("stop: " + oneLine(err.Error()))
	}
	return 0
}

func oneLine(s string) string { return strings.ReplaceAll(s, "\n", " | ") }

// Child is a portal process started from the test binary (whose TestMain
// must be Main).
type Child struct {
	cmd *exec.Cmd
	// Port is the port it serves on, Base its URL.
	Port int
	Base string
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

// StartServeChild starts a portal child on port with data in dir and waits
// until it serves; it is killed at the end of the test. extra adds
// environment variables (FaultLogEnv, FaultAdminEnv).
func StartServeChild(t testing.TB, dir string, port int, body string, extra ...string) *Child {
	t.Helper()
	c := &Child{Port: port, Base: fmt.Sprintf("http://127.0.0.1:%d", port), done: make(chan struct{})}
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
	t.Cleanup(c.Kill)
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
		c.Kill()
		t.Fatalf("portal child did not start: %q %v; output: %s", line, err, c.Output())
	}
	return c
}

// childLog collects a child's stderr and late stdout for failure messages.
type childLog struct{ c *Child }

func (l childLog) Write(b []byte) (int, error) {
	l.c.mu.Lock()
	defer l.c.mu.Unlock()
	if l.c.rest.Len() < 1<<20 {
		l.c.rest.Write(b)
	}
	return len(b), nil
}

// Output is what the child printed on stderr, and on stdout after it
// became ready (up to 1 MiB).
func (c *Child) Output() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.rest.String()
}

// Exited reports whether the child was reaped.
func (c *Child) Exited() bool { return c.cmd.ProcessState != nil }

// KillNow sends SIGKILL and returns at once, without reaping the child:
// for a kill in the middle of requests in flight. Kill reaps it later.
func (c *Child) KillNow() { _ = c.cmd.Process.Kill() }

// Kill sends SIGKILL (no Close, no flush, no deferred code) and reaps the
// child. It is safe to call more than once.
func (c *Child) Kill() {
	if c.Exited() {
		return
	}
	_ = c.cmd.Process.Signal(syscall.SIGKILL)
	<-c.done
	_ = c.cmd.Wait()
}

// StartOnce runs a child that starts a portal with data in dir once and
// stops it, and returns its verdict line (ChildLoaded or ChildLoadFail
// and the error) and all its output. extra adds environment variables
// (FaultFsizeEnv, FaultLogEnv).
func StartOnce(t testing.TB, dir string, body string, extra ...string) (verdict, output string, exitErr error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^$")
	cmd.Env = faultEnv("start", dir, FreePort(t), body, extra...)
	out, err := cmd.CombinedOutput()
	for _, line := range strings.Split(string(out), "\n") {
		if line == ChildLoaded || strings.HasPrefix(line, ChildLoadFail) {
			verdict = line
			break
		}
	}
	return verdict, string(out), err
}
