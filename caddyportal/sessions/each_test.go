package sessions_test

import (
	"context"
	"fmt"
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
	activate := activator(t, svc, env)
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

// TestEachRecent: the admin overview's window of the last hours gets every
// live session and every one that stopped (or would have expired) within
// it, with their reasons, and not the sessions that ended before it, which
// EachSession still reads; a window from before the service first ran, or
// longer than the ended index keeps, gets every record.
func TestEachRecent(t *testing.T) {
	w := workshop("lab", 10, 0)
	w.Expires = config.Duration(2 * time.Hour)
	svc, st, clk := setup(t, portal(w))
	ctx := context.Background()
	started := clk.Now()
	env := svc.Environments()[0].Name
	activate := activator(t, svc, env)
	terminate := func(name string) {
		if _, err := svc.Terminate(ctx, name, ""); err != nil {
			t.Fatal(err)
		}
		clk.Advance(grace)
		reconcile(t, svc)
	}
	collect := func(each func(context.Context, func(*sessions.Session)) error) map[string]string {
		t.Helper()
		got := map[string]string{}
		// What the admin overview shows of a session.
		show := func(s *sessions.Session) string {
			return fmt.Sprintf("%s %s|%s %s %s|%v %v %v %v", s.State, s.Reason, s.Environment, s.Workshop, s.Owner,
				s.Created.UTC(), s.Allocated.UTC(), s.Expires.UTC(), s.Stopped.UTC())
		}
		if err := each(ctx, func(s *sessions.Session) { got[s.Name] = show(s) }); err != nil {
			t.Fatal(err)
		}
		return got
	}
	recent := func(since time.Time) map[string]string {
		return collect(func(ctx context.Context, fn func(*sessions.Session)) error { return svc.EachRecent(ctx, since, fn) })
	}

	old := activate("old")         // terminated at once
	expired := activate("expired") // expires two hours in
	terminate(old)
	clk.Advance(8 * time.Hour)
	reconcile(t, svc)
	late := activate("late")
	terminate(late)
	running := activate("running")
	clk.Advance(time.Hour)
	all := collect(svc.EachSession)
	if len(all) != 4 || !strings.HasPrefix(all[expired], "STOPPED expired|") || !strings.HasPrefix(all[late], "STOPPED terminated|") ||
		!strings.HasPrefix(all[running], "RUNNING |") || !strings.Contains(all[late], "late") {
		t.Fatalf("the records: %v", all)
	}
	// Six hours back: the running one and the one terminated two hours
	// ago, as EachSession has them; the two that ended eight hours ago are
	// not read.
	got := recent(clk.Now().Add(-6 * time.Hour))
	want := map[string]string{late: all[late], running: all[running]}
	if !maps.Equal(got, want) {
		t.Fatalf("the last six hours: %v, want %v", got, want)
	}
	// The index of a new portal covers the whole day; a longer window
	// reads every record.
	if got := recent(started.Add(-time.Minute)); !maps.Equal(got, all) {
		t.Fatalf("since the start: %v, want every record %v", got, all)
	}
	if got := recent(clk.Now().Add(-25 * time.Hour)); !maps.Equal(got, all) {
		t.Fatalf("the last 25 hours: %v, want every record %v", got, all)
	}
	// A session expiring within the window is in it, though its expiry
	// has not been written yet.
	clk.Advance(time.Hour + time.Second)
	got = recent(clk.Now().Add(-time.Minute))
	if _, ok := got[old]; ok || !strings.HasPrefix(got[running], "STOPPED expired|") {
		t.Fatalf("the last minute after the running one's expiry: %v", got)
	}

	// A store that holds sessions from a version without the ended index
	// (no "ended-since" key) is served from every record until a window
	// starts after the first start of this version.
	svc.Close()
	if err := st.Update(ctx, func(tx store.Txn) error { return tx.Delete("ended-since") }); err != nil {
		t.Fatal(err)
	}
	svc = newService(t, st, clk, portal(w))
	all = collect(svc.EachSession)
	if got := recent(clk.Now().Add(-time.Minute)); !maps.Equal(got, all) || len(all) != 4 {
		t.Fatalf("after an upgrade: %v, want every record %v", got, all)
	}
	reconcile(t, svc) // the expired one leaves the live index
	clk.Advance(time.Minute)
	if got := recent(clk.Now().Add(-time.Second)); len(got) != 0 {
		t.Fatalf("a window after the upgrade: %v, want no session", got)
	}
}

// TestEachSessionOf: a user's sessions, live and ended, are read from that
// user's owner and history indexes, and are exactly what every record says
// the user has. A record whose history key is missing (as a version before
// the index wrote none) shows that the index is what is read; a store
// upgraded from such a version reads every record until the records it
// kept from before have expired.
func TestEachSessionOf(t *testing.T) {
	w := workshop("lab", 10, 1)
	svc, st, clk := setup(t, portal(w))
	ctx := context.Background()
	env := svc.Environments()[0].Name
	activate := activator(t, svc, env)
	terminate := func(name string) {
		t.Helper()
		if _, err := svc.Terminate(ctx, name, ""); err != nil {
			t.Fatal(err)
		}
		clk.Advance(grace)
		reconcile(t, svc)
	}
	show := func(s *sessions.Session) string { return fmt.Sprintf("%s %s %s", s.State, s.Reason, s.Owner) }
	of := func(owners ...string) map[string]string {
		t.Helper()
		got := map[string]string{}
		if err := svc.EachSessionOf(ctx, owners, func(s *sessions.Session) { got[s.Name] = show(s) }); err != nil {
			t.Fatal(err)
		}
		return got
	}
	fromRecords := func(owners ...string) map[string]string {
		t.Helper()
		got := map[string]string{}
		err := svc.EachSession(ctx, func(s *sessions.Session) {
			for _, o := range owners {
				if s.Owner == o {
					got[s.Name] = show(s)
				}
			}
		})
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	dropHistory := func(user, name string) {
		t.Helper()
		if err := st.Update(ctx, func(tx store.Txn) error { return tx.Delete("h/" + user + "/" + name) }); err != nil {
			t.Fatal(err)
		}
	}

	ann1 := activate("ann")
	terminate(ann1)
	ann2 := activate("ann")
	bob1 := activate("bob")
	terminate(bob1)
	bob2 := activate("bob")
	for _, owners := range [][]string{{"ann"}, {"bob"}, {"ann", "bob"}, {"nobody"}} {
		if got, want := of(owners...), fromRecords(owners...); !maps.Equal(got, want) {
			t.Fatalf("sessions of %v: %v, want what the records say: %v", owners, got, want)
		}
	}
	if got := of("ann"); len(got) != 2 || !strings.HasPrefix(got[ann1], "STOPPED terminated") || !strings.HasPrefix(got[ann2], "RUNNING") {
		t.Fatalf("ann's sessions: %v", got)
	}
	if got := of("bob"); len(got) != 2 || !strings.HasPrefix(got[bob1], "STOPPED") || !strings.HasPrefix(got[bob2], "RUNNING") {
		t.Fatalf("bob's sessions: %v", got)
	}

	dropHistory("ann", ann1)
	if got := of("ann"); len(got) != 1 || got[ann2] == "" {
		t.Fatalf("with ann's ended session missing from the index: %v, want only the live one (the index is read)", got)
	}

	// An upgrade from a version without the history index: every record
	// is read, for as long as records from before may be kept.
	svc.Close()
	if err := st.Update(ctx, func(tx store.Txn) error { return tx.Delete("history-since") }); err != nil {
		t.Fatal(err)
	}
	upgraded := clk.Now()
	svc = newService(t, st, clk, portal(w))
	if got, want := of("ann"), fromRecords("ann"); !maps.Equal(got, want) || len(got) != 2 {
		t.Fatalf("after an upgrade: %v, want every record's %v", got, want)
	}
	clk.Advance(time.Hour)
	terminate(ann2)
	dropHistory("ann", ann2)
	clk.Advance(upgraded.Add(config.DefaultRetention - time.Minute).Sub(clk.Now()))
	if got, want := of("ann"), fromRecords("ann"); !maps.Equal(got, want) || len(got) != 2 {
		t.Fatalf("a minute before the records from before the upgrade have expired: %v, want every record's %v", got, want)
	}
	clk.Advance(time.Minute)
	if got := of("ann"); len(got) != 0 {
		t.Fatalf("once the records from before the upgrade have expired: %v, want the index's (none)", got)
	}
	if got := fromRecords("ann"); len(got) != 1 || got[ann2] == "" {
		t.Fatalf("ann's records: %v, want the one ended after the upgrade", got)
	}
}

// activator returns a function that requests a session of env for a user
// and activates it, returning its name.
func activator(t *testing.T, svc *sessions.Service, env string) func(user string) string {
	return func(user string) string {
		t.Helper()
		res := request(t, svc, env, user)
		if _, err := svc.Activate(context.Background(), res.Session.Name, res.Token); err != nil {
			t.Fatal(err)
		}
		return res.Session.Name
	}
}
