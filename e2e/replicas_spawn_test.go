package e2e

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/caddyportal/caddyportal/caddyportal/store/etcdstore/etcdtest"
	"github.com/caddyportal/caddyportal/internal/e2etest"
)

// spawnReplicaBody is replica's portal on etcd (prefix) with a workshop
// whose sessions each start Python's file server in their own directory
// under sessions, as two machines would each have their own, and a second
// one (demo-w02) whose dashboards start only once the file gate exists.
func spawnReplicaBody(endpoint, prefix, replica, sessions, gate string) string {
	return `
		name demo
		storage etcd ` + endpoint + ` {
			prefix ` + prefix + `
		}
		index https://hub.example.com/
		redirects https://hub.example.com
		sessions registered 1
		robot robot@portal robot-pass
		client test-client test-secret
		replica ` + replica + `
` + strings.Replace(processWorkshop("lab-proc", "", pythonDashboard, sessions), "capacity 2", "capacity 4", 1) +
		processWorkshop("lab-gated", "", `/bin/sh -c "while [ ! -e `+gate+` ]; do sleep 0.1; done; exec `+pythonDashboard+`"`, sessions)
}

// replicaLearner is a learner's browser on a portal of several replicas:
// its cookie goes to whichever replica the test names, as a load balancer
// would send it.
type replicaLearner struct {
	t      *testing.T
	name   string
	cookie *http.Cookie
}

// activateOn requests a session of env (<portal>-wNN) for user on base and
// opens its activation link on act, the way a front end and a learner
// behind a load balancer may reach two replicas.
func activateOn(t *testing.T, base, act, token, user, env string) *replicaLearner {
	t.Helper()
	portal := env[:strings.LastIndex(env, "-w")]
	r := remote(t, base, 0, "").Request(token, env, "user="+user+"&index_url=https://hub.example.com/")
	if r.Status != http.StatusOK {
		t.Fatalf("request for %s on %s: %d %s", user, base, r.Status, r.Body)
	}
	m := r.JSON(t)
	l := &replicaLearner{t: t, name: m["name"].(string)}
	res := get(t, e2etest.NoRedirect, act+m["url"].(string), nil)
	if res.Status != http.StatusFound {
		t.Fatalf("activation of %s on %s: %d %s", l.name, act, res.Status, res.Body)
	}
	for _, c := range (&http.Response{Header: res.Header}).Cookies() {
		if c.Name == "portal-"+portal+"-"+l.name {
			l.cookie = c
		}
	}
	if l.cookie == nil {
		t.Fatalf("activation of %s set no dashboard cookie", l.name)
	}
	return l
}

// page GETs the learner's dashboard through base.
func (l *replicaLearner) page(base string) resp {
	l.t.Helper()
	return get(l.t, e2etest.NoRedirect, base+"/workshops/session/"+l.name+"/",
		map[string]string{"Cookie": l.cookie.Name + "=" + l.cookie.Value})
}

// awaitDashboard waits until the learner's own dashboard, whose directory
// holds the file mark, is served through base (a starting page until then).
func (l *replicaLearner) awaitDashboard(base, mark string) {
	l.t.Helper()
	var last resp
	waitFor(l.t, l.name+"'s dashboard through "+base, func() bool {
		last = l.page(base)
		return last.Status == http.StatusOK && strings.Contains(string(last.Body), mark)
	})
}

// TestReplicasShareSpawnedSessions: two portal processes on one etcd, each
// with its own replica name and its own sessions directory, share a
// workshop whose sessions start a real dashboard process. The replica a
// session is requested on starts its environment and owns it; the other
// activates it and proxies its learner there. Ended through the other
// replica, the owner stops the process and removes the directory before
// the session is STOPPED. While an owner is killed, the other replica goes
// on serving its dashboards and neither ends nor stops them, and starts
// new sessions itself; the owner, started again under its name, adopts
// the same processes.
func TestReplicasShareSpawnedSessions(t *testing.T) {
	t.Parallel() // separate binaries only (see doc.go)
	if _, err := os.Stat("/usr/bin/python3"); err != nil {
		t.Fatal("this test needs /usr/bin/python3 (Debian's python3)")
	}
	srv := etcdtest.Start(t)
	const prefix = "/spawned/"
	// The replicas' names are this run's own: dashboards are told apart by
	// the marker that names them, and other tests may run beside this one.
	dirs := map[string]string{"a": t.TempDir(), "b": t.TempDir()}
	gate := filepath.Join(t.TempDir(), "gate")
	replicaName := func(r string) string { return e2eReplica + "-" + r }
	start := func(replica, dataDir string, port int) *e2etest.Process {
		body := spawnReplicaBody(srv.Endpoints()[0], prefix, replicaName(replica), dirs[replica], gate)
		return e2etest.StartProcess(t, dataDir, port, e2etest.ProcessCaddyfile(port, "off", dataDir, body))
	}
	aDir, aPort := t.TempDir(), e2etest.FreePort(t)
	a := start("a", aDir, aPort)
	b := start("b", t.TempDir(), e2etest.FreePort(t))
	// Whatever a failed run leaves of the dashboards must not outlive it.
	t.Cleanup(func() {
		for _, r := range []string{"a", "b"} {
			for _, pids := range dashboardsOf("demo/" + replicaName(r) + "/") {
				for _, pid := range pids {
					_ = syscall.Kill(pid, syscall.SIGKILL)
				}
			}
		}
	})
	token := robotToken(t, a.Base)
	owned := func(replica, session string) []string {
		return markedProcesses(t, "demo/"+replicaName(replica)+"/"+session)
	}
	// One client reads the records, which the test polls many times.
	records := etcdRecords(t, srv, prefix)
	stored := func(session string) string {
		s, ok := e2etest.StoredSessions(t, records)[session]
		if !ok {
			t.Fatalf("session %s is not in etcd", session)
		}
		return fmt.Sprintf("%s/%s/%s", s.State, strings.TrimPrefix(s.EnvOwner, e2eReplica+"-"), s.Reason)
	}
	// mark writes a file into the session's directory on replica's
	// machine once the spawner has made it: the learner's dashboard lists
	// it, and no other session's does.
	mark := func(replica, session string) string {
		file := "mark-" + session + ".txt"
		path := filepath.Join(dirs[replica], session, file)
		waitFor(t, session+"'s directory on "+replica, func() bool {
			return os.WriteFile(path, []byte(session), 0o644) == nil
		})
		return file
	}

	// stoppedAndClean waits until who's session is STOPPED and checks
	// that its owner had stopped every process and removed the directory,
	// which must come first.
	stoppedAndClean := func(who *replicaLearner, owner string) {
		t.Helper()
		waitFor(t, who.name+" STOPPED", func() bool { return strings.HasPrefix(stored(who.name), "STOPPED/") })
		if left := owned(owner, who.name); len(left) != 0 {
			t.Fatalf("%s is STOPPED but its processes %v still run", who.name, left)
		}
		if _, err := os.Stat(filepath.Join(dirs[owner], who.name)); !os.IsNotExist(err) {
			t.Fatalf("%s is STOPPED but its directory is still there: %v", who.name, err)
		}
	}
	// terminate ends who's session through base; owner stops it.
	terminate := func(who *replicaLearner, base, owner string) {
		t.Helper()
		if r := remote(t, base, 0, "").Do("GET", "/workshops/session/"+who.name+"/terminate/", token, nil, nil); r.Status != http.StatusOK {
			t.Fatalf("terminating %s through %s: %d %s", who.name, base, r.Status, r.Body)
		}
		stoppedAndClean(who, owner)
	}

	// Requested on a, activated and served through b.
	alice := activateOn(t, a.Base, b.Base, token, "alice", "demo-w01")
	aliceMark := mark("a", alice.name)
	alice.awaitDashboard(b.Base, aliceMark)
	alice.awaitDashboard(a.Base, aliceMark)
	if got := stored(alice.name); got != "RUNNING/a/" {
		t.Fatalf("alice's session %s stored as %s, want RUNNING and owned by a", alice.name, got)
	}
	alicePIDs := owned("a", alice.name)
	if len(alicePIDs) == 0 || len(owned("b", alice.name)) != 0 {
		t.Fatalf("alice's dashboard processes: a %v, b %v; want a's only", alicePIDs, owned("b", alice.name))
	}
	if _, err := os.Stat(filepath.Join(dirs["b"], alice.name)); !os.IsNotExist(err) {
		t.Fatalf("replica b made a directory for a's session: %v", err)
	}

	// Ended through b: a stops the process and removes the directory, and
	// only then is the session STOPPED.
	bob := activateOn(t, a.Base, a.Base, token, "bob", "demo-w01")
	bob.awaitDashboard(a.Base, mark("a", bob.name))
	terminate(bob, b.Base, "a")
	if r := bob.page(b.Base); r.Status == http.StatusOK {
		t.Fatalf("bob's ended session still serves its dashboard through b: %s", r.Body)
	}

	// dave's session lives on across its owner's crash.
	dave := activateOn(t, a.Base, a.Base, token, "dave", "demo-w01")
	daveMark := mark("a", dave.name)
	dave.awaitDashboard(a.Base, daveMark)
	davePIDs := owned("a", dave.name)

	// erin's start on a waits for the gate, which opens only once a is
	// gone.
	erin := activateOn(t, a.Base, a.Base, token, "erin", "demo-w02")
	waitFor(t, "erin's start under way on a", func() bool { return len(owned("a", erin.name)) > 0 })

	// The owner is killed: b goes on serving a's dashboards and starts new
	// sessions itself. alice's session, ended through b meanwhile, is
	// refused at once but its environment is left to its owner: b's
	// background passes (every 5 s) stop neither it nor dave's. erin's
	// start, which a had not finished, is b's once a has been silent for
	// 30 s.
	a.Kill()
	alice.awaitDashboard(b.Base, aliceMark)
	dave.awaitDashboard(b.Base, daveMark)
	carol := activateOn(t, b.Base, b.Base, token, "carol", "demo-w01")
	carolMark := mark("b", carol.name)
	carol.awaitDashboard(b.Base, carolMark)
	if got := stored(carol.name); got != "RUNNING/b/" {
		t.Fatalf("carol's session %s stored as %s, want RUNNING and owned by b", carol.name, got)
	}
	if r := remote(t, b.Base, 0, "").Do("GET", "/workshops/session/"+alice.name+"/terminate/", token, nil, nil); r.Status != http.StatusOK {
		t.Fatalf("terminating alice's session through b with a gone: %d %s", r.Status, r.Body)
	}
	if r := alice.page(b.Base); r.Status == http.StatusOK {
		t.Fatalf("alice's ended session still serves its dashboard through b: %s", r.Body)
	}
	if err := os.WriteFile(gate, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "b to take over erin's start", func() bool { return stored(erin.name) == "RUNNING/b/" })
	erin.awaitDashboard(b.Base, mark("b", erin.name))
	if got := stored(alice.name); !strings.HasPrefix(got, "STOPPING/a/") {
		t.Fatalf("with its owner gone, alice's ended session is %s, want STOPPING until a stops it", got)
	}
	for who, want := range map[*replicaLearner][]string{alice: alicePIDs, dave: davePIDs} {
		if now := owned("a", who.name); strings.Join(now, ",") != strings.Join(want, ",") {
			t.Fatalf("with their owner gone, %s's processes changed from %v to %v", who.name, want, now)
		}
	}
	if got := stored(dave.name); got != "RUNNING/a/" {
		t.Fatalf("with its owner gone, dave's session became %s", got)
	}

	// a again, under its name: it finishes alice's stop, adopts dave's
	// processes, and leaves carol's, which b owns, to b.
	a = start("a", aDir, aPort)
	stoppedAndClean(alice, "a")
	dave.awaitDashboard(a.Base, daveMark)
	if now := owned("a", dave.name); strings.Join(now, ",") != strings.Join(davePIDs, ",") {
		t.Fatalf("after its owner's restart, dave's processes changed from %v to %v", davePIDs, now)
	}
	// What a had begun for erin went on without it; erin's session is
	// b's now, so a stops it as a stray, and erin keeps b's dashboard.
	waitFor(t, "a to stop its stray start of erin's", func() bool { return len(owned("a", erin.name)) == 0 })
	erin.awaitDashboard(a.Base, "mark-"+erin.name+".txt")
	terminate(carol, a.Base, "b")
	dave.awaitDashboard(b.Base, daveMark)
}
