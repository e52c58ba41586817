package sessions_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/caddyportal/caddyportal/caddyportal/config"
	"github.com/caddyportal/caddyportal/caddyportal/sessions"
	"github.com/caddyportal/caddyportal/caddyportal/store"
)

// userExists reports whether the user's record is still stored.
func userExists(t *testing.T, svc *sessions.Service, id string) bool {
	t.Helper()
	_, err := svc.GetUser(context.Background(), id)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("GetUser(%s): %v", id, err)
	}
	return err == nil
}

// TestAnonymousUsersPurged: as in Educates, an anonymous (REST-created)
// user is deleted the retention period after their last session stopped,
// or after they were created if they never got one; a user holding a
// session, and a registered user, stay.
func TestAnonymousUsersPurged(t *testing.T) {
	ctx := context.Background()
	svc, _, clk := setup(t, portal(workshop("lab", 2, 0)))
	retention := config.DefaultRetention

	// done: one session, activated, then terminated.
	done := request(t, svc, "demo-w01", "done")
	if _, err := svc.Activate(ctx, done.Session.Name, done.Token); err != nil {
		t.Fatal(err)
	}
	// busy: a running session that outlives the retention period.
	busy := request(t, svc, "demo-w01", "busy")
	if _, err := svc.Activate(ctx, busy.Session.Name, busy.Token); err != nil {
		t.Fatal(err)
	}
	// refused: capacity is full, so never a session.
	requestErr(t, svc, sessions.Request{Environment: "demo-w01", User: "refused"}, sessions.ErrNoSession)
	// ann registered on the web and never had a session.
	ann, err := svc.CreateUser(ctx, sessions.User{Email: "ann@example.com", Group: sessions.GroupRegistered})
	if err != nil {
		t.Fatal(err)
	}

	if _, err := svc.Terminate(ctx, done.Session.Name, ""); err != nil {
		t.Fatal(err)
	}
	clk.Advance(grace + time.Second)
	reconcile(t, svc) // makes the stop durable
	stopped := clk.Now()

	clk.Advance(retention - 2*time.Minute)
	for _, id := range []string{"done", "busy", "refused", ann.ID} {
		if !userExists(t, svc, id) {
			t.Errorf("%s purged before the retention period ended", id)
		}
	}
	clk.Set(stopped.Add(retention))
	if userExists(t, svc, "done") {
		t.Error("done: still stored the retention period after its last session stopped")
	}
	if userExists(t, svc, "refused") {
		t.Error("refused: still stored the retention period after it was created without a session")
	}
	for _, id := range []string{"busy", ann.ID} {
		if !userExists(t, svc, id) {
			t.Errorf("%s purged although it holds a session or is registered", id)
		}
	}
}

// TestReturningUserNotPurged: a user whose last session stopped and who
// comes back before the purge keeps their record for as long as the new
// session lives.
func TestReturningUserNotPurged(t *testing.T) {
	ctx := context.Background()
	svc, _, clk := setup(t, portal(workshop("lab", 2, 0)))
	first := request(t, svc, "demo-w01", "back")
	if _, err := svc.Terminate(ctx, first.Session.Name, ""); err != nil {
		t.Fatal(err)
	}
	clk.Advance(grace + time.Second)
	reconcile(t, svc)
	clk.Advance(time.Hour)
	again := request(t, svc, "demo-w01", "back")
	if _, err := svc.Activate(ctx, again.Session.Name, again.Token); err != nil {
		t.Fatal(err)
	}
	clk.Advance(2 * config.DefaultRetention)
	if !userExists(t, svc, "back") {
		t.Fatal("a user holding a running session was purged")
	}
	if s := get(t, svc, again.Session.Name); s.Owner != "back" || !s.Live(clk.Now()) {
		t.Fatalf("the session: owner %q live %v", s.Owner, s.Live(clk.Now()))
	}
}
