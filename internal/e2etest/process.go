package e2etest

import (
	"bytes"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddyportal/caddyportal/internal/gotool"
)

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// Binary builds cmd/caddyportal once per test process, without the race
// detector, so that a process runs at the speed an operator would see, and
// returns its path.
func Binary(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "caddyportal-bin")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "caddyportal")
		out, err := exec.Command(gotool.Path(t), "build", "-o", binPath, "github.com/caddyportal/caddyportal/cmd/caddyportal").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

// Process is a caddyportal binary running as its own process.
type Process struct {
	Cmd *exec.Cmd
	// Base is the portal's URL.
	Base string
	// Logs is everything the process printed.
	Logs *LockedBuffer
}

// LockedBuffer collects a process's output while it runs.
type LockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

// Write appends p.
func (l *LockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

// String is what was written so far.
func (l *LockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// StartProcess runs Binary on the Caddyfile text cf (written into dir)
// and waits until http://127.0.0.1:port answers HTTP.
func StartProcess(t testing.TB, dir string, port int, cf string) *Process {
	t.Helper()
	return StartBinary(t, Binary(t), dir, cf, fmt.Sprintf("http://127.0.0.1:%d", port), NoRedirect)
}

// StartBinary runs `bin run` on the Caddyfile text cf (written into dir,
// which also holds Caddy's data and config) until the test ends, and
// returns once base answers client; the output is logged if the test
// failed.
func StartBinary(t testing.TB, bin, dir, cf, base string, client *http.Client) *Process {
	t.Helper()
	path := filepath.Join(dir, "Caddyfile")
	if err := os.WriteFile(path, []byte(cf), 0o600); err != nil {
		t.Fatal(err)
	}
	r := &Process{Cmd: exec.Command(bin, "run", "--config", path, "--adapter", "caddyfile"),
		Base: base, Logs: &LockedBuffer{}}
	r.Cmd.Env = append(os.Environ(), "XDG_DATA_HOME="+dir, "XDG_CONFIG_HOME="+dir, "HOME="+dir)
	r.Cmd.Stdout, r.Cmd.Stderr = r.Logs, r.Logs
	if err := r.Cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		r.Kill()
		if t.Failed() {
			t.Logf("portal %s output:\n%s", r.Base, r.Logs)
		}
	})
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if res, err := client.Get(r.Base + "/workshops/catalog/environments/"); err == nil {
			res.Body.Close()
			return r
		}
		if time.Now().After(deadline) {
			t.Fatalf("portal %s did not start:\n%s", r.Base, r.Logs)
		}
	}
}

// ProcessCaddyfile is a portal site on 127.0.0.1:port ({dir} in body is
// the Badger directory under dir) whose warnings and errors are kept for
// the failure report; admin is Caddy's admin address or "off".
func ProcessCaddyfile(port int, admin, dir, body string) string {
	return fmt.Sprintf(`{
	admin %s
	persist_config off
	storage file_system %s
	log default {
		output stderr
		level WARN
	}
}
http://127.0.0.1:%d {
	bind 127.0.0.1
	portal {
%s
	}
}
`, admin, filepath.Join(dir, "caddy"), port, strings.ReplaceAll(body, "{dir}", filepath.Join(dir, "badger")))
}

// Kill sends SIGKILL and reaps the process; safe to call twice.
func (r *Process) Kill() {
	if r.Exited() {
		return
	}
	_ = r.Cmd.Process.Kill()
	_ = r.Cmd.Wait()
}

// Exited reports whether the process was reaped.
func (r *Process) Exited() bool { return r.Cmd.ProcessState != nil }
