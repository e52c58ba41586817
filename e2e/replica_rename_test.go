package e2e

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/caddyportal/caddyportal/internal/e2etest"
)

// TestRenamedHostKeepsItsEnvironments: a portal on Badger whose block names
// no replica is called after its host, and the host's name can change
// under it (a container gets a new one at every restart). Restarted under
// another host name (its own UTS namespace), the portal still owns the
// environments it started: it serves them, and ending a session stops its
// process, removes its directory and frees its place.
func TestRenamedHostKeepsItsEnvironments(t *testing.T) {
	t.Parallel() // separate binaries only (see doc.go)
	o := newOwnPortal(t, "rename")
	host, err := os.Hostname()
	if err != nil {
		t.Fatal(err)
	}
	name, sessionsDir, dataDir, base := o.name, o.sessions, o.data, o.base
	cf := o.caddyfile(name, 0, "storage badger {dir}", "sessions registered 1")

	first := e2etest.StartBinary(t, e2etest.Binary(t), dataDir, cf, base, e2etest.NoRedirect)
	token := robotToken(t, base)
	alice, mark := markedLearner(t, base, token, "alice", name+"-w01", sessionsDir)
	pids := markedProcesses(t, name+"/"+host+"/"+alice.name)
	if len(pids) == 0 {
		t.Fatalf("no dashboard process marked as %s's on replica %s", alice.name, host)
	}
	first.Kill()

	// The same binary, data and config on a host now called otherwise.
	wrapper := filepath.Join(t.TempDir(), "renamed")
	script := "#!/bin/sh\nexec unshare --uts sh -c 'hostname renamed-" + host + " && exec \"$0\" \"$@\"' " + e2etest.Binary(t) + " \"$@\"\n"
	if err := os.WriteFile(wrapper, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	e2etest.StartBinary(t, wrapper, dataDir, cf, base, e2etest.NoRedirect)
	alice.awaitDashboard(base, mark)
	if now := markedProcesses(t, name+"/"+host+"/"+alice.name); strings.Join(now, ",") != strings.Join(pids, ",") {
		t.Fatalf("after the rename alice's processes changed from %v to %v", pids, now)
	}
	if r := remote(t, base, 0, "").Do("GET", "/workshops/session/"+alice.name+"/terminate/", token, nil, nil); r.Status != http.StatusOK {
		t.Fatalf("terminating alice's session: %d %s", r.Status, r.Body)
	}
	waitFor(t, "alice's processes to stop", func() bool {
		return len(markedProcesses(t, name+"/"+host+"/"+alice.name)) == 0
	})
	waitFor(t, "alice's directory to go", func() bool {
		_, err := os.Stat(filepath.Join(sessionsDir, alice.name))
		return os.IsNotExist(err)
	})
	// Her place is free again: with capacity 2, two more learners start.
	for _, user := range []string{"bob", "carol"} {
		l := activateOn(t, base, base, token, user, name+"-w01")
		if r := l.page(base); r.Status >= 500 {
			t.Fatalf("%s's dashboard: %d %s", user, r.Status, r.Body)
		}
	}
}

// TestReleaseAReplicaThatIsGone: a portal on Badger whose `replica` line is
// changed leaves the sessions of the old name waiting for a replica that
// never runs: it says so at start-up, and through the real admin API the
// operator sees the old replica and releases it. The learner's session
// ends and her place is free at once; her dashboard process is left alone
// (another machine's, as far as the portal knows) until the portal runs
// under the old name again, which stops it as a stray and removes its
// directory.
func TestReleaseAReplicaThatIsGone(t *testing.T) {
	t.Parallel() // separate binaries only (see doc.go)
	o := newOwnPortal(t, "release")
	name, sessionsDir, dataDir, base, admin := o.name, o.sessions, o.data, o.base, o.admin
	caddyfile := func(replica string) string { return o.caddyfile(name, 0, "replica "+replica, "storage badger {dir}") }
	routes := "/portal/" + name + "/replicas/"

	one := e2etest.StartBinary(t, e2etest.Binary(t), dataDir, caddyfile("one"), base, e2etest.NoRedirect)
	token := robotToken(t, base)
	alice, _ := markedLearner(t, base, token, "alice", name+"-w01", sessionsDir)
	marker := name + "/one/" + alice.name
	pids := markedProcesses(t, marker)
	if len(pids) == 0 {
		t.Fatalf("no dashboard process marked %s", marker)
	}
	one.Kill()

	two := e2etest.StartBinary(t, e2etest.Binary(t), dataDir, caddyfile("two"), base, e2etest.NoRedirect)
	if log := two.Logs.String(); !strings.Contains(log, "live sessions belong to another replica name") || !strings.Contains(log, routes+"one/release/") {
		t.Fatalf("the renamed portal did not say what waits for the old name:\n%s", log)
	}
	var list []map[string]any
	adminCall(t, admin, "GET", routes, 200, &list)
	if len(list) != 2 || list[0]["name"] != "two" || list[0]["this"] != true ||
		list[1]["name"] != "one" || list[1]["silent"] != true || list[1]["running"] != float64(1) {
		t.Fatalf("replicas: %v", list)
	}
	// Operators alert on it.
	metrics := get(t, e2etest.NoRedirect, "http://"+admin+"/metrics", nil)
	if line := `caddyportal_stranded_sessions{portal="` + name + `",replica="one"} 1`; !strings.Contains(string(metrics.Body), line) {
		t.Fatalf("/metrics lacks %s", line)
	}
	// The workshop's two places: alice's, and one for bob.
	activateOn(t, base, base, token, "bob", name+"-w01")
	if r := remote(t, base, 0, "").Request(token, name+"-w01", "user=carol&index_url=https://hub.example.com/"); r.Status == http.StatusOK {
		t.Fatalf("carol got a session beside alice's and bob's: %s", r.Body)
	}

	var refused map[string]string
	adminCall(t, admin, "POST", routes+"two/release/", 409, &refused)
	var done map[string]any
	adminCall(t, admin, "POST", routes+"one/release/", 200, &done)
	if done["ended"] != float64(1) || done["restarted"] != float64(0) {
		t.Fatalf("released: %v", done)
	}
	// Alice is sent back to her hub, told her session ended.
	if r := alice.page(base); r.Status != http.StatusFound && r.Status != http.StatusSeeOther || !strings.Contains(r.Header.Get("Location"), "hub.example.com") {
		t.Fatalf("alice's dashboard after the release: %d %v %s", r.Status, r.Header, r.Body)
	}
	carol := activateOn(t, base, base, token, "carol", name+"-w01")
	if r := carol.page(base); r.Status >= 500 {
		t.Fatalf("carol's dashboard: %d %s", r.Status, r.Body)
	}
	if now := markedProcesses(t, marker); strings.Join(now, ",") != strings.Join(pids, ",") {
		t.Fatalf("the release touched alice's processes: %v, then %v", pids, now)
	}

	// Back under its old name, the portal stops what it finds of alice's.
	two.Kill()
	e2etest.StartBinary(t, e2etest.Binary(t), dataDir, caddyfile("one"), base, e2etest.NoRedirect)
	waitFor(t, "alice's processes to stop", func() bool { return len(markedProcesses(t, marker)) == 0 })
	waitFor(t, "alice's directory to go", func() bool {
		_, err := os.Stat(filepath.Join(sessionsDir, alice.name))
		return os.IsNotExist(err)
	})
}

// markedLearner requests and activates a session of env for user on base,
// writes a file into the session's directory under sessionsDir, and waits
// until the learner's dashboard lists it: the learner's own environment
// serves them. It returns the learner and the file's name.
func markedLearner(t *testing.T, base, token, user, env, sessionsDir string) (*replicaLearner, string) {
	t.Helper()
	l := activateOn(t, base, base, token, user, env)
	mark := "mark-" + l.name + ".txt"
	waitFor(t, user+"'s directory", func() bool {
		return os.WriteFile(filepath.Join(sessionsDir, l.name, mark), nil, 0o644) == nil
	})
	l.awaitDashboard(base, mark)
	return l, mark
}

// ownPortal is what a test that runs the portal binary on a process
// workshop of its own needs: a portal name no other test uses (dashboards
// are told apart by the marker that names the portal, and other tests run
// beside), a sessions directory, a data directory, a port and an admin
// address. The dashboards marked with its name are killed when the test
// ends, whatever it left.
type ownPortal struct {
	name, sessions, data, admin, base string
	port                              int
}

func newOwnPortal(t *testing.T, prefix string) *ownPortal {
	t.Helper()
	if _, err := os.Stat("/usr/bin/python3"); err != nil {
		t.Fatal("this test needs /usr/bin/python3 (Debian's python3)")
	}
	o := &ownPortal{name: fmt.Sprintf("%s%d", prefix, os.Getpid()), sessions: t.TempDir(), data: t.TempDir(),
		port: e2etest.FreePort(t)}
	o.admin = fmt.Sprintf("127.0.0.1:%d", e2etest.FreePort(t))
	o.base = fmt.Sprintf("http://127.0.0.1:%d", o.port)
	t.Cleanup(func() {
		for _, pids := range dashboardsOf(o.name + "/") {
			for _, pid := range pids {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	})
	return o
}

// caddyfile is the Caddyfile of portal (its name, or another) with lines
// (replica, storage, sessions, …) and the workshop lab-proc: Python's file
// server in a directory of its own under the test's sessions directory,
// capacity 2, reserved as given.
func (o *ownPortal) caddyfile(portal string, reserved int, lines ...string) string {
	return e2etest.ProcessCaddyfile(o.port, o.admin, o.data, `
		name `+portal+`
		`+strings.Join(lines, "\n\t\t")+`
		index https://hub.example.com/
		redirects https://hub.example.com
		robot robot@portal robot-pass
		client test-client test-secret
`+strings.Replace(processWorkshop("lab-proc", "", pythonDashboard, o.sessions), "reserved 0", fmt.Sprintf("reserved %d", reserved), 1))
}

// load posts the Caddyfile cf to the portal's admin endpoint, a reload,
// and checks Caddy's answer is want.
func (o *ownPortal) load(t *testing.T, cf string, want int) {
	t.Helper()
	res, err := http.Post("http://"+o.admin+"/load", "text/caddyfile", strings.NewReader(cf))
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != want {
		t.Fatalf("reload: %d, want %d", res.StatusCode, want)
	}
}
