package api_test

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/caddyportal/caddyportal/caddyportal/config"
	"github.com/caddyportal/caddyportal/caddyportal/lifecycle"
	"github.com/caddyportal/caddyportal/caddyportal/spawner"
	"github.com/caddyportal/caddyportal/caddyportal/spawner/process"
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
	progress := func(name string) map[string]any { return getProgress(t, h, name) }
	waitProgress := func(name, what string, ok func(map[string]any) bool) map[string]any {
		return awaitProgress(t, h, name, what, ok)
	}

	first := waitProgress(names[0], "its start under way", func(m map[string]any) bool { return m["step"] == spawner.StepStarting })
	if first["state"] != string(lifecycle.Starting) || first["ready"] != false || first["position"] != 0.0 {
		t.Errorf("starting session's progress: %v", first)
	}
	if second := progress(names[1]); second["state"] != string(lifecycle.Starting) || second["position"] != 1.0 || second["ready"] != false {
		t.Errorf("queued session's progress: %v", second)
	} else if _, has := second["wait"]; has {
		t.Errorf("a wait estimated before any start ended: %v", second)
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

// TestProgressRouteWait: once starts have ended at a pace, a queued
// session's progress says about how long it waits (whole seconds, rounded
// up); one whose start is under way says nothing of a wait. Starts of
// every workshop share the one start slot: three of a workshop whose
// environments start at once end 2 s apart on the portal's clock, then one
// of a held workshop takes the slot and the next waits behind it.
func TestProgressRouteWait(t *testing.T) {
	quick, held := spawnertest.New(), spawnertest.New()
	close(quick.Release)
	capacity, reserved := 5, 0
	cfg := testPortal()
	cfg.Replica = "r1"
	cfg.Workshops = []config.Workshop{{Name: "lab-quick", Capacity: &capacity, Reserved: &reserved},
		{Name: "lab-held", Capacity: &capacity, Reserved: &reserved}}
	h := newHarness(t, harnessOpts{cfg: cfg, spawners: map[string]spawner.Spawner{"lab-quick": quick, "lab-held": held}, starts: 1})
	t.Cleanup(func() { close(held.Release) })
	progress := func(name string) map[string]any { return getProgress(t, h, name) }
	until := func(name, what string, ok func(map[string]any) bool) map[string]any {
		return awaitProgress(t, h, name, what, ok)
	}
	for i := range 3 {
		name := h.request("demo-w01", map[string][]string{"user": {fmt.Sprint("q", i)}}).Name
		until(name, "ready", func(m map[string]any) bool { return m["ready"] == true })
		h.clk.Advance(2 * time.Second)
	}
	blocking := h.request("demo-w02", map[string][]string{"user": {"h0"}}).Name
	until(blocking, "its start under way", func(m map[string]any) bool { return m["step"] == spawner.StepStarting })
	queued := h.request("demo-w02", map[string][]string{"user": {"h1"}}).Name
	m := progress(queued)
	if wait, _ := m["wait"].(float64); m["position"] != 1.0 || wait < 1 || wait > 3 {
		t.Errorf("queued session's progress: %v, want position 1 and a wait of 1 to 3 s (one end every 1 to 3 s)", m)
	}
	if m := progress(blocking); m["wait"] != nil {
		t.Errorf("a start under way has a wait: %v", m)
	}
}

// getProgress GETs a session's progress as the robot.
func getProgress(t *testing.T, h *harness, name string) map[string]any {
	t.Helper()
	r := h.get("/workshops/session/"+name+"/progress/", h.robot)
	if r.status != 200 {
		t.Fatalf("progress of %s: %d %s", name, r.status, r.body)
	}
	return r.json(t)
}

// awaitProgress polls a session's progress until ok holds (the limit only
// keeps a broken test from hanging).
func awaitProgress(t *testing.T, h *harness, name, what string, ok func(map[string]any) bool) map[string]any {
	t.Helper()
	for deadline := time.Now().Add(defaultWait); ; time.Sleep(5 * time.Millisecond) {
		m := getProgress(t, h, name)
		if ok(m) {
			return m
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: timed out waiting for %s; last %v", name, what, m)
		}
	}
}

// TestActivateAfterAFailedStart: the activation link of a session whose
// environment could not start sends the browser to its index with
// notification=startup-timeout, what the gate sends a browser of the
// session, not session-deleted. The dashboard is a real process that
// exits at once.
func TestActivateAfterAFailedStart(t *testing.T) {
	sp, err := process.New(process.Config{Command: []string{"/bin/false", "{port}"}, Dir: t.TempDir(), Portal: "demo",
		Replica: fmt.Sprintf("api-test-%d", os.Getpid())}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sp.Close)
	capacity, reserved := 1, 0
	cfg := testPortal()
	cfg.Workshops = []config.Workshop{{Name: "lab-fails", Capacity: &capacity, Reserved: &reserved}}
	h := newHarness(t, harnessOpts{cfg: cfg, spawners: map[string]spawner.Spawner{"lab-fails": sp}, starts: 1})
	req := h.request("demo-w01", map[string][]string{"user": {"u1"}})
	awaitProgress(t, h, req.Name, "the start to fail", func(m map[string]any) bool { return m["state"] != string(lifecycle.Starting) })
	r := h.get(req.URL, "")
	if loc := r.header.Get("Location"); r.status != 302 || !strings.Contains(loc, "notification=startup-timeout") {
		t.Fatalf("the activation link after a failed start: %d to %q", r.status, loc)
	}
}
