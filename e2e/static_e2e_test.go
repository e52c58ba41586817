package e2e

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/caddyportal/caddyportal/internal/e2etest"
	"github.com/caddyportal/caddyportal/internal/e2etest/echo"
)

// TestStaticSpawnerIsThePool: `spawner static { to … }` hands out its
// addresses as `upstream` does: one live session per address (capacity
// defaults to the pool's size, and a learner beyond it is refused), each
// learner proxied to the address of their own session, and an address
// freed by an ended session goes to the next learner.
func TestStaticSpawnerIsThePool(t *testing.T) {
	upA, upB := echo.Start(t, "alpha"), echo.Start(t, "beta")
	body := strings.Replace(gateBody("", "UNUSED"), "upstream UNUSED",
		"spawner static {\n\t\t\t\tto "+upA.Addr+"\n\t\t\t\tto "+upB.Addr+"\n\t\t\t}", 1)
	p := startPortal(t, t.TempDir(), body)
	tok := p.Token(e2etest.RobotUser, e2etest.RobotPass)
	who := func(name string, ck *http.Cookie) string {
		t.Helper()
		r := p.Do("GET", sessionPath(name)+"who", "", nil, cookieHdr(ck))
		var sn echo.Seen
		if r.Status != http.StatusOK || json.Unmarshal(r.Body, &sn) != nil {
			t.Fatalf("%s's dashboard: %d %s", name, r.Status, r.Body)
		}
		return sn.Upstream
	}
	a, ckA, _ := p.Activate(tok, "demo-w01", "alice")
	b, ckB, _ := p.Activate(tok, "demo-w01", "bob")
	gotA, gotB := who(a, ckA), who(b, ckB)
	if gotA == gotB {
		t.Fatalf("two live sessions proxied to one address (%s)", gotA)
	}
	if r := p.Request(tok, "demo-w01", "user=carol"); r.Status != http.StatusServiceUnavailable || !strings.Contains(string(r.Body), "No session available") {
		t.Fatalf("a third learner on a pool of two: %d %s", r.Status, r.Body)
	}
	if r := p.Do(http.MethodPost, "/workshops/session/"+a+"/terminate/", tok, nil, nil); r.Status != http.StatusOK {
		t.Fatalf("terminate: %d %s", r.Status, r.Body)
	}
	waitFor(t, "alice's address to be free", func() bool {
		return p.Request(tok, "demo-w01", "user=carol").Status == http.StatusOK
	})
	c, ckC, _ := p.Activate(tok, "demo-w01", "carol")
	if got := who(c, ckC); got != gotA {
		t.Fatalf("carol got %s, want the address alice's ended session freed (%s)", got, gotA)
	}
}
