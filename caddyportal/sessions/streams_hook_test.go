package sessions_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddyportal/caddyportal/caddyportal/config"
	"github.com/caddyportal/caddyportal/caddyportal/lifecycle"
	"github.com/caddyportal/caddyportal/caddyportal/sessions"
	"github.com/caddyportal/caddyportal/caddyportal/store"
)

// endLog records OnEnd calls with the session records the store held at
// each call, read in a separate transaction: what had been committed.
type endLog struct {
	mu    sync.Mutex
	st    store.Store
	calls map[string][]map[string]bool // session → committed records per call
}

func (l *endLog) onEnd(name string) {
	committed := map[string]bool{}
	_ = l.st.View(context.Background(), func(tx store.Txn) error {
		return tx.Scan("s/", func(k string, _ []byte) error {
			committed[strings.TrimPrefix(k, "s/")] = true
			return nil
		})
	})
	l.mu.Lock()
	defer l.mu.Unlock()
	l.calls[name] = append(l.calls[name], committed)
}

func (l *endLog) called(name string) []map[string]bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.calls[name]
}

// TestOnEndBeforeSlotIsHandedOn: the gate closes a session's streams from
// OnEnd, so OnEnd must come when the session stops being live and, for a
// session whose slot is reused, before the transaction that hands the
// slot to the next session commits. A one-slot pool: alice's session
// expires (nothing is written at that instant) and bob's request takes
// the slot; at the OnEnd call for alice's session, bob's session must not
// be committed yet. Terminate and orphaning call it too.
func TestOnEndBeforeSlotIsHandedOn(t *testing.T) {
	clk := newClock()
	st := openStore(t, clk)
	w := workshop("lab", 1, 0)
	w.Upstreams = []string{"127.0.0.1:9001"}
	w.Expires = config.Duration(time.Minute)
	w.Orphaned = config.Duration(30 * time.Second)
	log := &endLog{st: st, calls: map[string][]map[string]bool{}}
	svc, err := sessions.New(context.Background(), st, portal(w), sessions.Options{Now: clk.Now, StopGrace: grace,
		ReconcileInterval: time.Hour, OnEnd: log.onEnd})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(svc.Close)
	ctx := context.Background()

	alice := request(t, svc, "demo-w01", "alice")
	if _, err := svc.Activate(ctx, alice.Session.Name, alice.Token); err != nil {
		t.Fatal(err)
	}
	if calls := log.called(alice.Session.Name); len(calls) != 0 {
		t.Fatalf("OnEnd called for a live session")
	}
	clk.Advance(time.Minute + time.Second)
	bob := request(t, svc, "demo-w01", "bob")
	if bob.Session.Slot != alice.Session.Slot {
		t.Fatalf("bob got slot %d, want alice's %d", bob.Session.Slot, alice.Session.Slot)
	}
	calls := log.called(alice.Session.Name)
	if len(calls) == 0 {
		t.Fatal("alice's slot was handed on without OnEnd for her session")
	}
	if calls[0][bob.Session.Name] {
		t.Fatalf("OnEnd for %s came after %s, which took its slot, was committed", alice.Session.Name, bob.Session.Name)
	}

	// Terminate: OnEnd once the session is STOPPING.
	if _, err := svc.Activate(ctx, bob.Session.Name, bob.Token); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Terminate(ctx, bob.Session.Name, ""); err != nil {
		t.Fatal(err)
	}
	if len(log.called(bob.Session.Name)) == 0 {
		t.Fatal("Terminate did not call OnEnd")
	}
	wantState(t, svc, bob.Session.Name, lifecycle.Stopping)

	// Orphaning: the background pass stops an idle session.
	clk.Advance(grace + time.Second)
	carol := request(t, svc, "demo-w01", "carol")
	if _, err := svc.Activate(ctx, carol.Session.Name, carol.Token); err != nil {
		t.Fatal(err)
	}
	clk.Advance(31 * time.Second)
	reconcile(t, svc)
	if s := wantState(t, svc, carol.Session.Name, lifecycle.Stopped); s.Reason != "orphaned" {
		t.Fatalf("reason %q, want orphaned", s.Reason)
	}
	if len(log.called(carol.Session.Name)) == 0 {
		t.Fatal("orphaning did not call OnEnd")
	}
}
