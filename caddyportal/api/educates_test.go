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
