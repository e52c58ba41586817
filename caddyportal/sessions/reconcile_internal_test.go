package sessions

import (
	"context"
	"maps"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/caddyportal/caddyportal/caddyportal/config"
	"github.com/caddyportal/caddyportal/caddyportal/lifecycle"
	"github.com/caddyportal/caddyportal/caddyportal/store"
	"github.com/caddyportal/caddyportal/caddyportal/store/badgerstore"
	"github.com/caddyportal/caddyportal/caddyportal/store/storetest"
)

// TestIndexPass: a reconcile pass that works from the live index (all but
// every fullReconcileEvery-th) reads the records of the sessions it has
// something to do with and no others, does to them what a full pass does
// (idle sessions orphaned, passed expiries made durable, a removed
// environment's reserve ended and the drained environment STOPPED), and
// leaves the counters as a recount of the records would.
func TestIndexPass(t *testing.T) {
	ctx := context.Background()
	clk := storetest.NewClock(time.Date(2026, 12, 7, 9, 0, 0, 0, time.UTC))
	st, err := badgerstore.Open(badgerstore.Options{InMemory: true, Now: clk.Now, SweepInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ws := func(name string, capacity, reserved int) config.Workshop {
		capacity, reserved = max(capacity, 0), max(reserved, 0)
		return config.Workshop{Name: name, Title: name, Capacity: &capacity, Reserved: &reserved,
			Upstreams: []string{"dash-{session}.svc:8080"}, Expires: config.Duration(30 * time.Minute),
			Orphaned: config.Duration(10 * time.Minute)}
	}
	cfg := func(w ...config.Workshop) config.Portal {
		return config.Portal{Name: "demo", Robot: config.Credentials{Password: "robot-pw"},
			Client: config.Client{ID: "client", Secret: "secret"}, Workshops: w}
	}
	open := func(c config.Portal) *Service {
		s, err := New(ctx, st, c, Options{Now: clk.Now, StopGrace: time.Second, ReconcileInterval: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	svc := open(cfg(ws("a", 20, 2), ws("b", 5, 1)))
	users := map[string]string{} // user → session
	start := func(users ...string) map[string]string {
		out := map[string]string{}
		for _, u := range users {
			r, err := svc.RequestSession(ctx, Request{Environment: "demo-w01", User: u})
			if err == nil {
				_, err = svc.Activate(ctx, r.Session.Name, r.Token)
			}
			if err != nil {
				t.Fatal(err)
			}
			out[u] = r.Session.Name
		}
		return out
	}
	maps.Copy(users, start("u1", "u2", "u3", "u4"))
	clk.Advance(5 * time.Minute)
	maps.Copy(users, start("u5", "u6"))
	for _, u := range []string{"u2", "u3", "u4"} {
		if err := svc.Touch(ctx, users[u]); err != nil {
			t.Fatal(err)
		}
	}

	// read returns the records a pass at the service's clock reads for
	// env, as names in order.
	read := func(s *Service, env string) []string {
		t.Helper()
		var got []string
		err := st.View(ctx, func(tx store.Txn) error {
			tx0 := s.viewState(tx)
			if _, err := tx0.needing(env, s.passNeeds(s.Environment(env), tx0.now)); err != nil {
				return err
			}
			got = slices.Sorted(maps.Keys(tx0.loaded))
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	pass := func(s *Service) {
		t.Helper()
		if _, err := s.reconcilePass(ctx, false); err != nil {
			t.Fatal(err)
		}
	}
	// countersMatch: the stored counters are what a recount of the records
	// gives.
	countersMatch := func(s *Service, env string) {
		t.Helper()
		err := st.View(ctx, func(tx store.Txn) error {
			stored, err := s.viewState(tx).count(env)
			if err != nil {
				return err
			}
			recount := s.viewState(tx)
			if _, err := recount.scanLive(env); err != nil {
				return err
			}
			want := recount.counts[env]
			if stored.Live != want.Live || !slices.Equal(stored.Reserves, want.Reserves) || !slices.Equal(stored.Starting, want.Starting) {
				t.Errorf("%s: counters %+v, the records say %+v", env, stored, want)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	state := func(s *Service, name string) (lifecycle.State, string) {
		t.Helper()
		sess, err := s.Get(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		return sess.State, sess.Reason
	}

	// Eleven minutes in, u1 (last active at the start) is idle; nothing
	// else has anything to do.
	clk.Advance(6 * time.Minute)
	if got := read(svc, "demo-w01"); !slices.Equal(got, []string{users["u1"]}) {
		t.Fatalf("the pass reads %v, want only u1's %s", got, users["u1"])
	}
	if got := read(svc, "demo-w02"); len(got) != 0 {
		t.Fatalf("the pass reads %v of an environment with nothing to do", got)
	}
	pass(svc)
	if st, why := state(svc, users["u1"]); st != lifecycle.Stopped || why != ReasonOrphaned {
		t.Fatalf("u1's session is %s (%q), want STOPPED as orphaned", st, why)
	}
	for _, u := range []string{"u2", "u3", "u4", "u5", "u6"} {
		if st, _ := state(svc, users[u]); st != lifecycle.Running {
			t.Fatalf("%s's session is %s after the pass", u, st)
		}
	}
	countersMatch(svc, "demo-w01")
	countersMatch(svc, "demo-w02")
	svc.Close()

	// Workshop b is removed; at 31 minutes the sessions activated at the
	// start have expired.
	svc = open(cfg(ws("a", 20, 2)))
	defer svc.Close()
	clk.Advance(20 * time.Minute)
	for _, u := range []string{"u5", "u6"} {
		if err := svc.Touch(ctx, users[u]); err != nil {
			t.Fatal(err)
		}
	}
	want := []string{users["u2"], users["u3"], users["u4"]}
	slices.Sort(want)
	if got := read(svc, "demo-w01"); !slices.Equal(got, want) {
		t.Fatalf("the pass reads %v, want the expired %v", got, want)
	}
	if got := read(svc, "demo-w02"); len(got) != 1 {
		t.Fatalf("the pass reads %v of the removed environment, want its reserve", got)
	}
	pass(svc)
	for _, u := range []string{"u2", "u3", "u4"} {
		if st, why := state(svc, users[u]); st != lifecycle.Stopped || why != ReasonExpired {
			t.Fatalf("%s's session is %s (%q), want STOPPED as expired", u, st, why)
		}
	}
	for _, u := range []string{"u5", "u6"} {
		if st, _ := state(svc, users[u]); st != lifecycle.Running {
			t.Fatalf("%s's session is %s after the pass", u, st)
		}
	}
	countersMatch(svc, "demo-w01")
	countersMatch(svc, "demo-w02")
	if e := svc.Environment("demo-w02"); e == nil || e.State != EnvStopping {
		t.Fatalf("removed environment %+v", e)
	}
	var rec envRecord
	err = st.View(ctx, func(tx store.Txn) error {
		v, err := tx.Get(keyEnv("demo-w02"))
		if err == nil {
			err = unmarshal(v, &rec)
		}
		return err
	})
	if err != nil || rec.State != EnvStopped {
		t.Fatalf("the drained environment's record is %+v, %v; want STOPPED", rec, err)
	}
}

// BenchmarkReconcilePass: one reconcile pass at 5,000 live sessions with
// nothing to do, reading every record (full, as every pass did before) and
// from the index, in the same run.
func BenchmarkReconcilePass(b *testing.B) {
	const live = 5000
	ctx := context.Background()
	st, err := badgerstore.Open(badgerstore.Options{InMemory: true, SweepInterval: -1})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	capacity, reserved := live, 0
	cfg := config.Portal{Name: "demo", Robot: config.Credentials{Password: "robot-pw"},
		Client: config.Client{ID: "client", Secret: "secret"}, Workshops: []config.Workshop{{Name: "lab", Title: "lab",
			Capacity: &capacity, Reserved: &reserved, Upstreams: []string{"dash-{session}.svc:8080"}}}}
	svc, err := New(ctx, st, cfg, Options{ReconcileInterval: time.Hour})
	if err != nil {
		b.Fatal(err)
	}
	defer svc.Close()
	for i := range live {
		if _, err := svc.RequestSession(ctx, Request{Environment: "demo-w01", User: "seed-" + strconv.Itoa(i)}); err != nil {
			b.Fatal(err)
		}
	}
	for _, full := range []bool{true, false} {
		name := "index"
		if full {
			name = "records"
		}
		b.Run(name, func(b *testing.B) {
			for b.Loop() {
				if _, err := svc.reconcilePass(ctx, full); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	if u, err := svc.Usage(ctx); err != nil || u["demo-w01"].Allocated != live {
		b.Fatalf("after the passes: %+v, %v", u["demo-w01"], err)
	}
}
