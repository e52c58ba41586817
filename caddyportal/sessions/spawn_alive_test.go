package sessions_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/caddyportal/caddyportal/caddyportal/lifecycle"
	"github.com/caddyportal/caddyportal/caddyportal/sessions"
)

// An environment that dies while its session waits or runs ends that
// session at the next reconcile pass, not at the next restart: the
// reserve and the running session are environment-lost with the spawner's
// words on their page, reported like any other end, their leftovers are
// stopped before their places are free, and a healthy neighbour is not
// touched.
func TestSpawnLostEnvironmentEndsSession(t *testing.T) {
	sp := newLoopSpawner()
	clk := newClock()
	st := openStore(t, clk)
	var evs eventLog
	svc := newSpawnService(t, st, clk, portal(spawnWorkshop("lab", 3, 1)), sp, sessions.Options{OnEvent: evs.add})
	ctx := context.Background()
	running := request(t, svc, "demo-w01", "u1")
	eventually(t, "the session WAITING", func() bool { return stateIs(svc, running.Session.Name, "WAITING") })
	if _, err := svc.Activate(ctx, running.Session.Name, running.Token); err != nil {
		t.Fatal(err)
	}
	healthy := request(t, svc, "demo-w01", "u2").Session.Name
	eventually(t, "the neighbour WAITING", func() bool { return stateIs(svc, healthy, "WAITING") })
	var reserve string
	eventually(t, "a ready reserve", func() bool {
		rs := reserves(live(t, svc, "demo-w01"))
		if len(rs) == 1 && stateIs(svc, rs[0], "WAITING") {
			reserve = rs[0]
		}
		return reserve != ""
	})

	sp.kill(reserve)
	sp.kill(running.Session.Name)
	if err := svc.Reconcile(ctx); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{reserve, running.Session.Name} {
		eventually(t, name+" STOPPED", func() bool { return stateIs(svc, name, "STOPPED") })
		s := get(t, svc, name)
		if s.Reason != sessions.ReasonEnvironmentLost {
			t.Fatalf("%s: reason %q, want %q", name, s.Reason, sessions.ReasonEnvironmentLost)
		}
		if s.Progress == nil || s.Progress.Step != sessions.StepFailed || s.Progress.Message != "the loopback server of "+name+" was closed" {
			t.Fatalf("%s: progress %+v, want the spawner's words", name, s.Progress)
		}
		if ev := evs.await(t, sessions.EventSessionDeleted, name); ev == nil || ev.Data["reason"] != sessions.ReasonEnvironmentLost {
			t.Fatalf("%s: Session/Deleted event %+v, want reason environment-lost", name, ev)
		}
		sp.mu.Lock()
		stopped := slices.Contains(sp.stops, name)
		sp.mu.Unlock()
		if !stopped {
			t.Fatalf("%s was STOPPED without its environment's leftovers being stopped", name)
		}
	}
	wantState(t, svc, healthy, lifecycle.Waiting)
	// The places are free: the lost reserve is replaced.
	if err := svc.Reconcile(ctx); err != nil {
		t.Fatal(err)
	}
	eventually(t, "a new reserve", func() bool {
		rs := reserves(live(t, svc, "demo-w01"))
		return len(rs) == 1 && rs[0] != reserve && stateIs(svc, rs[0], "WAITING")
	})
}

// A backend that cannot tell whether an environment runs (unreachable)
// ends nothing, neither at a reconcile pass nor at a restart, where the
// environment is kept rather than stopped as a stray; once it can tell
// again, the dead environment's session ends.
func TestSpawnAliveUnsureKeepsSession(t *testing.T) {
	sp := newLoopSpawner()
	clk := newClock()
	st := openStore(t, clk)
	cfg := portal(spawnWorkshop("lab", 1, 0))
	svc := newSpawnService(t, st, clk, cfg, sp, sessions.Options{})
	ctx := context.Background()
	res := request(t, svc, "demo-w01", "u1")
	name := res.Session.Name
	eventually(t, "WAITING", func() bool { return stateIs(svc, name, "WAITING") })
	if _, err := svc.Activate(ctx, name, res.Token); err != nil {
		t.Fatal(err)
	}
	sp.mu.Lock()
	sp.unsure = errors.New("cannot reach the engine")
	sp.mu.Unlock()
	sp.kill(name)
	for range 3 {
		if err := svc.Reconcile(ctx); err != nil {
			t.Fatal(err)
		}
	}
	wantState(t, svc, name, lifecycle.Running)
	svc.Close()
	svc = newSpawnService(t, st, clk, cfg, sp, sessions.Options{})
	wantState(t, svc, name, lifecycle.Running)
	sp.mu.Lock()
	stopped := slices.Contains(sp.stops, name)
	sp.unsure = nil
	sp.mu.Unlock()
	if stopped {
		t.Fatal("the restart stopped an environment whose backend could not tell")
	}
	if err := svc.Reconcile(ctx); err != nil {
		t.Fatal(err)
	}
	eventually(t, "STOPPED", func() bool { return stateIs(svc, name, "STOPPED") })
	if s := get(t, svc, name); s.Reason != sessions.ReasonEnvironmentLost || !strings.Contains(s.Progress.Message, "closed") {
		t.Fatalf("reason %q progress %+v", s.Reason, s.Progress)
	}
}
