package api_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddyportal/caddyportal/caddyportal/config"
	"github.com/caddyportal/caddyportal/caddyportal/sessions"
	"github.com/caddyportal/caddyportal/caddyportal/webhooks"
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

// TestSessionEventRoute: a dashboard's analytics event is accepted with
// 200 {} and emitted as one of the session's events, after the session's
// own; the bodies Educates refuses get its 400s.
func TestSessionEventRoute(t *testing.T) {
	var mu sync.Mutex
	var events []sessions.Event
	h := newHarness(t, harnessOpts{onEvent: func(ev sessions.Event) {
		mu.Lock()
		events = append(events, ev)
		mu.Unlock()
	}})
	res := h.request("demo-w01", url.Values{"user": {"alice"}, "analytics_url": {"https://a.example.com/hook"}})
	h.get(res.URL, "")
	path := "/workshops/session/" + res.Name + "/event/"
	post := func(token, ctype, body string) response {
		t.Helper()
		return h.do("POST", path, token, strings.NewReader(body), "Content-Type", ctype)
	}
	owner := h.userToken("alice")
	r := post(owner, "application/json", `{"event": {"name": "Workshop/View", "data": {"page": "intro", "n": 1}}}`)
	if r.status != 200 || strings.TrimSpace(string(r.body)) != "{}" {
		t.Fatalf("event: %d %s", r.status, r.body)
	}
	for _, tok := range []string{h.robot, h.passwordToken(adminUser, adminPass)} {
		if r := post(tok, "application/json; charset=utf-8", `{"event": {"name": "Action/Event"}}`); r.status != 200 {
			t.Errorf("event by robot/staff: %d %s", r.status, r.body)
		}
	}
	mu.Lock()
	var got []sessions.Event
	for _, ev := range events {
		if ev.Session == res.Name {
			got = append(got, ev)
		}
	}
	mu.Unlock()
	if n := len(got); n < 5 || got[n-4].Name != "Session/Started" || got[n-3].Name != "Workshop/View" ||
		got[n-2].Name != "Action/Event" || got[n-1].Name != "Action/Event" {
		t.Fatalf("events %+v", got)
	}
	view := got[len(got)-3]
	if view.User != "alice" || view.Environment != "demo-w01" || view.Workshop != "lab-k8s" ||
		view.AnalyticsURL != "https://a.example.com/hook" || view.Data["page"] != "intro" || !view.Time.Equal(h.clk.Now()) {
		t.Errorf("event %+v", view)
	}

	for _, c := range []struct {
		token, ctype, body string
		status             int
		msg                string
	}{
		{owner, "text/plain", `{"event": {"name": "X"}}`, 400, "No event data provided"},
		{owner, "", `{"event": {"name": "X"}}`, 400, "No event data provided"},
		{owner, "application/json", `{"event": {}}`, 400, "No event data provided"},
		{owner, "application/json", `{"event": {"name": ""}}`, 400, "No event data provided"},
		{owner, "application/json", `{}`, 400, "No event data provided"},
		{owner, "application/json", `{"event": null}`, 400, "No event data provided"},
		{owner, "application/json", `{"event": `, 400, "Invalid JSON request payload"},
		{owner, "application/json", `[]`, 400, "Malformed JSON request payload"},
		{owner, "application/json", `{"event": {"name": 5}}`, 400, "Malformed JSON request payload"},
		{owner, "application/json", `{"event": {"name": "X", "data": [1]}}`, 400, "Malformed JSON request payload"},
		{owner, "application/json", `{"event": {"name": "Session/Expired"}}`, 400, "Event name reserved for the portal: Session/Expired"},
		{owner, "application/json", `{"event": {"name": "User/Delete"}}`, 400, "Event name reserved for the portal: User/Delete"},
		{owner, "application/json", `{"event": {"name": "a\nb"}}`, 400, "Invalid event name"},
		{h.userToken("mallory"), "application/json", `{"event": {"name": "X"}}`, 403, "Access to session not permitted"},
		{"", "application/json", `{"event": {"name": "X"}}`, 403, ""},
	} {
		r := post(c.token, c.ctype, c.body)
		if r.status != c.status {
			t.Errorf("%q %s: %d %s, want %d", c.ctype, c.body, r.status, r.body, c.status)
			continue
		}
		if msg := r.errorText(t); c.msg != "" && msg != c.msg {
			t.Errorf("%q %s: %q, want %q", c.ctype, c.body, msg, c.msg)
		}
	}
	if r := h.get(path, owner); r.status != 405 {
		t.Errorf("GET event: %d", r.status)
	}
	if r := h.do("POST", "/workshops/session/demo-w01-s999/event/", h.robot, strings.NewReader(`{"event":{"name":"X"}}`), "Content-Type", "application/json"); r.status != 404 {
		t.Errorf("unknown session: %d", r.status)
	}
	// A reserve was never allocated (Educates checks this first).
	var reserve string
	if list, err := h.svc.UserSessions(context.Background(), "alice"); err != nil || len(list) != 1 {
		t.Fatalf("alice's sessions: %v %v", list, err)
	}
	for i := 1; i < 10; i++ {
		name := fmt.Sprintf("demo-w01-s%03d", i)
		if s, err := h.svc.Get(context.Background(), name); err == nil && s.Reserved() && s.Live(h.clk.Now()) {
			reserve = name
			break
		}
	}
	if reserve == "" {
		t.Fatal("no reserve")
	}
	r = h.do("POST", "/workshops/session/"+reserve+"/event/", h.userToken("mallory"), strings.NewReader(`{"event":{"name":"X"}}`), "Content-Type", "application/json")
	if r.status != 400 || r.errorText(t) != "Session was never allocated" {
		t.Errorf("event for a reserve: %d %s", r.status, r.body)
	}
}

// TestUnknownPortalPaths: paths under the portal's own prefixes that no
// route serves answer a JSON 404 instead of reaching the next handler.
func TestUnknownPortalPaths(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	for _, p := range []string{"/workshops/", "/workshops/nope/", "/workshops/catalog/x/", "/oauth2/", "/oauth2/authorize/",
		"/oauth2/token/x", "/workshops/environment/demo-w01/nope/", "/workshops/session/", "/workshops/user/u/sessions/x"} {
		for _, m := range []string{"GET", "POST"} {
			r := h.do(m, p, h.robot, nil)
			if r.status != 404 {
				t.Errorf("%s %s: %d %s", m, p, r.status, r.body)
				continue
			}
			if msg := r.errorText(t); msg != "Not found" {
				t.Errorf("%s %s: %q", m, p, msg)
			}
		}
	}
}

// TestSessionEventReachesWebhook: a dashboard's event is delivered to the
// analytics webhook like the portal's own, in order after them and
// retried when the receiver fails.
func TestSessionEventReachesWebhook(t *testing.T) {
	var mu sync.Mutex
	var names []string
	var view map[string]any
	failed := false
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var msg struct {
			Event map[string]any `json:"event"`
		}
		if err := json.NewDecoder(r.Body).Decode(&msg); err != nil {
			w.WriteHeader(400)
			return
		}
		mu.Lock()
		defer mu.Unlock()
		name, _ := msg.Event["name"].(string)
		if name == "Workshop/View" && !failed {
			failed = true
			w.WriteHeader(http.StatusInternalServerError)
			return
		}
		if name == "Workshop/View" {
			view = msg.Event
		}
		names = append(names, name)
	}))
	t.Cleanup(recv.Close)
	d, err := webhooks.New(webhooks.Options{URL: recv.URL, Backoff: time.Millisecond, Portal: webhooks.Portal{Name: "demo"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = d.Close(context.Background()) })
	h := newHarness(t, harnessOpts{onEvent: func(ev sessions.Event) { d.Send(ev, ev.AnalyticsURL) }})
	res := h.request("demo-w01", url.Values{"user": {"alice"}})
	h.get(res.URL, "")
	r := h.do("POST", "/workshops/session/"+res.Name+"/event/", h.userToken("alice"),
		strings.NewReader(`{"event": {"name": "Workshop/View", "data": {"page": "intro"}}}`), "Content-Type", "application/json")
	if r.status != 200 {
		t.Fatalf("event: %d %s", r.status, r.body)
	}
	deadline := time.Now().Add(time.Minute)
	for {
		mu.Lock()
		done := view != nil
		mu.Unlock()
		if done {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("Workshop/View not delivered; got %v", names)
		}
		time.Sleep(5 * time.Millisecond)
	}
	mu.Lock()
	defer mu.Unlock()
	var mine []string
	for _, n := range names {
		if n == "Session/Pending" || n == "Session/Started" || n == "Workshop/View" {
			mine = append(mine, n)
		}
	}
	if strings.Join(mine, ",") != "Session/Pending,Session/Started,Workshop/View" || !failed {
		t.Errorf("delivered %v (retried: %v)", names, failed)
	}
	if view["user"] != "alice" || view["session"] != res.Name || view["environment"] != "demo-w01" ||
		view["workshop"] != "lab-k8s" || view["data"].(map[string]any)["page"] != "intro" {
		t.Errorf("payload %v", view)
	}
}

// TestIndexURLPolicy: the strict allow list answers a 400 that names the
// refused origin and the Caddyfile lines that admit it; `redirects any`
// admits every http(s) index_url and still refuses the tricks.
func TestIndexURLPolicy(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	r := h.get("/workshops/environment/demo-w01/request/?index_url="+url.QueryEscape("https://Evil.Example/x"), h.robot)
	if r.status != 400 {
		t.Fatalf("refused index_url: %d %s", r.status, r.body)
	}
	msg := r.errorText(t)
	for _, want := range []string{"https://evil.example", `"redirects https://evil.example"`, `"redirects any"`} {
		if !strings.Contains(msg, want) {
			t.Errorf("%q does not say %s", msg, want)
		}
	}

	cfg := testPortal()
	cfg.Redirects = []string{config.RedirectsAny}
	h = newHarness(t, harnessOpts{cfg: cfg})
	res := h.request("demo-w01", url.Values{"user": {"alice"}, "index_url": {"https://evil.example/x"}})
	if res.index != "https://evil.example/x" {
		t.Errorf("any: index %q", res.index)
	}
	for _, bad := range []string{"javascript:alert(1)", "//evil.example", "https://hub.example.com@evil.example/", `/\evil.example`, "data:text/html,x"} {
		r := h.get("/workshops/environment/demo-w01/request/?user=bob&index_url="+url.QueryEscape(bad), h.robot)
		if r.status != 400 {
			t.Errorf("any: index_url %q: %d %s", bad, r.status, r.body)
		}
	}
}
