package e2e

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/caddyportal/caddyportal/internal/e2etest"
	"github.com/caddyportal/caddyportal/internal/e2etest/echo"
)

// healthWait bounds a wait for the background prober: generous, since it
// only stops a broken test from hanging; nothing is timed.
func healthWait(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(2 * time.Minute); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatalf("waiting for %s: gave up (hang guard)", what)
}

// TestDeadDashboardIsNotHandedOut: a pool of a refusing upstream (first,
// so it would be picked first) and a live one. The probe marks the dead
// one unhealthy in the metrics and on the admin overview (in Chromium),
// and a session gets the live one. When a dashboard comes up on the dead
// address, it is reported healthy and the next session gets it.
func TestDeadDashboardIsNotHandedOut(t *testing.T) {
	live := echo.Start(t, "live")
	dead := fmt.Sprintf("127.0.0.1:%d", e2etest.FreePort(t)) // nothing listens there
	admin := fmt.Sprintf("127.0.0.1:%d", e2etest.FreePort(t))
	p := &portal{&e2etest.Portal{T: t, Dir: t.TempDir(), Admin: admin}}
	p.Start(`
		name demo
		storage badger {dir}
		redirects https://hub.example.com
		sessions maximum 10 registered 1 anonymous 1
		robot robot@portal robot-pass
		client test-client test-secret
		admin admin admin-pass
		workshop lab {
			reserved 0
			upstream ` + dead + ` ` + live.Addr + `
			health_check tcp interval 100ms timeout 5s
		}
`)
	healthKey := func(addr string) string {
		return obsKey("upstream_healthy", "environment", "demo-w01", "upstream", addr)
	}
	healthWait(t, "the dead upstream to be reported unhealthy", func() bool {
		v, ok := obsScrape(t, admin)[healthKey(dead)]
		return ok && v == 0
	})
	if v := obsScrape(t, admin)[healthKey(live.Addr)]; v != 1 {
		t.Errorf("live upstream health gauge = %v, want 1", v)
	}

	upstreamOf := func(user string) string {
		t.Helper()
		name, ck, _ := p.Activate(p.Token(e2etest.RobotUser, e2etest.RobotPass), "demo-w01", user)
		r := p.Do("GET", sessionPath(name)+"whoami", "", nil, cookieHdr(ck))
		if r.Status != http.StatusOK {
			t.Fatalf("%s's dashboard: %d %s", user, r.Status, r.Body)
		}
		var s echo.Seen
		if err := json.Unmarshal(r.Body, &s); err != nil {
			t.Fatalf("%s's dashboard answered %s", user, r.Body)
		}
		return s.Upstream
	}
	if got := upstreamOf("alice"); got != "live" {
		t.Fatalf("alice got dashboard %q, want the live one", got)
	}

	// The admin overview lists the dead dashboard as unhealthy.
	ctx := browser(t)
	var deadState, liveState string
	err := chromedp.Run(ctx,
		chromedp.Navigate(p.Base+"/admin"),
		chromedp.WaitVisible("#login-form", chromedp.ByQuery),
		chromedp.SendKeys("#username", e2etest.AdminUser, chromedp.ByQuery),
		chromedp.SendKeys("#password", e2etest.AdminPass, chromedp.ByQuery),
		chromedp.Click("#submit", chromedp.ByQuery),
		chromedp.WaitVisible("#upstreams", chromedp.ByQuery),
		chromedp.Text(`tr[data-upstream="`+dead+`"] .health`, &deadState, chromedp.ByQuery),
		chromedp.Text(`tr[data-upstream="`+live.Addr+`"] .health`, &liveState, chromedp.ByQuery),
	)
	if err != nil {
		t.Fatalf("admin overview: %v", err)
	}
	if deadState != "unhealthy" || liveState != "healthy" {
		t.Errorf("admin overview shows dead %q and live %q, want unhealthy and healthy", deadState, liveState)
	}

	// A dashboard comes up at the dead address: it is used again.
	l, err := net.Listen("tcp", dead)
	if err != nil {
		t.Fatalf("listening on %s: %v", dead, err)
	}
	revived := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(echo.Seen{Upstream: "revived"})
	}), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = revived.Serve(l) }()
	t.Cleanup(func() { _ = revived.Close() })
	healthWait(t, "the revived upstream to be reported healthy", func() bool { return obsScrape(t, admin)[healthKey(dead)] == 1 })
	if got := upstreamOf("bob"); got != "revived" {
		t.Fatalf("bob got dashboard %q, want the revived one", got)
	}
	err = chromedp.Run(ctx,
		chromedp.Navigate(p.Base+"/admin"),
		chromedp.WaitVisible("#upstreams", chromedp.ByQuery),
		chromedp.Text(`tr[data-upstream="`+dead+`"] .health`, &deadState, chromedp.ByQuery),
	)
	if err != nil || deadState != "healthy" {
		t.Errorf("admin overview after revival: %q, %v; want healthy", deadState, err)
	}
}

// TestDashboardsInTheSameCaddyAtStart: like Caddyfile.example, the
// dashboards are sites of the same Caddy, which listen only after the
// portal is provisioned and has run its first probe round. The portal must
// hand them out as soon as Caddy is up: a session request right after the
// start gets its dashboard, with the pool's reserve still in place.
func TestDashboardsInTheSameCaddyAtStart(t *testing.T) {
	dash := e2etest.FreePort(t)
	body := fmt.Sprintf(`
		name demo
		storage badger {dir}
		index https://hub.example.com/
		robot robot@portal robot-pass
		client test-client test-secret
		workshop lab {
			reserved 1
			upstream 127.0.0.1:%d
		}`, dash)
	site := fmt.Sprintf("http://127.0.0.1:%d {\n\tbind 127.0.0.1\n\trespond \"dashboard\"\n}\n", dash)
	p := startPortalSites(t, t.TempDir(), body, "", site)
	tok := p.Token("robot@portal", "robot-pass")
	r := p.Request(tok, "demo-w01", "user=learner-1")
	if r.Status != http.StatusOK {
		t.Fatalf("session request right after start: %d %s, want 200", r.Status, r.Body)
	}
}
