package process

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/caddyportal/caddyportal/caddyportal/spawner"
	"github.com/caddyportal/caddyportal/internal/procfs"
)

// testPortal names this run's portal: List and Stop find processes by a
// marker holding it, so a run must not see another run's (or a concurrent
// test package's) environments.
var testPortal = "testportal" + strconv.Itoa(os.Getpid())

// waitFor bounds every poll: generous for a loaded machine, never a fixed sleep.
const waitFor = 2 * time.Minute

func selfPath(t testing.TB) string {
	t.Helper()
	p, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func specFor(session string) spawner.Spec {
	return spawner.Spec{
		Portal: "testportal", Session: session, User: "alice", Workshop: "lab-terminal",
		Environment: "testportal-w01", Prefix: "/workshops/session/" + session + "/",
		URL: "https://" + session + ".example.test/", Domain: "example.test", Protocol: "https",
	}
}

// helperConfig runs the test binary as the dashboard with args after the mode.
func helperConfig(t testing.TB, args ...string) Config {
	t.Helper()
	return Config{
		Command:      append([]string{selfPath(t)}, args...),
		Dir:          filepath.Join(t.TempDir(), "sessions"),
		Env:          []EnvVar{{Name: helperVar, Value: "1"}},
		Portal:       testPortal + "-" + strings.NewReplacer("/", "-", "=", "-").Replace(t.Name()),
		Replica:      "r1",
		ReadyTimeout: waitFor,
		StopTimeout:  2 * time.Second,
	}
}

func newSpawner(t testing.TB, cfg Config) (*Spawner, *observer.ObservedLogs) {
	t.Helper()
	core, logs := observer.New(zap.DebugLevel)
	s, err := New(cfg, zap.New(core))
	if err != nil {
		t.Fatal(err)
	}
	return s, logs
}

// start starts session and waits until it is ready; the environment is
// stopped when the test ends (a second Stop is harmless).
func start(t *testing.T, s *Spawner, spec spawner.Spec) spawner.Env {
	t.Helper()
	env, err := s.Start(context.Background(), spec, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Stop(context.Background(), env) })
	if err := spawner.WaitReady(context.Background(), s, env, nil); err != nil {
		t.Fatal(err)
	}
	return env
}

func get(t *testing.T, env spawner.Env, path string) (int, string) {
	t.Helper()
	resp, err := http.Get("http://" + env.Addr + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func stateOf(t *testing.T, env spawner.Env) State {
	t.Helper()
	var st State
	if err := json.Unmarshal(env.State, &st); err != nil {
		t.Fatal(err)
	}
	return st
}

// countProcs counts live processes that belong to an environment, read from
// /proc independently of the code under test: in the leader's session, or
// carrying the marker.
func countProcs(t *testing.T, leader int, marker string) int {
	t.Helper()
	ents, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		f := strings.Fields(string(stat[bytes.LastIndexByte(stat, ')')+1:]))
		if f[0] == "Z" || f[0] == "X" {
			continue
		}
		environ, _ := os.ReadFile("/proc/" + e.Name() + "/environ")
		if f[3] == strconv.Itoa(leader) || f[2] == strconv.Itoa(leader) ||
			bytes.Contains(environ, []byte(MarkerVar+"="+marker+"\x00")) {
			n++
		}
		_ = pid
	}
	return n
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitFor)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func exists(p string) bool { _, err := os.Lstat(p); return err == nil }

func python(t *testing.T) string {
	t.Helper()
	// Debian's own interpreter: a pyenv shim first on PATH needs $HOME,
	// which the spawner sets to the session directory.
	if exists("/usr/bin/python3") {
		return "/usr/bin/python3"
	}
	p, err := exec.LookPath("python3")
	if err != nil {
		t.Fatal("this test needs python3 (Debian's python3; .ci/run installs it)")
	}
	return p
}

func TestPythonHTTPServerBecomesReady(t *testing.T) {
	cfg := helperConfig(t)
	cfg.Command = []string{python(t), "-m", "http.server", "{port}", "--bind", "{host}", "--directory", "{dir}"}
	s, logs := newSpawner(t, cfg)
	env := start(t, s, specFor("py-1"))
	st := stateOf(t, env)
	if err := os.WriteFile(filepath.Join(st.Dir, "hello.txt"), []byte("hi"), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, body := get(t, env, "/hello.txt"); code != 200 || body != "hi" {
		t.Fatalf("GET /hello.txt = %d %q", code, body)
	}
	// http.server logs each request on stderr: it reaches the log with the
	// session, from a logger of its own (which Caddy's log options can
	// exclude by name).
	eventually(t, "the request's log line", func() bool {
		for _, e := range logs.FilterMessage("environment output").All() {
			if e.ContextMap()["session"] == "py-1" && strings.Contains(e.ContextMap()["line"].(string), "GET /hello.txt") {
				if e.LoggerName != "output" {
					t.Fatalf("output logged by %q, want the spawner's logger named output", e.LoggerName)
				}
				return true
			}
		}
		return false
	})
	if err := s.Stop(context.Background(), env); err != nil {
		t.Fatal(err)
	}
	if exists(st.Dir) {
		t.Fatal("session directory left after Stop")
	}
}

func TestPlaceholdersAndVariablesArrive(t *testing.T) {
	cfg := helperConfig(t, "dashboard", "{host}:{port}", "{session}", "{user}", "{workshop}", "{environment}",
		"{prefix}", "{url}", "{dir}", "{literal braces stay}")
	cfg.Env = append(cfg.Env, EnvVar{Name: "GREETING", Value: "hello {user} on {port}"}, EnvVar{Name: "TRAINING_PORTAL", Value: "overridden"})
	t.Setenv("PORTAL_SECRET_FOR_TEST", "must not leak")
	s, _ := newSpawner(t, cfg)
	spec := specFor("vars-1")
	spec.Parameters = map[string]string{"COURSE": "k8s 101", "level": "2"}
	env := start(t, s, spec)
	st := stateOf(t, env)
	_, body := get(t, env, "/info")
	var got info
	if err := json.Unmarshal([]byte(body), &got); err != nil {
		t.Fatal(err, body)
	}
	port := strconv.Itoa(st.Port)
	wantArgs := []string{"dashboard", "127.0.0.1:" + port, "vars-1", "alice", "lab-terminal", "testportal-w01",
		"/workshops/session/vars-1/", "https://vars-1.example.test/", st.Dir, "{literal braces stay}"}
	if strings.Join(got.Args[1:], "\n") != strings.Join(wantArgs, "\n") {
		t.Fatalf("args = %q, want %q", got.Args[1:], wantArgs)
	}
	if got.Cwd != st.Dir || st.Dir != filepath.Join(cfg.Dir, "vars-1") {
		t.Fatalf("cwd %q, state dir %q", got.Cwd, st.Dir)
	}
	envs := map[string]string{}
	for _, kv := range got.Env {
		k, v, _ := strings.Cut(kv, "=")
		envs[k] = v
	}
	want := map[string]string{
		"SESSION_NAME": "vars-1", "WORKSHOP_NAME": "lab-terminal", "ENVIRONMENT_NAME": "testportal-w01",
		"SESSION_URL": "https://vars-1.example.test/", "SESSION_HOSTNAME": "vars-1.example.test",
		"INGRESS_DOMAIN": "example.test", "INGRESS_PROTOCOL": "https", "PORTAL_USER": "alice",
		"PORTAL_PREFIX": "/workshops/session/vars-1/", "HOME": st.Dir, "PORT": port,
		"GREETING": "hello alice on " + port, "TRAINING_PORTAL": "overridden",
		"COURSE": "k8s 101", "level": "2", MarkerVar: s.marker("vars-1"),
	}
	for k, v := range want {
		if envs[k] != v {
			t.Errorf("%s = %q, want %q", k, envs[k], v)
		}
	}
	if _, leaked := envs["PORTAL_SECRET_FOR_TEST"]; leaked {
		t.Error("the portal's own environment reached the dashboard")
	}
}

func TestStopKillsTheWholeTree(t *testing.T) {
	cfg := helperConfig(t, "dashboard", "{host}:{port}", "ignore-term", "grandchildren")
	cfg.StopTimeout = 300 * time.Millisecond
	s, _ := newSpawner(t, cfg)
	env := start(t, s, specFor("tree-1"))
	st := stateOf(t, env)
	marker := s.marker("tree-1")
	// The dashboard and its two grandchildren (one in a group of its own).
	eventually(t, "three processes", func() bool { return countProcs(t, st.PID, marker) == 3 })
	began := time.Now()
	if err := s.Stop(context.Background(), env); err != nil {
		t.Fatal(err)
	}
	if n := countProcs(t, st.PID, marker); n != 0 {
		t.Fatalf("%d processes outlived Stop", n)
	}
	if time.Since(began) < cfg.StopTimeout {
		t.Fatal("SIGTERM-ignoring processes ended before StopTimeout: SIGKILL came too early")
	}
	if err := s.Alive(context.Background(), env); !errors.Is(err, spawner.ErrGone) {
		t.Fatalf("Alive after Stop = %v", err)
	}
	for _, p := range []string{st.Dir, s.stateFile("tree-1"), s.pipeFile("tree-1")} {
		if exists(p) {
			t.Fatalf("%s left after Stop", p)
		}
	}
	// Idempotent.
	if err := s.Stop(context.Background(), env); err != nil {
		t.Fatalf("second Stop: %v", err)
	}
	if envs, err := s.List(context.Background()); err != nil || len(envs) != 0 {
		t.Fatalf("List after Stop = %v, %v", envs, err)
	}
}

func TestSessionsDoNotShareFiles(t *testing.T) {
	s, _ := newSpawner(t, helperConfig(t, "dashboard", "{host}:{port}"))
	a := start(t, s, specFor("iso-a"))
	if code, _ := get(t, a, "/write?path=notes.txt"); code != 200 {
		t.Fatal("A could not write in its own directory")
	}
	dirA := stateOf(t, a).Dir
	if b, err := os.ReadFile(filepath.Join(dirA, "notes.txt")); err != nil || string(b) != "secret of iso-a" {
		t.Fatalf("A's file: %q %v", b, err)
	}
	b := start(t, s, specFor("iso-b"))
	if stateOf(t, b).Dir == dirA {
		t.Fatal("two sessions share a directory")
	}
	if code, _ := get(t, b, "/read?path="+url.QueryEscape(filepath.Join(stateOf(t, b).Dir, "notes.txt"))); code != 404 {
		t.Fatal("B's directory holds A's file")
	}
	if err := s.Stop(context.Background(), a); err != nil {
		t.Fatal(err)
	}
	// The next session on the same workshop finds nothing of A.
	c := start(t, s, specFor("iso-c"))
	if code, _ := get(t, c, "/read?path="+url.QueryEscape(filepath.Join(dirA, "notes.txt"))); code != 404 {
		t.Fatal("A's file survived A's Stop")
	}
}

func TestListFindsEnvironmentsOfAPreviousRun(t *testing.T) {
	cfg := helperConfig(t, "dashboard", "{host}:{port}")
	first, _ := newSpawner(t, cfg)
	env, err := first.Start(context.Background(), specFor("drop-1"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := spawner.WaitReady(context.Background(), first, env, nil); err != nil {
		t.Fatal(err)
	}
	// first is dropped without Stop; a new value (a restarted portal) takes over.
	second, _ := newSpawner(t, cfg)
	envs, err := second.List(context.Background())
	if err != nil || len(envs) != 1 || envs[0].Session != "drop-1" || envs[0].Addr != env.Addr ||
		!bytes.Equal(envs[0].State, env.State) {
		t.Fatalf("List = %+v, %v; want %+v", envs, err, env)
	}
	if err := second.Alive(context.Background(), envs[0]); err != nil {
		t.Fatalf("not Alive: %v", err)
	}
	// Another replica of the same portal sees none of it and may not stop it.
	other := cfg
	other.Replica = "r2"
	third, _ := newSpawner(t, other)
	if envs, _ := third.List(context.Background()); len(envs) != 0 {
		t.Fatalf("replica r2 lists r1's environments: %v", envs)
	}
	if err := third.Stop(context.Background(), env); err == nil {
		t.Fatal("replica r2 stopped r1's environment")
	}
	if err := second.Stop(context.Background(), envs[0]); err != nil {
		t.Fatal(err)
	}
	st := stateOf(t, env)
	if n := countProcs(t, st.PID, second.marker("drop-1")); n != 0 || exists(st.Dir) {
		t.Fatalf("after Stop: %d processes, dir exists %v", n, exists(st.Dir))
	}
}

// TestListWarnsOfMarkedProcessesWithoutStateFile: a second spawner with the
// same portal name and replica but another dir (a second portal on the
// host, or a changed dir) lists the first one's running environment, which
// reconciliation will stop, and says why in the log.
func TestListWarnsOfMarkedProcessesWithoutStateFile(t *testing.T) {
	cfg := helperConfig(t, "dashboard", "{host}:{port}")
	first, _ := newSpawner(t, cfg)
	env := start(t, first, specFor("twin-1"))
	if envs, err := first.List(context.Background()); err != nil || len(envs) != 1 {
		t.Fatalf("first.List = %v, %v", envs, err)
	}
	other := cfg
	other.Dir = filepath.Join(t.TempDir(), "sessions")
	second, logs := newSpawner(t, other)
	envs, err := second.List(context.Background())
	if err != nil || len(envs) != 1 || envs[0].Session != "twin-1" {
		t.Fatalf("second.List = %+v, %v; want twin-1", envs, err)
	}
	warned := logs.FilterMessageSnippet("without a state file").FilterField(zap.String("session", "twin-1")).All()
	if len(warned) != 1 || warned[0].Level != zap.WarnLevel || !strings.Contains(warned[0].Message, "same name and replica") {
		t.Fatalf("warnings: %+v", logs.All())
	}
	// The spawner that started it lists it from its state file: no warning.
	third, thirdLogs := newSpawner(t, cfg)
	if envs, err := third.List(context.Background()); err != nil || len(envs) != 1 || thirdLogs.FilterMessageSnippet("without a state file").Len() != 0 {
		t.Fatalf("a restart with the same dir: %v, %v, logs %+v", envs, err, thirdLogs.All())
	}
	_ = first.Stop(context.Background(), env)
}

// TestAdoptAfterKill9 kills a real portal process (the test binary in portal
// mode) with SIGKILL: its dashboard keeps serving and logging, and a new
// spawner lists, probes, logs and stops it.
func TestAdoptAfterKill9(t *testing.T) {
	cfg := helperConfig(t, "dashboard", "{host}:{port}")
	cfgJSON, _ := json.Marshal(cfg)
	portal := exec.Command(selfPath(t), "portal", string(cfgJSON))
	portal.Env = append(os.Environ(), helperVar+"=1")
	stdout, _ := portal.StdoutPipe()
	portal.Stderr = os.Stderr
	if err := portal.Start(); err != nil {
		t.Fatal(err)
	}
	var env spawner.Env
	line, err := bufio.NewReader(stdout).ReadBytes('\n')
	if err != nil || json.Unmarshal(line, &env) != nil {
		portal.Process.Kill()
		t.Fatalf("portal helper printed %q: %v", line, err)
	}
	if err := portal.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	portal.Wait()
	st := stateOf(t, env)

	s, logs := newSpawner(t, cfg)
	envs, err := s.List(context.Background())
	if err != nil || len(envs) != 1 || envs[0].Session != "prev-1" {
		t.Fatalf("List = %+v, %v", envs, err)
	}
	t.Cleanup(func() { _ = s.Stop(context.Background(), envs[0]) })
	if err := s.Alive(context.Background(), envs[0]); err != nil {
		t.Fatalf("the dashboard died with its portal: %v", err)
	}
	if err := spawner.WaitReady(context.Background(), s, envs[0], nil); err != nil {
		t.Fatal(err)
	}
	// Every request writes a line to stdout, whose reader (the old portal)
	// is gone: the dashboard must keep running, and its lines reach our log.
	for i := range 50 {
		if code, _ := get(t, envs[0], "/after-kill-"+strconv.Itoa(i)); code != 200 {
			t.Fatalf("request %d after the portal died: %d", i, code)
		}
	}
	eventually(t, "adopted output in the log", func() bool {
		for _, e := range logs.FilterMessage("environment output").All() {
			if e.ContextMap()["session"] == "prev-1" && strings.Contains(e.ContextMap()["line"].(string), "/after-kill-49") {
				return true
			}
		}
		return false
	})
	if err := s.Stop(context.Background(), envs[0]); err != nil {
		t.Fatal(err)
	}
	if n := countProcs(t, st.PID, s.marker("prev-1")); n != 0 || exists(st.Dir) {
		t.Fatalf("after Stop: %d processes, dir exists %v", n, exists(st.Dir))
	}
}

func TestAliveSeesDeathAndPIDReuse(t *testing.T) {
	s, _ := newSpawner(t, helperConfig(t, "dashboard", "{host}:{port}"))
	env := start(t, s, specFor("alive-1"))
	ctx := context.Background()
	if err := s.Alive(ctx, env); err != nil {
		t.Fatalf("not Alive while running: %v", err)
	}
	st := stateOf(t, env)
	// The same PID with another start time is what a reused PID looks like.
	reused := st
	reused.Start++
	b, _ := json.Marshal(reused)
	if err := s.Alive(ctx, spawner.Env{Session: env.Session, Addr: env.Addr, State: b}); !errors.Is(err, spawner.ErrGone) ||
		!strings.Contains(err.Error(), "belongs to another process") {
		t.Fatalf("Alive with a different start time = %v", err)
	}
	// A live PID that is some other process.
	other := st
	other.PID = os.Getpid()
	b, _ = json.Marshal(other)
	if err := s.Alive(ctx, spawner.Env{Session: env.Session, State: b}); !errors.Is(err, spawner.ErrGone) {
		t.Fatalf("Alive for another process's PID = %v", err)
	}
	// kill -9 of the whole process group, as the kernel's OOM killer or an
	// operator would.
	if err := syscall.Kill(-st.PGID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	eventually(t, "Alive to report it gone", func() bool { return s.Alive(ctx, env) != nil })
	// The learner reads this message: plain words, no Go error jargon.
	if err := s.Alive(ctx, env); !errors.Is(err, spawner.ErrGone) || err.Error() != "the dashboard process was stopped by a signal (killed)" {
		t.Fatalf("Alive after kill -9 = %v", err)
	}
	if err := s.Ready(ctx, env); !errors.Is(err, spawner.ErrGone) || !strings.Contains(err.Error(), "killed") {
		t.Fatalf("Ready after the process died = %v", err)
	}
	// A portal restarted since does not know how it ended, only that it did.
	adopter, _ := newSpawner(t, s.cfg)
	if err := adopter.Alive(ctx, env); !errors.Is(err, spawner.ErrGone) || err.Error() != "the dashboard process is no longer running" {
		t.Fatalf("Alive of a dead environment this value did not start = %v", err)
	}
}

// A dashboard that exits on its own is gone with its exit status.
func TestAliveSaysExitStatus(t *testing.T) {
	s, _ := newSpawner(t, helperConfig(t, "exit"))
	ctx := context.Background()
	env, err := s.Start(ctx, specFor("alive-exit"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Stop(ctx, env)
	eventually(t, "Alive to report it gone", func() bool { return s.Alive(ctx, env) != nil })
	if err := s.Alive(ctx, env); !errors.Is(err, spawner.ErrGone) || err.Error() != "the dashboard process exited with status 3" {
		t.Fatalf("Alive after exit 3 = %v", err)
	}
}

func TestFailingStartsAreClear(t *testing.T) {
	ctx := context.Background()
	t.Run("exits at once", func(t *testing.T) {
		s, _ := newSpawner(t, helperConfig(t, "exit"))
		env, err := s.Start(ctx, specFor("fail-1"), nil)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Stop(ctx, env)
		began := time.Now()
		err = spawner.WaitReady(ctx, s, env, nil)
		if !errors.Is(err, spawner.ErrGone) || !strings.Contains(err.Error(), "exit status 3") ||
			!strings.Contains(err.Error(), "cannot read workshop.yaml") {
			t.Fatalf("WaitReady = %v", err)
		}
		if time.Since(began) > waitFor/2 {
			t.Fatal("an exited process was waited for as if it could still become ready")
		}
	})
	t.Run("never ready", func(t *testing.T) {
		cfg := helperConfig(t, "silent")
		// The silent helper never listens, so nothing races this timeout
		// but the first probe, which takes microseconds.
		cfg.ReadyTimeout = time.Second
		s, _ := newSpawner(t, cfg)
		env, err := s.Start(ctx, specFor("fail-2"), nil)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Stop(ctx, env)
		err = spawner.WaitReady(ctx, s, env, nil)
		var te *spawner.TimeoutError
		if !errors.As(err, &te) || !strings.Contains(err.Error(), "nothing listens on "+env.Addr) {
			t.Fatalf("WaitReady = %v", err)
		}
	})
	t.Run("probe path answers 404", func(t *testing.T) {
		cfg := helperConfig(t, "dashboard", "{host}:{port}")
		cfg.ReadyPath = "/missing"
		cfg.ReadyTimeout = 2 * time.Second
		s, _ := newSpawner(t, cfg)
		env, err := s.Start(ctx, specFor("fail-3"), nil)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Stop(ctx, env)
		// Once the dashboard listens, not within the timeout: a start-up
		// deadline is what a loaded machine misses (the race-built helper
		// once took over 300 ms to bind, and the probe said "nothing
		// listens" instead of 404).
		eventually(t, "the dashboard listening", func() bool {
			err := s.Ready(ctx, env)
			return err != nil && strings.Contains(err.Error(), "HTTP 404")
		})
		if err := spawner.WaitReady(ctx, s, env, nil); err == nil || !strings.Contains(err.Error(), "HTTP 404") {
			t.Fatalf("WaitReady = %v", err)
		}
	})
	t.Run("no such command", func(t *testing.T) {
		for _, name := range []string{"/nonexistent/dashboard", "no-such-dashboard-on-path"} {
			cfg := helperConfig(t)
			cfg.Command = []string{name, "{port}"}
			if _, err := New(cfg, nil); err == nil || !strings.Contains(err.Error(), name) {
				t.Fatalf("New with command %s = %v", name, err)
			}
		}
		// A program gone after the config was loaded fails the start.
		cfg := helperConfig(t)
		prog := filepath.Join(t.TempDir(), "dashboard")
		if err := os.WriteFile(prog, []byte("#!/bin/sh\n"), 0o755); err != nil {
			t.Fatal(err)
		}
		cfg.Command = []string{prog, "{port}"}
		s, _ := newSpawner(t, cfg)
		if err := os.Remove(prog); err != nil {
			t.Fatal(err)
		}
		_, err := s.Start(ctx, specFor("fail-4"), nil)
		if err == nil || !strings.Contains(err.Error(), prog) {
			t.Fatalf("Start = %v", err)
		}
		if exists(filepath.Join(cfg.Dir, "fail-4")) || exists(s.stateFile("fail-4")) {
			t.Fatal("a failed start left files behind")
		}
		if envs, _ := s.List(ctx); len(envs) != 0 {
			t.Fatalf("a failed start is listed: %v", envs)
		}
	})
	t.Run("bad parameter", func(t *testing.T) {
		s, _ := newSpawner(t, helperConfig(t, "dashboard", "{host}:{port}"))
		spec := specFor("fail-5")
		spec.Parameters = map[string]string{"LD_PRELOAD": "/tmp/evil.so"}
		if _, err := s.Start(ctx, spec, nil); err == nil || !strings.Contains(err.Error(), "reserved") {
			t.Fatalf("Start = %v", err)
		}
	})
	t.Run("bad configuration", func(t *testing.T) {
		for _, cfg := range []Config{
			{Command: []string{"true", "{prot}"}, Dir: t.TempDir(), Portal: "p"},
			{Command: []string{"true"}, Dir: "relative", Portal: "p"},
			{Command: []string{"true"}, Dir: t.TempDir(), Portal: "p", Sandbox: "docker"},
			{Command: []string{"true"}, Dir: t.TempDir(), Portal: "p", Env: []EnvVar{{Name: "A-B", Value: "1"}}},
			{Command: []string{"true"}, Dir: t.TempDir(), Portal: "p/q"},
			// TEST-NET-1: not an address of this machine.
			{Command: []string{"true"}, Dir: t.TempDir(), Portal: "p", BindHost: "192.0.2.1"},
		} {
			if _, err := New(cfg, nil); err == nil {
				t.Errorf("New(%+v) accepted", cfg)
			}
		}
		// A wildcard address is one every replica dials as its own
		// loopback, and it opens the dashboards past the gate.
		for _, host := range []string{"0.0.0.0", "::"} {
			_, err := New(Config{Command: []string{"true"}, Dir: t.TempDir(), Portal: "p", BindHost: host}, nil)
			if err == nil || !strings.Contains(err.Error(), "bind "+host+": an unspecified address") {
				t.Errorf("New with bind %s: %v, want the unspecified address refused", host, err)
			}
		}
		// Programs found only at start are not looked for now.
		for _, name := range []string{"{dir}/start.sh", "./start.sh", "bin/start"} {
			if _, err := New(Config{Command: []string{name}, Dir: t.TempDir(), Portal: "p"}, nil); err != nil {
				t.Errorf("New with command %s: %v", name, err)
			}
		}
	})
	t.Run("session name", func(t *testing.T) {
		s, _ := newSpawner(t, helperConfig(t, "dashboard", "{host}:{port}"))
		for _, name := range []string{"", "..", "../x", "a/b", ".caddyportal"} {
			if _, err := s.Start(ctx, specFor(name), nil); err == nil {
				t.Errorf("Start(%q) accepted", name)
			}
			if err := s.Stop(ctx, spawner.Env{Session: name}); err == nil {
				t.Errorf("Stop(%q) accepted", name)
			}
		}
	})
}

func TestProgressSteps(t *testing.T) {
	s, _ := newSpawner(t, helperConfig(t, "dashboard", "{host}:{port}"))
	var steps []string
	report := func(p spawner.Progress) { steps = append(steps, p.Step) }
	env, err := s.Start(context.Background(), specFor("prog-1"), report)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Stop(context.Background(), env)
	if err := spawner.WaitReady(context.Background(), s, env, report); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(steps, ","); got != "starting,started,waiting,ready" {
		t.Fatalf("steps = %s", got)
	}
}

func TestBubblewrapSandbox(t *testing.T) {
	if _, err := exec.LookPath("bwrap"); err != nil {
		t.Fatal("this test needs bwrap (Debian package bubblewrap; .ci/run installs it)")
	}
	// The test binary lives under /tmp, which the sandbox replaces: the
	// sandboxed dashboard is a shell that records what it may do, then
	// Python's http.server.
	script := `cd {dir}
echo mine > notes.txt
try() { if (eval "$2") 2>/dev/null; then echo "$1 yes"; else echo "$1 no"; fi >> result.txt; }
try var-tmp "echo x > /var/tmp/escape-{session}"
try parent "echo x > {dir}/../escape-{session}"
try tmp "echo x > /tmp/private-{session}"
try etc "echo x >> /etc/hostname"
ls -a .. > siblings.txt
cat ../sbx-a/notes.txt > peek.txt 2>&1
exec ` + python(t) + ` -m http.server {port} --bind {host} --directory {dir}`
	cfg := helperConfig(t)
	cfg.Command = []string{"/bin/sh", "-c", script}
	cfg.Sandbox = "bubblewrap"
	s, _ := newSpawner(t, cfg)
	a := start(t, s, specFor("sbx-a"))
	b := start(t, s, specFor("sbx-b"))
	dirB := stateOf(t, b).Dir
	read := func(name string) string {
		data, err := os.ReadFile(filepath.Join(dirB, name))
		if err != nil {
			t.Fatal(err)
		}
		return string(data)
	}
	if got, want := read("result.txt"), "var-tmp no\nparent no\ntmp yes\netc no\n"; got != want {
		t.Fatalf("what the sandbox could write:\n%s\nwant:\n%s", got, want)
	}
	for _, p := range []string{"/var/tmp/escape-sbx-b", filepath.Join(cfg.Dir, "escape-sbx-b"), "/tmp/private-sbx-b"} {
		if exists(p) {
			os.Remove(p)
			t.Errorf("a sandboxed write reached the host: %s", p)
		}
	}
	if got := strings.Fields(read("siblings.txt")); strings.Join(got, " ") != ". .. sbx-b" {
		t.Fatalf("the sandbox sees in the sessions directory: %v", got)
	}
	if got := read("peek.txt"); !strings.Contains(got, "No such file") {
		t.Fatalf("session B read session A's file: %q", got)
	}
	if code, body := get(t, b, "/notes.txt"); code != 200 || body != "mine\n" {
		t.Fatalf("B's own file over HTTP: %d %q", code, body)
	}
	stA := stateOf(t, a)
	markerA := s.marker("sbx-a")
	if n := countProcs(t, stA.PID, markerA); n < 2 {
		t.Fatalf("expected bwrap and the dashboard, found %d processes", n)
	}
	if err := s.Stop(context.Background(), a); err != nil {
		t.Fatal(err)
	}
	if n := countProcs(t, stA.PID, markerA); n != 0 || exists(stA.Dir) {
		t.Fatalf("after Stop: %d processes, dir exists %v", n, exists(stA.Dir))
	}
}

// TestRunsAsUser runs the dashboard as nobody: it cannot read the portal's
// state nor write next to the session directories.
func TestRunsAsUser(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("switching users needs root")
	}
	if _, err := user.Lookup("nobody"); err != nil {
		t.Skip("no user nobody")
	}
	base, bin := publicHelper(t)
	cfg := helperConfig(t, "dashboard", "{host}:{port}")
	cfg.Command[0] = bin
	cfg.Dir = filepath.Join(base, "sessions")
	cfg.User = "nobody"
	s, _ := newSpawner(t, cfg)
	env := start(t, s, specFor("user-1"))
	_, body := get(t, env, "/info")
	var got info
	if err := json.Unmarshal([]byte(body), &got); err != nil {
		t.Fatal(err)
	}
	status, _ := os.ReadFile("/proc/" + strconv.Itoa(got.PID) + "/status")
	if !strings.Contains(string(status), "\nUid:\t65534\t") {
		t.Fatalf("dashboard does not run as nobody:\n%s", status)
	}
	if code, _ := get(t, env, "/write?path=own.txt"); code != 200 {
		t.Fatal("nobody cannot write its own session directory")
	}
	if code, _ := get(t, env, "/write?path="+url.QueryEscape(filepath.Join(cfg.Dir, "escape"))); code != 403 {
		t.Fatal("nobody wrote into the sessions directory")
	}
	if code, _ := get(t, env, "/read?path="+url.QueryEscape(s.stateFile("user-1"))); code != 404 {
		t.Fatal("nobody read the portal's state file")
	}
}

// TestReadyRefusesAForeignListener: a port answered by a process outside the
// environment (another session squatting on it) is not ready.
func TestReadyRefusesAForeignListener(t *testing.T) {
	ctx := context.Background()
	squatter, _ := newSpawner(t, helperConfig(t, "dashboard", "{host}:{port}"))
	other := start(t, squatter, specFor("squat-a"))
	s, _ := newSpawner(t, helperConfig(t, "silent"))
	victim, err := s.Start(ctx, specFor("squat-b"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Stop(ctx, victim)
	// As if squat-b had been handed the port squat-a listens on.
	st := stateOf(t, victim)
	st.Port = stateOf(t, other).Port
	b, _ := json.Marshal(st)
	forged := spawner.Env{Session: victim.Session, Addr: other.Addr, State: b}
	if err := s.Ready(ctx, forged); err == nil || !strings.Contains(err.Error(), "outside this environment") {
		t.Fatalf("Ready with another environment's listener = %v", err)
	}
	if err := squatter.Ready(ctx, other); err != nil {
		t.Fatalf("Ready of the real owner = %v", err)
	}
}

// TestReadyRefusesASquatterOnTheBindAddress: the environment listens on its
// port, but on another address than the one the gate dials ([::1] where
// the bind host is 127.0.0.1), and someone else listens on that one: the
// connection reaches the stranger, so the environment is not ready, though
// it does own a listener on the port.
func TestReadyRefusesASquatterOnTheBindAddress(t *testing.T) {
	if l, err := net.Listen("tcp6", "[::1]:0"); err != nil {
		t.Fatalf("this test needs IPv6 loopback: %v", err)
	} else {
		l.Close()
	}
	ctx := context.Background()
	s, _ := newSpawner(t, helperConfig(t, "dashboard", "[::1]:{port}"))
	env, err := s.Start(ctx, specFor("squat-c"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Stop(ctx, env)
	port := stateOf(t, env).Port
	squatter, err := net.Listen("tcp4", env.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer squatter.Close()
	go http.Serve(squatter, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, "not yours") }))
	// Wait until the environment's own listener is up, so its presence on
	// the port cannot be what makes Ready refuse.
	own := net.JoinHostPort("::1", strconv.Itoa(port))
	for {
		c, err := net.Dial("tcp6", own)
		if err == nil {
			c.Close()
			break
		}
		if err := s.Alive(ctx, env); err != nil {
			t.Fatal(err)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if err := s.Ready(ctx, env); err == nil || !strings.Contains(err.Error(), "outside this environment") {
		t.Fatalf("Ready with a stranger answering on %s = %v", env.Addr, err)
	}
}

// TestStartRefusesALeftover: a session whose environment a previous run left
// behind is not started over it (nor is the leftover silently destroyed).
func TestStartRefusesALeftover(t *testing.T) {
	ctx := context.Background()
	cfg := helperConfig(t, "dashboard", "{host}:{port}")
	first, _ := newSpawner(t, cfg)
	env := start(t, first, specFor("left-1"))
	second, _ := newSpawner(t, cfg)
	if _, err := second.Start(ctx, specFor("left-1"), nil); err == nil || !strings.Contains(err.Error(), "left from before") {
		t.Fatalf("Start over a leftover = %v", err)
	}
	if err := second.Alive(ctx, env); err != nil {
		t.Fatalf("the refused start killed the leftover: %v", err)
	}
	if err := second.Stop(ctx, env); err != nil {
		t.Fatal(err)
	}
	again := start(t, second, specFor("left-1"))
	// The old record (say, a stale copy) stops nothing of the new environment.
	if err := first.Stop(ctx, env); err != nil {
		t.Fatal(err)
	}
	if second.Alive(ctx, again) != nil || !exists(stateOf(t, again).Dir) {
		t.Fatal("stopping the old record hit the new environment of the same session")
	}
}

func TestSandboxAsUser(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("switching users needs root")
	}
	if _, err := exec.LookPath("bwrap"); err != nil {
		t.Fatal("this test needs bwrap (Debian package bubblewrap; .ci/run installs it)")
	}
	base, err := os.MkdirTemp("", "spawner-sbxuser-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(base) })
	if err := os.Chmod(base, 0o755); err != nil {
		t.Fatal(err)
	}
	cfg := helperConfig(t)
	cfg.Command = []string{"/bin/sh", "-c", "id -u > {dir}/uid; exec " + python(t) + " -m http.server {port} --bind {host} --directory {dir}"}
	cfg.Dir = filepath.Join(base, "sessions")
	cfg.User = "nobody"
	cfg.Sandbox = "bubblewrap"
	s, _ := newSpawner(t, cfg)
	env := start(t, s, specFor("sbxuser-1"))
	if code, body := get(t, env, "/uid"); code != 200 || body != "65534\n" {
		t.Fatalf("uid inside the sandbox: %d %q", code, body)
	}
}

// TestStateFileRewrittenInPlace: the second record of a start overwrites
// the first in place; a shorter one is padded, and both List and Stop read
// the record, not a mix of the two.
func TestStateFileRewrittenInPlace(t *testing.T) {
	cfg := helperConfig(t, "dashboard", "{host}:{port}")
	s, _ := newSpawner(t, cfg)
	long := State{PID: 123456, Start: 987654321, PGID: 123456, Port: 40000, Dir: s.sessionDir("pad-1"), Ready: "/a/long/ready/path",
		Portal: cfg.Portal, Replica: cfg.Replica}
	first, err := s.createState("pad-1", long)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.createState("pad-1", long); err == nil {
		t.Fatal("a second createState overwrote an existing record")
	}
	short := State{Port: 40001, Dir: s.sessionDir("pad-1"), Portal: cfg.Portal, Replica: cfg.Replica}
	second, err := s.updateState("pad-1", first, short)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(s.stateFile("pad-1"))
	if err != nil || len(raw) != len(first) {
		t.Fatalf("file is %d bytes (%v), want the first record's %d", len(raw), err, len(first))
	}
	envs, err := s.List(context.Background())
	if err != nil || len(envs) != 1 || !bytes.Equal(envs[0].State, second) {
		t.Fatalf("List = %+v, %v; want the second record %s", envs, err, second)
	}
	if got := stateOf(t, envs[0]); got.Port != 40001 || got.PID != 0 {
		t.Fatalf("listed state %+v, want the second record", got)
	}
	if err := s.Stop(context.Background(), envs[0]); err != nil || exists(s.stateFile("pad-1")) {
		t.Fatalf("Stop = %v, state file left: %v", err, exists(s.stateFile("pad-1")))
	}
}

// TestEmptyStateFileIsCleanedUp: a portal killed between creating a state
// file and writing it leaves it empty; the next run lists it and Stop
// removes it with the session's directory.
func TestEmptyStateFileIsCleanedUp(t *testing.T) {
	cfg := helperConfig(t, "dashboard", "{host}:{port}")
	s, _ := newSpawner(t, cfg)
	if err := os.WriteFile(s.stateFile("torn-1"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(s.sessionDir("torn-1"), 0o700); err != nil {
		t.Fatal(err)
	}
	envs, err := s.List(context.Background())
	if err != nil || len(envs) != 1 || envs[0].Session != "torn-1" {
		t.Fatalf("List = %+v, %v", envs, err)
	}
	if err := s.Stop(context.Background(), envs[0]); err != nil {
		t.Fatal(err)
	}
	if exists(s.stateFile("torn-1")) || exists(s.sessionDir("torn-1")) {
		t.Fatal("Stop left the empty state file or the directory")
	}
}

// TestRunningEnvironmentsHoldNoThreads: the spawner learns of its
// processes' exits from the runtime's poller, not from a thread blocked in
// wait per environment (which made a class of 200 cost the portal 200
// threads, and would stop it at Go's limit of 10,000), and still learns at
// once: a killed environment's exit status is reported.
func TestRunningEnvironmentsHoldNoThreads(t *testing.T) {
	s, _ := newSpawner(t, helperConfig(t, "sleeper"))
	ctx := context.Background()
	before := threadCount(t)
	const n = 40
	var envs []spawner.Env
	for i := range n {
		env, err := s.Start(ctx, specFor("idle"+strconv.Itoa(i)), nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = s.Stop(context.Background(), env) })
		envs = append(envs, env)
	}
	for _, env := range envs {
		if err := s.Alive(ctx, env); err != nil {
			t.Fatalf("%s: %v", env.Session, err)
		}
	}
	// The runtime keeps a few threads of its own (GC, sysmon, idle Ms); a
	// thread per environment would add n.
	if grew := threadCount(t) - before; grew >= n/2 {
		t.Fatalf("%d running environments added %d threads to the portal", n, grew)
	}
	if err := syscall.Kill(stateOf(t, envs[0]).PID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	eventually(t, "Alive to report the killed one gone", func() bool { return s.Alive(ctx, envs[0]) != nil })
	if err := s.Alive(ctx, envs[0]); !errors.Is(err, spawner.ErrGone) || !strings.Contains(err.Error(), "killed") {
		t.Fatalf("Alive after SIGKILL = %v", err)
	}
	if err := s.Alive(ctx, envs[1]); err != nil {
		t.Fatalf("a neighbour of the killed one: %v", err)
	}
}

// threadCount is the number of OS threads of this process.
func threadCount(t *testing.T) int {
	t.Helper()
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "Threads:"); ok {
			n, err := strconv.Atoi(strings.TrimSpace(v))
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Fatal("/proc/self/status has no Threads line")
	return 0
}

// TestSharedScansSeeProcessesStartedBefore: concurrent callers share
// passes over /proc, but each gets a pass that listed /proc after it
// asked, so a process started just before the call is always in it.
func TestSharedScansSeeProcessesStartedBefore(t *testing.T) {
	var ps procScans
	self := selfPath(t)
	const callers = 16
	errs := make(chan error, callers)
	for range callers {
		go func() {
			cmd := exec.Command(self, "sleeper")
			cmd.Env = []string{helperVar + "=1"}
			if err := cmd.Start(); err != nil {
				errs <- err
				return
			}
			defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
			procs, err := ps.since(time.Now())
			if err != nil {
				errs <- err
				return
			}
			for _, p := range procs {
				if p.PID == cmd.Process.Pid {
					errs <- nil
					return
				}
			}
			errs <- fmt.Errorf("a pass asked for after starting pid %d does not list it (%d processes)", cmd.Process.Pid, len(procs))
		}()
	}
	for range callers {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
}

// TestMarkerFoundInALargeEnvironment: the marker is read from the whole
// environment of a process, however long, wherever it stands.
func TestMarkerFoundInALargeEnvironment(t *testing.T) {
	cmd := exec.Command(selfPath(t), "sleeper")
	cmd.Env = []string{helperVar + "=1"}
	for i := range 3 { // 300 KB; one variable may hold at most 128 KB
		cmd.Env = append(cmd.Env, "FILLER"+strconv.Itoa(i)+"="+strings.Repeat("x", 100<<10))
	}
	cmd.Env = append(cmd.Env, MarkerVar+"=portal/r1/big-env")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	// The kernel fills /proc/<pid>/environ in at the end of the exec,
	// a moment after Start returns.
	var m string
	eventually(t, "the marker to be read", func() bool {
		m, _ = procfs.Env(cmd.Process.Pid, MarkerVar, nil)
		return m != ""
	})
	if m != "portal/r1/big-env" {
		t.Fatalf("marker %q", m)
	}
	if m, _ := procfs.Env(os.Getpid(), MarkerVar, make([]byte, 0, 4)); m != "" {
		t.Fatalf("marker of the test itself %q", m)
	}
}

// TestCommandWithoutPortIsWarned: a command that passes the dashboard no
// {port} (in its arguments or a variable) loads, since the dashboard may
// read $PORT, but the config's check says so, once: New, when the config
// runs, does not say it again. One that passes it does not warn. The check
// creates nothing, not even the spawner's directory.
func TestCommandWithoutPortIsWarned(t *testing.T) {
	for name, tc := range map[string]struct {
		cfg  Config
		warn bool
	}{
		"no port":          {Config{Command: []string{"true", "--serve"}}, true},
		"port in argument": {Config{Command: []string{"true", "--listen=127.0.0.1:{port}"}}, false},
		"port in variable": {Config{Command: []string{"true"}, Env: []EnvVar{{Name: "LISTEN", Value: ":{port}"}}}, false},
	} {
		core, logs := observer.New(zap.WarnLevel)
		cfg := tc.cfg
		cfg.Dir, cfg.Portal = filepath.Join(t.TempDir(), "sessions"), testPortal
		if err := Check(cfg, zap.New(core)); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if _, err := os.Stat(cfg.Dir); !os.IsNotExist(err) {
			t.Fatalf("%s: the check made the spawner's directory: %v", name, err)
		}
		s, err := New(cfg, zap.New(core))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		s.Close()
		warned := logs.FilterMessageSnippet("$PORT").Len()
		if tc.warn && warned != 1 || !tc.warn && warned != 0 {
			t.Errorf("%s: %d warnings about $PORT, want warn=%v", name, warned, tc.warn)
		}
	}
}

// TestStopRemovesTheFilesOfAFormerDir: after a reload that changed `dir`,
// stopping an environment started under the old one removes its session
// directory (the learner's files) and its state there too; a record whose
// directory is not a process spawner's session directory is left alone.
func TestStopRemovesTheFilesOfAFormerDir(t *testing.T) {
	cfg := helperConfig(t, "dashboard", "{host}:{port}")
	before, _ := newSpawner(t, cfg)
	env := start(t, before, specFor("moved-1"))
	if code, _ := get(t, env, "/write?path=notes.txt"); code != 200 {
		t.Fatal("could not write in the session directory")
	}
	st := stateOf(t, env)
	oldState := filepath.Join(cfg.Dir, stateDirName, "moved-1.json")
	if !exists(filepath.Join(st.Dir, "notes.txt")) || !exists(oldState) {
		t.Fatalf("before the reload: no notes in %s or no state file", st.Dir)
	}
	moved := cfg
	moved.Dir = filepath.Join(t.TempDir(), "elsewhere")
	after, logs := newSpawner(t, moved)
	if err := after.Stop(context.Background(), env); err != nil {
		t.Fatal(err)
	}
	if n := countProcs(t, st.PID, after.marker("moved-1")); n != 0 || exists(st.Dir) || exists(oldState) {
		t.Fatalf("after Stop: %d processes, dir exists %v, state file exists %v", n, exists(st.Dir), exists(oldState))
	}

	// An environment of the former dir whose session ended while the
	// portal was down: listed as a stray from its marked process, it is
	// stopped and its files go too.
	stray := start(t, before, specFor("moved-4"))
	strayDir := stateOf(t, stray).Dir
	listed, err := after.List(context.Background())
	if err != nil || len(listed) != 1 || listed[0].Session != "moved-4" {
		t.Fatalf("List after the reload = %+v, %v", listed, err)
	}
	if err := after.Stop(context.Background(), listed[0]); err != nil {
		t.Fatal(err)
	}
	if n := countProcs(t, stateOf(t, stray).PID, after.marker("moved-4")); n != 0 || exists(strayDir) ||
		exists(filepath.Join(cfg.Dir, stateDirName, "moved-4.json")) {
		t.Fatalf("after stopping the stray: %d processes, dir exists %v", n, exists(strayDir))
	}

	// Records that point elsewhere: a directory of the same name outside
	// any spawner's dir, and a spawner's dir itself.
	outside := filepath.Join(t.TempDir(), "moved-2")
	if err := os.MkdirAll(outside, 0o700); err != nil {
		t.Fatal(err)
	}
	for session, dir := range map[string]string{"moved-2": outside, "moved-3": cfg.Dir} {
		b, _ := json.Marshal(State{Dir: dir, Portal: cfg.Portal, Replica: cfg.Replica})
		if err := after.Stop(context.Background(), spawner.Env{Session: session, State: b}); err != nil {
			t.Fatal(err)
		}
		if !exists(dir) {
			t.Fatalf("Stop of %s removed %s", session, dir)
		}
	}
	if n := logs.FilterMessage("not removing a session directory outside this spawner's dir that no process spawner made").Len(); n != 2 {
		t.Fatalf("%d warnings of records pointing elsewhere, want 2", n)
	}
}

// TestUserNeedsTheRightToSwitch: a portal that may not switch users (here
// root without CAP_SETUID and CAP_SETGID, as in many containers) refuses
// `user` at load with what to do, instead of failing every start; with the
// capabilities it loads and runs a dashboard as that user, and a `user`
// that is the portal's own needs none. Each case is a real portal process
// (the test binary in load mode) started through util-linux's setpriv.
func TestUserNeedsTheRightToSwitch(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("this test drops capabilities from root: run it as root (CI does)")
	}
	setpriv, err := exec.LookPath("setpriv")
	if err != nil {
		t.Fatal("this test needs setpriv (Debian's util-linux)")
	}
	base, bin := publicHelper(t)
	load := func(user string, dropCaps bool) string {
		t.Helper()
		cfg := helperConfig(t, "dashboard", "{host}:{port}")
		cfg.Command[0] = bin
		cfg.Dir = filepath.Join(base, "sessions-"+user+strconv.FormatBool(dropCaps))
		cfg.User = user
		cfgJSON, _ := json.Marshal(cfg)
		args := []string{bin, "load", string(cfgJSON)}
		if dropCaps {
			args = append([]string{setpriv, "--bounding-set", "-setuid,-setgid", "--inh-caps", "-setuid,-setgid"}, args...)
		}
		cmd := exec.Command(args[0], args[1:]...)
		cmd.Env = append(os.Environ(), helperVar+"=1")
		out, _ := cmd.CombinedOutput()
		return strings.TrimSpace(string(out))
	}
	if got := load("nobody", true); !strings.Contains(got, "user nobody: the portal may not switch users") || !strings.Contains(got, "CAP_SETUID") {
		t.Fatalf("without the capabilities: %q", got)
	}
	if got := load("nobody", false); got != "ok" {
		t.Fatalf("with them: %q", got)
	}
	if got := load("root", true); got != "ok" {
		t.Fatalf("the portal's own user without the capabilities: %q", got)
	}
}

// publicHelper copies the test binary into a world-readable directory of
// its own and returns both: a user the dashboards run as must reach the
// binary and the sessions directory (t.TempDir's parents are 0700).
func publicHelper(t *testing.T) (base, bin string) {
	t.Helper()
	base, err := os.MkdirTemp("", "spawner-user-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(base) })
	if err := os.Chmod(base, 0o755); err != nil {
		t.Fatal(err)
	}
	bin = filepath.Join(base, "helper")
	src, err := os.ReadFile(selfPath(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, src, 0o755); err != nil {
		t.Fatal(err)
	}
	return base, bin
}
