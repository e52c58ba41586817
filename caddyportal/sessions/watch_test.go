package sessions_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/caddyportal/caddyportal/caddyportal/config"
	"github.com/caddyportal/caddyportal/caddyportal/lifecycle"
	"github.com/caddyportal/caddyportal/caddyportal/sessions"
	"github.com/caddyportal/caddyportal/caddyportal/store/etcdstore"
	"github.com/caddyportal/caddyportal/caddyportal/store/etcdstore/etcdtest"
)

// twoReplicas runs two services of workshop "lab" (capacity 3), as two
// replicas would, on two clients of one real etcd, with one clock that
// stands still unless the test moves it.
func twoReplicas(t *testing.T) (a, b *sessions.Service) {
	t.Helper()
	clk := newClock()
	open := etcdClients(t, clk)
	cfg := portal(workshop("lab", 3, 0))
	return newService(t, open(), clk, cfg), newService(t, open(), clk, cfg)
}

// TestReplicaCacheFollowsWatch runs two services, as two replicas would, on
// two clients of one real etcd. Replica B's gate cache holds a running
// session; replica A terminates it. B's clock stands still, so the cache
// entry would never expire by age: only the store's watch can make B see
// the change.
func TestReplicaCacheFollowsWatch(t *testing.T) {
	a, b := twoReplicas(t)
	ctx := context.Background()

	res := request(t, a, "demo-w01", "alice")
	if _, err := a.Activate(ctx, res.Session.Name, res.Token); err != nil {
		t.Fatal(err)
	}
	if s, err := b.GetCached(ctx, res.Session.Name); err != nil || s.State != lifecycle.Running {
		t.Fatalf("replica B sees %v, %v; want RUNNING", s, err)
	}
	if _, err := a.Terminate(ctx, res.Session.Name, ""); err != nil {
		t.Fatal(err)
	}
	var last *sessions.Session
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		s, err := b.GetCached(ctx, res.Session.Name)
		if err != nil {
			t.Fatal(err)
		}
		if last = s; s.State == lifecycle.Stopping {
			return
		}
	}
	t.Fatalf("replica B still serves the session as %s after A terminated it", last.State)
}

// TestReplicaChangedFollowsWatch: a request held on replica B for a
// session (the gate's wait for a starting environment) wakes when replica
// A changes that session, through the store's watch, not only when B's
// hold runs out.
func TestReplicaChangedFollowsWatch(t *testing.T) {
	a, b := twoReplicas(t)
	res := request(t, a, "demo-w01", "alice")
	// The watch delivers the request's own writes to B a moment later:
	// wait for a quiet spell first.
	var changed <-chan struct{}
	for quiet := false; !quiet; {
		changed = b.Changed(res.Session.Name)
		select {
		case <-changed:
		case <-time.After(300 * time.Millisecond):
			quiet = true
		}
	}
	if _, err := a.Activate(context.Background(), res.Session.Name, res.Token); err != nil {
		t.Fatal(err)
	}
	select {
	case <-changed:
	case <-time.After(20 * time.Second):
		t.Fatal("B's wait did not wake when A activated the session")
	}
}

// TestBatchSplitWhenTooLarge: etcd refuses transactions with more than
// --max-txn-ops operations. A burst of requests batched into one
// transaction must then be split until it fits, never failed.
func TestBatchSplitWhenTooLarge(t *testing.T) {
	srv := etcdtest.Start(t, "--max-txn-ops", "32")
	clk := newClock()
	st, err := etcdstore.Open(context.Background(), etcdstore.Options{Endpoints: srv.Endpoints(),
		Prefix: "/split-test/", Now: clk.Now, SweepInterval: -1, MaxTxnOps: 32})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	svc := newService(t, st, clk, portal(workshop("lab", 60, 0)))
	errs := make(chan error, 60)
	for i := range 60 {
		go func() {
			_, err := svc.RequestSession(context.Background(), sessions.Request{Environment: "demo-w01",
				User: fmt.Sprintf("user-%d", i), IndexURL: "https://hub.example.com/"})
			errs <- err
		}()
	}
	for range 60 {
		if err := <-errs; err != nil {
			t.Fatalf("a request in a burst failed: %v", err)
		}
	}
	if n := len(live(t, svc, "demo-w01")); n != 60 {
		t.Fatalf("%d live sessions after 60 requests, want 60", n)
	}
}

// TestSharedStoreHoldsSlotAfterExpiry: on a store several replicas share,
// a replica closes its streams of a session only once the watch tells it
// the session stopped. Expiry and orphaning have no STOPPING grace, so the
// slot of such a session is held for the grace after the stop is written
// before another session gets it (on one process, OnEnd closes the
// streams first and the slot is reused at once: TestOnEndBeforeSlotIsHandedOn).
func TestSharedStoreHoldsSlotAfterExpiry(t *testing.T) {
	srv := etcdtest.Start(t)
	clk := newClock()
	st, err := etcdstore.Open(context.Background(), etcdstore.Options{Endpoints: srv.Endpoints(),
		Prefix: "/quiet-test/", Now: clk.Now, SweepInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	w := workshop("lab", 1, 0)
	w.Upstreams = []string{"127.0.0.1:9001"}
	w.Expires = config.Duration(time.Minute)
	w.Orphaned = config.Duration(30 * time.Second)
	svc := newService(t, st, clk, portal(w))
	ctx := context.Background()
	for _, end := range []string{"expired", "orphaned"} {
		alice := request(t, svc, "demo-w01", "alice-"+end)
		if _, err := svc.Activate(ctx, alice.Session.Name, alice.Token); err != nil {
			t.Fatal(err)
		}
		if end == "expired" {
			clk.Advance(time.Minute + time.Second)
		} else {
			clk.Advance(31 * time.Second)
			reconcile(t, svc)
		}
		requestErr(t, svc, sessions.Request{Environment: "demo-w01", User: "bob-" + end}, sessions.ErrNoSession)
		if s := wantState(t, svc, alice.Session.Name, lifecycle.Stopped); s.Reason != end {
			t.Fatalf("reason %q, want %s", s.Reason, end)
		}
		clk.Advance(grace + time.Millisecond)
		bob := request(t, svc, "demo-w01", "bob-"+end)
		if bob.Session.Slot != alice.Session.Slot {
			t.Fatalf("after the grace bob got slot %d, want %d", bob.Session.Slot, alice.Session.Slot)
		}
		if _, err := svc.Terminate(ctx, bob.Session.Name, ""); err != nil {
			t.Fatal(err)
		}
		clk.Advance(grace + time.Second)
		reconcile(t, svc)
	}
}
