package sessions_test

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/caddyportal/caddyportal/caddyportal/lifecycle"
	"github.com/caddyportal/caddyportal/caddyportal/sessions"
	"github.com/caddyportal/caddyportal/caddyportal/spawner"
	"github.com/caddyportal/caddyportal/caddyportal/spawner/process"
	"github.com/caddyportal/caddyportal/internal/proctest"
)

func TestMain(m *testing.M) {
	// The process spawner's tests run this binary as their dashboards.
	proctest.Dashboard()
	proctest.Exit(m.Run(), process.MarkerVar)
}

// processSpawner is a process spawner of portal demo, replica r1, whose
// dashboards run command with the variables env.
func processSpawner(t *testing.T, command []string, env ...process.EnvVar) *process.Spawner {
	t.Helper()
	sp, err := process.New(process.Config{
		Command:      command,
		Env:          env,
		Dir:          filepath.Join(t.TempDir(), "sessions"),
		Portal:       "demo",
		Replica:      testReplica,
		ReadyTimeout: 2 * time.Minute,
		StopTimeout:  2 * time.Second,
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return sp
}

// selfDashboard is a process spawner whose dashboards are this test binary.
func selfDashboard(t *testing.T) *process.Spawner {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return processSpawner(t, []string{self, "{host}:{port}"}, process.EnvVar{Name: proctest.DashboardVar, Value: proctest.DashboardServe})
}

// A RUNNING session whose dashboard process is killed (kill -9 of its
// process group: an OOM kill, a crash) ends by itself at a reconcile pass,
// environment-lost with how the process ended, its directory removed and
// its place free.
func TestSpawnProcessKilledEndsSession(t *testing.T) {
	const interval = 200 * time.Millisecond
	clk := newClock()
	st := openStore(t, clk)
	svc := newSpawnService(t, st, clk, portal(spawnWorkshop("lab", 1, 0)), selfDashboard(t),
		sessions.Options{ReconcileInterval: interval})
	res := request(t, svc, "demo-w01", "u1")
	name := res.Session.Name
	eventually(t, "WAITING", func() bool { return stateIs(svc, name, "WAITING") })
	sess, err := svc.Activate(context.Background(), name, res.Token)
	if err != nil || sess.State != lifecycle.Running {
		t.Fatalf("Activate = %v, %v", sess, err)
	}
	if body := dashboard(t, sess); body != "dashboard of "+name {
		t.Fatalf("dashboard says %q", body)
	}
	var ps process.State
	if err := json.Unmarshal(sess.Env.State, &ps); err != nil || ps.PGID == 0 {
		t.Fatalf("process state %s: %v", sess.Env.State, err)
	}
	if err := syscall.Kill(-ps.PGID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	eventually(t, "STOPPED", func() bool { return stateIs(svc, name, "STOPPED") })
	// How soon is logged, not asserted: a busy machine delays the
	// reconcile passes, and speed is for benchmarks.
	t.Logf("the session ended %v after its dashboard was killed (reconcile interval %v)", time.Since(killed), interval)
	got := get(t, svc, name)
	if got.Reason != sessions.ReasonEnvironmentLost || got.Progress == nil || got.Progress.Step != sessions.StepFailed ||
		got.Progress.Message != "the dashboard process was stopped by a signal (killed)" {
		t.Fatalf("reason %q progress %+v", got.Reason, got.Progress)
	}
	if _, err := os.Stat(ps.Dir); !os.IsNotExist(err) {
		t.Fatalf("session directory %s still there: %v", ps.Dir, err)
	}
	next := request(t, svc, "demo-w01", "u2").Session.Name
	eventually(t, "the next session WAITING", func() bool { return stateIs(svc, next, "WAITING") })
}

// End to end with a real dashboard process: python3 -m http.server started
// by the process spawner for a request, probed ready, activated, and
// stopped (process and directory gone) before the session is STOPPED.
func TestSpawnProcessEndToEnd(t *testing.T) {
	py := "/usr/bin/python3"
	if _, err := os.Stat(py); err != nil {
		var lerr error
		if py, lerr = exec.LookPath("python3"); lerr != nil {
			t.Fatal("this test needs python3 (Debian's python3)")
		}
	}
	sp := processSpawner(t, []string{py, "-m", "http.server", "{port}", "--bind", "127.0.0.1", "--directory", "{dir}"})
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
	sess, err := svc.Activate(context.Background(), name, res.Token)
	if err != nil || sess.State != lifecycle.Running {
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

// Two workshops whose process spawners share one directory (Caddy's default
// dir is per portal, not per workshop): a restart's reconciliation of one
// workshop must not take the other's running environments for strays.
func TestSpawnProcessWorkshopsSharingADirSurviveARestart(t *testing.T) {
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "sessions")
	newSp := func() *process.Spawner {
		sp, err := process.New(process.Config{
			Command: []string{self, "{host}:{port}"}, Env: []process.EnvVar{{Name: proctest.DashboardVar, Value: proctest.DashboardServe}},
			Dir: dir, Portal: "demo", Replica: testReplica, ReadyTimeout: 2 * time.Minute, StopTimeout: 2 * time.Second,
		}, nil)
		if err != nil {
			t.Fatal(err)
		}
		return sp
	}
	cfg := portal(spawnWorkshop("lab", 2, 0), spawnWorkshop("lab2", 2, 0))
	clk := newClock()
	st := openStore(t, clk)
	spawners := map[string]spawner.Spawner{"lab": newSp(), "lab2": newSp()}
	svc := newSpawnService(t, st, clk, cfg, nil, sessions.Options{Spawners: spawners})
	a := request(t, svc, "demo-w01", "u1").Session.Name
	b := request(t, svc, "demo-w02", "u2").Session.Name
	eventually(t, "both WAITING", func() bool { return stateIs(svc, a, "WAITING") && stateIs(svc, b, "WAITING") })
	svc.Close()

	// The restart: new spawners on the same directory, a new service on
	// the same store.
	restarted := map[string]spawner.Spawner{"lab": newSp(), "lab2": newSp()}
	svc2 := newSpawnService(t, st, clk, cfg, nil, sessions.Options{Spawners: restarted})
	for _, name := range []string{a, b} {
		sess := get(t, svc2, name)
		if sess.State != lifecycle.Waiting {
			t.Fatalf("%s is %s after the restart, want WAITING (reason %q)", name, sess.State, sess.Reason)
		}
		if body := dashboard(t, sess); body != "dashboard of "+name {
			t.Fatalf("%s's dashboard says %q after the restart", name, body)
		}
	}
	// Adopted environments are stopped when their sessions end, like any
	// other (the portal leaves running ones to its next start, so without
	// this the dashboards would outlive the test).
	for _, name := range []string{a, b} {
		if _, err := svc2.Terminate(context.Background(), name, ""); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, "both STOPPED", func() bool { return stateIs(svc2, a, "STOPPED") && stateIs(svc2, b, "STOPPED") })
}
