package sessions_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/caddyportal/caddyportal/caddyportal/lifecycle"
	"github.com/caddyportal/caddyportal/caddyportal/sessions"
	"github.com/caddyportal/caddyportal/caddyportal/store"
)

func TestCreateUserAndFindByEmail(t *testing.T) {
	svc, _, _ := setup(t, portal(workshop("lab", 2, 0)))
	ctx := context.Background()
	u, err := svc.CreateUser(ctx, sessions.User{Email: "Ann@Example.com", FirstName: "Ann", Group: sessions.GroupRegistered, PasswordHash: "h"})
	if err != nil {
		t.Fatal(err)
	}
	if u.ID == "" || u.Created.IsZero() {
		t.Fatalf("created user lacks id or time: %+v", u)
	}
	got, err := svc.FindUserByEmail(ctx, "ann@EXAMPLE.com")
	if err != nil {
		t.Fatal(err)
	}
	if got.ID != u.ID || got.PasswordHash != "h" || got.Group != sessions.GroupRegistered {
		t.Fatalf("found %+v, want %+v", got, u)
	}
	if byID, err := svc.GetUser(ctx, u.ID); err != nil || byID.Email != "Ann@Example.com" {
		t.Fatalf("GetUser = %+v, %v", byID, err)
	}
	if _, err := svc.FindUserByEmail(ctx, "bob@example.com"); !errors.Is(err, sessions.ErrUserNotFound) || !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("unknown email: %v, want ErrUserNotFound caused by the store's ErrNotFound", err)
	}
	if _, err := svc.GetUser(ctx, "nobody"); !errors.Is(err, sessions.ErrUserNotFound) {
		t.Fatalf("unknown id: %v, want ErrUserNotFound", err)
	}
	if _, err := svc.CreateUser(ctx, sessions.User{Email: "ANN@example.com", Group: sessions.GroupRegistered}); !errors.Is(err, sessions.ErrUserExists) {
		t.Fatalf("duplicate email: %v, want ErrUserExists", err)
	}
	if _, err := svc.CreateUser(ctx, sessions.User{ID: u.ID, Email: "other@example.com"}); !errors.Is(err, sessions.ErrUserExists) {
		t.Fatalf("duplicate id: %v, want ErrUserExists", err)
	}
	for _, reserved := range []string{"admin", "robot@educates"} {
		if _, err := svc.CreateUser(ctx, sessions.User{ID: reserved}); !errors.Is(err, sessions.ErrUserExists) {
			t.Fatalf("reserved id %q: %v, want ErrUserExists", reserved, err)
		}
	}
}

// TestCreateUserRace: of many concurrent sign-ups with one email exactly one
// wins, because the email index is written in the same transaction.
func TestCreateUserRace(t *testing.T) {
	svc, _, _ := setup(t, portal(workshop("lab", 2, 0)))
	const n = 16
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = svc.CreateUser(context.Background(), sessions.User{Email: "race@example.com", Group: sessions.GroupRegistered})
		}()
	}
	wg.Wait()
	won := 0
	for _, err := range errs {
		switch {
		case err == nil:
			won++
		case !errors.Is(err, sessions.ErrUserExists):
			t.Fatalf("unexpected error: %v", err)
		}
	}
	if won != 1 {
		t.Fatalf("%d sign-ups won, want 1", won)
	}
	users, err := svc.Users(context.Background())
	if err != nil || len(users) != 1 {
		t.Fatalf("Users = %d, %v; want 1", len(users), err)
	}
}

func TestUsersAndEachSession(t *testing.T) {
	svc, _, clk := setup(t, portal(workshop("lab", 3, 0)))
	ctx := context.Background()
	a := request(t, svc, "demo-w01", "alice")
	clk.Advance(time.Second)
	b := request(t, svc, "demo-w01", "bob")
	if _, err := svc.Terminate(ctx, a.Session.Name, ""); err != nil {
		t.Fatal(err)
	}
	clk.Advance(grace + time.Second)

	users, err := svc.Users(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(users) != 2 || users[0].ID != "alice" || users[1].ID != "bob" {
		t.Fatalf("Users = %v", users)
	}
	all := map[string]*sessions.Session{}
	if err := svc.EachSession(ctx, func(s *sessions.Session) { all[s.Name] = s }); err != nil {
		t.Fatal(err)
	}
	alices, bobs := all[a.Session.Name], all[b.Session.Name]
	if len(all) != 2 || alices == nil || bobs == nil {
		t.Fatalf("EachSession read %v", all)
	}
	// The terminated one is STOPPED (its stopping grace has passed) and
	// still read; the other is live.
	if alices.State != lifecycle.Stopped || alices.Reason != "terminated" {
		t.Fatalf("terminated session: %s %q", alices.State, alices.Reason)
	}
	if !bobs.Live(clk.Now()) {
		t.Fatalf("bob's session is %s", bobs.State)
	}
}
