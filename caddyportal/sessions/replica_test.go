package sessions_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddyportal/caddyportal/caddyportal/config"
	"github.com/caddyportal/caddyportal/caddyportal/lifecycle"
	"github.com/caddyportal/caddyportal/caddyportal/sessions"
	"github.com/caddyportal/caddyportal/caddyportal/spawner"
	"github.com/caddyportal/caddyportal/caddyportal/spawner/spawnertest"
	"github.com/caddyportal/caddyportal/caddyportal/store"
	"github.com/caddyportal/caddyportal/caddyportal/store/etcdstore"
	"github.com/caddyportal/caddyportal/caddyportal/store/etcdstore/etcdtest"
)

// On a store only this process uses, a portal block without `replica`
// keeps the name of its first start, whatever the host is called later;
// a store from before the name was kept takes the name its live
// environments were started under. On a store replicas share, each is
// called after its own host.
func TestStoredReplica(t *testing.T) {
	ctx := context.Background()
	stored := func(st store.Store, name string) string {
		t.Helper()
		got, err := sessions.StoredReplica(ctx, st, name)
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	clk := newClock()

	fresh := openStore(t, clk)
	if got := stored(fresh, "host-1"); got != "host-1" {
		t.Fatalf("first start: %q, want the host's name", got)
	}
	if got := stored(fresh, "host-2"); got != "host-1" {
		t.Fatalf("after the host was renamed: %q, want the first start's name", got)
	}

	// A store whose live environments were started by "old-host" before
	// the name was kept.
	upgraded := openStore(t, clk)
	svc := newSpawnService(t, upgraded, clk, portal(spawnWorkshop("lab", 2, 0)), newLoopSpawner(), sessions.Options{Replica: "old-host"})
	name := request(t, svc, "demo-w01", "u1").Session.Name
	eventually(t, "WAITING", func() bool { return stateIs(svc, name, "WAITING") })
	if got := stored(upgraded, "new-host"); got != "old-host" {
		t.Fatalf("a store with live environments of old-host: %q", got)
	}

	srv := etcdtest.Start(t)
	shared, err := etcdstore.Open(ctx, etcdstore.Options{Endpoints: srv.Endpoints(), Prefix: "/stored-replica/", SweepInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer shared.Close()
	for _, host := range []string{"node-a", "node-b"} {
		if got := stored(shared, host); got != host {
			t.Fatalf("replica on %s of a shared store: %q", host, got)
		}
	}
}

// Starts still queued or under way on a replica that stopped (no
// reconcile pass begun for 30 s) are taken over by another one on the same
// etcd, which starts them; while the replica beats, its queue is left
// alone, and should it finish a start after all, it stops what it started.
func TestQueuedStartsOfAStoppedReplicaAreTakenOver(t *testing.T) {
	ctx := context.Background()
	clk := newClock()
	open := etcdClients(t, clk)
	cfg := portal(spawnWorkshop("lab", 5, 0))
	stuck := spawnertest.New() // a's starts never finish
	a := newSpawnService(t, open(), clk, cfg, stuck, sessions.Options{Replica: "a", Starts: 1})
	ready := spawnertest.New()
	close(ready.Release)
	b := newSpawnService(t, open(), clk, cfg, ready, sessions.Options{Replica: "b"})

	var names []string
	for _, user := range []string{"u1", "u2"} {
		names = append(names, request(t, a, "demo-w01", user).Session.Name)
	}
	owners := func() string {
		var out string
		for _, n := range names {
			s := get(t, b, n)
			out += string(s.State) + "/" + s.EnvOwner + " "
		}
		return out
	}
	if err := a.Reconcile(ctx); err != nil {
		t.Fatal(err)
	}
	clk.Advance(20 * time.Second)
	if err := b.Reconcile(ctx); err != nil {
		t.Fatal(err)
	}
	if got := owners(); got != "STARTING/a STARTING/a " {
		t.Fatalf("with a beating, its queue became %s", got)
	}

	// a falls silent (cut off, say) with one start under way and one
	// queued: b takes both over and starts them.
	clk.Advance(11 * time.Second)
	if err := b.Reconcile(ctx); err != nil {
		t.Fatal(err)
	}
	eventually(t, "b to start a's sessions", func() bool { return owners() == "WAITING/b WAITING/b " })
	// a's start goes on after all: what it started is stopped, and the
	// sessions keep b's environments.
	close(stuck.Release)
	eventually(t, "a's late start stopped", func() bool {
		return errors.Is(stuck.Alive(ctx, spawner.Env{Session: names[0]}), spawner.ErrGone)
	})
	for _, n := range names {
		s := get(t, b, n)
		if s.State != lifecycle.Waiting || s.Env == nil || s.EnvOwner != "b" || ready.Alive(ctx, *s.Env) != nil {
			t.Fatalf("%s after a's late start: %+v", n, s)
		}
	}
	if err := stuck.Alive(ctx, spawner.Env{Session: names[1]}); !errors.Is(err, spawner.ErrGone) {
		t.Fatalf("a started %s, queued when b took it over: %v", names[1], err)
	}
}

// A ready reserve whose replica stopped lives where nobody else can check
// or reach it: another replica ends it (a full reconcile pass reads
// reserves) and keeps a reserve of its own in its place, which the next
// learner gets.
func TestReservesOfAStoppedReplicaAreReplaced(t *testing.T) {
	ctx := context.Background()
	clk, open, cfg, spA, spB := replicaPair(t, 1)
	a := newSpawnService(t, open(), clk, cfg, spA, sessions.Options{Replica: "a"})
	reserves := func(svc *sessions.Service) map[string]string {
		all, err := svc.EnvironmentSessions(ctx)
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]string{}
		for _, s := range all["demo-w01"] {
			if s.Reserved() {
				out[s.Name] = string(s.State) + "/" + s.EnvOwner
			}
		}
		return out
	}
	eventually(t, "a's reserve", func() bool {
		return len(reserves(a)) == 1 && slices.Contains(slices.Collect(maps.Values(reserves(a))), "WAITING/a")
	})
	var aReserve string
	for n := range reserves(a) {
		aReserve = n
	}
	if err := a.Reconcile(ctx); err != nil {
		t.Fatal(err)
	}
	b := newSpawnService(t, open(), clk, cfg, spB, sessions.Options{Replica: "b"})
	for range 12 { // a full pass among them, with a beating
		if err := b.Reconcile(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if got := reserves(b); len(got) != 1 || got[aReserve] != "WAITING/a" {
		t.Fatalf("with a beating, the reserves are %v", got)
	}

	a.Close()
	clk.Advance(31 * time.Second)
	for range 12 {
		if err := b.Reconcile(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if s := get(t, b, aReserve); s.State != lifecycle.Stopped || s.Reason != sessions.ReasonEnvironmentLost {
		t.Fatalf("a's reserve after a stopped: %s %s", s.State, s.Reason)
	}
	eventually(t, "b's own reserve", func() bool {
		got := reserves(b)
		return len(got) == 1 && slices.Contains(slices.Collect(maps.Values(got)), "WAITING/b")
	})
	if s := request(t, b, "demo-w01", "u1").Session; s.EnvOwner != "b" || s.Name == aReserve {
		t.Fatalf("the next learner got %s of %s", s.Name, s.EnvOwner)
	}
}

// replicaPair starts a real etcd for two replicas of a workshop "lab" of
// capacity 3 with reserved reserves, each replica with a spawner of its own
// whose starts finish at once.
func replicaPair(t *testing.T, reserved int) (clk *fakeClock, open func() store.Store, cfg config.Portal, spA, spB *spawnertest.Held) {
	t.Helper()
	clk = newClock()
	open = etcdClients(t, clk)
	spA, spB = spawnertest.New(), spawnertest.New()
	close(spA.Release)
	close(spB.Release)
	return clk, open, portal(spawnWorkshop("lab", 3, reserved)), spA, spB
}

// etcdClients starts a real etcd and returns a function that opens a new
// client of it on clk, as each replica has its own.
func etcdClients(t *testing.T, clk *fakeClock) func() store.Store {
	t.Helper()
	srv := etcdtest.Start(t)
	return func() store.Store {
		st, err := etcdstore.Open(context.Background(), etcdstore.Options{Endpoints: srv.Endpoints(), Prefix: "/replicas/", Now: clk.Now, SweepInterval: -1})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = st.Close() })
		return st
	}
}

// A replica gone for good leaves sessions that wait for it: learners'
// sessions on its machine and ended ones whose environment only it can
// stop, each holding its place. Releasing it ends them at once; a running
// replica cannot be released.
func TestReleaseReplica(t *testing.T) {
	ctx := context.Background()
	clk, open, cfg, spA, spB := replicaPair(t, 0)
	a := newSpawnService(t, open(), clk, cfg, spA, sessions.Options{Replica: "a"})
	var mu sync.Mutex
	deleted := map[string]string{}
	b := newSpawnService(t, open(), clk, cfg, spB, sessions.Options{Replica: "b", OnEvent: func(ev sessions.Event) {
		if ev.Name == sessions.EventSessionDeleted {
			mu.Lock()
			deleted[ev.Session], _ = ev.Data["reason"].(string)
			mu.Unlock()
		}
	}})
	running := request(t, a, "demo-w01", "u1").Session.Name
	ending := request(t, a, "demo-w01", "u2").Session.Name
	eventually(t, "a's environments", func() bool {
		return stateIs(b, running, "WAITING") && stateIs(b, ending, "WAITING")
	})
	if err := a.Reconcile(ctx); err != nil { // a beats
		t.Fatal(err)
	}
	if got := replicas(t, b); got["a"] != "silent=false run=2 res=0 start=0 stop=0" || got["b"] != "this silent=false run=0 res=0 start=0 stop=0" || len(got) != 2 {
		t.Fatalf("replicas with a beating: %v", got)
	}
	for _, c := range []struct {
		name string
		want error
	}{{"a", sessions.ErrReplicaRunning}, {"b", sessions.ErrReplicaRunning}, {"c", sessions.ErrReplicaNotFound}} {
		if _, err := b.ReleaseReplica(ctx, c.name); !errors.Is(err, c.want) {
			t.Fatalf("releasing %s: %v, want %v", c.name, err, c.want)
		}
	}
	if s := get(t, b, running); s.State != lifecycle.Waiting || s.EnvOwner != "a" {
		t.Fatalf("a refused release changed %s: %s of %s", running, s.State, s.EnvOwner)
	}

	// a goes for good. A learner ends their session through b: it waits
	// for a to stop its environment, and keeps its place.
	a.Close()
	if _, err := b.Terminate(ctx, ending, ""); err != nil {
		t.Fatal(err)
	}
	clk.Advance(31 * time.Second)
	for range 3 {
		if err := b.Reconcile(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if s := get(t, b, ending); s.State != lifecycle.Stopping {
		t.Fatalf("the ended session with a gone: %s", s.State)
	}
	if got := replicas(t, b); got["a"] != "silent=true run=1 res=0 start=0 stop=1" {
		t.Fatalf("replicas with a gone: %v", got)
	}
	request(t, b, "demo-w01", "u3")
	requestErr(t, b, sessions.Request{Environment: "demo-w01", User: "u4"}, sessions.ErrNoSession)

	done, err := b.ReleaseReplica(ctx, "a")
	if err != nil {
		t.Fatal(err)
	}
	if done != (sessions.Released{Ended: 2}) {
		t.Fatalf("released %+v", done)
	}
	s := get(t, b, running)
	if s.State != lifecycle.Stopped || s.Reason != sessions.ReasonEnvironmentLost || s.Progress == nil || !strings.Contains(s.Progress.Message, "(portal replica a) is no longer available") {
		t.Fatalf("a's learner session after the release: %s %s %+v", s.State, s.Reason, s.Progress)
	}
	if s := get(t, b, ending); s.State != lifecycle.Stopped || s.Reason != sessions.ReasonTerminated {
		t.Fatalf("the ended session after the release: %s %s", s.State, s.Reason)
	}
	mu.Lock()
	if deleted[running] != sessions.ReasonEnvironmentLost || deleted[ending] != sessions.ReasonTerminated {
		t.Fatalf("Session/Deleted events: %v", deleted)
	}
	mu.Unlock()
	// Nothing of a's was stopped: only a reaches its environments, and
	// stops them as strays should it start again.
	if err := spA.Alive(ctx, spawner.Env{Session: running}); err != nil {
		t.Fatalf("a's environment after the release: %v", err)
	}
	if got := replicas(t, b); len(got) != 1 || got["b"] != "this silent=false run=1 res=0 start=0 stop=0" {
		t.Fatalf("replicas after the release: %v", got)
	}
	request(t, b, "demo-w01", "u4")
	request(t, b, "demo-w01", "u5")
	if _, err := b.ReleaseReplica(ctx, "a"); !errors.Is(err, sessions.ErrReplicaNotFound) {
		t.Fatalf("releasing a again: %v", err)
	}
}

// On a store only one process uses, the replica an explicit `replica` line
// named before a rename never returns: its sessions are released, and a
// start it had not finished is started by the replica running now.
func TestReleaseRenamedReplica(t *testing.T) {
	ctx := context.Background()
	clk := newClock()
	st := openStore(t, clk)
	cfg := portal(spawnWorkshop("lab", 3, 0))
	sp := spawnertest.New()
	close(sp.Release)
	// The old replica's start of u2's session never finishes: it is given
	// back, queued, as the replica closes.
	old := newSpawnService(t, st, clk, cfg, holdUser{sp, "u2"}, sessions.Options{Replica: "old"})
	waiting := request(t, old, "demo-w01", "u1").Session.Name
	eventually(t, "old's environment", func() bool { return stateIs(old, waiting, "WAITING") })
	starting := request(t, old, "demo-w01", "u2").Session.Name
	old.Close()

	cur := newSpawnService(t, st, clk, cfg, sp, sessions.Options{Replica: "new"})
	if got := replicas(t, cur); got["old"] != "silent=true run=1 res=0 start=1 stop=0" || got["new"] != "this silent=false run=0 res=0 start=0 stop=0" {
		t.Fatalf("replicas after the rename: %v", got)
	}
	done, err := cur.ReleaseReplica(ctx, "old")
	if err != nil || done != (sessions.Released{Ended: 1, Restarted: 1}) {
		t.Fatalf("released %+v, %v", done, err)
	}
	wantState(t, cur, waiting, lifecycle.Stopped)
	eventually(t, "the new replica to start the old one's queued session", func() bool {
		s := get(t, cur, starting)
		return s.State == lifecycle.Waiting && s.EnvOwner == "new" && s.Env != nil
	})
}

// replicas lists svc's replicas as "[this ]silent=… run=… res=… start=…
// stop=…" by name.
func replicas(t *testing.T, svc *sessions.Service) map[string]string {
	t.Helper()
	list, err := svc.Replicas(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, r := range list {
		this := ""
		if r.This {
			this = "this "
		}
		out[r.Name] = fmt.Sprintf("%ssilent=%v run=%d res=%d start=%d stop=%d", this, r.Silent, r.Running, r.Reserves, r.Starting, r.Stopping)
	}
	return out
}

// holdUser is a spawner whose starts for one user never finish.
type holdUser struct {
	*spawnertest.Held
	user string
}

func (h holdUser) Start(ctx context.Context, spec spawner.Spec, progress func(spawner.Progress)) (spawner.Env, error) {
	if spec.User == h.user {
		<-ctx.Done()
		return spawner.Env{}, ctx.Err()
	}
	return h.Held.Start(ctx, spec, progress)
}
