package assertion_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/caddyportal/caddyportal/caddyportal/assertion"
	"github.com/caddyportal/caddyportal/caddyportal/store/badgerstore"
	"github.com/caddyportal/caddyportal/caddyportal/store/storetest"
)

func setup(t *testing.T) (*storetest.Clock, func(rotate time.Duration) *assertion.Signer) {
	t.Helper()
	clk := storetest.NewClock(time.Now().UTC().Truncate(time.Second))
	st, err := badgerstore.Open(badgerstore.Options{InMemory: true, Now: clk.Now, SweepInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	return clk, func(rotate time.Duration) *assertion.Signer {
		return assertion.New(st, "assertion-keys", rotate, clk.Now)
	}
}

var claims = assertion.Claims{Issuer: "https://portal.example", Audience: "demo-w01-s001", Subject: "alice",
	Session: "demo-w01-s001", Workshop: "lab", Environment: "demo-w01"}

func jwks(t *testing.T, s *assertion.Signer) []byte {
	t.Helper()
	b, err := s.JWKS(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestAssertionVerifies(t *testing.T) {
	clk, newSigner := setup(t)
	s := newSigner(0)
	tok, err := s.Assert(context.Background(), claims)
	if err != nil {
		t.Fatal(err)
	}
	got, err := assertion.Verify(tok, jwks(t, s), "demo-w01-s001", clk.Now())
	if err != nil || got.Subject != "alice" || got.Workshop != "lab" || got.Issuer != "https://portal.example" ||
		got.Expires-got.IssuedAt != int64(assertion.TTL/time.Second) {
		t.Fatalf("Verify = %+v, %v", got, err)
	}
	// Another session's dashboard refuses it.
	if _, err := assertion.Verify(tok, jwks(t, s), "demo-w01-s002", clk.Now()); err == nil {
		t.Error("an assertion for one session verified for another")
	}
	// A changed claim breaks the signature.
	parts := strings.Split(tok, ".")
	forged, _ := json.Marshal(map[string]any{"aud": "demo-w01-s001", "sub": "mallory", "exp": clk.Now().Add(time.Hour).Unix()})
	if _, err := assertion.Verify(parts[0]+"."+base64.RawURLEncoding.EncodeToString(forged)+"."+parts[2], jwks(t, s), "demo-w01-s001", clk.Now()); err == nil {
		t.Error("a forged assertion verified")
	}
	// A key of another portal does not verify it.
	_, otherSigner := setup(t)
	if _, err := assertion.Verify(tok, jwks(t, otherSigner(0)), "demo-w01-s001", clk.Now()); err == nil {
		t.Error("another portal's keys verified the assertion")
	}
	clk.Advance(assertion.TTL)
	if _, err := assertion.Verify(tok, jwks(t, s), "demo-w01-s001", clk.Now()); err == nil {
		t.Error("an expired assertion verified")
	}
}

func TestAssertionReusedThenRenewed(t *testing.T) {
	clk, newSigner := setup(t)
	s := newSigner(0)
	a, _ := s.Assert(context.Background(), claims)
	b, _ := s.Assert(context.Background(), claims)
	if a != b {
		t.Error("a second request within Reuse got a new assertion")
	}
	clk.Advance(assertion.Reuse)
	c, _ := s.Assert(context.Background(), claims)
	if c == a {
		t.Error("the assertion was reused past Reuse")
	}
	if _, err := assertion.Verify(c, jwks(t, s), claims.Audience, clk.Now().Add(assertion.TTL-assertion.Reuse)); err != nil {
		t.Errorf("a renewed assertion: %v", err)
	}
}

// TestKeysRotate: a new key signs after rotate; the old one stays published
// while its assertions may be valid, then leaves; every replica (signer on
// the same store) signs with the same key.
func TestKeysRotate(t *testing.T) {
	clk, newSigner := setup(t)
	const rotate = time.Hour
	s, replica := newSigner(rotate), newSigner(rotate)
	old, _ := s.Assert(context.Background(), claims)
	kid := func(tok string) string {
		var h struct{ Kid string }
		b, _ := base64.RawURLEncoding.DecodeString(strings.Split(tok, ".")[0])
		_ = json.Unmarshal(b, &h)
		return h.Kid
	}
	other := claims
	other.Subject = "bob"
	if r, _ := replica.Assert(context.Background(), other); kid(r) != kid(old) {
		t.Error("two replicas sign with different keys")
	}
	clk.Advance(rotate)
	renewed, _ := s.Assert(context.Background(), claims)
	if kid(renewed) == kid(old) {
		t.Fatal("no new key after rotate")
	}
	set := jwks(t, s)
	if _, err := assertion.Verify(old, set, claims.Audience, clk.Now().Add(-rotate+time.Minute)); err != nil {
		t.Errorf("the old key left the set too soon: %v", err)
	}
	if n := strings.Count(string(set), `"kid"`); n != 2 {
		t.Errorf("%d keys published right after a rotation, want 2", n)
	}
	clk.Advance(3*assertion.TTL + 2*time.Minute)
	if n := strings.Count(string(jwks(t, replica)), `"kid"`); n != 1 {
		t.Errorf("%d keys published long after a rotation, want 1", n)
	}
}

// TestVerifyRefusesMalformedJWKSKeys: a JWKS key whose coordinates are
// short, or not a point on P-256, is refused by name instead of being
// used to check the signature.
func TestVerifyRefusesMalformedJWKSKeys(t *testing.T) {
	clk, newSigner := setup(t)
	s := newSigner(0)
	tok, err := s.Assert(context.Background(), claims)
	if err != nil {
		t.Fatal(err)
	}
	var set struct {
		Keys []map[string]string `json:"keys"`
	}
	if err := json.Unmarshal(jwks(t, s), &set); err != nil || len(set.Keys) != 1 {
		t.Fatalf("JWKS: %v, %d keys", err, len(set.Keys))
	}
	kid := set.Keys[0]["kid"]
	y, err := base64.RawURLEncoding.DecodeString(set.Keys[0]["y"])
	if err != nil || len(y) != 32 {
		t.Fatalf("published y: %d bytes, %v", len(y), err)
	}
	offCurve := append([]byte(nil), y...)
	offCurve[31] ^= 1
	for name, tc := range map[string]struct{ y, want string }{
		"short y":       {base64.RawURLEncoding.EncodeToString(y[1:]), "not 32-byte"},
		"off the curve": {base64.RawURLEncoding.EncodeToString(offCurve), "not on curve"},
	} {
		set.Keys[0]["y"] = tc.y
		bad, _ := json.Marshal(set)
		_, err := assertion.Verify(tok, bad, claims.Audience, clk.Now())
		if err == nil || !strings.Contains(err.Error(), kid) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: Verify = %v, want an error naming key %s and %q", name, err, kid, tc.want)
		}
	}
}
