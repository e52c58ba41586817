package sessions_test

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/caddyportal/caddyportal/caddyportal/lifecycle"
	"github.com/caddyportal/caddyportal/caddyportal/sessions"
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

// TestStoppedRecordKeepsNoCredentials: a STOPPED record is kept for the
// retention period, but without the session's credentials (the config
// password in clear, the link's seed); the hashes of its activation tokens
// stay, so the owner's old link still learns the session ended.
func TestStoppedRecordKeepsNoCredentials(t *testing.T) {
	svc, st, clk := setup(t, portal(workshop("lab", 2, 0)))
	ctx := context.Background()
	r := request(t, svc, "demo-w01", "alice")
	if _, err := svc.Activate(ctx, r.Session.Name, r.Token); err != nil {
		t.Fatal(err)
	}
	if rec := rawSession(t, st, r.Session.Name); rec.ConfigPassword == "" || rec.LinkSeed == "" || len(rec.TokenHashes) == 0 {
		t.Fatalf("running record lacks its credentials: %+v", rec)
	}
	if _, err := svc.Terminate(ctx, r.Session.Name, ""); err != nil {
		t.Fatal(err)
	}
	clk.Advance(time.Hour)
	reconcile(t, svc)
	rec := rawSession(t, st, r.Session.Name)
	if rec.State != lifecycle.Stopped {
		t.Fatalf("stored state %s, want STOPPED", rec.State)
	}
	if rec.ConfigPassword != "" || rec.LinkSeed != "" || rec.ClientSecretHash != "" {
		t.Errorf("STOPPED record keeps credentials: config password %q, link seed %q, client secret hash %q",
			rec.ConfigPassword, rec.LinkSeed, rec.ClientSecretHash)
	}
	if _, err := svc.Activate(ctx, r.Session.Name, r.Token); !errors.Is(err, sessions.ErrSessionEnded) {
		t.Errorf("the owner's old link: %v, want ErrSessionEnded", err)
	}
	if _, err := svc.ConfigPassword(ctx, r.Session.Name); !errors.Is(err, sessions.ErrSessionNotFound) {
		t.Errorf("config password of a STOPPED session: %v, want ErrSessionNotFound", err)
	}
}
