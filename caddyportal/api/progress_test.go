package api_test

import (
	"context"
	"testing"
	"time"

	"github.com/caddyportal/caddyportal/caddyportal/config"
	"github.com/caddyportal/caddyportal/caddyportal/lifecycle"
	"github.com/caddyportal/caddyportal/caddyportal/spawner"
	"github.com/caddyportal/caddyportal/caddyportal/spawner/spawnertest"
)

// TestProgressRoute follows two sessions of a spawned workshop through the
// progress route with one start slot: the first starting, the second
// queued at position 1; then the queued one is terminated and must not
// report a queue position next to its ended state (the start queue still
// holds its name until its turn comes); then the first becomes ready.
func TestProgressRoute(t *testing.T) {
	sp := spawnertest.New()
	capacity, reserved := 3, 0
	cfg := testPortal()
	cfg.Replica = "r1"
	cfg.Workshops = []config.Workshop{{Name: "lab-spawn", Capacity: &capacity, Reserved: &reserved}}
	h := newHarness(t, harnessOpts{cfg: cfg, spawners: map[string]spawner.Spawner{"lab-spawn": sp}, starts: 1})
	released := false
	t.Cleanup(func() {
		if !released {
			close(sp.Release)
		}
	})

	var names []string
	for _, user := range []string{"u1", "u2"} {
		req := h.request("demo-w01", map[string][]string{"user": {user}})
		if _, err := h.svc.Activate(context.Background(), req.Name, req.token); err != nil {
			t.Fatal(err)
		}
		names = append(names, req.Name)
	}
	progress := func(name string) map[string]any {
		t.Helper()
		r := h.get("/workshops/session/"+name+"/progress/", h.robot)
		if r.status != 200 {
			t.Fatalf("progress of %s: %d %s", name, r.status, r.body)
		}
		return r.json(t)
	}
	waitProgress := func(name, what string, ok func(map[string]any) bool) map[string]any {
		t.Helper()
		deadline := time.Now().Add(defaultWait)
		for {
			m := progress(name)
			if ok(m) {
				return m
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: timed out waiting for %s; last %v", name, what, m)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}

	first := waitProgress(names[0], "its start under way", func(m map[string]any) bool { return m["step"] == spawner.StepStarting })
	if first["state"] != string(lifecycle.Starting) || first["ready"] != false || first["position"] != 0.0 {
		t.Errorf("starting session's progress: %v", first)
	}
	if second := progress(names[1]); second["state"] != string(lifecycle.Starting) || second["position"] != 1.0 || second["ready"] != false {
		t.Errorf("queued session's progress: %v", second)
	}

	if r := h.do("POST", "/workshops/session/"+names[1]+"/terminate/", h.robot, nil); r.status != 200 {
		t.Fatalf("terminate the queued session: %d %s", r.status, r.body)
	}
	ended := progress(names[1])
	if ended["state"] == string(lifecycle.Starting) || ended["position"] != 0.0 || ended["ready"] != false {
		t.Errorf("progress of the session ended while queued: %v", ended)
	}

	close(sp.Release)
	released = true
	ready := waitProgress(names[0], "ready", func(m map[string]any) bool { return m["ready"] == true })
	if ready["state"] != string(lifecycle.Running) || ready["position"] != 0.0 {
		t.Errorf("ready session's progress: %v", ready)
	}
}
