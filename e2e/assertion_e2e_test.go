package e2e

import (
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/caddyportal/caddyportal/caddyportal/assertion"
	"github.com/caddyportal/caddyportal/internal/e2etest"
	"github.com/caddyportal/caddyportal/internal/e2etest/echo"
)

// TestGateAssertion: with `assertion`, every request the gate forwards
// carries a JWT the dashboard verifies with the portal's published keys,
// naming the session and its learner; a client's own X-Portal-Assertion
// never reaches the dashboard; the keys are public.
func TestGateAssertion(t *testing.T) {
	up := echo.Start(t, "asserted")
	p := startPortal(t, t.TempDir(), gateBody("assertion\n\t\turl http://127.0.0.1", up.Addr))
	tok := p.Token(e2etest.RobotUser, e2etest.RobotPass)
	name, ck, loc := p.Activate(tok, "demo-w01", "alice")

	forged := "eyJhbGciOiJub25lIn0.eyJzdWIiOiJtYWxsb3J5In0."
	r := p.Do(http.MethodGet, loc+"who", "", nil, map[string]string{"Cookie": ck.Name + "=" + ck.Value, assertion.Header: forged})
	var seen echo.Seen
	if err := json.Unmarshal(r.Body, &seen); err != nil {
		t.Fatalf("dashboard answer: %d %s", r.Status, r.Body)
	}
	got := seen.Header.Values(assertion.Header)
	if len(got) != 1 || got[0] == forged {
		t.Fatalf("the dashboard saw assertions %q", got)
	}
	keys := p.Do(http.MethodGet, "/.well-known/caddyportal/jwks.json", "", nil, nil)
	if keys.Status != http.StatusOK || keys.Header.Get("Content-Type") != "application/jwk-set+json" {
		t.Fatalf("JWKS: %d %s", keys.Status, keys.Body)
	}
	c, err := assertion.Verify(got[0], keys.Body, name, time.Now())
	if err != nil || c.Subject != "alice" || c.Session != name || c.Workshop != "lab" || c.Issuer != "http://127.0.0.1" {
		t.Fatalf("the assertion: %+v, %v", c, err)
	}
	if _, err := assertion.Verify(got[0], keys.Body, "demo-w01-s999", time.Now()); err == nil {
		t.Error("the assertion verified for another session")
	}
}

// TestGateNoAssertionByDefault: without the option no assertion is added
// and no keys are published.
func TestGateNoAssertionByDefault(t *testing.T) {
	up := echo.Start(t, "plain")
	p := startPortal(t, t.TempDir(), gateBody("", up.Addr))
	tok := p.Token(e2etest.RobotUser, e2etest.RobotPass)
	_, ck, loc := p.Activate(tok, "demo-w01", "alice")
	r := p.Do(http.MethodGet, loc+"who", "", nil, map[string]string{"Cookie": ck.Name + "=" + ck.Value})
	var seen echo.Seen
	if err := json.Unmarshal(r.Body, &seen); err != nil || seen.Header.Get(assertion.Header) != "" {
		t.Fatalf("dashboard saw %q (%v)", seen.Header.Get(assertion.Header), err)
	}
	if r := p.Do(http.MethodGet, "/.well-known/caddyportal/jwks.json", "", nil, nil); r.Status != http.StatusNotFound {
		t.Errorf("JWKS without assertions: %d", r.Status)
	}
}
