package api_test

import (
	"net/url"
	"testing"
	"time"
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
	if r := h.get("/workshops/session/"+first.Name+"/activate/?token=x"+first.token[1:], ""); r.status != 400 {
		t.Errorf("wrong token of an ended session: %d", r.status)
	}
	next := h.request("demo-w01", url.Values{"user": {"alice"}, "index_url": {hubIndex}})
	if next.Name == first.Name || next.token == first.token {
		t.Errorf("a new session reuses the ended one's link: %+v", next)
	}
}
