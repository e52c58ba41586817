package sessions_test

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/caddyportal/caddyportal/caddyportal/lifecycle"
	"github.com/caddyportal/caddyportal/caddyportal/sessions"
	"github.com/caddyportal/caddyportal/caddyportal/store"
)

// TestExpiryWave: 6,000 sessions pass their activation deadline at the same
// instant. Making all of those stops durable in one transaction is more
// than Badger accepts; allocation must keep working regardless, and
// Reconcile must write every stop over as many passes as it needs.
func TestExpiryWave(t *testing.T) {
	const n = 6000
	svc, st, clk := setup(t, portal(workshop("lab", n+10, 0)))
	ctx := context.Background()
	errs := make(chan error, n)
	for i := range n {
		go func() {
			_, err := svc.RequestSession(ctx, sessions.Request{Environment: "demo-w01",
				User: fmt.Sprintf("learner-%d", i), IndexURL: "https://hub.example.com/"})
			errs <- err
		}()
	}
	for range n {
		if err := <-errs; err != nil {
			t.Fatalf("filling the portal: %v", err)
		}
	}

	clk.Advance(2 * time.Minute) // past every activation deadline
	res := request(t, svc, "demo-w01", "late-learner")
	if res.Session.State != lifecycle.Waiting {
		t.Fatalf("the request after the wave got a %s session", res.Session.State)
	}
	if err := svc.Reconcile(ctx); err != nil {
		t.Fatalf("Reconcile after the wave: %v", err)
	}
	if got := live(t, svc, "demo-w01"); len(got) != 1 || got[0].Name != res.Session.Name {
		t.Fatalf("%d live sessions after the wave, want only %s", len(got), res.Session.Name)
	}
	stored := storedStates(t, st)
	if stored[lifecycle.Stopped] != n {
		t.Fatalf("stored states %v, want %d STOPPED written", stored, n)
	}
}

// storedStates counts the stored session records by their written state.
func storedStates(t *testing.T, st store.Store) map[lifecycle.State]int {
	t.Helper()
	out := map[lifecycle.State]int{}
	err := st.View(context.Background(), func(tx store.Txn) error {
		return tx.Scan("s/", func(_ string, v []byte) error {
			var s sessions.Session
			if err := json.Unmarshal(v, &s); err != nil {
				return err
			}
			out[s.State]++
			return nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// liveSet reads an environment's stored live set.
func liveSet(t *testing.T, st store.Store, env string) []string {
	t.Helper()
	var set []string
	err := st.View(context.Background(), func(tx store.Txn) error {
		v, err := tx.Get("ls/" + env)
		if err != nil {
			return err
		}
		return json.Unmarshal(v, &set)
	})
	if err != nil {
		t.Fatal(err)
	}
	return set
}

// TestLegacyLiveIndexFolded: a store written with one l/<env>/<session>
// key per live session (before the live set record) is read correctly,
// and the first read-write pass folds the keys into the record.
func TestLegacyLiveIndexFolded(t *testing.T) {
	svc, st, _ := setup(t, portal(workshop("lab", 3, 0)))
	ctx := context.Background()
	a := request(t, svc, "demo-w01", "alice")
	b := request(t, svc, "demo-w01", "bob")
	// Rewrite the live set as the old layout had it.
	err := st.Update(ctx, func(tx store.Txn) error {
		if err := tx.Delete("ls/demo-w01"); err != nil {
			return err
		}
		for _, n := range []string{a.Session.Name, b.Session.Name} {
			if err := tx.Set("l/demo-w01/"+n, nil); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := names(live(t, svc, "demo-w01")); !slices.Equal(got, []string{a.Session.Name, b.Session.Name}) {
		t.Fatalf("live sessions read from the old layout: %v", got)
	}
	c := request(t, svc, "demo-w01", "carol")
	if got := liveSet(t, st, "demo-w01"); !slices.Equal(got, []string{a.Session.Name, b.Session.Name, c.Session.Name}) {
		t.Fatalf("live set after a read-write pass: %v", got)
	}
	if has(t, st, "l/demo-w01/"+a.Session.Name) {
		t.Fatal("old index keys left behind after folding")
	}
	requestErr(t, svc, sessions.Request{Environment: "demo-w01", User: "dave"}, sessions.ErrNoSession)
}
