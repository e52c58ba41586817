package sessions_test

import (
	"context"
	"testing"
	"time"

	"github.com/caddyportal/caddyportal/caddyportal/config"
	"github.com/caddyportal/caddyportal/caddyportal/lifecycle"
)

// TestOrphanedSessionsEnd: a running session idle for the workshop's
// `orphaned` timeout is ended by the background pass; activity recorded by
// the gate (Touch) keeps it alive.
func TestOrphanedSessionsEnd(t *testing.T) {
	w := workshop("lab", 2, 0)
	w.Orphaned = config.Duration(5 * time.Minute)
	svc, _, clk := setup(t, portal(w))
	ctx := context.Background()

	idle := request(t, svc, "demo-w01", "idle")
	busy := request(t, svc, "demo-w01", "busy")
	for _, r := range []struct{ name, tok string }{{idle.Session.Name, idle.Token}, {busy.Session.Name, busy.Token}} {
		if _, err := svc.Activate(ctx, r.name, r.tok); err != nil {
			t.Fatal(err)
		}
	}
	// Four minutes in, the busy learner does something.
	clk.Advance(4 * time.Minute)
	if err := svc.Touch(ctx, busy.Session.Name); err != nil {
		t.Fatal(err)
	}
	// Just before five idle minutes nothing ends.
	clk.Advance(time.Minute - time.Nanosecond)
	reconcile(t, svc)
	wantState(t, svc, idle.Session.Name, lifecycle.Running)
	// At five idle minutes the idle one is orphaned; the busy one is not.
	clk.Advance(time.Nanosecond)
	reconcile(t, svc)
	if s := wantState(t, svc, idle.Session.Name, lifecycle.Stopped); s.Reason != "orphaned" {
		t.Fatalf("reason %q, want orphaned", s.Reason)
	}
	wantState(t, svc, busy.Session.Name, lifecycle.Running)
}

// TestOrphanedDisabled: without `orphaned`, idle sessions run until expiry.
func TestOrphanedDisabled(t *testing.T) {
	svc, _, clk := setup(t, portal(workshop("lab", 1, 0)))
	r := request(t, svc, "demo-w01", "u")
	if _, err := svc.Activate(context.Background(), r.Session.Name, r.Token); err != nil {
		t.Fatal(err)
	}
	clk.Advance(48 * time.Hour)
	reconcile(t, svc)
	wantState(t, svc, r.Session.Name, lifecycle.Running)
}
