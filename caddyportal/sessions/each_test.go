package sessions_test

import (
	"context"
	"maps"
	"strings"
	"testing"
	"time"

	"github.com/caddyportal/caddyportal/caddyportal/config"
	"github.com/caddyportal/caddyportal/caddyportal/lifecycle"
	"github.com/caddyportal/caddyportal/caddyportal/sessions"
	"github.com/caddyportal/caddyportal/caddyportal/store"
)

// TestEachLiveSessionIsTheLiveOnes: the live indexes hold every session
// whose state, passed deadlines applied, is not STOPPED (waiting, running,
// stopping, reserves), so the admin list may read them alone for every
// filter but STOPPED and "all"; a session past its expiry that no write
// pass has finalized yet reads as STOPPED from both; and CountSessions
// counts what EachSession reads.
func TestEachLiveSessionIsTheLiveOnes(t *testing.T) {
	w := workshop("lab", 10, 1)
	w.Expires = config.Duration(10 * time.Minute)
	svc, _, clk := setup(t, portal(w))
	ctx := context.Background()
	env := svc.Environments()[0].Name
	activate := func(user string) string {
		res := request(t, svc, env, user)
		if _, err := svc.Activate(ctx, res.Session.Name, res.Token); err != nil {
			t.Fatal(err)
		}
		return res.Session.Name
	}
	stopped := activate("gone")
	if _, err := svc.Terminate(ctx, stopped, ""); err != nil {
		t.Fatal(err)
	}
	clk.Advance(grace + time.Second)
	if err := svc.Reconcile(ctx); err != nil {
		t.Fatal(err)
	}
	expired := activate("late")
	clk.Advance(10*time.Minute + time.Second) // past its expiry, no write pass since
	request(t, svc, env, "waiting")
	activate("running")
	stopping := activate("ending")
	if _, err := svc.Terminate(ctx, stopping, ""); err != nil {
		t.Fatal(err)
	}

	all, live := map[string]lifecycle.State{}, map[string]lifecycle.State{}
	count, reserves := 0, 0
	if err := svc.EachSession(ctx, func(s *sessions.Session) {
		count++
		if s.State != lifecycle.Stopped {
			all[s.Name] = s.State
			if s.Reserved() {
				reserves++
			}
		}
	}); err != nil {
		t.Fatal(err)
	}
	var lateState lifecycle.State
	if err := svc.EachLiveSession(ctx, func(s *sessions.Session) {
		if s.Name == expired {
			lateState = s.State
		}
		if s.State != lifecycle.Stopped {
			live[s.Name] = s.State
		}
	}); err != nil {
		t.Fatal(err)
	}
	if !maps.Equal(all, live) {
		t.Fatalf("not STOPPED, read from every record: %v\nfrom the live indexes: %v", all, live)
	}
	// The cases above all happened: a reserve, waiting, running and
	// stopping; the expired one is still indexed but reads as STOPPED.
	if _, ok := all[stopped]; ok || reserves != 1 || len(all) != 4 || all[stopping] != lifecycle.Stopping || lateState != lifecycle.Stopped {
		t.Fatalf("the sessions are not in the states the test sets up (%d reserves, the expired one %q): %v", reserves, lateState, all)
	}
	if n, err := svc.CountSessions(ctx); err != nil || n != count {
		t.Fatalf("CountSessions = %d, %v; EachSession read %d", n, err, count)
	}
}

// TestLiveUpstreams: the addresses the health checker probes, read from the
// live index alone, are those of every session not finalized (reserves,
// waiting, running, stopping), as their records hold them; an index entry
// written before the index held addresses (empty) is read from its record.
func TestLiveUpstreams(t *testing.T) {
	w := workshop("lab", 10, 2)
	svc, st, clk := setup(t, portal(w))
	ctx := context.Background()
	env := svc.Environments()[0].Name
	gone := request(t, svc, env, "gone").Session.Name
	if _, err := svc.Terminate(ctx, gone, ""); err != nil {
		t.Fatal(err)
	}
	clk.Advance(grace + time.Second)
	if err := svc.Reconcile(ctx); err != nil {
		t.Fatal(err)
	}
	old := request(t, svc, env, "old").Session.Name
	request(t, svc, env, "waiting")
	ending := request(t, svc, env, "ending").Session.Name
	if _, err := svc.Terminate(ctx, ending, ""); err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{}
	oldAddr := ""
	if err := svc.EachSession(ctx, func(s *sessions.Session) {
		if s.State != lifecycle.Stopped {
			want[s.Upstream] = true
		}
		if s.Name == old {
			oldAddr = s.Upstream
		}
	}); err != nil {
		t.Fatal(err)
	}
	// As a store written before the index held addresses has it.
	if err := st.Update(ctx, func(tx store.Txn) error { return tx.Set("l/"+env+"/"+old, nil) }); err != nil {
		t.Fatal(err)
	}
	got, err := svc.LiveUpstreams(ctx, env)
	if err != nil {
		t.Fatal(err)
	}
	gotSet := map[string]bool{}
	for _, a := range got {
		gotSet[a] = true
	}
	// A reserve, waiting, old and ending at least; none of the finalized
	// session's.
	if len(got) != len(gotSet) || !maps.Equal(gotSet, want) || len(want) < 4 || !gotSet[oldAddr] {
		t.Fatalf("LiveUpstreams = %v\nlive records hold %v (%q from its record)", got, want, oldAddr)
	}
	for a := range gotSet {
		if a == "" {
			t.Fatalf("an empty address was listed: %v", got)
		}
	}
}

// TestUsageReadsTheIndex: the catalogs' counts, read from the live index
// alone, are what counting the live records gives, at every step of a
// class: reserves, pending, running and terminated sessions, extensions,
// an activation deadline and expiries passing with no write since, a write
// pass, and entries written by earlier versions (empty, or the address
// alone), which are read from their record.
func TestUsageReadsTheIndex(t *testing.T) {
	w := workshop("lab", 10, 2)
	w.Expires, w.Deadline = config.Duration(10*time.Minute), config.Duration(30*time.Minute)
	other := workshop("other", 5, 0)
	svc, st, clk := setup(t, portal(w, other))
	ctx := context.Background()
	env, env2 := svc.Environments()[0].Name, svc.Environments()[1].Name
	step := 0
	same := func(want map[string]sessions.Usage) {
		t.Helper()
		step++
		got, err := svc.Usage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		all, err := svc.EnvironmentSessions(ctx)
		if err != nil {
			t.Fatal(err)
		}
		counted := map[string]sessions.Usage{}
		for e, list := range all {
			counted[e] = sessions.UsageOf(list)
		}
		if !maps.Equal(got, counted) {
			t.Fatalf("step %d: from the index %+v\nfrom the records %+v", step, got, counted)
		}
		if want != nil && !maps.Equal(got, want) {
			t.Fatalf("step %d: %+v, want %+v", step, got, want)
		}
	}
	same(map[string]sessions.Usage{env: {Available: 2, Live: 2}, env2: {}})
	pending := request(t, svc, env2, "pending").Session.Name
	activate := func(e, user string) string {
		res := request(t, svc, e, user)
		if _, err := svc.Activate(ctx, res.Session.Name, res.Token); err != nil {
			t.Fatal(err)
		}
		return res.Session.Name
	}
	activate(env, "ada")
	extended := activate(env, "bob")
	ending := activate(env2, "cy")
	if _, err := svc.Terminate(ctx, ending, ""); err != nil {
		t.Fatal(err)
	}
	same(nil)
	clk.Advance(time.Second)
	same(nil)
	clk.Advance(grace) // the terminated one's stop time has passed, unwritten
	same(nil)
	clk.Advance(time.Minute) // past the pending one's activation deadline
	same(map[string]sessions.Usage{env: {Allocated: 2, Available: 2, Live: 4}, env2: {}})
	same(nil)
	clk.Advance(7 * time.Minute)
	if _, _, ok, err := svc.Extend(ctx, extended); err != nil || !ok {
		t.Fatalf("extending %s: %v, %v", extended, ok, err)
	}
	// As stores written by earlier versions hold them: no entry value, and
	// the address alone.
	if err := st.Update(ctx, func(tx store.Txn) error {
		if err := tx.Set("l/"+env2+"/"+pending, nil); err != nil {
			return err
		}
		s, err := svc.Get(ctx, extended)
		if err != nil {
			return err
		}
		return tx.Set("l/"+env+"/"+extended, []byte(s.Upstream))
	}); err != nil {
		t.Fatal(err)
	}
	same(nil)
	clk.Advance(2 * time.Minute) // the first expires, the extended one not
	same(nil)
	if err := svc.Reconcile(ctx); err != nil {
		t.Fatal(err)
	}
	same(map[string]sessions.Usage{env: {Allocated: 1, Available: 2, Live: 3}, env2: {}})
	// The write pass brought the old entry up to date: more than the
	// address alone now.
	s, err := svc.Get(ctx, extended)
	if err != nil {
		t.Fatal(err)
	}
	var v []byte
	if err := st.View(ctx, func(tx store.Txn) error {
		v, err = tx.Get("l/" + env + "/" + extended)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if string(v) == s.Upstream || !strings.HasSuffix(string(v), " "+s.Upstream) {
		t.Fatalf("after a write pass the entry of %s is %q (its address %q)", extended, v, s.Upstream)
	}
}
