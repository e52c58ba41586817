package sessions_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/caddyportal/caddyportal/caddyportal/sessions"
)

// TestStateChangesLogged checks that every committed state change is logged
// with its session, user and environment, and that no activation token
// reaches the log.
func TestStateChangesLogged(t *testing.T) {
	core, logs := observer.New(zapcore.InfoLevel)
	clk := newClock()
	st := openStore(t, clk)
	var mu sync.Mutex
	var events []sessions.Event
	svc, err := sessions.New(context.Background(), st, portal(workshop("lab", 3, 1)), sessions.Options{
		Now: clk.Now, StopGrace: grace, ReconcileInterval: time.Hour, Logger: zap.New(core),
		OnEvent: func(ev sessions.Event) { mu.Lock(); events = append(events, ev); mu.Unlock() },
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(svc.Close)
	ctx := context.Background()

	res := request(t, svc, "demo-w01", "alice@example.com")
	if _, err := svc.Activate(ctx, res.Session.Name, res.Token); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Terminate(ctx, res.Session.Name, ""); err != nil {
		t.Fatal(err)
	}
	clk.Advance(time.Minute)
	if err := svc.Reconcile(ctx); err != nil {
		t.Fatal(err)
	}

	mu.Lock()
	defer mu.Unlock()
	seen := map[string]bool{}
	for _, ev := range events {
		seen[ev.Name] = true
		want := fmt.Sprintf("%s|%s|%s", ev.Name, ev.Session, ev.Environment)
		found := false
		for _, e := range logs.FilterMessage("session event").All() {
			m := e.ContextMap()
			if fmt.Sprintf("%s|%s|%s", m["event"], m["session"], m["environment"]) == want && m["user"] == ev.User {
				found = true
			}
		}
		if !found {
			t.Errorf("event %s of %s (user %q) was not logged with its fields", ev.Name, ev.Session, ev.User)
		}
	}
	for _, name := range []string{"Session/Pending", "Session/Started", "Session/Terminate", "Session/Deleted"} {
		if !seen[name] {
			t.Errorf("no %s event in %v", name, events)
		}
	}
	for _, e := range logs.All() {
		line := e.Message + fmt.Sprint(e.ContextMap())
		if strings.Contains(line, res.Token) {
			t.Fatalf("activation token in log entry %q", line)
		}
	}
}
