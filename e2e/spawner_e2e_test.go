package e2e

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/caddyportal/caddyportal/internal/e2etest"
)

// spawnedBody is a portal whose one workshop starts a real dashboard
// process per session: Python's file server in the session's own
// directory (its working directory).
func spawnedBody(sessions string) string {
	return spawnPortalHead(1) + processWorkshop("lab-proc", "", pythonDashboard, sessions)
}

// spawnPortalHead is the portal part of a body before its workshops:
// portal demo, at most 4 sessions and registered per user.
func spawnPortalHead(registered int) string {
	return fmt.Sprintf(`
		name demo
		storage badger {dir}
		index https://hub.example.com/
		redirects https://hub.example.com
		sessions maximum 4 registered %d
		robot robot@portal robot-pass
		client test-client test-secret
		replica %s
`, registered, e2eReplica)
}

// pythonDashboard is Python's file server as a process spawner's command.
const pythonDashboard = "/usr/bin/python3 -m http.server {port} --bind 127.0.0.1"

// processWorkshop is a workshop block (title "" for the default) of
// capacity 2 whose process spawner runs command with dir as its dir.
func processWorkshop(name, title, command, dir string) string {
	if title != "" {
		title = fmt.Sprintf("title %q", title)
	}
	return fmt.Sprintf(`
		workshop %s {
			%s
			capacity 2
			reserved 0
			expires 60m
			spawner process {
				command %s
				dir %s
				ready / 60s
				stop_timeout 5s
			}
		}
`, name, title, command, dir)
}

// dashboardProcesses lists the processes whose environment marks them as
// session's environment (the process spawner's marker).
func dashboardProcesses(t *testing.T, session string) []string {
	t.Helper()
	return markedProcesses(t, "demo/"+e2eReplica+"/"+session)
}

// markedProcesses lists the processes whose environment carries the
// process spawner's marker with value <portal>/<replica>/<session>.
func markedProcesses(t *testing.T, value string) []string {
	t.Helper()
	marker := []byte("CADDYPORTAL_ENV=" + value + "\x00")
	entries, _ := os.ReadDir("/proc")
	var pids []string
	for _, e := range entries {
		env, err := os.ReadFile(filepath.Join("/proc", e.Name(), "environ"))
		if err == nil && bytes.Contains(env, marker) {
			pids = append(pids, e.Name())
		}
	}
	return pids
}

// waitFor polls cond until it holds or a generous deadline passes (a bound
// on a broken run, not a measurement).
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestSpawnedSessionLifecycle runs a session's own dashboard process from
// request to end through a real Caddy: the learner sees a starting page
// until the dashboard answers, then the dashboard in the session's own
// directory; ending the session stops the process and removes its
// directory before the session is STOPPED, and the next learner starts
// clean.
func TestSpawnedSessionLifecycle(t *testing.T) {
	if _, err := os.Stat("/usr/bin/python3"); err != nil {
		t.Fatal("this test needs /usr/bin/python3 (Debian's python3)")
	}
	sessions := t.TempDir()
	p := startPortal(t, t.TempDir(), spawnedBody(sessions))
	tok := p.Token(e2etest.RobotUser, e2etest.RobotPass)

	// Parameters become the environment's variables: a name that cannot be
	// one is refused with the request, not later as a failed start.
	bad := p.Do(http.MethodPost, "/workshops/environment/demo-w01/request/?user=mallory&index_url=https://hub.example.com/",
		tok, strings.NewReader(`{"parameters":[{"name":"LD_PRELOAD","value":"/tmp/x.so"}]}`), map[string]string{"Content-Type": "application/json"})
	if bad.Status != http.StatusBadRequest || !strings.Contains(string(bad.Body), "LD_PRELOAD") {
		t.Fatalf("a reserved parameter name: %d %s", bad.Status, bad.Body)
	}
	// Nor can a variable hold a NUL byte (JSON can: \u0000).
	bad = p.Do(http.MethodPost, "/workshops/environment/demo-w01/request/?user=mallory&index_url=https://hub.example.com/",
		tok, strings.NewReader(`{"parameters":[{"name":"GREETING","value":"hi\u0000there"}]}`), map[string]string{"Content-Type": "application/json"})
	if bad.Status != http.StatusBadRequest || !strings.Contains(string(bad.Body), "NUL") {
		t.Fatalf("a parameter value with a NUL byte: %d %s", bad.Status, bad.Body)
	}

	name, ck, loc := p.Activate(tok, "demo-w01", "alice")
	if ck == nil || loc != "/workshops/session/"+name+"/" {
		t.Fatalf("activation of %s: cookie %v, location %q", name, ck, loc)
	}
	get := func(path string) resp {
		return p.Do(http.MethodGet, path, "", nil, map[string]string{"Cookie": ck.Name + "=" + ck.Value})
	}
	var sawStarting bool
	waitFor(t, "the dashboard", func() bool {
		r := get(loc)
		if r.Status == http.StatusOK && strings.Contains(string(r.Body), "Starting your workshop") {
			sawStarting = true
			return false
		}
		return r.Status == http.StatusOK && strings.Contains(string(r.Body), "Directory listing")
	})
	t.Logf("saw the starting page first: %v", sawStarting)
	// The REST face of the starting page says the same.
	pr := p.Do(http.MethodGet, "/workshops/session/"+name+"/progress/", tok, nil, nil)
	if pm := pr.JSON(t); pr.Status != http.StatusOK || pm["ready"] != true || pm["state"] != "RUNNING" || pm["position"] != 0.0 {
		t.Fatalf("progress of a ready session: %d %v", pr.Status, pm)
	}
	dir := filepath.Join(sessions, name)
	if err := os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("alice was here"), 0o600); err != nil {
		t.Fatal(err)
	}
	if r := get(loc + "notes.txt"); r.Status != http.StatusOK || string(r.Body) != "alice was here" {
		t.Fatalf("the learner's own file through the gate: %d %q", r.Status, r.Body)
	}
	if pids := dashboardProcesses(t, name); len(pids) == 0 {
		t.Fatal("no dashboard process carries the session's marker")
	}

	if r := p.Do(http.MethodPost, "/workshops/session/"+name+"/terminate/", tok, nil, nil); r.Status != http.StatusOK {
		t.Fatalf("terminate: %d %s", r.Status, r.Body)
	}
	// STOPPING until its environment is gone; STOPPED (schedule: 404) only
	// then.
	waitFor(t, "the session to be STOPPED", func() bool {
		return p.Do(http.MethodGet, "/workshops/session/"+name+"/schedule/", tok, nil, nil).Status == http.StatusNotFound
	})
	if pids := dashboardProcesses(t, name); len(pids) != 0 {
		t.Fatalf("processes of the ended session %s still run: %v", name, pids)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Fatalf("the ended session's directory is still there: %v", err)
	}

	next, ck2, loc2 := p.Activate(tok, "demo-w01", "bob")
	// A client that accepts an event stream follows the start until the
	// dashboard is ready, and the stream ends there.
	events := progressEvents(t, p, tok, next)
	if len(events) == 0 || events[len(events)-1]["ready"] != true {
		t.Fatalf("progress events of %s: %v, want the last one ready", next, events)
	}
	get2 := func(path string) resp {
		return p.Do(http.MethodGet, path, "", nil, map[string]string{"Cookie": ck2.Name + "=" + ck2.Value})
	}
	waitFor(t, "the next learner's dashboard", func() bool {
		r := get2(loc2)
		return r.Status == http.StatusOK && strings.Contains(string(r.Body), "Directory listing")
	})
	if r := get2(loc2 + "notes.txt"); r.Status != http.StatusNotFound {
		t.Fatalf("the next learner (%s) sees the previous learner's file: %d %q", next, r.Status, r.Body)
	}

	// The dashboard dies under the learner (kill -9 of its process group):
	// a reconcile pass ends the session (STOPPED once what was left of it
	// is stopped), and the browser is sent to the index. The reason and
	// the message the learner reads are the sessions package's tests.
	for _, pid := range dashboardProcesses(t, next) {
		if n, err := strconv.Atoi(pid); err == nil {
			if pgid, err := syscall.Getpgid(n); err == nil {
				_ = syscall.Kill(-pgid, syscall.SIGKILL)
			}
		}
	}
	waitFor(t, "the session whose dashboard died to be STOPPED", func() bool {
		return p.Do(http.MethodGet, "/workshops/session/"+next+"/schedule/", tok, nil, nil).Status == http.StatusNotFound
	})
	if r := get2(loc2); r.Status != http.StatusFound || !strings.Contains(r.Header.Get("Location"), "notification=session-deleted") {
		t.Fatalf("the dashboard of a session whose environment died: %d %v", r.Status, r.Header)
	}
	if _, err := os.Stat(filepath.Join(sessions, next)); !os.IsNotExist(err) {
		t.Fatalf("the directory of the session whose dashboard died is still there: %v", err)
	}
}

// progressEvents reads the progress event stream of session to its end.
func progressEvents(t *testing.T, p *portal, tok, session string) []map[string]any {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, p.Base+"/workshops/session/"+session+"/progress/", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("Accept", "text/event-stream")
	res, err := e2etest.NoRedirect.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if ct := res.Header.Get("Content-Type"); res.StatusCode != http.StatusOK || !strings.HasPrefix(ct, "text/event-stream") {
		t.Fatalf("progress stream: %d %s", res.StatusCode, ct)
	}
	var out []map[string]any
	sc := bufio.NewScanner(res.Body)
	for sc.Scan() {
		data, ok := strings.CutPrefix(sc.Text(), "data: ")
		if !ok {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(data), &m); err != nil {
			t.Fatalf("progress event %q: %v", data, err)
		}
		out = append(out, m)
	}
	return out
}

// TestSpawnedSessionsSurviveAReload: a config reload keeps what runs. Two
// workshops whose process spawners share one directory (as Caddy's default
// directory, which is per portal, makes them) each list the other's
// environments; the new config's reconciliation must take neither for
// strays (each once stopped the other's), nor lose a start whose dashboard
// is not ready yet. (A start whose backend call is still under way at the
// reload, the longer window of a container's pull and create, is the
// sessions package's TestSpawnReloadKeepsAStartUnderWay.)
func TestSpawnedSessionsSurviveAReload(t *testing.T) {
	if _, err := os.Stat("/usr/bin/python3"); err != nil {
		t.Fatal("this test needs /usr/bin/python3 (Debian's python3)")
	}
	sessions := t.TempDir()
	// lab-b's dashboard listens only once the file gate exists: the test
	// creates it after the reload, so the reload comes mid-start.
	gate := filepath.Join(t.TempDir(), "go")
	body := func(title string) string {
		return spawnPortalHead(2) +
			processWorkshop("lab-a", title, pythonDashboard, sessions) +
			processWorkshop("lab-b", "", `/bin/sh -c "while [ ! -e `+gate+` ]; do sleep 0.05; done; exec `+pythonDashboard+`"`, sessions)
	}
	p := startPortal(t, t.TempDir(), body("Lab A"))
	tok := p.Token(e2etest.RobotUser, e2etest.RobotPass)
	page := func(ck *http.Cookie, loc string) resp {
		return p.Do(http.MethodGet, loc, "", nil, map[string]string{"Cookie": ck.Name + "=" + ck.Value})
	}
	ready := func(ck *http.Cookie, loc string) bool {
		r := page(ck, loc)
		return r.Status == http.StatusOK && strings.Contains(string(r.Body), "Directory listing")
	}
	a, ckA, locA := p.Activate(tok, "demo-w01", "alice")
	// A portal that stops leaves its environments running for the next
	// start to adopt: end the sessions, so their dashboards go.
	t.Cleanup(func() { endSession(t, p, tok, a) })
	waitFor(t, "alice's dashboard", func() bool { return ready(ckA, locA) })
	pidsA := dashboardProcesses(t, a)
	b, ckB, locB := p.Activate(tok, "demo-w02", "bob")
	t.Cleanup(func() { endSession(t, p, tok, b) })
	if r := page(ckB, locB); r.Status != http.StatusOK || !strings.Contains(string(r.Body), "Starting your workshop") {
		t.Fatalf("bob's page right after the request: %d %.200s", r.Status, r.Body)
	}

	p.Load(body("Lab A, reloaded"))

	if got := dashboardProcesses(t, a); len(got) == 0 || got[0] != pidsA[0] {
		t.Fatalf("alice's dashboard processes after the reload: %v, before: %v", got, pidsA)
	}
	if !ready(ckA, locA) {
		t.Fatalf("alice's dashboard does not answer after the reload: %+v", page(ckA, locA))
	}
	if err := os.WriteFile(gate, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "bob's dashboard, started across the reload", func() bool {
		r := page(ckB, locB)
		if r.Status != http.StatusOK {
			pr := p.Do(http.MethodGet, "/workshops/session/"+b+"/progress/", tok, nil, nil)
			t.Fatalf("bob's session after the reload: %d %.200s (progress: %s)", r.Status, r.Body, pr.Body)
		}
		return strings.Contains(string(r.Body), "Directory listing")
	})
}

// TestRemovedWorkshopsEnvironmentStoppedWhenItsSessionEnds: a workshop is
// removed by a config reload while a learner is in it. The learner keeps
// the dashboard until the session ends; then its processes and directory
// are gone, stopped by the remaining workshop's spawner on the same
// directory (they used to run on, the session STOPPING for ever).
func TestRemovedWorkshopsEnvironmentStoppedWhenItsSessionEnds(t *testing.T) {
	if _, err := os.Stat("/usr/bin/python3"); err != nil {
		t.Fatal("this test needs /usr/bin/python3 (Debian's python3)")
	}
	sessions := t.TempDir()
	both := spawnPortalHead(2) + processWorkshop("lab-a", "", pythonDashboard, sessions) +
		processWorkshop("lab-b", "", pythonDashboard, sessions)
	p := startPortal(t, t.TempDir(), both)
	tok := p.Token(e2etest.RobotUser, e2etest.RobotPass)
	name, ck, loc := p.Activate(tok, "demo-w01", "alice")
	ready := func() bool {
		r := p.Do(http.MethodGet, loc, "", nil, map[string]string{"Cookie": ck.Name + "=" + ck.Value})
		return r.Status == http.StatusOK && strings.Contains(string(r.Body), "Directory listing")
	}
	waitFor(t, "alice's dashboard", ready)

	p.Load(spawnPortalHead(2) + processWorkshop("lab-b", "", pythonDashboard, sessions))
	if !ready() {
		t.Fatal("alice lost her dashboard when her workshop was removed; it should drain")
	}
	if _, err := os.Stat(filepath.Join(sessions, name)); err != nil {
		t.Fatalf("the session's directory: %v", err)
	}
	if r := p.Do(http.MethodPost, "/workshops/session/"+name+"/terminate/", tok, nil, nil); r.Status != http.StatusOK {
		t.Fatalf("terminate: %d %s", r.Status, r.Body)
	}
	waitFor(t, "the session to be STOPPED", func() bool {
		return p.Do(http.MethodGet, "/workshops/session/"+name+"/schedule/", tok, nil, nil).Status == http.StatusNotFound
	})
	if pids := dashboardProcesses(t, name); len(pids) != 0 {
		t.Fatalf("processes of the removed workshop's ended session still run: %v", pids)
	}
	if _, err := os.Stat(filepath.Join(sessions, name)); !os.IsNotExist(err) {
		t.Fatalf("the ended session's directory is still there: %v", err)
	}
}
