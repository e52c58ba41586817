package loginlimit

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/caddyportal/caddyportal/caddyportal/config"
	"github.com/caddyportal/caddyportal/caddyportal/sessions"
	"github.com/caddyportal/caddyportal/caddyportal/store/badgerstore"
	"github.com/caddyportal/caddyportal/caddyportal/store/storetest"
)

// replicas returns n Limiters that share one real store through the
// portal's session service, as replicas on one etcd do, on clock clk; and
// a func that closes the store.
func replicas(t *testing.T, n int, clk *storetest.Clock) ([]*Limiter, func()) {
	t.Helper()
	ls, svcs, closeStore := replicaServices(t, n, clk)
	for i, l := range ls {
		l.Share(svcs[i])
	}
	return ls, closeStore
}

// replicaServices is replicas with the services, not yet shared.
func replicaServices(t *testing.T, n int, clk *storetest.Clock) ([]*Limiter, []*sessions.Service, func()) {
	t.Helper()
	st, err := badgerstore.Open(badgerstore.Options{InMemory: true, Now: clk.Now, SweepInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	closed := false
	closeStore := func() {
		if !closed {
			closed = true
			_ = st.Close()
		}
	}
	t.Cleanup(closeStore)
	cfg := config.Portal{Name: "demo", Robot: config.Credentials{Password: "pw"}, Client: config.Client{ID: "c", Secret: "s"},
		Workshops: []config.Workshop{{Name: "lab", Upstreams: []string{"127.0.0.1:9001"}}}}
	var out []*Limiter
	var svcs []*sessions.Service
	for range n {
		svc, err := sessions.New(context.Background(), st, cfg, sessions.Options{Now: clk.Now, ReconcileInterval: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(svc.Close)
		out = append(out, New(clk.Now))
		svcs = append(svcs, svc)
	}
	return out, svcs, closeStore
}

// TestSharedFailuresAddUp: failed logins on two replicas count together,
// so a guesser spreading attempts over them gets Burst in all, not Burst
// each; the window still ends them; a success on one replica clears the
// account for a replica that has no count of its own.
func TestSharedFailuresAddUp(t *testing.T) {
	clk := storetest.NewClock(time.Now())
	ls, _ := replicas(t, 3, clk)
	a, b, c := ls[0], ls[1], ls[2]
	for i := range Burst / 2 {
		fail(t, a, "alice", fmt.Sprint("10.0.0.", i))
		fail(t, b, "alice", fmt.Sprint("10.0.1.", i))
	}
	for name, l := range map[string]*Limiter{"a": a, "b": b, "c": c} {
		if w := blocked(l, "alice", "10.9.9.9"); w != Window {
			t.Errorf("replica %s after %d failures spread over two: wait %v, want %v", name, Burst, w, Window)
		}
	}
	if w := blocked(c, "bob", "10.9.9.9"); w != 0 {
		t.Errorf("another account is blocked: %v", w)
	}
	clk.Advance(Window)
	if w := blocked(c, "alice", "10.9.9.9"); w != 0 {
		t.Errorf("after the window: wait %v", w)
	}

	for i := range Burst - 1 {
		fail(t, a, "carol", fmt.Sprint("10.0.2.", i))
	}
	ok, wait := b.Reserve("carol", "10.0.3.1")
	if ok == nil {
		t.Fatalf("carol's login on b refused after %d failures: %v", Burst-1, wait)
	}
	ok.Succeed()
	for i := range Burst - 1 {
		fail(t, c, "carol", fmt.Sprint("10.0.4.", i))
	}
}

// TestSharedStoreDown: with the shared store gone, logins go on, limited
// by each replica's own count.
func TestSharedStoreDown(t *testing.T) {
	clk := storetest.NewClock(time.Now())
	ls, closeStore := replicas(t, 1, clk)
	closeStore()
	for i := range Burst {
		fail(t, ls[0], "dave", fmt.Sprint("10.0.5.", i))
	}
	if w := blocked(ls[0], "dave", "10.9.9.9"); w != Window {
		t.Errorf("after %d failures with the store down: wait %v, want %v", Burst, w, Window)
	}
}

// countingShared passes every call on to the real shared store and counts
// the clears, which are writes.
type countingShared struct {
	Shared
	clears int
}

func (c *countingShared) ClearLoginFailures(ctx context.Context, key string) error {
	c.clears++
	return c.Shared.ClearLoginFailures(ctx, key)
}

// TestSuccessWritesOnlyToClear: a successful login is not a write to the
// shared store unless the account had failures recorded there, which it
// then clears for every replica.
func TestSuccessWritesOnlyToClear(t *testing.T) {
	clk := storetest.NewClock(time.Now())
	ls, _ := replicas(t, 2, clk)
	c := &countingShared{Shared: ls[0].sharedStore()}
	ls[0].Share(c)
	ok, _ := ls[0].Reserve("erin", "10.0.6.1")
	ok.Succeed()
	if c.clears != 0 {
		t.Fatalf("a success with no failures on record wrote %d clears", c.clears)
	}
	fail(t, ls[1], "erin", "10.0.6.2")
	fail(t, ls[1], "erin", "10.0.6.3")
	ok, _ = ls[0].Reserve("erin", "10.0.6.4")
	ok.Succeed()
	if n, _, err := c.LoginFailures(context.Background(), accountKey("erin"), Window); c.clears != 1 || err != nil || n != 0 {
		t.Fatalf("after failures on another replica, a success cleared %d times; %d failures left (%v)", c.clears, n, err)
	}
}

// TestSharedRate: two replicas' rates of one name take from one bucket per
// address, so an address gets the burst once in all; another rate's name,
// and another address, have their own; the bucket refills with time; with
// the store gone, each replica's bucket in memory applies.
func TestSharedRate(t *testing.T) {
	clk := storetest.NewClock(time.Now())
	_, svcs, closeStore := replicaServices(t, 2, clk)
	const burst, every = 4, 10 * time.Second
	a, b := NewRate(clk.Now, burst, every), NewRate(clk.Now, burst, every)
	a.Share(svcs[0], "signup")
	b.Share(svcs[1], "signup")
	other := NewRate(clk.Now, burst, every)
	other.Share(svcs[1], "create")
	for i := range burst {
		r := a
		if i%2 == 1 {
			r = b
		}
		if w := r.Allow("10.1.0.1"); w != 0 {
			t.Fatalf("request %d of the burst refused: %v", i, w)
		}
	}
	for name, r := range map[string]*Rate{"a": a, "b": b} {
		if w := r.Allow("10.1.0.1"); w != every {
			t.Errorf("replica %s after the burst over both: wait %v, want %v", name, w, every)
		}
	}
	if w := other.Allow("10.1.0.1"); w != 0 {
		t.Errorf("another rate for the same address: wait %v", w)
	}
	if w := b.Allow("10.1.0.2"); w != 0 {
		t.Errorf("another address: wait %v", w)
	}
	clk.Advance(every)
	if w := b.Allow("10.1.0.1"); w != 0 {
		t.Errorf("a token after %v: wait %v", every, w)
	}
	if w := a.Allow("10.1.0.1"); w == 0 {
		t.Error("two tokens after one refill period")
	}
	closeStore()
	for i := range burst {
		if w := a.Allow("10.1.0.3"); w != 0 {
			t.Fatalf("with the store down, request %d refused: %v", i, w)
		}
	}
	if w := a.Allow("10.1.0.3"); w != every {
		t.Errorf("with the store down, after the burst: wait %v, want %v", w, every)
	}
}
