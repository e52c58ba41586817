package api_test

import (
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/caddyportal/caddyportal/caddyportal/config"
)

// wire formats t as the REST API writes datetimes.
func wire(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000Z") }

// TestPendingStartedIsAllocationTime: as in Educates (mark_as_pending), a
// session allocated but not yet activated reports when it was allocated
// as `started` wherever it is listed, and its activation time afterwards.
func TestPendingStartedIsAllocationTime(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	res := h.request("demo-w01", url.Values{"user": {"alice"}})
	h.clk.Advance(5 * time.Second)
	allocated, activated := wire(h.t0), wire(h.t0.Add(5*time.Second))

	_, body := h.catalog(t, "sessions=true", h.robot)
	if got := string(field(t, body, "environments", 0, "sessions", 0, "started")); got != `"`+allocated+`"` {
		t.Errorf("catalog: pending started = %s, want %s", got, allocated)
	}
	r := h.get("/workshops/user/alice/sessions/", h.robot)
	if got := string(field(t, r.body, "sessions", 0, "started")); got != `"`+allocated+`"` {
		t.Errorf("user sessions: pending started = %s, want %s", got, allocated)
	}
	r = h.get("/workshops/session/"+res.Name+"/schedule/", h.robot)
	if got := r.json(t)["started"]; got != allocated {
		t.Errorf("schedule: pending started = %v, want %s", got, allocated)
	}
	if r := h.get(res.URL, ""); r.status != 302 {
		t.Fatalf("activate: %d %s", r.status, r.body)
	}
	r = h.get("/workshops/session/"+res.Name+"/schedule/", h.robot)
	if got := r.json(t)["started"]; got != activated {
		t.Errorf("schedule: running started = %v, want %s", got, activated)
	}
}

// TestReacquireReturnsSameLink: a front end that asks again for the same
// user's session gets the same URL every time, so a link it handed out
// before any number of reloads still activates; a link of an ended
// session is refused.
func TestReacquireReturnsSameLink(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	first := h.request("demo-w01", url.Values{"user": {"alice"}, "index_url": {hubIndex}})
	for i := 0; i < 12; i++ {
		again := h.request("demo-w01", url.Values{"user": {"alice"}, "index_url": {hubIndex}})
		if again.URL != first.URL {
			t.Fatalf("reacquire %d: %s, want %s", i, again.URL, first.URL)
		}
	}
	// Another index_url changes only that part of the link.
	other := h.request("demo-w01", url.Values{"user": {"alice"}, "index_url": {lmsOrigin + "/course"}})
	if other.token != first.token || other.index != lmsOrigin+"/course" {
		t.Errorf("with another index_url: token %q index %q", other.token, other.index)
	}
	for _, u := range []string{first.URL, other.URL, first.URL} {
		if r := h.get(u, ""); r.status != 302 {
			t.Errorf("activation %s: %d %s", u, r.status, r.body)
		}
	}
	if r := h.get("/workshops/session/"+first.Name+"/terminate/", h.robot); r.status != 200 {
		t.Fatalf("terminate: %d %s", r.status, r.body)
	}
	h.clk.Advance(stopGrace)
	if r := h.get(first.URL, ""); r.status != 302 || r.header.Get("Location") != hubIndex+"?notification=session-deleted" {
		t.Errorf("link of an ended session: %d %q", r.status, r.header.Get("Location"))
	}
	wrong := "a" + first.token[1:]
	if wrong == first.token {
		wrong = "b" + first.token[1:]
	}
	if r := h.get("/workshops/session/"+first.Name+"/activate/?token="+wrong, ""); r.status != 400 {
		t.Errorf("wrong token of an ended session: %d", r.status)
	}
	next := h.request("demo-w01", url.Values{"user": {"alice"}, "index_url": {hubIndex}})
	if next.Name == first.Name || next.token == first.token {
		t.Errorf("a new session reuses the ended one's link: %+v", next)
	}
}

// TestSessionConfigRoute: GET /workshops/session/<s>/config/ gives the
// robot, staff or the owner the session's URL (no trailing slash) and
// config password, with Educates' 403 and 404; the password opens the
// session's config files at <url>/config/<type> (see the gate's tests).
func TestSessionConfigRoute(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	res := h.request("demo-w01", url.Values{"user": {"alice"}})
	path := "/workshops/session/" + res.Name + "/config/"

	r := h.get(path, h.robot)
	if r.status != 200 {
		t.Fatalf("config: %d %s", r.status, r.body)
	}
	wantKeys(t, "config", r.body, "url", "password")
	m := r.json(t)
	if m["url"] != h.srv.URL+"/workshops/session/"+res.Name {
		t.Errorf("url %v, want %s", m["url"], h.srv.URL+"/workshops/session/"+res.Name)
	}
	pw, _ := m["password"].(string)
	if len(pw) < 32 {
		t.Errorf("password %q", pw)
	}
	// The same for the owner, staff, and on every call; without the
	// slash too.
	admin := h.passwordToken(adminUser, adminPass)
	for _, c := range []struct{ path, token string }{{path, h.userToken("alice")}, {path, admin}, {strings.TrimSuffix(path, "/"), h.robot}} {
		if r := h.get(c.path, c.token); r.status != 200 || r.json(t)["password"] != pw {
			t.Errorf("config %s: %d %s", c.path, r.status, r.body)
		}
	}
	// Another session has another password.
	bob := h.request("demo-w01", url.Values{"user": {"bob"}})
	if r := h.get("/workshops/session/"+bob.Name+"/config/", h.robot); r.json(t)["password"] == pw {
		t.Error("two sessions share a config password")
	}

	for _, c := range []struct {
		method, path, token string
		status              int
	}{
		{"GET", path, "", 403},
		{"GET", path, "bogus", 403},
		{"GET", path, h.userToken("mallory"), 403},
		{"GET", "/workshops/session/demo-w01-s999/config/", h.robot, 404},
		{"POST", path, h.robot, 405},
		{"POST", path, "", 403},
	} {
		r := h.do(c.method, c.path, c.token, nil)
		if r.status != c.status {
			t.Errorf("%s %s (token %q): %d %s, want %d", c.method, c.path, c.token, r.status, r.body, c.status)
		}
		r.errorText(t)
	}
	if r := h.get("/workshops/session/"+res.Name+"/terminate/", h.robot); r.status != 200 {
		t.Fatal(r.status)
	}
	h.clk.Advance(stopGrace)
	if r := h.get(path, h.robot); r.status != 404 {
		t.Errorf("config of an ended session: %d", r.status)
	}
}

// TestSessionConfigRouteHostMode: in host mode the URL is the session's
// own host.
func TestSessionConfigRouteHostMode(t *testing.T) {
	cfg := testPortal()
	cfg.URL = "https://portal.example.com"
	cfg.Dashboards = config.Dashboards{Mode: config.DashboardsHost, Domain: "sessions.example.com"}
	h := newHarness(t, harnessOpts{cfg: cfg})
	res := h.request("demo-w01", url.Values{"user": {"alice"}})
	r := h.get("/workshops/session/"+res.Name+"/config/", h.robot)
	if r.status != 200 || r.json(t)["url"] != "https://"+res.Name+".sessions.example.com" {
		t.Errorf("host mode config: %d %s", r.status, r.body)
	}
}
