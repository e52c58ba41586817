package webui_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/caddyportal/caddyportal/caddyportal/config"
)

// TestEnvironmentStart: Educates' web start route. A visitor signs in
// first and comes back; a learner goes through their session's activation
// link to the dashboard, the same session every time.
func TestEnvironmentStart(t *testing.T) {
	p := newPortal(t, portalConfig(config.RegistrationOneStep, ""))
	start := "/workshops/environment/" + env1 + "/?index_url=" + url.QueryEscape(hubIndex)

	// Not signed in: the login page, with the whole start link as next.
	b := p.browser()
	r := b.get(start)
	want := "/accounts/login/?next=" + url.QueryEscape(start)
	if r.status != http.StatusFound || r.location() != want {
		t.Fatalf("visitor: %d %q, want 302 to %q", r.status, r.location(), want)
	}
	// Signing in there comes back to the start link.
	b.signup("ann@example.com", "ann-password")
	c := p.browser()
	tok := c.csrf(r.location())
	if r := c.post("/accounts/login/", url.Values{"csrf": {tok}, "username": {"ann@example.com"}, "password": {"ann-password"},
		"next": {start}}); r.status != http.StatusSeeOther || r.location() != start {
		t.Fatalf("login with next: %d %q", r.status, r.location())
	}

	// Signed in: the session's activation link, with the index_url.
	r = c.get(start)
	loc, _ := url.Parse(r.location())
	if r.status != http.StatusFound || !strings.HasPrefix(loc.Path, "/workshops/session/"+env1+"-s") ||
		!strings.HasSuffix(loc.Path, "/activate/") || loc.Query().Get("token") == "" || loc.Query().Get("index_url") != hubIndex {
		t.Fatalf("learner: %d %q %s", r.status, r.location(), r.body)
	}
	name := strings.Split(loc.Path, "/")[3]
	act := c.get(r.location())
	if act.status != http.StatusFound || act.location() != "/workshops/session/"+name+"/" {
		t.Fatalf("activation: %d %q", act.status, act.location())
	}
	if d := c.get(act.location()); d.status != http.StatusOK || !strings.Contains(d.body, "Workshop dashboard "+name) {
		t.Fatalf("dashboard: %d %s", d.status, d.body)
	}
	// Again, from another browser of the same learner: the same session
	// and link.
	if again := b.get(start); again.status != http.StatusFound || again.location() != r.location() {
		t.Fatalf("second start: %d %q, want %q", again.status, again.location(), r.location())
	}
	// Without the trailing slash: redirected to it, query kept.
	noSlash := strings.Replace(start, "/?", "?", 1)
	if r := b.get(noSlash); r.status != http.StatusMovedPermanently || r.location() != start {
		t.Fatalf("without slash: %d %q", r.status, r.location())
	}
	// GET only, as Educates.
	if r := b.post("/workshops/environment/"+env1+"/", url.Values{}); r.status != http.StatusMethodNotAllowed {
		t.Fatalf("POST: %d", r.status)
	}
}

// TestEnvironmentStartFailures: Educates' notification redirects (to the
// index_url given, else the portal index, else the catalog, which shows
// the notification), a refused index_url, and the admin.
func TestEnvironmentStartFailures(t *testing.T) {
	p := newPortal(t, portalConfig(config.RegistrationOneStep, ""))
	b := p.browser()
	b.signup("ann@example.com", "ann-password")

	// An unknown environment.
	r := b.get("/workshops/environment/demo-w99/?index_url=" + url.QueryEscape(hubIndex+"?a=1&notification=old"))
	if want := hubIndex + "?a=1&notification=workshop-invalid"; r.status != http.StatusFound || r.location() != want {
		t.Fatalf("unknown environment: %d %q, want %q", r.status, r.location(), want)
	}
	r = b.get("/workshops/environment/demo-w99/")
	if want := "/workshops/catalog/?notification=workshop-invalid"; r.status != http.StatusFound || r.location() != want {
		t.Fatalf("unknown environment without index: %d %q, want %q", r.status, r.location(), want)
	}
	if cat := b.get(r.location()); !strings.Contains(cat.body, `id="notice">There is no such workshop`) {
		t.Fatalf("catalog does not show the notification: %s", cat.body)
	}

	// No session to be had: the environment's three are taken.
	for _, u := range []string{"u1", "u2", "u3"} {
		p.restRequest(u)
	}
	r = b.get("/workshops/environment/" + env1 + "/")
	if want := "/workshops/catalog/?notification=session-unavailable"; r.status != http.StatusFound || r.location() != want {
		t.Fatalf("full: %d %q, want %q", r.status, r.location(), want)
	}

	// An index_url the redirect policy refuses is not followed.
	r = b.get("/workshops/environment/demo-w99/?index_url=" + url.QueryEscape("https://evil.example/"))
	if r.status != http.StatusBadRequest || r.location() != "" {
		t.Fatalf("refused index_url: %d %q", r.status, r.location())
	}

	// The admin cannot own sessions.
	admin := p.browser()
	admin.login(adminUser, adminPass, "/admin/")
	if r := admin.get("/workshops/environment/" + env1 + "/"); r.status != http.StatusForbidden {
		t.Fatalf("admin: %d %q", r.status, r.location())
	}

	// With a portal index and no index_url, failures go to the index.
	q := newPortal(t, portalConfig(config.RegistrationOneStep, hubIndex))
	c := q.browser()
	c.signup("bob@example.com", "bob-password")
	if r := c.get("/workshops/environment/demo-w99/"); r.status != http.StatusFound || r.location() != hubIndex+"?notification=workshop-invalid" {
		t.Fatalf("with index: %d %q", r.status, r.location())
	}
}
