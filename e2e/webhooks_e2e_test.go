package e2e

import (
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/caddyportal/caddyportal/internal/e2etest"
	"github.com/caddyportal/caddyportal/internal/e2etest/echo"
)

// TestWebhookURLsCannotReachInternalAddresses drives a real Caddy: a
// robot's analytics_url pointing at loopback (a real receiver there, and
// Caddy's own admin listener), at link-local metadata or at a private
// address is refused with a 400 JSON error and nothing reaches the
// receiver, while the operator's own analytics webhook on loopback keeps
// working. Once the operator lists 127.0.0.0/8 the receiver gets the
// session's events, and the admin listener is still refused.
func TestWebhookURLsCannotReachInternalAddresses(t *testing.T) {
	upstreams := echo.Start(t, "alpha").Addr + " " + echo.Start(t, "beta").Addr
	global := startReceiver(t, http.StatusOK, nil)
	victim := startReceiver(t, http.StatusOK, nil)
	p, admin := startObservedPortal(t, upstreams, "analytics "+global.srv.URL+"/hook")
	tok := p.Token(e2etest.RobotUser, e2etest.RobotPass)
	_, vport, _ := net.SplitHostPort(strings.TrimPrefix(victim.srv.URL, "http://"))
	_, aport, _ := net.SplitHostPort(admin)
	adminTargets := []string{"http://" + admin + "/stop", "http://localhost:" + aport + "/stop"}

	requestWith := func(user, target string) resp {
		q := url.Values{"user": {user}, "index_url": {"https://hub.example.com/"}}
		if target != "" {
			q.Set("analytics_url", target)
		}
		return p.Request(tok, "demo-w01", q.Encode())
	}
	refused := func(targets ...string) {
		t.Helper()
		for _, target := range targets {
			r := requestWith("alice", target)
			if r.Status != http.StatusBadRequest {
				t.Errorf("analytics_url %s: %d %s, want 400", target, r.Status, r.Body)
				continue
			}
			if msg, _ := r.JSON(t)["error"].(string); !strings.HasPrefix(msg, "Analytics URL is not allowed") {
				t.Errorf("analytics_url %s: error %q", target, msg)
			}
		}
	}
	adminAlive := func() {
		t.Helper()
		res, err := e2etest.NoRedirect.Get("http://" + admin + "/config/")
		if err != nil {
			t.Fatalf("Caddy's admin listener: %v", err)
		}
		res.Body.Close()
		if res.StatusCode != http.StatusOK {
			t.Fatalf("Caddy's admin listener: GET /config/ = %d", res.StatusCode)
		}
	}

	refused(append([]string{victim.srv.URL + "/x", "http://localhost:" + vport + "/x", "http://[::1]:" + vport + "/x",
		"http://169.254.169.254/latest/meta-data/", "http://10.0.0.1/hook", "http://[::ffff:127.0.0.1]:" + vport},
		adminTargets...)...)

	// The operator's webhook is on loopback too, and trusted.
	r := requestWith("alice", "")
	if r.Status != http.StatusOK {
		t.Fatalf("request without analytics_url: %d %s", r.Status, r.Body)
	}
	alice := r.JSON(t)["name"].(string)
	obsWait(t, "alice's Pending at the operator's webhook", func() bool { _, ok := global.find("Session/Pending", alice); return ok })
	if n := victim.attempts.Load(); n != 0 {
		t.Fatalf("the loopback receiver got %d requests", n)
	}
	adminAlive()

	// The operator allows loopback: the receiver is reached; Caddy's
	// admin listener, inside that network, is not.
	p.Load(obsBody(p.Base, upstreams, "analytics "+global.srv.URL+"/hook\n\t\tanalytics_allow 127.0.0.0/8"))
	tok = p.Token(e2etest.RobotUser, e2etest.RobotPass)
	refused(adminTargets...)
	r = requestWith("bob", victim.srv.URL+"/bob")
	if r.Status != http.StatusOK {
		t.Fatalf("request with an allowed analytics_url: %d %s", r.Status, r.Body)
	}
	bob := r.JSON(t)["name"].(string)
	obsWait(t, "bob's Pending at his own webhook", func() bool { _, ok := victim.find("Session/Pending", bob); return ok })
	adminAlive()
}
