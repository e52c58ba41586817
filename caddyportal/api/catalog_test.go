package api_test

import (
	"encoding/json"
	"net/url"
	"regexp"
	"slices"
	"testing"

	"github.com/caddyportal/caddyportal/caddyportal/config"
)

var datetimeRE = regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{3})?Z$`)

type catalog struct {
	Portal struct {
		Name     string
		URL      string
		Sessions struct{ Maximum, Registered, Anonymous, Allocated int }
	}
	Environments []struct {
		Name     string
		State    string
		Workshop struct {
			Name, ID, Resource, Title string
			Labels                    map[string]string
		}
		Duration, Capacity, Reserved, Allocated, Available int
		Sessions                                           *[]map[string]any
	}
}

func (h *harness) catalog(t *testing.T, q string, token string) (catalog, []byte) {
	t.Helper()
	r := h.get("/workshops/catalog/environments/?"+q, token)
	if r.status != 200 {
		t.Fatalf("catalog ?%s: %d %s", q, r.status, r.body)
	}
	var c catalog
	if err := json.Unmarshal(r.body, &c); err != nil {
		t.Fatal(err)
	}
	return c, r.body
}

func envNames(c catalog) []string {
	var out []string
	for _, e := range c.Environments {
		out = append(out, e.Name)
	}
	return out
}

func TestCatalogShapeAndKeyOrder(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	alice := h.request("demo-w01", url.Values{"user": {"alice"}})
	c, body := h.catalog(t, "sessions=true", h.robot)

	wantKeys(t, "top level", body, "portal", "environments")
	wantKeys(t, "portal", field(t, body, "portal"), "name", "labels", "uid", "generation", "url", "sessions")
	wantKeys(t, "portal.sessions", field(t, body, "portal", "sessions"), "maximum", "registered", "anonymous", "allocated")
	env := field(t, body, "environments", 0)
	wantKeys(t, "environment", env, "name", "state", "workshop", "duration", "capacity", "reserved", "allocated", "available", "sessions")
	// workshop.id is an extra for old hubs; the reference keys keep their order.
	wk := slices.DeleteFunc(objectKeys(t, field(t, env, "workshop")), func(k string) bool { return k == "id" })
	if want := []string{"name", "resource", "title", "description", "vendor", "authors", "difficulty", "duration", "tags", "labels", "logo", "url"}; !slices.Equal(wk, want) {
		t.Errorf("workshop keys %v, want %v", wk, want)
	}
	// A pending session: expires is the activation deadline.
	item := field(t, env, "sessions", 0)
	wantKeys(t, "session item", item, "name", "state", "namespace", "user", "started", "expires", "countdown", "extendable")

	if c.Portal.Name != "demo" || c.Portal.URL != h.srv.URL || c.Portal.Sessions.Allocated != 1 {
		t.Errorf("portal %+v", c.Portal)
	}
	if got := envNames(c); !slices.Equal(got, []string{"demo-w01", "demo-w02"}) {
		t.Fatalf("environments %v", got)
	}
	e1, e2 := c.Environments[0], c.Environments[1]
	if e1.State != "RUNNING" || e1.Workshop.Name != "k8s" || e1.Workshop.Resource != "lab-k8s" || e1.Workshop.ID == "" ||
		e1.Duration != 3600 || e1.Capacity != 3 || e1.Reserved != 1 || e1.Allocated != 1 || e1.Available != 1 {
		t.Errorf("env 1: %+v", e1)
	}
	if e2.Workshop.Name != "lab-go" || e2.Workshop.Resource != "lab-go" || e2.Duration != 0 || e2.Capacity != 2 || e2.Allocated != 0 {
		t.Errorf("env 2 (unlimited): %+v", e2)
	}
	if e2.Workshop.ID == e1.Workshop.ID {
		t.Errorf("workshop ids collide")
	}
	var s map[string]any
	_ = json.Unmarshal(item, &s)
	if s["name"] != alice.Name || s["namespace"] != alice.Name || s["user"] != "alice" || s["state"] != "WAITING" ||
		s["countdown"] != float64(60) || s["extendable"] != false || s["started"] != h.t0.Format("2006-01-02T15:04:05.000Z") {
		t.Errorf("session item %v", s)
	}
	if exp, _ := s["expires"].(string); !datetimeRE.MatchString(exp) || exp != h.t0.Add(defaultWait).Format("2006-01-02T15:04:05.000Z") {
		t.Errorf("expires %q", s["expires"])
	}

	// After activation: started/expires in the wire format.
	h.get(alice.URL, "")
	_, body = h.catalog(t, "sessions=1", h.robot)
	_ = json.Unmarshal(field(t, body, "environments", 0, "sessions", 0), &s)
	if s["state"] != "RUNNING" || s["started"] != h.t0.Format("2006-01-02T15:04:05.000Z") || s["countdown"] != float64(3600) {
		t.Errorf("running item %v", s)
	}
	// A running unlimited session has no expires/countdown/extendable.
	bob := h.request("demo-w02", url.Values{"user": {"bob"}})
	h.get(bob.URL, "")
	_, body = h.catalog(t, "sessions=true", h.robot)
	wantKeys(t, "unlimited session item", field(t, body, "environments", 1, "sessions", 0), "name", "state", "namespace", "user", "started")

	// The workshops catalog.
	r := h.get("/workshops/catalog/workshops/", h.robot)
	if r.status != 200 {
		t.Fatal(r.status)
	}
	wantKeys(t, "workshops top level", r.body, "portal", "workshops")
	w0 := field(t, r.body, "workshops", 0)
	wk = slices.DeleteFunc(objectKeys(t, w0), func(k string) bool { return k == "id" })
	if want := []string{"name", "resource", "title", "description", "vendor", "authors", "difficulty", "duration", "tags", "labels", "logo", "url", "environment"}; !slices.Equal(wk, want) {
		t.Errorf("workshop item keys %v", wk)
	}
	wantKeys(t, "workshop item environment", field(t, w0, "environment"), "name", "state", "duration", "capacity", "reserved", "allocated", "available")
}

func TestStatusRoute(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	h.request("demo-w01", url.Values{"user": {"alice"}})
	r := h.get("/workshops/environment/demo-w01/status/?sessions=true", h.robot)
	if r.status != 200 {
		t.Fatal(r.status, string(r.body))
	}
	wantKeys(t, "status", r.body, "name", "state", "workshop", "sessions", "duration", "capacity", "reserved", "allocated", "available")
	var ws map[string]any
	_ = json.Unmarshal(field(t, r.body, "workshop"), &ws)
	if ws["name"] != "lab-k8s" {
		t.Errorf("status workshop.name = %v, want the resource name", ws["name"])
	}
	if _, ok := ws["resource"]; ok {
		t.Errorf("status workshop has resource")
	}
	r = h.get("/workshops/environment/demo-w01/status/", h.robot)
	wantKeys(t, "status without sessions", r.body, "name", "state", "workshop", "duration", "capacity", "reserved", "allocated", "available")
}

func TestCatalogFilters(t *testing.T) {
	removed := testPortal()
	removed.Workshops = append([]config.Workshop{{Name: "old", Upstreams: []string{"x-{session}"}, Capacity: intp(1), Reserved: intp(0)}}, removed.Workshops...)
	h := newHarness(t, harnessOpts{before: &removed})
	// demo-w01 is "old" (now STOPPING); lab-k8s is demo-w02, lab-go demo-w03.
	user := h.userToken("alice")
	tests := []struct {
		q     string
		token string
		want  []string
	}{
		{"", h.robot, []string{"demo-w02", "demo-w03"}},
		{"state=stopping", h.robot, []string{"demo-w01"}},
		{"state=STOPPING&state=Running", h.robot, []string{"demo-w01", "demo-w02", "demo-w03"}},
		{"state=bogus", h.robot, []string{"demo-w02", "demo-w03"}},
		{"state=starting", h.robot, nil},
		{"state=stopped", h.robot, nil},
		{"state=bogus&state=stopping", h.robot, []string{"demo-w01"}},
		{"state=stopping", user, []string{"demo-w02", "demo-w03"}}, // robots only
		{"name=lab-k8s", h.robot, []string{"demo-w02"}},
		{"name=k8s", h.robot, []string{"demo-w02"}},
		{"name=k8s&name=lab-go", h.robot, []string{"demo-w02", "demo-w03"}},
		{"name=nope", h.robot, nil},
		{"name=k8s", user, []string{"demo-w02"}},
		{"labels[level]=beginner", h.robot, []string{"demo-w02"}},
		{"labels%5Blevel%5D=advanced", user, []string{"demo-w03"}},
		{"labels[level]=advanced&labels[level]=beginner", h.robot, []string{"demo-w02"}}, // last wins
		{"labels[level]=beginner&labels[topic]=k8s", h.robot, []string{"demo-w02"}},
		{"labels[level]=beginner&labels[topic]=go", h.robot, nil},
		{"labels[missing]=x", h.robot, nil},
		{"labels[a-b]=x", h.robot, []string{"demo-w02", "demo-w03"}}, // not \w+: ignored
	}
	for _, tt := range tests {
		c, _ := h.catalog(t, tt.q, tt.token)
		if got := envNames(c); !slices.Equal(got, tt.want) {
			t.Errorf("?%s: %v, want %v", tt.q, got, tt.want)
		}
	}
	// The stopping environment shows capacity and reserved 0.
	c, _ := h.catalog(t, "state=stopping", h.robot)
	if e := c.Environments[0]; e.State != "STOPPING" || e.Capacity != 0 || e.Reserved != 0 || e.Workshop.Name != "old" {
		t.Errorf("stopping env %+v", e)
	}
}

func TestCatalogSessionsForRobotsOnly(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	h.request("demo-w01", url.Values{"user": {"alice"}})
	staff := h.passwordToken(adminUser, adminPass)
	tests := []struct {
		q, token string
		want     bool
	}{
		{"sessions=true", h.robot, true},
		{"sessions=TRUE", h.robot, true},
		{"sessions=1", h.robot, true},
		{"sessions=True", staff, true},
		{"sessions=yes", h.robot, false},
		{"sessions=0", h.robot, false},
		{"sessions=false", h.robot, false},
		{"", h.robot, false},
		{"sessions=true", h.userToken("alice"), false},
	}
	for _, tt := range tests {
		c, _ := h.catalog(t, tt.q, tt.token)
		if got := c.Environments[0].Sessions != nil; got != tt.want {
			t.Errorf("?%s: sessions present %v, want %v", tt.q, got, tt.want)
		}
	}
}

func TestCatalogAccess(t *testing.T) {
	// Private: no token is 403 with a JSON body.
	h := newHarness(t, harnessOpts{})
	for _, p := range []string{"/workshops/catalog/environments/", "/workshops/catalog/workshops/"} {
		r := h.get(p, "")
		if r.status != 403 {
			t.Errorf("private %s without token: %d", p, r.status)
		}
		r.errorText(t)
		// 403 before 405 on the catalog too.
		if r := h.do("POST", p, "", nil); r.status != 403 {
			t.Errorf("private POST %s without token: %d, want 403", p, r.status)
		}
		if r := h.do("POST", p, h.robot, nil); r.status != 405 {
			t.Errorf("POST %s with token: %d, want 405", p, r.status)
		}
	}

	// Public: no token sees RUNNING environments without sessions.
	cfg := testPortal()
	cfg.Catalog = config.CatalogPublic
	removed := cfg
	removed.Workshops = append([]config.Workshop{{Name: "old", Upstreams: []string{"x-{session}"}, Capacity: intp(1), Reserved: intp(0)}}, cfg.Workshops...)
	h = newHarness(t, harnessOpts{cfg: cfg, before: &removed})
	h.request("demo-w02", url.Values{"user": {"alice"}})
	c, _ := h.catalog(t, "sessions=true&state=stopping&state=running", "")
	if got := envNames(c); !slices.Equal(got, []string{"demo-w02", "demo-w03"}) || c.Environments[0].Sessions != nil {
		t.Errorf("public catalog: %v sessions %v", got, c.Environments[0].Sessions)
	}
	if r := h.get("/workshops/catalog/workshops/", ""); r.status != 200 {
		t.Errorf("public workshops catalog: %d", r.status)
	}
	// A robot token still gets everything.
	c, _ = h.catalog(t, "sessions=true&state=stopping&state=running", h.robot)
	if got := envNames(c); len(got) != 3 || c.Environments[1].Sessions == nil {
		t.Errorf("public catalog with robot: %v", got)
	}
	// A bad token is refused even on a public catalog.
	if r := h.get("/workshops/catalog/environments/", "bogus"); r.status != 403 {
		t.Errorf("public catalog with a bad token: %d", r.status)
	}
	if r := h.do("POST", "/workshops/catalog/environments/", "", nil); r.status != 405 {
		t.Errorf("public POST without token: %d, want 405", r.status)
	}
}
