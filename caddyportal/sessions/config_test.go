package sessions_test

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/caddyportal/caddyportal/caddyportal/store"
)

// TestConfigPassword: every session, reserves included, has its own
// config password from its creation; a record from before config
// passwords gets one on its first config request, the same afterwards.
func TestConfigPassword(t *testing.T) {
	svc, st, _ := setup(t, portal(workshop("lab", 5, 1)))
	ctx := context.Background()
	a := request(t, svc, "demo-w01", "alice")
	b := request(t, svc, "demo-w01", "bob")
	if len(a.Session.ConfigPassword) < 32 || a.Session.ConfigPassword == b.Session.ConfigPassword {
		t.Fatalf("config passwords %q and %q", a.Session.ConfigPassword, b.Session.ConfigPassword)
	}
	if !a.Session.ConfigPasswordMatches(a.Session.ConfigPassword) || a.Session.ConfigPasswordMatches(b.Session.ConfigPassword) ||
		a.Session.ConfigPasswordMatches("") {
		t.Error("ConfigPasswordMatches")
	}
	err := st.Update(ctx, func(tx store.Txn) error {
		v, err := tx.Get("s/" + a.Session.Name)
		if err != nil {
			return err
		}
		var rec map[string]any
		if err := json.Unmarshal(v, &rec); err != nil {
			return err
		}
		delete(rec, "config_password")
		out, _ := json.Marshal(rec)
		return tx.Set("s/"+a.Session.Name, out)
	})
	if err != nil {
		t.Fatal(err)
	}
	first, err := svc.ConfigPassword(ctx, a.Session.Name)
	if err != nil || len(first.ConfigPassword) < 32 {
		t.Fatalf("legacy record: %v %v", first, err)
	}
	again, err := svc.ConfigPassword(ctx, a.Session.Name)
	if err != nil || again.ConfigPassword != first.ConfigPassword {
		t.Fatalf("second config request: %q, first %q (%v)", again.ConfigPassword, first.ConfigPassword, err)
	}
	if s, err := svc.Get(ctx, a.Session.Name); err != nil || s.ConfigPassword != first.ConfigPassword {
		t.Fatalf("stored: %v %v", s, err)
	}
}
