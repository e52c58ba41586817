package sessions_test

import (
	"context"
	"encoding/json"
	"fmt"
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
