package sessions_test

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/caddyportal/caddyportal/caddyportal/lifecycle"
	"github.com/caddyportal/caddyportal/caddyportal/sessions"
	"github.com/caddyportal/caddyportal/caddyportal/spawner/process"
)

// End to end with a real dashboard process: python3 -m http.server started
// by the process spawner for a request, probed ready, activated, and
// stopped (process and directory gone) before the session is STOPPED.
func TestSpawnProcessEndToEnd(t *testing.T) {
	py := "/usr/bin/python3"
	if _, err := os.Stat(py); err != nil {
		var lerr error
		if py, lerr = exec.LookPath("python3"); lerr != nil {
			t.Skip("python3 not installed")
		}
	}
	sp, err := process.New(process.Config{
		Command:      []string{py, "-m", "http.server", "{port}", "--bind", "127.0.0.1", "--directory", "{dir}"},
		Dir:          filepath.Join(t.TempDir(), "sessions"),
		Portal:       "demo",
		Replica:      "r1",
		ReadyTimeout: 20 * time.Second,
		StopTimeout:  2 * time.Second,
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	clk := newClock()
	st := openStore(t, clk)
	svc := newSpawnService(t, st, clk, portal(spawnWorkshop("lab", 1, 0)), sp, sessions.Options{})
	res := request(t, svc, "demo-w01", "u1")
	name := res.Session.Name
	if res.Session.State != lifecycle.Starting {
		t.Fatalf("new session %s, want STARTING", res.Session.State)
	}
	eventually(t, "WAITING", func() bool { return stateIs(svc, name, "WAITING") })
	sess := get(t, svc, name)
	var ps process.State
	if err := json.Unmarshal(sess.Env.State, &ps); err != nil || ps.PID == 0 || ps.Dir == "" {
		t.Fatalf("process state %s: %v", sess.Env.State, err)
	}
	if err := os.WriteFile(filepath.Join(ps.Dir, "index.html"), []byte("hello from "+name), 0o600); err != nil {
		t.Fatal(err)
	}
	if body := dashboard(t, sess); body != "hello from "+name {
		t.Fatalf("dashboard says %q", body)
	}
	if sess, err = svc.Activate(context.Background(), name, res.Token); err != nil || sess.State != lifecycle.Running {
		t.Fatalf("Activate = %v, %v", sess, err)
	}
	if _, err := svc.Terminate(context.Background(), name, ""); err != nil {
		t.Fatal(err)
	}
	eventually(t, "STOPPED", func() bool { return stateIs(svc, name, "STOPPED") })
	if _, err := os.Stat("/proc/" + strconv.Itoa(ps.PID)); err == nil {
		// A zombie would still be listed; the spawner reaps its children.
		t.Fatalf("process %d still exists after the session STOPPED", ps.PID)
	}
	if _, err := os.Stat(ps.Dir); !os.IsNotExist(err) {
		t.Fatalf("session directory %s still there: %v", ps.Dir, err)
	}
	if !dialFails(sess.Upstream) {
		t.Fatal("the dashboard still answers")
	}
	// The place is free again.
	request(t, svc, "demo-w01", "u2")
}
