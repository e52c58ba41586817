package oauth_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddyportal/caddyportal/caddyportal/oauth"
	"github.com/caddyportal/caddyportal/caddyportal/store"
	"github.com/caddyportal/caddyportal/caddyportal/store/badgerstore"
	"github.com/caddyportal/caddyportal/caddyportal/store/storetest"
)

// fakeClock is the conformance suite's settable clock, shared by store,
// service and API.
type fakeClock = storetest.Clock

const (
	accessTTL  = 10 * time.Hour
	refreshTTL = 30 * 24 * time.Hour
)

var robot = oauth.Principal{User: "robot@educates", Group: "robot"}

func setup(t *testing.T) (*oauth.Issuer, store.Store, *fakeClock, time.Time) {
	t.Helper()
	// Near the wall clock: Badger's own TTL follows it.
	t0 := time.Now().UTC().Truncate(time.Second)
	clk := storetest.NewClock(t0)
	st, err := badgerstore.Open(badgerstore.Options{InMemory: true, Now: clk.Now, SweepInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	return oauth.NewIssuer(st, accessTTL, refreshTTL, clk.Now), st, clk, t0
}

func check(t *testing.T, is *oauth.Issuer, tok string, want bool) {
	t.Helper()
	p, err := is.Check(context.Background(), tok)
	switch {
	case want && (err != nil || p != robot):
		t.Errorf("Check(%.8s…) = %+v, %v; want valid", tok, p, err)
	case !want && !errors.Is(err, oauth.ErrInvalid):
		t.Errorf("Check(%.8s…) = %+v, %v; want ErrInvalid", tok, p, err)
	}
}

func TestIssueAndCheck(t *testing.T) {
	is, _, _, _ := setup(t)
	ctx := context.Background()
	g, err := is.Issue(ctx, robot)
	if err != nil {
		t.Fatal(err)
	}
	if len(g.AccessToken) < 22 || len(g.RefreshToken) < 22 || g.AccessToken == g.RefreshToken || g.ExpiresIn != 36000 {
		t.Fatalf("grant = %+v", g)
	}
	check(t, is, g.AccessToken, true)
	// A refresh token is not an access token.
	check(t, is, g.RefreshToken, false)
	// Two grants are independent.
	g2, _ := is.Issue(ctx, oauth.Principal{User: "alice", Group: "anonymous"})
	if p, err := is.Check(ctx, g2.AccessToken); err != nil || p.User != "alice" {
		t.Errorf("second grant: %+v %v", p, err)
	}
	check(t, is, g.AccessToken, true)
}

func TestUnknownTokens(t *testing.T) {
	is, _, _, _ := setup(t)
	for _, tok := range []string{"", "x", "nonexistent-token-value-000000000", strings.Repeat("a", 10000), "t/a/", "\x00"} {
		check(t, is, tok, false)
	}
	if _, _, err := is.Refresh(context.Background(), "nope"); !errors.Is(err, oauth.ErrInvalid) {
		t.Errorf("Refresh unknown: %v", err)
	}
	if _, _, err := is.Refresh(context.Background(), ""); !errors.Is(err, oauth.ErrInvalid) {
		t.Errorf("Refresh empty: %v", err)
	}
	if err := is.Revoke(context.Background(), "nope"); err != nil {
		t.Errorf("Revoke unknown: %v", err)
	}
	if err := is.Revoke(context.Background(), ""); err != nil {
		t.Errorf("Revoke empty: %v", err)
	}
}

func TestExpiryExact(t *testing.T) {
	is, _, clk, t0 := setup(t)
	ctx := context.Background()
	g, err := is.Issue(ctx, robot)
	if err != nil {
		t.Fatal(err)
	}
	clk.Set(t0.Add(accessTTL - time.Nanosecond))
	check(t, is, g.AccessToken, true)
	clk.Set(t0.Add(accessTTL))
	check(t, is, g.AccessToken, false)

	// The refresh token outlives the access token, to its own instant.
	clk.Set(t0.Add(refreshTTL - time.Nanosecond))
	g2, p, err := is.Refresh(ctx, g.RefreshToken)
	if err != nil || p != robot {
		t.Fatalf("refresh just before expiry: %v", err)
	}
	check(t, is, g2.AccessToken, true)
	clk.Set(t0.Add(refreshTTL - time.Nanosecond).Add(refreshTTL))
	if _, _, err := is.Refresh(ctx, g2.RefreshToken); !errors.Is(err, oauth.ErrInvalid) {
		t.Errorf("refresh at expiry: %v", err)
	}
}

func TestRefreshRotates(t *testing.T) {
	is, _, clk, t0 := setup(t)
	ctx := context.Background()
	g, _ := is.Issue(ctx, robot)
	clk.Set(t0.Add(time.Hour))
	g2, p, err := is.Refresh(ctx, g.RefreshToken)
	if err != nil || p != robot {
		t.Fatalf("Refresh: %+v %v", p, err)
	}
	if g2.AccessToken == g.AccessToken || g2.RefreshToken == g.RefreshToken || g2.ExpiresIn != 36000 {
		t.Fatalf("refresh did not rotate: %+v", g2)
	}
	// The old refresh token and its access token stop working.
	check(t, is, g.AccessToken, false)
	if _, _, err := is.Refresh(ctx, g.RefreshToken); !errors.Is(err, oauth.ErrInvalid) {
		t.Errorf("old refresh token reused: %v", err)
	}
	check(t, is, g2.AccessToken, true)
	// The new access token lives a full lifetime from the refresh.
	clk.Set(t0.Add(time.Hour + accessTTL - time.Nanosecond))
	check(t, is, g2.AccessToken, true)
	clk.Set(t0.Add(time.Hour + accessTTL))
	check(t, is, g2.AccessToken, false)
}

func TestRevoke(t *testing.T) {
	is, _, _, _ := setup(t)
	ctx := context.Background()

	// Revoking an access token leaves its refresh token usable.
	g, _ := is.Issue(ctx, robot)
	if err := is.Revoke(ctx, g.AccessToken); err != nil {
		t.Fatal(err)
	}
	check(t, is, g.AccessToken, false)
	g2, _, err := is.Refresh(ctx, g.RefreshToken)
	if err != nil {
		t.Fatalf("refresh after access revoke: %v", err)
	}

	// Revoking a refresh token also retires the access token issued with it.
	if err := is.Revoke(ctx, g2.RefreshToken); err != nil {
		t.Fatal(err)
	}
	check(t, is, g2.AccessToken, false)
	if _, _, err := is.Refresh(ctx, g2.RefreshToken); !errors.Is(err, oauth.ErrInvalid) {
		t.Errorf("refresh after revoke: %v", err)
	}
	// Revoking twice is fine.
	if err := is.Revoke(ctx, g2.RefreshToken); err != nil {
		t.Errorf("second revoke: %v", err)
	}
	// Other grants are untouched.
	g3, _ := is.Issue(ctx, robot)
	if err := is.Revoke(ctx, g.AccessToken); err != nil {
		t.Fatal(err)
	}
	check(t, is, g3.AccessToken, true)
}

func TestTokensStoredOnlyAsHashes(t *testing.T) {
	is, st, _, _ := setup(t)
	ctx := context.Background()
	var raw []string
	for i := 0; i < 3; i++ {
		g, err := is.Issue(ctx, robot)
		if err != nil {
			t.Fatal(err)
		}
		raw = append(raw, g.AccessToken, g.RefreshToken)
	}
	g, _, err := is.Refresh(ctx, raw[1])
	if err != nil {
		t.Fatal(err)
	}
	raw = append(raw, g.AccessToken, g.RefreshToken)
	keys := 0
	err = st.View(ctx, func(tx store.Txn) error {
		return tx.Scan("", func(k string, v []byte) error {
			keys++
			for _, tok := range raw {
				if strings.Contains(k, tok) || strings.Contains(string(v), tok) {
					t.Errorf("raw token found in key %q or its value", k)
				}
			}
			return nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	if keys != 6 { // 3 live grants (one rotated), 2 keys each
		t.Errorf("%d keys in the store, want 6", keys)
	}
}

func TestConcurrentRefreshOnlyOneWins(t *testing.T) {
	is, _, _, _ := setup(t)
	ctx := context.Background()
	g, _ := is.Issue(ctx, robot)
	var wg sync.WaitGroup
	var mu sync.Mutex
	wins := 0
	for i := 0; i < 20; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, _, err := is.Refresh(ctx, g.RefreshToken)
			if err == nil {
				mu.Lock()
				wins++
				mu.Unlock()
			} else if !errors.Is(err, oauth.ErrInvalid) {
				t.Errorf("refresh: %v", err)
			}
		}()
	}
	wg.Wait()
	if wins != 1 {
		t.Errorf("%d concurrent refreshes of one token succeeded, want 1", wins)
	}
}

// passwords is a changeable credential table for BindTo.
type passwords struct {
	mu sync.Mutex
	m  map[string]string
}

func (pw *passwords) set(user, pass string) {
	pw.mu.Lock()
	defer pw.mu.Unlock()
	pw.m[user] = pass
}

func (pw *passwords) fingerprint(p oauth.Principal) string {
	pw.mu.Lock()
	defer pw.mu.Unlock()
	if pass, ok := pw.m[p.User]; ok {
		return "fp(" + pass + ")"
	}
	return ""
}

// TestBoundTokensEndWithTheirCredential: with BindTo, a changed password
// ends the access and refresh tokens issued under the old one; the
// unchanged account's tokens keep working (issue 12, item 7).
func TestBoundTokensEndWithTheirCredential(t *testing.T) {
	_, st, clk, _ := setup(t)
	pw := &passwords{m: map[string]string{robot.User: "old", "admin": "admin-pass"}}
	is := oauth.NewIssuer(st, accessTTL, refreshTTL, clk.Now, oauth.BindTo(pw.fingerprint))
	ctx := context.Background()
	g, err := is.Issue(ctx, robot)
	if err != nil {
		t.Fatal(err)
	}
	other, err := is.Issue(ctx, oauth.Principal{User: "admin", Group: "staff"})
	if err != nil {
		t.Fatal(err)
	}
	rotated, _, err := is.Refresh(ctx, g.RefreshToken)
	if err != nil {
		t.Fatalf("refresh under an unchanged password: %v", err)
	}
	check(t, is, rotated.AccessToken, true)

	pw.set(robot.User, "new")
	check(t, is, rotated.AccessToken, false)
	if _, _, err := is.Refresh(ctx, rotated.RefreshToken); !errors.Is(err, oauth.ErrInvalid) {
		t.Fatalf("refresh after the password changed: %v, want ErrInvalid", err)
	}
	if p, err := is.Check(ctx, other.AccessToken); err != nil || p.User != "admin" {
		t.Fatalf("another account's token after the robot's password changed: %+v %v", p, err)
	}
	// Changing it back does not matter for tokens issued since; a new
	// grant works under the new password.
	fresh, err := is.Issue(ctx, robot)
	if err != nil {
		t.Fatal(err)
	}
	check(t, is, fresh.AccessToken, true)
	// An account that no longer exists gets nothing.
	pw.mu.Lock()
	delete(pw.m, robot.User)
	pw.mu.Unlock()
	check(t, is, fresh.AccessToken, false)
	if _, err := is.Issue(ctx, robot); !errors.Is(err, oauth.ErrInvalid) {
		t.Fatalf("Issue for an account without a credential: %v", err)
	}
}

// TestUnboundTokensRefusedOnceBinding: tokens stored before binding carry
// no fingerprint, so they are refused rather than refreshed into tokens
// bound to the current password.
func TestUnboundTokensRefusedOnceBinding(t *testing.T) {
	plain, st, clk, _ := setup(t)
	ctx := context.Background()
	g, err := plain.Issue(ctx, robot)
	if err != nil {
		t.Fatal(err)
	}
	pw := &passwords{m: map[string]string{robot.User: "pass"}}
	bound := oauth.NewIssuer(st, accessTTL, refreshTTL, clk.Now, oauth.BindTo(pw.fingerprint))
	check(t, bound, g.AccessToken, false)
	if _, _, err := bound.Refresh(ctx, g.RefreshToken); !errors.Is(err, oauth.ErrInvalid) {
		t.Fatalf("refreshing an unbound token: %v", err)
	}
}

// countingStore counts the read-write transactions run on a real store.
type countingStore struct {
	store.Store
	mu      sync.Mutex
	updates int
}

func (c *countingStore) Update(ctx context.Context, fn func(tx store.Txn) error) error {
	c.mu.Lock()
	c.updates++
	c.mu.Unlock()
	return c.Store.Update(ctx, fn)
}

// TestRevokeUnknownWritesNothing: the revoke endpoint is unauthenticated,
// so revoking a token that does not exist must not cost a durable write;
// revoking a real one still works.
func TestRevokeUnknownWritesNothing(t *testing.T) {
	_, st, clk, _ := setup(t)
	cs := &countingStore{Store: st}
	is := oauth.NewIssuer(cs, accessTTL, refreshTTL, clk.Now)
	ctx := context.Background()
	g, err := is.Issue(ctx, robot)
	if err != nil {
		t.Fatal(err)
	}
	before := cs.updates
	for _, tok := range []string{"nonexistent-token-value-000000000", "x", strings.Repeat("z", 500)} {
		if err := is.Revoke(ctx, tok); err != nil {
			t.Fatalf("Revoke(%.10q): %v", tok, err)
		}
	}
	if n := cs.updates - before; n != 0 {
		t.Fatalf("revoking unknown tokens ran %d write transactions, want 0", n)
	}
	if err := is.Revoke(ctx, g.RefreshToken); err != nil {
		t.Fatal(err)
	}
	if cs.updates == before {
		t.Fatal("revoking a real token wrote nothing")
	}
	check(t, is, g.AccessToken, false)
}
