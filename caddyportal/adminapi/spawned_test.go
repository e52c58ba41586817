package adminapi_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/caddyportal/caddyportal/caddyportal/adminapi"
	"github.com/caddyportal/caddyportal/caddyportal/config"
	"github.com/caddyportal/caddyportal/caddyportal/lifecycle"
	"github.com/caddyportal/caddyportal/caddyportal/sessions"
	"github.com/caddyportal/caddyportal/caddyportal/spawner"
	"github.com/caddyportal/caddyportal/caddyportal/spawner/process"
	"github.com/caddyportal/caddyportal/caddyportal/store/storetest"
	"github.com/caddyportal/caddyportal/internal/procfs"
	"github.com/caddyportal/caddyportal/internal/proctest"
	"github.com/caddyportal/caddyportal/internal/spawntest"
)

func TestMain(m *testing.M) {
	// The process spawner's tests run this binary as their dashboards.
	proctest.Dashboard()
	proctest.Exit(m.Run(), process.MarkerVar)
}

// TestSpawnedSessions: for a workshop with a spawner, a session's JSON
// says where its environment's start stands (ready, queued and where),
// which replica runs it and the spawner's record of it, so that an
// operator's script can find a learner's process; a session of a static
// pool has none of it. Real dashboard processes.
func TestSpawnedSessions(t *testing.T) {
	replica := spawntest.Replica()
	spawnerOf := func(mode string) spawner.Spawner { return spawntest.Dashboards(t, mode, replica) }
	clk := storetest.NewClock(time.Now().UTC())
	st := memStore(t, clk)
	cfg := config.Portal{Name: "demo", Robot: config.Credentials{Password: "pw"}, Client: config.Client{ID: "c", Secret: "s"},
		Workshops: []config.Workshop{
			{Name: "lab-static", Capacity: intp(2), Reserved: intp(0), Upstreams: []string{"a-{session}:80"}},
			{Name: "lab-ready", Capacity: intp(3), Reserved: intp(0), Initial: intp(0)},
			{Name: "lab-slow", Capacity: intp(2), Reserved: intp(0), Initial: intp(0)},
		}}
	// One start at a time: the second session of lab-slow waits behind
	// the first, whose dashboard never answers.
	svc, err := sessions.New(context.Background(), st, cfg, sessions.Options{Now: clk.Now, ReconcileInterval: time.Hour,
		StopGrace: time.Second, Starts: 1, Replica: replica, Spawners: map[string]spawner.Spawner{
			"lab-ready": spawnerOf(proctest.DashboardServe), "lab-slow": spawnerOf(proctest.DashboardHang)}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(svc.Close)
	srv := httptest.NewServer(adminapi.New("/portal", portals{"demo": svc}))
	t.Cleanup(srv.Close)

	get := func(name string) (adminapi.SessionJSON, map[string]json.RawMessage) {
		t.Helper()
		var sj adminapi.SessionJSON
		call(t, srv, "GET", "/portal/demo/sessions/"+name+"/", 200, &sj)
		var raw map[string]json.RawMessage
		call(t, srv, "GET", "/portal/demo/sessions/"+name+"/", 200, &raw)
		return sj, raw
	}
	waitFor := func(name, what string, cond func(adminapi.SessionJSON) bool) adminapi.SessionJSON {
		t.Helper()
		// The limit only keeps a broken test from hanging.
		for deadline := time.Now().Add(2 * time.Minute); ; time.Sleep(20 * time.Millisecond) {
			sj, _ := get(name)
			if cond(sj) {
				return sj
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: not %s: %+v", name, what, sj)
			}
		}
	}
	var live []string
	defer func() {
		// Environments outlive a service that closes (a restart adopts
		// them): end the sessions so that their processes are stopped.
		for _, name := range live {
			if _, err := svc.Terminate(context.Background(), name, ""); err != nil {
				t.Errorf("terminate %s: %v", name, err)
			}
		}
		// An ended session keeps its last step, but no place in the queue.
		for _, name := range live {
			if sj, _ := get(name); sj.QueuePosition != 0 {
				t.Errorf("%s ended, still at %d in the queue", name, sj.QueuePosition)
			}
		}
		clk.Advance(time.Minute)
		for _, name := range live {
			waitFor(name, "STOPPED", func(sj adminapi.SessionJSON) bool { return sj.State == lifecycle.Stopped })
		}
	}()

	static := request(t, svc, "demo-w01", "pat").Session.Name
	if _, raw := get(static); raw["env"] != nil || raw["progress"] != nil || raw["replica"] != nil || raw["queue_position"] != nil {
		t.Errorf("a session of a static pool: %v", raw)
	}

	ready := request(t, svc, "demo-w02", "ann").Session.Name
	live = append(live, ready)
	sj := waitFor(ready, "WAITING", func(sj adminapi.SessionJSON) bool { return sj.State == lifecycle.Waiting })
	if sj.Progress == nil || sj.Progress.Step != spawner.StepReady || sj.Replica != replica || sj.Env == nil ||
		sj.Env.Addr != sj.Upstream || sj.QueuePosition != 0 {
		t.Fatalf("ready session: %+v (env %+v)", sj, sj.Env)
	}
	// Its progress says how long the start took.
	if took, err := time.ParseDuration(strings.TrimPrefix(sj.Progress.Message, "started in ")); err != nil || took <= 0 {
		t.Errorf("ready progress %q: %v", sj.Progress.Message, err)
	}
	// The record names the process the portal started for this session.
	var ps process.State
	if err := json.Unmarshal(sj.Env.State, &ps); err != nil || ps.PID == 0 {
		t.Fatalf("process record %s: %v", sj.Env.State, err)
	}
	if got, _ := procfs.Env(ps.PID, "SESSION_NAME", nil); got != ready {
		t.Fatalf("PID %d is not %s's dashboard (its SESSION_NAME is %q)", ps.PID, ready, got)
	}

	// Two more starts that end, a second apart on the portal's clock, so
	// that the queued session below has a pace to estimate its wait from
	// (one start at a time: each begins once the one before has ended).
	for _, user := range []string{"dan", "eve"} {
		clk.Advance(time.Second)
		name := request(t, svc, "demo-w02", user).Session.Name
		live = append(live, name)
		waitFor(name, "WAITING", func(sj adminapi.SessionJSON) bool { return sj.State == lifecycle.Waiting })
	}

	first := request(t, svc, "demo-w03", "bob").Session.Name
	live = append(live, first)
	waitFor(first, "waiting for its dashboard", func(sj adminapi.SessionJSON) bool {
		return sj.Progress != nil && sj.Progress.Step == spawner.StepWaiting
	})
	second := request(t, svc, "demo-w03", "cat").Session.Name
	live = append(live, second)
	sj = waitFor(second, "queued", func(sj adminapi.SessionJSON) bool {
		return sj.Progress != nil && sj.Progress.Step == sessions.StepQueued
	})
	// One end every 0.5 to 1 s: a second at most, rounded up.
	if sj.QueuePosition != 1 || sj.QueueWait != 1 || sj.State != lifecycle.Starting || sj.Env != nil {
		t.Fatalf("queued session: %+v", sj)
	}
	// The list carries the same.
	var list []adminapi.SessionJSON
	call(t, srv, "GET", "/portal/demo/sessions/?environment=demo-w03", 200, &list)
	if len(list) != 2 {
		t.Fatalf("demo-w03's sessions: %+v", list)
	}
	for _, s := range list {
		if s.Name == second && s.QueuePosition != 1 || s.Name == first && (s.Env == nil || s.Progress.Step != spawner.StepWaiting) {
			t.Errorf("listed: %+v (env %+v)", s, s.Env)
		}
	}
}

// TestReleaseReplica: a replica the store knows from its sessions but that
// no longer runs (here renamed) is listed as silent with what waits for it;
// releasing it ends its session and frees the place, without touching its
// dashboard process, which the replica stops as a stray once it starts
// again. The replica answering and unknown replicas are refused. Real
// dashboard processes.
func TestReleaseReplica(t *testing.T) {
	oldName, newName := spawntest.Replica()+"-old", spawntest.Replica()+"-new"
	clk := storetest.NewClock(time.Now().UTC())
	st := memStore(t, clk)
	cfg := config.Portal{Name: "demo", Robot: config.Credentials{Password: "pw"}, Client: config.Client{ID: "c", Secret: "s"},
		Workshops: []config.Workshop{{Name: "lab", Capacity: intp(1), Reserved: intp(0), Initial: intp(0)}}}
	spawners := map[string]spawner.Spawner{
		oldName: spawntest.Dashboards(t, proctest.DashboardServe, oldName),
		newName: spawntest.Dashboards(t, proctest.DashboardServe, newName),
	}
	open := func(replica string) *sessions.Service {
		svc, err := sessions.New(context.Background(), st, cfg, sessions.Options{Now: clk.Now, ReconcileInterval: time.Hour,
			StopGrace: time.Second, Replica: replica, Spawners: map[string]spawner.Spawner{"lab": spawners[replica]}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(svc.Close)
		return svc
	}
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		// The limit only keeps a broken test from hanging.
		for deadline := time.Now().Add(2 * time.Minute); !cond(); time.Sleep(20 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s", what)
			}
		}
	}

	old := open(oldName)
	name := request(t, old, "demo-w01", "ann").Session.Name
	var sess *sessions.Session
	var err error
	waitFor("ann's dashboard", func() bool {
		sess, err = old.Get(context.Background(), name)
		return err == nil && sess.State == lifecycle.Waiting
	})
	var ps process.State
	if err := json.Unmarshal(sess.Env.State, &ps); err != nil || ps.PID == 0 {
		t.Fatalf("process record %s: %v", sess.Env.State, err)
	}
	runs := func() bool { got, _ := procfs.Env(ps.PID, "SESSION_NAME", nil); return got == name }
	old.Close()

	cur := open(newName)
	srv := httptest.NewServer(adminapi.New("/portal", portals{"demo": cur}))
	t.Cleanup(srv.Close)
	var list []adminapi.ReplicaJSON
	call(t, srv, "GET", "/portal/demo/replicas/", 200, &list)
	want := []adminapi.ReplicaJSON{{Name: newName, This: true}, {Name: oldName, Silent: true, Running: 1}}
	if !slices.Equal(list, want) {
		t.Fatalf("replicas: %+v, want %+v", list, want)
	}
	requestErr := func(user string, want error) {
		t.Helper()
		if _, err := cur.RequestSession(context.Background(), sessions.Request{Environment: "demo-w01", User: user}); !errors.Is(err, want) {
			t.Fatalf("request for %s: %v, want %v", user, err, want)
		}
	}
	requestErr("bob", sessions.ErrNoSession)
	var of []adminapi.SessionJSON
	call(t, srv, "GET", "/portal/demo/sessions/?replica="+oldName, 200, &of)
	if len(of) != 1 || of[0].Name != name || of[0].Replica != oldName {
		t.Fatalf("the old replica's sessions: %+v", of)
	}
	call(t, srv, "GET", "/portal/demo/sessions/?replica="+newName, 200, &of)
	if len(of) != 0 {
		t.Fatalf("the new replica's sessions: %+v", of)
	}

	var e map[string]string
	call(t, srv, "POST", "/portal/demo/replicas/"+newName+"/release/", 409, &e)
	if !strings.Contains(e["error"], "is running") {
		t.Fatalf("releasing the replica answering: %v", e)
	}
	call(t, srv, "POST", "/portal/demo/replicas/nobody/release/", 404, &e)
	call(t, srv, "GET", "/portal/demo/replicas/"+oldName+"/release/", 405, &e)
	if got, _ := cur.Get(context.Background(), name); got.State != lifecycle.Waiting {
		t.Fatalf("%s after refused releases: %s", name, got.State)
	}

	var done adminapi.ReleasedJSON
	call(t, srv, "POST", "/portal/demo/replicas/"+oldName+"/release/", 200, &done)
	if done != (adminapi.ReleasedJSON{Replica: oldName, Ended: 1}) {
		t.Fatalf("released: %+v", done)
	}
	var sj adminapi.SessionJSON
	call(t, srv, "GET", "/portal/demo/sessions/"+name+"/", 200, &sj)
	if sj.State != lifecycle.Stopped || sj.Reason != sessions.ReasonEnvironmentLost {
		t.Fatalf("ann's session after the release: %+v", sj)
	}
	call(t, srv, "GET", "/portal/demo/replicas/", 200, &list)
	if len(list) != 1 || list[0].Name != newName {
		t.Fatalf("replicas after the release: %+v", list)
	}
	requestErr("bob", nil)
	if !runs() {
		t.Fatalf("the released session's process %d was stopped by a replica that does not own it", ps.PID)
	}
	// The old replica starts again: its dashboard belongs to no live
	// session any more.
	cur.Close()
	open(oldName)
	waitFor("the old replica to stop its stray dashboard", func() bool { return !runs() })
}
