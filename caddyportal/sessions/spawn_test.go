package sessions_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/caddyportal/caddyportal/caddyportal/config"
	"github.com/caddyportal/caddyportal/caddyportal/lifecycle"
	"github.com/caddyportal/caddyportal/caddyportal/sessions"
	"github.com/caddyportal/caddyportal/caddyportal/spawner"
)

// A class start: with starts 2, two environments start at once and the
// rest wait in request order, each knowing its position; none is refused.
func TestSpawnStartQueueIsBoundedAndFIFO(t *testing.T) {
	sp := newLoopSpawner()
	sp.tokens = make(chan struct{})
	clk := newClock()
	st := openStore(t, clk)
	svc := newSpawnService(t, st, clk, portal(spawnWorkshop("lab", 10, 0)), sp, sessions.Options{Starts: 2})
	var got []string
	for i := range 5 {
		res := request(t, svc, "demo-w01", fmt.Sprintf("u%d", i))
		if res.Session.State != lifecycle.Starting || res.Session.Upstream != "" || res.Session.Slot != -1 {
			t.Fatalf("new session = %s upstream %q slot %d, want STARTING without upstream", res.Session.State, res.Session.Upstream, res.Session.Slot)
		}
		got = append(got, res.Session.Name)
	}
	eventually(t, "two starts under way", func() bool { return sp.runningStarts() == 2 })
	time.Sleep(50 * time.Millisecond) // a third start would show now
	if n := sp.runningStarts(); n != 2 {
		t.Fatalf("%d starts under way, want 2", n)
	}
	positions := func(want ...int) {
		t.Helper()
		for i, name := range got {
			if p := svc.QueuePosition(name); p != want[i] {
				t.Errorf("QueuePosition(%s) = %d, want %d", name, p, want[i])
			}
		}
	}
	// The first two are starting, the rest queued 1, 2, 3.
	positions(0, 0, 1, 2, 3)
	for _, name := range got {
		wantState(t, svc, name, lifecycle.Starting)
	}
	if p := get(t, svc, got[0]).Progress; p == nil || p.Step != spawner.StepStarting {
		t.Errorf("progress of a start under way = %+v, want step %q", p, spawner.StepStarting)
	}
	if p := get(t, svc, got[4]).Progress; p == nil || p.Step != sessions.StepQueued {
		t.Errorf("progress of a queued start = %+v, want step %q", p, sessions.StepQueued)
	}
	// Each start that ends lets the next in line start, in request order.
	for i := 2; i < 5; i++ {
		sp.tokens <- struct{}{}
		eventually(t, got[i]+" starting", func() bool { return len(sp.startOrder()) == i+1 })
		if order := sp.startOrder(); order[i] != got[i] {
			t.Fatalf("start order %v, want %s next", order, got[i])
		}
		want := []int{0, 0, 0, 0, 0}
		for j := i + 1; j < 5; j++ {
			want[j] = j - i
		}
		positions(want...)
	}
	close(sp.tokens)
	for _, name := range got {
		eventually(t, name+" WAITING", func() bool { return stateIs(svc, name, "WAITING") })
		sess := get(t, svc, name)
		if body := dashboard(t, sess); body != "dashboard of "+name {
			t.Fatalf("dashboard of %s says %q", name, body)
		}
		if sess.Env == nil || sess.Env.Addr != sess.Upstream || sess.EnvOwner != testReplica {
			t.Fatalf("%s: env %+v upstream %q owner %q", name, sess.Env, sess.Upstream, sess.EnvOwner)
		}
	}
	if sp.maxRunning > 2 {
		t.Fatalf("%d starts ran at once, want at most 2", sp.maxRunning)
	}
}

// TestQueueWaitFollowsThePace: a queued start's wait is estimated from the
// pace at which the starts before it ended (here one every 2 s), once
// three have; a start under way has none.
func TestQueueWaitFollowsThePace(t *testing.T) {
	sp := newLoopSpawner()
	sp.tokens = make(chan struct{})
	clk := newClock()
	st := openStore(t, clk)
	svc := newSpawnService(t, st, clk, portal(spawnWorkshop("lab", 10, 0)), sp, sessions.Options{Starts: 1})
	var got []string
	for i := range 6 {
		got = append(got, request(t, svc, "demo-w01", fmt.Sprintf("u%d", i)).Session.Name)
	}
	eventually(t, "the first start under way", func() bool { return sp.runningStarts() == 1 })
	for i := range 3 {
		if pos, wait := svc.QueueWait(got[5]); pos != 5-i || wait != 0 {
			t.Fatalf("after %d starts ended: QueueWait = %d, %v; want %d and no estimate", i, pos, wait, 5-i)
		}
		sp.tokens <- struct{}{}
		// The next start begins once the worker has recorded the end.
		eventually(t, "the next start", func() bool { return len(sp.startOrder()) == i+2 })
		clk.Advance(2 * time.Second)
	}
	for name, want := range map[string]struct {
		pos  int
		wait time.Duration
	}{got[3]: {0, 0}, got[4]: {1, 2 * time.Second}, got[5]: {2, 4 * time.Second}} {
		if pos, wait := svc.QueueWait(name); pos != want.pos || wait != want.wait {
			t.Errorf("QueueWait(%s) = %d, %v; want %d, %v", name, pos, wait, want.pos, want.wait)
		}
	}
	close(sp.tokens)
	for _, name := range got {
		eventually(t, name+" WAITING", func() bool { return stateIs(svc, name, "WAITING") })
	}
}

// eventLog records a Service's events; unlike a channel it never blocks
// the service, nor panics on an event sent after the test read it.
type eventLog struct {
	mu  sync.Mutex
	evs []sessions.Event
}

func (l *eventLog) add(ev sessions.Event) { l.mu.Lock(); l.evs = append(l.evs, ev); l.mu.Unlock() }

func (l *eventLog) find(name, session string) *sessions.Event {
	l.mu.Lock()
	defer l.mu.Unlock()
	for i := range l.evs {
		if l.evs[i].Name == name && l.evs[i].Session == session {
			return &l.evs[i]
		}
	}
	return nil
}

// all returns the events so far.
func (l *eventLog) all() []sessions.Event {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.evs)
}

// await waits for the event find returns: events are sent after the change
// they tell of is stored, so a reader of the store can be ahead of them.
func (l *eventLog) await(t *testing.T, name, session string) *sessions.Event {
	t.Helper()
	eventually(t, name+" event of "+session, func() bool { return l.find(name, session) != nil })
	return l.find(name, session)
}

// A session that ends hours before its expiry (here a failed start, three
// hours into an activation window) is among the admin overview's recent
// ends at once, not only once the hour of that expiry has come: the ended
// index files it under its stop, and its record's expiry becomes its stop.
func TestEndedBeforeExpiryIsRecentAtOnce(t *testing.T) {
	sp := newLoopSpawner()
	sp.failStart = errBoom
	clk := newClock()
	st := openStore(t, clk)
	svc := newSpawnService(t, st, clk, portal(spawnWorkshop("lab", 1, 0)), sp, sessions.Options{})
	res, err := svc.RequestSession(context.Background(), sessions.Request{Environment: "demo-w01", User: "u1", IndexURL: "/",
		Timeout: durp(3 * time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	name := res.Session.Name
	if !res.Session.Expires.After(clk.Now().Add(2 * time.Hour)) {
		t.Fatalf("the session expires at %v: the test needs an expiry hours ahead", res.Session.Expires)
	}
	eventually(t, "the failed session STOPPED", func() bool { return stateIs(svc, name, "STOPPED") })
	// Its record says it ended now, not at the deadline it no longer has
	// (the admin pages show it as the session's expiry).
	if sess := get(t, svc, name); !sess.Expires.Equal(clk.Now()) || !sess.Stopped.Equal(clk.Now()) {
		t.Errorf("the failed session expires %v, stopped %v; want both now (%v)", sess.Expires, sess.Stopped, clk.Now())
	}
	var seen *sessions.Session
	err = svc.EachRecent(context.Background(), clk.Now().Add(-time.Minute), func(s *sessions.Session) {
		if s.Name == name {
			seen = s
		}
	})
	if err != nil || seen == nil || seen.Reason != sessions.ReasonStartFailed || !seen.EndedAt().Equal(clk.Now()) {
		t.Fatalf("the last minute's ends have %+v (%v), want %s ended now with start-failed", seen, err, name)
	}
}

// A start that fails ends the session with start-failed (an event with the
// reason, OnStart told) and frees its place for the next request.
func TestSpawnFailedStartEndsSessionAndFreesPlace(t *testing.T) {
	sp := newLoopSpawner()
	sp.failStart = errBoom
	clk := newClock()
	st := openStore(t, clk)
	var evs eventLog
	var mu sync.Mutex
	var results []sessions.StartResult
	svc := newSpawnService(t, st, clk, portal(spawnWorkshop("lab", 1, 0)), sp, sessions.Options{OnEvent: evs.add,
		OnStart: func(r sessions.StartResult) { mu.Lock(); results = append(results, r); mu.Unlock() }})
	first := request(t, svc, "demo-w01", "u1").Session.Name
	eventually(t, "the failed session STOPPED", func() bool { return stateIs(svc, first, "STOPPED") })
	sess := get(t, svc, first)
	if sess.Reason != sessions.ReasonStartFailed {
		t.Fatalf("reason %q, want %q", sess.Reason, sessions.ReasonStartFailed)
	}
	if sess.Progress == nil || sess.Progress.Step != sessions.StepFailed || !strings.Contains(sess.Progress.Message, "boom") {
		t.Fatalf("progress %+v, want the failure", sess.Progress)
	}
	// The admin overview's list of problems has the failure, read from the
	// ended index's summary.
	var seen *sessions.Session
	err := svc.EachRecent(context.Background(), clk.Now(), func(s *sessions.Session) {
		if s.Name == first {
			seen = s
		}
	})
	if err != nil || seen == nil || seen.Reason != sessions.ReasonStartFailed || seen.Progress == nil ||
		seen.Progress.Message != sess.Progress.Message {
		t.Fatalf("the recent sessions have %+v (%v), want the failure", seen, err)
	}
	ev := evs.await(t, sessions.EventSessionDeleted, first)
	if ev == nil || ev.Data["reason"] != sessions.ReasonStartFailed {
		t.Fatalf("Session/Deleted event = %+v, want reason start-failed", ev)
	}
	// OnStart runs after the failure is stored, so it may come after STOPPED is visible.
	started := func() []sessions.StartResult { mu.Lock(); defer mu.Unlock(); return slices.Clone(results) }
	eventually(t, "OnStart told", func() bool { return len(started()) > 0 })
	if r := started(); len(r) != 1 || r[0].Reason != sessions.ReasonStartFailed || !errors.Is(r[0].Err, errBoom) {
		t.Fatalf("OnStart results %+v", r)
	}
	// The place is free: capacity 1 takes a new session.
	sp.mu.Lock()
	sp.failStart = nil
	sp.mu.Unlock()
	second := request(t, svc, "demo-w01", "u2").Session.Name
	eventually(t, "the next session WAITING", func() bool { return stateIs(svc, second, "WAITING") })
}

// An environment that dies before it is ready fails the start too, and
// its leftovers are stopped before the place is freed.
func TestSpawnGoneBeforeReadyIsStartFailed(t *testing.T) {
	sp := newLoopSpawner()
	sp.readyAfter = time.Hour
	clk := newClock()
	st := openStore(t, clk)
	svc := newSpawnService(t, st, clk, portal(spawnWorkshop("lab", 1, 0)), sp, sessions.Options{})
	name := request(t, svc, "demo-w01", "u1").Session.Name
	eventually(t, "the environment started", func() bool { return get(t, svc, name).Env != nil })
	sp.kill(name)
	eventually(t, "STOPPED", func() bool { return stateIs(svc, name, "STOPPED") })
	if r := get(t, svc, name).Reason; r != sessions.ReasonStartFailed {
		t.Fatalf("reason %q", r)
	}
	if sp.has(name) {
		t.Fatal("the dead environment was not stopped (removed) before the session was STOPPED")
	}
}

// Activated while it starts, a session becomes RUNNING once ready with its
// expiry counted from then; when it expires it stays STOPPING (holding its
// place) until its environment is stopped.
func TestSpawnExpiryStaysStoppingUntilStopped(t *testing.T) {
	sp := newLoopSpawner()
	sp.readyAfter = time.Second // long enough to act before it is ready, even on a loaded machine
	clk := newClock()
	st := openStore(t, clk)
	w := spawnWorkshop("lab", 1, 0)
	w.Expires = config.Duration(10 * time.Minute)
	var ended sync.Map
	svc := newSpawnService(t, st, clk, portal(w), sp, sessions.Options{OnEnd: func(s string) { ended.Store(s, true) }})
	res := request(t, svc, "demo-w01", "u1")
	name := res.Session.Name
	sess, err := svc.Activate(context.Background(), name, res.Token)
	if err != nil || sess.State != lifecycle.Starting {
		t.Fatalf("Activate while starting = %v, %v; want STARTING", sess, err)
	}
	if _, err := svc.Activate(context.Background(), name, "wrong"); !errors.Is(err, sessions.ErrBadToken) {
		t.Fatalf("Activate with a wrong token = %v", err)
	}
	eventually(t, "RUNNING", func() bool { return stateIs(svc, name, "RUNNING") })
	sess = get(t, svc, name)
	if !sess.Expires.Equal(sess.Started.Add(10*time.Minute)) || sess.Started.IsZero() {
		t.Fatalf("started %v expires %v, want expiry 10m after ready", sess.Started, sess.Expires)
	}
	upstream := sess.Upstream

	hold := make(chan struct{})
	sp.mu.Lock()
	sp.holdStop = hold
	sp.mu.Unlock()
	clk.Advance(11 * time.Minute)
	if s := wantState(t, svc, name, lifecycle.Stopping); s.Reason != "expired" {
		t.Fatalf("reason %q, want expired", s.Reason)
	}
	// Its owner does not get it back.
	requestErr(t, svc, sessions.Request{Environment: "demo-w01", User: "u1"}, sessions.ErrNoSession)
	reconcile(t, svc) // queues the stop, which is held
	time.Sleep(50 * time.Millisecond)
	wantState(t, svc, name, lifecycle.Stopping)
	if _, ok := ended.Load(name); !ok {
		t.Fatal("OnEnd was not called when the session left RUNNING")
	}
	// Its place is still taken.
	requestErr(t, svc, sessions.Request{Environment: "demo-w01", User: "u2"}, sessions.ErrNoSession)
	wantState(t, svc, name, lifecycle.Stopping)
	close(hold)
	eventually(t, "STOPPED", func() bool { return stateIs(svc, name, "STOPPED") })
	if s := get(t, svc, name); s.Reason != "expired" || s.Env != nil {
		t.Fatalf("stopped session: reason %q env %+v", s.Reason, s.Env)
	}
	if !dialFails(upstream) {
		t.Fatal("the dashboard still answers after the session STOPPED")
	}
	request(t, svc, "demo-w01", "u2")
}

// Terminate stops the environment at once; the session is STOPPED when it
// is gone.
func TestSpawnTerminateStopsEnvironment(t *testing.T) {
	sp := newLoopSpawner()
	clk := newClock()
	st := openStore(t, clk)
	svc := newSpawnService(t, st, clk, portal(spawnWorkshop("lab", 1, 0)), sp, sessions.Options{})
	res := request(t, svc, "demo-w01", "u1")
	name := res.Session.Name
	eventually(t, "WAITING", func() bool { return stateIs(svc, name, "WAITING") })
	if _, err := svc.Activate(context.Background(), name, res.Token); err != nil {
		t.Fatal(err)
	}
	wantState(t, svc, name, lifecycle.Running)
	if _, err := svc.Terminate(context.Background(), name, ""); err != nil {
		t.Fatal(err)
	}
	eventually(t, "STOPPED", func() bool { return stateIs(svc, name, "STOPPED") })
	if sp.has(name) {
		t.Fatal("environment still there")
	}
	if r := get(t, svc, name).Reason; r != "terminated" {
		t.Fatalf("reason %q", r)
	}
}

// Reserves are started environments: they are handed out only once ready;
// a request meanwhile gets a session of its own.
func TestSpawnReservesReadyBeforeHandedOut(t *testing.T) {
	sp := newLoopSpawner()
	sp.readyAfter = time.Second // long enough to act before it is ready, even on a loaded machine
	clk := newClock()
	st := openStore(t, clk)
	svc := newSpawnService(t, st, clk, portal(spawnWorkshop("lab", 4, 2)), sp, sessions.Options{})
	rs := reserves(live(t, svc, "demo-w01"))
	if len(rs) != 2 {
		t.Fatalf("reserves %v, want 2", rs)
	}
	for _, r := range rs {
		wantState(t, svc, r, lifecycle.Starting)
	}
	if u := sessions.UsageOf(live(t, svc, "demo-w01")); u.Available != 0 {
		t.Fatalf("available %d while reserves start, want 0", u.Available)
	}
	early := request(t, svc, "demo-w01", "early").Session
	if slices.Contains(rs, early.Name) || early.State != lifecycle.Starting {
		t.Fatalf("a request while reserves start got %s (%s); want a new STARTING session", early.Name, early.State)
	}
	for _, r := range rs {
		eventually(t, r+" WAITING", func() bool { return stateIs(svc, r, "WAITING") })
	}
	if u := sessions.UsageOf(live(t, svc, "demo-w01")); u.Available != 2 {
		t.Fatalf("available %d once ready, want 2", u.Available)
	}
	got := request(t, svc, "demo-w01", "late").Session
	if !slices.Contains(rs, got.Name) || got.State != lifecycle.Waiting {
		t.Fatalf("a request after the reserves are ready got %s (%s), want one of %v WAITING", got.Name, got.State, rs)
	}
	if body := dashboard(t, got); !strings.Contains(body, got.Name) {
		t.Fatalf("dashboard says %q", body)
	}
	// The pool is refilled with a starting reserve (capacity 4: early,
	// late, the other reserve and the new one).
	all := live(t, svc, "demo-w01")
	if len(all) != 4 || len(reserves(all)) != 2 {
		t.Fatalf("live %v reserves %v, want 4 with 2 reserves", names(all), reserves(all))
	}
}

// When the workshop is full and only reserves still starting are left, a
// request takes one rather than being refused.
func TestSpawnFullTakesStartingReserve(t *testing.T) {
	sp := newLoopSpawner()
	sp.hold = make(chan struct{})
	clk := newClock()
	st := openStore(t, clk)
	svc := newSpawnService(t, st, clk, portal(spawnWorkshop("lab", 1, 1)), sp, sessions.Options{})
	rs := reserves(live(t, svc, "demo-w01"))
	got := request(t, svc, "demo-w01", "u1").Session
	if len(rs) != 1 || got.Name != rs[0] || got.Owner != "u1" {
		t.Fatalf("got %s owned by %q, want the starting reserve %v", got.Name, got.Owner, rs)
	}
	close(sp.hold)
	eventually(t, "WAITING", func() bool { return stateIs(svc, got.Name, "WAITING") })
	if s := get(t, svc, got.Name); s.Owner != "u1" {
		t.Fatalf("owner %q after ready", s.Owner)
	}
}

// A failing reserve is retried with backoff, not in a tight loop.
func TestSpawnFailingReserveBacksOff(t *testing.T) {
	sp := newLoopSpawner()
	sp.failStart = errBoom
	clk := newClock()
	st := openStore(t, clk)
	svc := newSpawnService(t, st, clk, portal(spawnWorkshop("lab", 2, 1)), sp, sessions.Options{})
	eventually(t, "the first reserve failed", func() bool { return len(live(t, svc, "demo-w01")) == 0 })
	for range 5 {
		reconcile(t, svc)
	}
	time.Sleep(50 * time.Millisecond)
	if n := len(sp.startOrder()); n != 1 {
		t.Fatalf("%d starts before the backoff passed, want 1", n)
	}
	clk.Advance(2 * time.Second)
	reconcile(t, svc)
	eventually(t, "a second start", func() bool { return len(sp.startOrder()) == 2 })
	eventually(t, "the second reserve failed", func() bool { return len(live(t, svc, "demo-w01")) == 0 })
	clk.Advance(time.Second) // the backoff doubled to 2s
	reconcile(t, svc)
	time.Sleep(50 * time.Millisecond)
	if n := len(sp.startOrder()); n != 2 {
		t.Fatalf("%d starts, want 2 until the doubled backoff passed", n)
	}
}

// After a restart the portal adopts the live environments of its
// sessions, stops strays, ends a session whose start was cut short and one
// whose environment died, and starts queued sessions.
func TestSpawnRestartReconciles(t *testing.T) {
	sp := newLoopSpawner()
	clk := newClock()
	st := openStore(t, clk)
	cfg := portal(spawnWorkshop("lab", 5, 0))
	svc := newSpawnService(t, st, clk, cfg, sp, sessions.Options{Starts: 1})
	kept := request(t, svc, "demo-w01", "u1").Session.Name
	eventually(t, "kept WAITING", func() bool { return stateIs(svc, kept, "WAITING") })
	lost := request(t, svc, "demo-w01", "u2").Session.Name
	eventually(t, "lost WAITING", func() bool { return stateIs(svc, lost, "WAITING") })
	sp.mu.Lock()
	sp.hold = make(chan struct{})
	sp.mu.Unlock()
	cut := request(t, svc, "demo-w01", "u3").Session.Name
	queued := request(t, svc, "demo-w01", "u4").Session.Name
	eventually(t, "cut's start under way", func() bool { return sp.runningStarts() == 1 })
	if !get(t, svc, cut).Spawning || svc.QueuePosition(queued) != 1 {
		t.Fatalf("cut spawning %v, queued at %d", get(t, svc, cut).Spawning, svc.QueuePosition(queued))
	}
	// kill -9 as far as the store is concerned: svc writes nothing more (its
	// one worker hangs in cut's start until the test ends, and a service
	// that closes would give the start back).
	sp.mu.Lock()
	sp.hold = nil
	sp.mu.Unlock()
	sp.kill(lost)
	sp.stray(t, "demo-w01-s999")
	keptAddr := get(t, svc, kept).Upstream

	svc2 := newSpawnService(t, st, clk, cfg, sp, sessions.Options{})
	if !sp.has(kept) || sp.has("demo-w01-s999") {
		t.Fatalf("after restart: kept env present %v, stray present %v", sp.has(kept), sp.has("demo-w01-s999"))
	}
	if s := wantState(t, svc2, kept, lifecycle.Waiting); s.Upstream != keptAddr || dashboard(t, s) != "dashboard of "+kept {
		t.Fatal("the adopted environment does not serve its session")
	}
	if s := wantState(t, svc2, cut, lifecycle.Stopped); s.Reason != sessions.ReasonStartInterrupted {
		t.Fatalf("cut: reason %q", s.Reason)
	}
	eventually(t, "lost STOPPED", func() bool { return stateIs(svc2, lost, "STOPPED") })
	if s := get(t, svc2, lost); s.Reason != sessions.ReasonEnvironmentLost || s.Progress == nil ||
		s.Progress.Step != sessions.StepFailed || !strings.Contains(s.Progress.Message, "was closed") {
		t.Fatalf("lost: reason %q progress %+v, want environment-lost and why", s.Reason, s.Progress)
	}
	eventually(t, "queued WAITING", func() bool { return stateIs(svc2, queued, "WAITING") })
}

// Sessions whose environment another replica owns are left to it.
func TestSpawnRestartLeavesOtherReplica(t *testing.T) {
	sp := newLoopSpawner()
	clk := newClock()
	st := openStore(t, clk)
	cfg := portal(spawnWorkshop("lab", 5, 0))
	svcA := newSpawnService(t, st, clk, cfg, sp, sessions.Options{Replica: "a"})
	name := request(t, svcA, "demo-w01", "u1").Session.Name
	eventually(t, "WAITING", func() bool { return stateIs(svcA, name, "WAITING") })
	sp.kill(name) // dead, but only its owner may say so
	svcB := newSpawnService(t, st, clk, cfg, sp, sessions.Options{Replica: "b"})
	if s := wantState(t, svcB, name, lifecycle.Waiting); s.EnvOwner != "a" {
		t.Fatalf("owner %q", s.EnvOwner)
	}
}

// An environment's loopback address is dialled only in the network its
// owner recorded: another machine's (or namespace's) replica would reach
// its own socket of that port. Other addresses, and records from before
// the network was recorded, are dialled anywhere.
func TestDialableOnlyInTheOwnersNetwork(t *testing.T) {
	sp := newLoopSpawner()
	clk := newClock()
	st := openStore(t, clk)
	cfg := portal(spawnWorkshop("lab", 5, 0))
	owner := newSpawnService(t, st, clk, cfg, sp, sessions.Options{Replica: "a", Network: "boot-1/net:[1]"})
	name := request(t, owner, "demo-w01", "u1").Session.Name
	eventually(t, "WAITING", func() bool { return stateIs(owner, name, "WAITING") })
	sess := get(t, owner, name)
	if sess.EnvNetwork != "boot-1/net:[1]" || !strings.HasPrefix(sess.Upstream, "127.0.0.1:") {
		t.Fatalf("recorded network %q, upstream %q", sess.EnvNetwork, sess.Upstream)
	}
	sameMachine := newSpawnService(t, st, clk, cfg, sp, sessions.Options{Replica: "b", Network: "boot-1/net:[1]"})
	otherMachine := newSpawnService(t, st, clk, cfg, sp, sessions.Options{Replica: "c", Network: "boot-2/net:[1]"})
	for _, svc := range []*sessions.Service{owner, sameMachine} {
		if !svc.Dialable(sess) {
			t.Fatalf("a replica in the owner's network may not dial %s", sess.Upstream)
		}
	}
	for upstream, want := range map[string]bool{
		sess.Upstream: false, "localhost:8080": false, "[::1]:8080": false, "0.0.0.0:8080": false,
		"10.0.0.5:8080": true, "dash.internal:8080": true,
	} {
		s := *sess
		s.Upstream = upstream
		if got := otherMachine.Dialable(&s); got != want {
			t.Errorf("from another network, Dialable(%s) = %v, want %v", upstream, got, want)
		}
	}
	old := *sess
	old.EnvNetwork = ""
	if !otherMachine.Dialable(&old) {
		t.Error("a record without a network is not dialled")
	}
	// The owner after a reboot of its machine (a new boot's network)
	// dials what its spawner adopted.
	rebooted := newSpawnService(t, st, clk, cfg, sp, sessions.Options{Replica: "a", Network: "boot-3/net:[1]"})
	if !rebooted.Dialable(sess) {
		t.Error("the owner in a new network may not dial its own environment")
	}
}

// A workshop without a spawner is unchanged next to one with a spawner.
func TestSpawnOtherWorkshopUnchanged(t *testing.T) {
	sp := newLoopSpawner()
	clk := newClock()
	st := openStore(t, clk)
	svc := newSpawnService(t, st, clk, portal(workshop("static", 2, 1), spawnWorkshop("lab", 2, 0)), sp, sessions.Options{})
	s := request(t, svc, "demo-w01", "u1").Session
	if s.State != lifecycle.Waiting || s.Upstream != "dash-"+s.Name+".svc:8080" || s.Env != nil || s.EnvOwner != "" {
		t.Fatalf("static session %+v", s)
	}
	if len(sp.startOrder()) != 0 {
		t.Fatal("the spawner was used for a static workshop")
	}
}

// A dashboard that does not answer within the spawner's ready timeout
// fails the start; its environment is stopped before the place is free.
func TestSpawnNotReadyInTimeIsStartFailed(t *testing.T) {
	sp := newLoopSpawner()
	sp.readyAfter = time.Hour
	sp.timeout = 200 * time.Millisecond
	clk := newClock()
	st := openStore(t, clk)
	svc := newSpawnService(t, st, clk, portal(spawnWorkshop("lab", 1, 0)), sp, sessions.Options{})
	name := request(t, svc, "demo-w01", "u1").Session.Name
	eventually(t, "STOPPED", func() bool { return stateIs(svc, name, "STOPPED") })
	sess := get(t, svc, name)
	if sess.Reason != sessions.ReasonStartFailed || !strings.Contains(sess.Progress.Message, "HTTP 503") {
		t.Fatalf("reason %q progress %+v", sess.Reason, sess.Progress)
	}
	if sp.has(name) {
		t.Fatal("the environment that never became ready was left running")
	}
}

// The workshop's overdue ends a start that outlasts it, while the
// spawner's own ready timeout is far off, and the learner reads that the
// overdue ran out: with the dashboard's last answer when the start got as
// far as probing, and without "context deadline exceeded" when the
// spawner's Start itself was cut short.
func TestSpawnOverdueEndsTheStart(t *testing.T) {
	for _, tc := range []struct {
		name   string
		set    func(*loopSpawner)
		detail string
	}{
		{"waiting for the dashboard", func(l *loopSpawner) { l.readyAfter = time.Hour }, ": readiness probe GET /: HTTP 503"},
		{"in the spawner's start", func(l *loopSpawner) { l.hold = make(chan struct{}) }, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sp := newLoopSpawner()
			sp.timeout = time.Hour
			tc.set(sp)
			clk := newClock()
			st := openStore(t, clk)
			w := spawnWorkshop("lab", 1, 0)
			w.Overdue = config.Duration(300 * time.Millisecond)
			svc := newSpawnService(t, st, clk, portal(w), sp, sessions.Options{})
			name := request(t, svc, "demo-w01", "u1").Session.Name
			eventually(t, "STOPPED", func() bool { return stateIs(svc, name, "STOPPED") })
			sess := get(t, svc, name)
			want := "the environment was not ready within 300ms, the workshop's overdue time" + tc.detail
			if sess.Reason != sessions.ReasonStartFailed || sess.Progress == nil || sess.Progress.Message != want {
				t.Fatalf("reason %q progress %+v; want the message %q", sess.Reason, sess.Progress, want)
			}
			if sp.has(name) {
				t.Fatal("the environment of the overdue start was left running")
			}
		})
	}
}

// Evicting a ready reserve under the portal maximum stops its
// environment before its place is given to anyone: the request that
// caused it is refused until then, and served after.
func TestSpawnEvictionStopsEnvironmentFirst(t *testing.T) {
	sp := newLoopSpawner()
	clk := newClock()
	st := openStore(t, clk)
	cfg := portal(spawnWorkshop("lab", 1, 1), workshop("static", 1, 0))
	cfg.Sessions.Maximum = 1
	svc := newSpawnService(t, st, clk, cfg, sp, sessions.Options{})
	rs := reserves(live(t, svc, "demo-w01"))
	if len(rs) != 1 {
		t.Fatalf("reserves %v", rs)
	}
	eventually(t, "the reserve ready", func() bool { return stateIs(svc, rs[0], "WAITING") })
	hold := make(chan struct{})
	sp.mu.Lock()
	sp.holdStop = hold
	sp.mu.Unlock()
	requestErr(t, svc, sessions.Request{Environment: "demo-w02", User: "u1"}, sessions.ErrNoSession)
	if s := wantState(t, svc, rs[0], lifecycle.Stopping); s.Reason != "evicted" {
		t.Fatalf("reason %q", s.Reason)
	}
	requestErr(t, svc, sessions.Request{Environment: "demo-w02", User: "u1"}, sessions.ErrNoSession)
	close(hold)
	eventually(t, "the reserve STOPPED", func() bool { return stateIs(svc, rs[0], "STOPPED") })
	if sp.has(rs[0]) {
		t.Fatal("environment left")
	}
	request(t, svc, "demo-w02", "u1")
}

// reloadMidStart is a config reload's overlap: an old service whose start
// of a new session is under way in sp (held by the test) and a new service
// on the same store, made before the request when newFirst, else after the
// start began.
func reloadMidStart(t *testing.T, sp *loopSpawner, clk *fakeClock, newFirst bool) (oldSvc, newSvc *sessions.Service, name string) {
	t.Helper()
	st := openStore(t, clk)
	cfg := portal(spawnWorkshop("lab", 5, 0))
	oldSvc = newSpawnService(t, st, clk, cfg, sp, sessions.Options{Starts: 1})
	if newFirst {
		newSvc = newSpawnService(t, st, clk, cfg, sp, sessions.Options{Starts: 1, Overlap: true})
	}
	res, err := oldSvc.RequestSession(context.Background(), sessions.Request{Environment: "demo-w01", User: "u1",
		IndexURL: "https://hub.example.com/", Timeout: durp(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, "the old service's start under way", func() bool { return sp.runningStarts() == 1 })
	if !newFirst {
		newSvc = newSpawnService(t, st, clk, cfg, sp, sessions.Options{Starts: 1, Overlap: true})
	}
	return oldSvc, newSvc, res.Session.Name
}

// TestSpawnReloadKeepsAStartUnderWay: a config reload brings up the new
// service while the old one is starting an environment. The new one's
// reconciliation must leave that start alone (it used to end the session
// as start-interrupted, and a class's starts with it); the old service
// finishes it.
func TestSpawnReloadKeepsAStartUnderWay(t *testing.T) {
	sp := newLoopSpawner()
	sp.hold = make(chan struct{})
	_, newSvc, name := reloadMidStart(t, sp, newClock(), false)
	if s := get(t, newSvc, name); s.State != lifecycle.Starting || !s.Spawning {
		t.Fatalf("after the new service came up: %s (%q), spawning %v; want STARTING, still being started", s.State, s.Reason, s.Spawning)
	}
	close(sp.hold)
	eventually(t, "the start finished by the old service", func() bool { return stateIs(newSvc, name, "WAITING") })
	if body := dashboard(t, get(t, newSvc, name)); body != "dashboard of "+name {
		t.Fatalf("dashboard says %q", body)
	}
}

// TestSpawnRestartEndsAStartCutShort: after a crash mid-start (the old
// process never closed, so its claim is still recorded; here its worker
// is left hanging), a start-up with no other service of the process on
// the store ends the session start-interrupted. After a clean stop the
// claim was given back, and the start-up starts the session again.
func TestSpawnRestartEndsAStartCutShort(t *testing.T) {
	sp := newLoopSpawner()
	sp.hold = make(chan struct{})
	clk := newClock()
	st := openStore(t, clk)
	cfg := portal(spawnWorkshop("lab", 5, 0))
	crashed := newSpawnService(t, st, clk, cfg, sp, sessions.Options{Starts: 1})
	name := request(t, crashed, "demo-w01", "u1").Session.Name
	eventually(t, "the start under way", func() bool { return sp.runningStarts() == 1 })
	restarted := newSpawnService(t, st, clk, cfg, sp, sessions.Options{Starts: 1})
	if s := get(t, restarted, name); s.State != lifecycle.Stopped || s.Reason != sessions.ReasonStartInterrupted {
		t.Fatalf("after the restart: %s (%q), want STOPPED start-interrupted", s.State, s.Reason)
	}

	stopped := newSpawnService(t, st, clk, cfg, sp, sessions.Options{Starts: 1, Overlap: true})
	next := request(t, stopped, "demo-w01", "u2").Session.Name
	eventually(t, "the next start under way", func() bool { return sp.runningStarts() == 2 })
	stopped.Close()
	crashed.Close()
	restarted.Close()
	sp.mu.Lock()
	sp.hold = nil
	sp.mu.Unlock()
	again := newSpawnService(t, st, clk, cfg, sp, sessions.Options{Starts: 1})
	eventually(t, "the start given back at the stop done after the start-up", func() bool { return stateIs(again, next, "WAITING") })
}

// TestSpawnCloseGivesBackACutShortStart: a reload ends the old config's
// service mid-start. The start it cuts short is given back as it closes
// (the session STARTING, unclaimed, its place kept), and the new service's
// next reconcile pass starts it again at once, not once the claim would
// count as abandoned.
func TestSpawnCloseGivesBackACutShortStart(t *testing.T) {
	sp := newLoopSpawner()
	sp.hold = make(chan struct{})
	clk := newClock()
	oldSvc, newSvc, name := reloadMidStart(t, sp, clk, true)
	if !get(t, newSvc, name).Spawning {
		t.Fatal("the start is not claimed")
	}
	oldSvc.Close() // the reload ends the old config mid-start
	if s := wantState(t, newSvc, name, lifecycle.Starting); s.Spawning {
		t.Fatal("the start the closing service cut short is still claimed")
	}
	sp.mu.Lock()
	sp.hold = nil
	sp.mu.Unlock()
	if err := newSvc.Reconcile(context.Background()); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the start done by the new service", func() bool { return stateIs(newSvc, name, "WAITING") })
	if s := get(t, newSvc, name); s.Upstream == "" || dashboard(t, s) != "dashboard of "+name {
		t.Fatal("the session's environment does not serve it")
	}
}

// TestSpawnAbandonedClaimGivenBack: a claim whose worker never reports
// back (it hangs in the backend) is left alone as long as a start may
// take, then given back and started by a service that reconciles.
func TestSpawnAbandonedClaimGivenBack(t *testing.T) {
	sp := newLoopSpawner()
	sp.tokens = make(chan struct{}, 2)
	clk := newClock()
	_, newSvc, name := reloadMidStart(t, sp, clk, true)

	// A claim as young as a start may take is left alone: its worker may
	// still be running in another service.
	if err := newSvc.Reconcile(context.Background()); err != nil {
		t.Fatal(err)
	}
	if s := wantState(t, newSvc, name, lifecycle.Starting); !s.Spawning {
		t.Fatal("a fresh claim was given back")
	}
	clk.Advance(sp.ReadyTimeout() + 2*time.Minute)
	if err := newSvc.Reconcile(context.Background()); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the new service's start under way", func() bool { return sp.runningStarts() == 2 })
	// Both starts may finish now: the first to report is recorded, the
	// other stopped as unrecorded.
	sp.tokens <- struct{}{}
	sp.tokens <- struct{}{}
	eventually(t, "the abandoned start done", func() bool { return stateIs(newSvc, name, "WAITING") })
	if s := get(t, newSvc, name); s.Upstream == "" || dashboard(t, s) != "dashboard of "+name {
		t.Fatal("the session's environment does not serve it")
	}
	eventually(t, "the unrecorded environment stopped", func() bool { return sp.count(name) == 1 })
}

// TestSpawnAbandonedClaimWaitsAsQueued: a claim given back as abandoned
// while the service's one start slot is busy waits in the queue again, and
// says so: its progress is "queued" and it has a queue position (it used
// to keep the hung start's last step, so the learner's page and the
// progress route showed a start under way that was not).
func TestSpawnAbandonedClaimWaitsAsQueued(t *testing.T) {
	sp := newLoopSpawner()
	sp.tokens = make(chan struct{}, 3)
	clk := newClock()
	_, newSvc, name := reloadMidStart(t, sp, clk, true)
	// Its start takes the new service's one slot (its link lasts past
	// the clock's jump below).
	res, err := newSvc.RequestSession(context.Background(), sessions.Request{Environment: "demo-w01", User: "u2",
		IndexURL: "https://hub.example.com/", Timeout: durp(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	busy := res.Session.Name
	eventually(t, "the new service's own start under way", func() bool { return sp.runningStarts() == 2 })

	clk.Advance(sp.ReadyTimeout() + 2*time.Minute)
	if err := newSvc.Reconcile(context.Background()); err != nil {
		t.Fatal(err)
	}
	s := wantState(t, newSvc, name, lifecycle.Starting)
	if pos, _ := newSvc.QueuedAt(s); s.Spawning || s.Progress == nil || s.Progress.Step != sessions.StepQueued || pos != 1 {
		t.Fatalf("the given-back claim: spawning %v, progress %+v, queued at %d; want unclaimed, queued at 1", s.Spawning, s.Progress, pos)
	}
	for range 3 {
		sp.tokens <- struct{}{}
	}
	for _, n := range []string{busy, name} {
		eventually(t, n+" started", func() bool { return stateIs(newSvc, n, "WAITING") })
	}
}

// TestSpawnAbandonedClaimsLateFailureIgnored: a start given back as
// abandoned is claimed again while its first worker still runs; the first
// worker's Start fails only after the second start made the session
// ready. That late failure belongs to a start the session no longer has:
// the session goes on (it used to end as start-failed, its learner's
// dashboard stopped under them).
func TestSpawnAbandonedClaimsLateFailureIgnored(t *testing.T) {
	sp := newLoopSpawner()
	late := make(chan error)
	sp.failLater = late
	clk := newClock()
	oldSvc, newSvc, name := reloadMidStart(t, sp, clk, true)
	sp.mu.Lock()
	sp.failLater = nil // the second start succeeds
	sp.mu.Unlock()
	clk.Advance(sp.ReadyTimeout() + 2*time.Minute)
	if err := newSvc.Reconcile(context.Background()); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the second start ready", func() bool { return stateIs(newSvc, name, "WAITING") })
	late <- errors.New("the first start failed late")
	// The old service has one start worker: the start of another session
	// it queues begins only once the failed one was dealt with.
	next := request(t, oldSvc, "demo-w01", "u2").Session.Name
	eventually(t, "the old service's worker free again", func() bool {
		sp.mu.Lock()
		defer sp.mu.Unlock()
		return slices.Contains(sp.starts, next)
	})
	s := get(t, newSvc, name)
	if s.State != lifecycle.Waiting || s.Reason != "" || dashboard(t, s) != "dashboard of "+name {
		t.Fatalf("after the abandoned start's late failure: %s (%q)", s.State, s.Reason)
	}
}

// TestSpawnRefillYieldsToLearners: while learners keep requesting
// sessions, the refill of a taken reserve waits (its start would compete
// with them for the machine); once they stop, it starts.
func TestSpawnRefillYieldsToLearners(t *testing.T) {
	sp := newLoopSpawner()
	clk := newClock()
	st := openStore(t, clk)
	svc := newSpawnService(t, st, clk, portal(spawnWorkshop("lab", 2, 1)), sp, sessions.Options{YieldQuiet: 2 * time.Second})
	first := reserves(live(t, svc, "demo-w01"))
	if len(first) != 1 {
		t.Fatalf("reserves %v, want 1", first)
	}
	eventually(t, "the reserve WAITING", func() bool { return stateIs(svc, first[0], "WAITING") })
	res := request(t, svc, "demo-w01", "learner-0")
	if res.Session.Name != first[0] {
		t.Fatalf("the first learner got %s, not the reserve %s", res.Session.Name, first[0])
	}
	refill := reserves(live(t, svc, "demo-w01"))
	if len(refill) != 1 || refill[0] == first[0] {
		t.Fatalf("no refill after the reserve was taken: %v", refill)
	}
	started := func() bool {
		sp.mu.Lock()
		defer sp.mu.Unlock()
		return slices.Contains(sp.starts, refill[0])
	}
	// The learner opens the link again and again, as a class arriving
	// does (a new request would take the starting refill itself: the
	// workshop is full).
	for i := 1; i <= 20; i++ {
		_, _ = svc.Activate(context.Background(), res.Session.Name, res.Token)
		if started() {
			t.Fatalf("the refill started while learners were arriving (after %d activations)", i)
		}
		time.Sleep(50 * time.Millisecond)
	}
	eventually(t, "the refill to start once learners stopped", started)
}

// TestSpawnRefillsYieldWhileOnlyRefillsWait: when a class takes several
// reserves, their refills queue behind one another; the one under way
// still yields to the arriving learners (other refills waiting are no
// learner's), and once the learners stop, all of them start.
func TestSpawnRefillsYieldWhileOnlyRefillsWait(t *testing.T) {
	sp := newLoopSpawner()
	clk := newClock()
	st := openStore(t, clk)
	svc := newSpawnService(t, st, clk, portal(spawnWorkshop("lab", 6, 3)), sp, sessions.Options{Starts: 1, YieldQuiet: 2 * time.Second})
	first := reserves(live(t, svc, "demo-w01"))
	if len(first) != 3 {
		t.Fatalf("reserves %v, want 3", first)
	}
	eventually(t, "the reserves WAITING", func() bool {
		for _, n := range first {
			if !stateIs(svc, n, "WAITING") {
				return false
			}
		}
		return true
	})
	var taken []sessions.Result
	for i := range 3 {
		taken = append(taken, request(t, svc, "demo-w01", fmt.Sprintf("learner-%d", i)))
	}
	refills := reserves(live(t, svc, "demo-w01"))
	if len(refills) != 3 {
		t.Fatalf("refills %v, want 3", refills)
	}
	started := func() int {
		sp.mu.Lock()
		defer sp.mu.Unlock()
		n := 0
		for _, r := range refills {
			if slices.Contains(sp.starts, r) {
				n++
			}
		}
		return n
	}
	for i := 1; i <= 20; i++ {
		res := taken[i%len(taken)]
		_, _ = svc.Activate(context.Background(), res.Session.Name, res.Token)
		if n := started(); n != 0 {
			t.Fatalf("%d refills started while learners were arriving (after %d activations)", n, i)
		}
		time.Sleep(50 * time.Millisecond)
	}
	eventually(t, "the refills to start once learners stopped", func() bool { return started() == 3 })
}

// TestSpawnLearnersStartPassesAYieldingRefill: a refill yielding to the
// class does not hold up the start of a learner's own session queued
// behind it (one start at a time).
func TestSpawnLearnersStartPassesAYieldingRefill(t *testing.T) {
	sp := newLoopSpawner()
	clk := newClock()
	st := openStore(t, clk)
	svc := newSpawnService(t, st, clk, portal(spawnWorkshop("lab", 4, 1)), sp, sessions.Options{Starts: 1, YieldQuiet: time.Hour})
	first := reserves(live(t, svc, "demo-w01"))
	eventually(t, "the reserve WAITING", func() bool { return len(first) == 1 && stateIs(svc, first[0], "WAITING") })
	request(t, svc, "demo-w01", "learner-0") // takes the reserve; its refill yields for an hour
	own := request(t, svc, "demo-w01", "learner-1").Session.Name
	if slices.Contains(first, own) {
		t.Fatalf("learner-1 got the taken reserve %s", own)
	}
	eventually(t, "learner-1's own session WAITING", func() bool { return stateIs(svc, own, "WAITING") })
}

// TestSpawnRefillHandedOverStartsAtOnce: a refill that is yielding to an
// arriving class starts at once when a learner is given it (the workshop
// is full).
func TestSpawnRefillHandedOverStartsAtOnce(t *testing.T) {
	sp := newLoopSpawner()
	clk := newClock()
	st := openStore(t, clk)
	svc := newSpawnService(t, st, clk, portal(spawnWorkshop("lab", 2, 1)), sp, sessions.Options{YieldQuiet: time.Hour})
	first := reserves(live(t, svc, "demo-w01"))
	eventually(t, "the reserve WAITING", func() bool { return len(first) == 1 && stateIs(svc, first[0], "WAITING") })
	request(t, svc, "demo-w01", "learner-0")
	refill := reserves(live(t, svc, "demo-w01"))
	if len(refill) != 1 {
		t.Fatalf("no refill: %v", refill)
	}
	// The workshop is full: this learner gets the refill, still yielding
	// (an hour of quiet is asked for), which then starts for them.
	if got := request(t, svc, "demo-w01", "learner-1").Session; got.Name != refill[0] {
		t.Fatalf("learner-1 got %s, not the starting refill %s", got.Name, refill[0])
	}
	eventually(t, "the handed-over refill WAITING", func() bool { return stateIs(svc, refill[0], "WAITING") })
}

// A start's progress reaches the session record when a step lasts (the
// dashboard takes its time: "waiting" shows), and what the start came to
// ("ready") is what stays, never an older step saved late.
func TestSpawnProgressShowsLastingSteps(t *testing.T) {
	sp := newLoopSpawner()
	sp.readyAfter, sp.timeout = time.Hour, time.Minute
	clk := newClock()
	svc := newSpawnService(t, openStore(t, clk), clk, portal(spawnWorkshop("lab", 10, 0)), sp, sessions.Options{})
	name := request(t, svc, "demo-w01", "u0").Session.Name
	eventually(t, "the waiting step in the record", func() bool {
		p := get(t, svc, name).Progress
		return p != nil && p.Step == spawner.StepWaiting
	})
	sp.makeReady(name)
	eventually(t, "the session to be ready", func() bool { return stateIs(svc, name, string(lifecycle.Waiting)) })
	time.Sleep(300 * time.Millisecond) // longer than a step waits to be saved
	if p := get(t, svc, name).Progress; p == nil || p.Step != spawner.StepReady {
		t.Fatalf("progress of a ready session = %+v, want %q", p, spawner.StepReady)
	}
}

// removedWorkshopSession starts a session of workshop "lab" next to
// workshop "other" (both on spawner shared), then reloads with "lab"
// removed and "other" on spawner next, and ends the session. It returns
// the new service and the session.
func removedWorkshopSession(t *testing.T, shared, next *loopSpawner, log *zap.Logger) (*sessions.Service, string) {
	t.Helper()
	clk := newClock()
	st := openStore(t, clk)
	both := portal(spawnWorkshop("lab", 2, 0), spawnWorkshop("other", 2, 0))
	old := newSpawnService(t, st, clk, both, shared, sessions.Options{
		Spawners: map[string]spawner.Spawner{"lab": shared, "other": shared}})
	name := request(t, old, "demo-w01", "u1").Session.Name
	eventually(t, "the session WAITING", func() bool { return stateIs(old, name, "WAITING") })
	svc := newSpawnService(t, st, clk, portal(spawnWorkshop("other", 2, 0)), next, sessions.Options{
		Overlap: true, Logger: log, Spawners: map[string]spawner.Spawner{"other": next}})
	old.Close()
	if _, err := svc.Terminate(context.Background(), name, ""); err != nil {
		t.Fatal(err)
	}
	return svc, name
}

// TestSpawnRemovedWorkshopEnvironmentStopped: once a removed workshop's
// session ends, its environment is stopped by a spawner still configured
// that lists it (workshops share Caddy's default process dir or one
// engine). It used to stay running, the session STOPPING for ever.
func TestSpawnRemovedWorkshopEnvironmentStopped(t *testing.T) {
	sp := newLoopSpawner()
	svc, name := removedWorkshopSession(t, sp, sp, nil)
	eventually(t, "the session STOPPED", func() bool { return stateIs(svc, name, "STOPPED") })
	if sp.has(name) {
		t.Fatal("the removed workshop's environment still runs after its session ended")
	}
}

// TestSpawnRemovedWorkshopEnvironmentNobodyLists: when no configured
// spawner lists the environment, nothing can stop it: the session ends
// all the same, and the log says which environment may still run.
func TestSpawnRemovedWorkshopEnvironmentNobodyLists(t *testing.T) {
	gone, other := newLoopSpawner(), newLoopSpawner()
	core, logs := observer.New(zapcore.WarnLevel)
	svc, name := removedWorkshopSession(t, gone, other, zap.New(core))
	eventually(t, "the session STOPPED", func() bool { return stateIs(svc, name, "STOPPED") })
	warned := logs.FilterMessageSnippet("not listed by any configured spawner").FilterField(zap.String("session", name))
	if warned.Len() != 1 {
		t.Fatalf("warnings naming the session: %d, want 1 (all: %v)", warned.Len(), logs.All())
	}
	if !gone.has(name) {
		t.Fatal("the environment was stopped, yet no configured spawner could reach it (the test is wrong)")
	}
}

// pathSpawner is a loopSpawner whose readiness probe has a path of its own
// per environment (spawner.ReadyPather).
type pathSpawner struct{ *loopSpawner }

func (p pathSpawner) ReadyPath(env spawner.Env) string { return "/ready/" + env.Session }

// A reserve whose dashboard passed its probe is reported once, with its
// dial address and the spawner's probe path ("/" when the spawner names
// none), so the portal can open its proxy's connection to it; an
// environment started for a learner is not reported.
func TestReserveReadyReported(t *testing.T) {
	type report struct{ addr, path string }
	for _, c := range []struct {
		name     string
		sp       spawner.Spawner
		pathOf   func(session string) string
		reserved int
	}{
		{"probe path", pathSpawner{newLoopSpawner()}, func(s string) string { return "/ready/" + s }, 1},
		{"no probe path", newLoopSpawner(), func(string) string { return "/" }, 1},
		{"no reserves", newLoopSpawner(), nil, 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			var mu sync.Mutex
			var got []report
			ended := 0 // starts whose OnStart ran: it comes after the report
			clk := newClock()
			st := openStore(t, clk)
			svc := newSpawnService(t, st, clk, portal(spawnWorkshop("lab", 4, c.reserved)), c.sp, sessions.Options{
				OnReserveReady: func(addr, path string) {
					mu.Lock()
					defer mu.Unlock()
					got = append(got, report{addr, path})
				},
				OnStart: func(sessions.StartResult) {
					mu.Lock()
					defer mu.Unlock()
					ended++
				}})
			var want []report
			if c.reserved > 0 {
				rs := reserves(live(t, svc, "demo-w01"))
				if len(rs) != 1 {
					t.Fatalf("reserves %v", rs)
				}
				eventually(t, "the reserve WAITING", func() bool { return stateIs(svc, rs[0], "WAITING") })
				sess := wantState(t, svc, rs[0], lifecycle.Waiting)
				want = []report{{sess.Env.Addr, c.pathOf(rs[0])}}
			} else {
				own := request(t, svc, "demo-w01", "learner").Session
				eventually(t, "the learner's session WAITING", func() bool { return stateIs(svc, own.Name, "WAITING") })
			}
			eventually(t, "the start to end", func() bool {
				mu.Lock()
				defer mu.Unlock()
				return ended == 1
			})
			mu.Lock()
			defer mu.Unlock()
			if !slices.Equal(got, want) {
				t.Fatalf("reported %v, want %v", got, want)
			}
		})
	}
}

// A reserve that keeps waiting is reported again every RewarmEvery (the
// proxy's idle connections do not last forever), at reconcile passes; once
// a learner has taken it, it is not reported any more.
func TestWaitingReserveReportedAgain(t *testing.T) {
	var mu sync.Mutex
	reports := map[string]int{} // by dial address
	clk := newClock()
	st := openStore(t, clk)
	svc := newSpawnService(t, st, clk, portal(spawnWorkshop("lab", 4, 1)), newLoopSpawner(), sessions.Options{
		ReconcileInterval: 20 * time.Millisecond,
		RewarmEvery:       50 * time.Millisecond,
		OnReserveReady: func(addr, _ string) {
			mu.Lock()
			defer mu.Unlock()
			reports[addr]++
		}})
	count := func(addr string) int {
		mu.Lock()
		defer mu.Unlock()
		return reports[addr]
	}
	rs := reserves(live(t, svc, "demo-w01"))
	eventually(t, "the reserve WAITING", func() bool { return stateIs(svc, rs[0], "WAITING") })
	addr := wantState(t, svc, rs[0], lifecycle.Waiting).Env.Addr
	eventually(t, "the waiting reserve reported three times", func() bool { return count(addr) >= 3 })
	if got := request(t, svc, "demo-w01", "learner").Session; got.Name != rs[0] {
		t.Fatalf("the learner got %s, not the reserve %s", got.Name, rs[0])
	}
	// Reports already handed to the hook may still arrive: wait until the
	// count holds still across several passes, then that it stays.
	taken := count(addr)
	time.Sleep(200 * time.Millisecond)
	if after := count(addr); after > taken+1 {
		t.Fatalf("the taken reserve was reported %d more times", after-taken)
	}
}

// A request's parameters reach an environment started for it, and a reserve
// still queued (its start reads the record when it begins); a reserve whose
// environment began before the request cannot take them, which the result
// says and the log tells the operator, naming the session.
func TestRequestParametersAndReserves(t *testing.T) {
	sp := newLoopSpawner()
	sp.tokens = make(chan struct{})
	core, logs := observer.New(zapcore.WarnLevel)
	clk := newClock()
	st := openStore(t, clk)
	// Two reserves, one start at a time: the first starts, the second waits.
	svc := newSpawnService(t, st, clk, portal(spawnWorkshop("lab", 2, 2)), sp, sessions.Options{Starts: 1, Logger: zap.New(core)})
	rs := reserves(live(t, svc, "demo-w01"))
	if len(rs) != 2 {
		t.Fatalf("reserves %v, want 2", rs)
	}
	eventually(t, "one start under way", func() bool { return sp.runningStarts() == 1 })
	begun := sp.startOrder()[0]
	queued := rs[0]
	if queued == begun {
		queued = rs[1]
	}
	ask := func(user, value string) sessions.Result {
		t.Helper()
		res, err := svc.RequestSession(context.Background(), sessions.Request{Environment: "demo-w01", User: user, IndexURL: "/",
			Params: []sessions.Param{{Name: "GREETING", Value: value}}})
		if err != nil {
			t.Fatalf("request for %s: %v", user, err)
		}
		return res
	}
	warned := func(session string) int {
		return logs.FilterMessageSnippet("request parameters not passed").FilterField(zap.String("session", session)).Len()
	}
	// The workshop is full: the oldest starting reserve, begun already.
	a := ask("alice", "hello alice")
	if a.Session.Name != begun || !a.StartedAhead || warned(begun) != 1 {
		t.Fatalf("alice got %s (started ahead %v, warnings %d), want the begun reserve %s, started ahead, one warning",
			a.Session.Name, a.StartedAhead, warned(begun), begun)
	}
	// Then the queued one: it starts with bob's parameters.
	b := ask("bob", "hello bob")
	if b.Session.Name != queued || b.StartedAhead || warned(queued) != 0 {
		t.Fatalf("bob got %s (started ahead %v, warnings %d), want the queued reserve %s, not started ahead, no warning",
			b.Session.Name, b.StartedAhead, warned(queued), queued)
	}
	sp.tokens <- struct{}{}
	sp.tokens <- struct{}{}
	eventually(t, "both sessions WAITING", func() bool { return stateIs(svc, begun, "WAITING") && stateIs(svc, queued, "WAITING") })
	if got := sp.paramsOf(queued); got["GREETING"] != "hello bob" {
		t.Errorf("bob's environment got parameters %v, want GREETING=hello bob", got)
	}
	if got := sp.paramsOf(begun); len(got) != 0 {
		t.Errorf("alice's reserve, started before her request, got parameters %v", got)
	}
	// Sessions keep the request's parameters either way: the admin API
	// shows them, and the session's config/environment, which alice's
	// dashboard can read at run time, lists them.
	sess := get(t, svc, begun)
	if p := sess.Params; len(p) != 1 || p[0].Value != "hello alice" {
		t.Errorf("alice's session record holds parameters %v", p)
	}
	if env, err := svc.EnvironmentOf(sess); err != nil || !slices.Contains(env, "GREETING=hello alice") {
		t.Errorf("alice's config/environment = %v (%v), want GREETING=hello alice in it", env, err)
	}
}
