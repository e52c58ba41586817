package oauth_test

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"testing"
	"time"

	"github.com/caddyportal/caddyportal/caddyportal/oauth"
	"github.com/caddyportal/caddyportal/caddyportal/store/etcdstore"
	"github.com/caddyportal/caddyportal/caddyportal/store/etcdstore/etcdtest"
	"github.com/caddyportal/caddyportal/caddyportal/store/storetest"
)

func TestCodesAreSingleUseAndShortLived(t *testing.T) {
	is, _, clk, _ := setup(t)
	testCodes(t, is, clk)
}

// TestCodesOnEtcd: codes behave the same on the other store.
func TestCodesOnEtcd(t *testing.T) {
	srv := etcdtest.Start(t)
	clk := storetest.NewClock(time.Now().UTC().Truncate(time.Second))
	st, err := etcdstore.Open(context.Background(), etcdstore.Options{Endpoints: srv.Endpoints(), Prefix: "/oauthtest/",
		Now: clk.Now, SweepInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	testCodes(t, oauth.NewIssuer(st, accessTTL, refreshTTL, clk.Now), clk)
}

func testCodes(t *testing.T, is *oauth.Issuer, clk *storetest.Clock) {
	t.Helper()
	ctx := context.Background()
	g := oauth.CodeGrant{Session: "s1", User: "alice", RedirectURI: "http://s1.lab.test/oauth_callback"}
	code, err := is.NewCode(ctx, g)
	if err != nil {
		t.Fatal(err)
	}
	accept := func(oauth.CodeGrant) bool { return true }
	got, err := is.Redeem(ctx, code, accept)
	if err != nil || got.Session != "s1" || got.User != "alice" || got.RedirectURI != g.RedirectURI {
		t.Fatalf("Redeem = %+v, %v", got, err)
	}
	if _, err := is.Redeem(ctx, code, accept); !errors.Is(err, oauth.ErrInvalid) {
		t.Errorf("a code redeemed twice: %v", err)
	}

	late, _ := is.NewCode(ctx, g)
	clk.Advance(oauth.CodeTTL)
	if _, err := is.Redeem(ctx, late, accept); !errors.Is(err, oauth.ErrInvalid) {
		t.Errorf("a code redeemed at its expiry: %v", err)
	}

	// A code its check refuses (another client, another redirect URI) is
	// spent: the right client cannot use it after the wrong one tried.
	stolen, _ := is.NewCode(ctx, g)
	if _, err := is.Redeem(ctx, stolen, func(c oauth.CodeGrant) bool { return c.Session == "s2" }); !errors.Is(err, oauth.ErrInvalid) {
		t.Errorf("a code shown to the wrong client: %v", err)
	}
	if _, err := is.Redeem(ctx, stolen, accept); !errors.Is(err, oauth.ErrInvalid) {
		t.Errorf("a code after a refused redemption: %v", err)
	}
	if _, err := is.Redeem(ctx, "made-up", accept); !errors.Is(err, oauth.ErrInvalid) {
		t.Errorf("an unknown code: %v", err)
	}
}

func TestVerifyPKCE(t *testing.T) {
	verifier := "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
	sum := sha256.Sum256([]byte(verifier))
	s256 := base64.RawURLEncoding.EncodeToString(sum[:])
	// RFC 7636 appendix B's example pair.
	if s256 != "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM" {
		t.Fatalf("S256 of the RFC's verifier is %s", s256)
	}
	for _, tc := range []struct {
		g        oauth.CodeGrant
		verifier string
		want     bool
	}{
		{oauth.CodeGrant{}, "", true},
		{oauth.CodeGrant{Challenge: s256, Method: "S256"}, verifier, true},
		{oauth.CodeGrant{Challenge: s256, Method: "S256"}, verifier + "x", false},
		{oauth.CodeGrant{Challenge: s256, Method: "S256"}, "", false},
		{oauth.CodeGrant{Challenge: "abc", Method: "plain"}, "abc", true},
		{oauth.CodeGrant{Challenge: "abc", Method: "plain"}, "abd", false},
		{oauth.CodeGrant{Challenge: "abc", Method: "S512"}, "abc", false},
	} {
		if got := oauth.VerifyPKCE(tc.g, tc.verifier); got != tc.want {
			t.Errorf("VerifyPKCE(%+v, %q) = %v, want %v", tc.g, tc.verifier, got, tc.want)
		}
	}
}
