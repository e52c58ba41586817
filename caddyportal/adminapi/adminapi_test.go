package adminapi_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/caddyportal/caddyportal/caddyportal/adminapi"
	"github.com/caddyportal/caddyportal/caddyportal/config"
	"github.com/caddyportal/caddyportal/caddyportal/sessions"
	"github.com/caddyportal/caddyportal/caddyportal/store"
	"github.com/caddyportal/caddyportal/caddyportal/store/badgerstore"
	"github.com/caddyportal/caddyportal/caddyportal/store/storetest"
)

type portals map[string]*sessions.Service

func (p portals) Names() []string {
	var out []string
	for n := range p {
		out = append(out, n)
	}
	return out
}

func (p portals) Service(name string) *sessions.Service { return p[name] }

func intp(n int) *int { return &n }

// setup runs a portal "demo" with two workshops on an in-memory store and
// serves the admin routes under /portal/.
func setup(t *testing.T) (*httptest.Server, *sessions.Service, *storetest.Clock) {
	t.Helper()
	clk := storetest.NewClock(time.Now().UTC().Truncate(time.Second))
	st := memStore(t, clk)
	cfg := config.Portal{Name: "demo", Robot: config.Credentials{Password: "pw"},
		Client: config.Client{ID: "c", Secret: "s"},
		Workshops: []config.Workshop{
			{Name: "lab-a", Capacity: intp(3), Reserved: intp(1), Upstreams: []string{"a-{session}:80"},
				Expires: config.Duration(30 * time.Minute), Overtime: config.Duration(10 * time.Minute),
				Deadline: config.Duration(time.Hour)},
			{Name: "lab-b", Capacity: intp(2), Reserved: intp(0), Upstreams: []string{"b-{session}:80"}},
		}}
	svc, err := sessions.New(context.Background(), st, cfg, sessions.Options{Now: clk.Now, ReconcileInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(svc.Close)
	srv := httptest.NewServer(adminapi.New("/portal", portals{"demo": svc}))
	t.Cleanup(srv.Close)
	return srv, svc, clk
}

// memStore opens an in-memory Badger store on clk.
func memStore(t *testing.T, clk *storetest.Clock) store.Store {
	t.Helper()
	st, err := badgerstore.Open(badgerstore.Options{InMemory: true, Now: clk.Now, SweepInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	return st
}

func call(t *testing.T, srv *httptest.Server, method, path string, want int, v any) {
	t.Helper()
	req, _ := http.NewRequest(method, srv.URL+path, nil)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	if res.StatusCode != want {
		t.Fatalf("%s %s: %d %s, want %d", method, path, res.StatusCode, body, want)
	}
	if ct := res.Header.Get("Content-Type"); ct != "application/json" {
		t.Fatalf("%s %s: Content-Type %q", method, path, ct)
	}
	if err := json.Unmarshal(body, v); err != nil {
		t.Fatalf("%s %s: %v in %s", method, path, err, body)
	}
}

func request(t *testing.T, svc *sessions.Service, env, user string) sessions.Result {
	t.Helper()
	res, err := svc.RequestSession(context.Background(), sessions.Request{Environment: env, User: user})
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func TestListing(t *testing.T) {
	srv, svc, _ := setup(t)
	a := request(t, svc, "demo-w01", "alice")
	b := request(t, svc, "demo-w02", "bob")
	if _, err := svc.Activate(context.Background(), a.Session.Name, a.Token); err != nil {
		t.Fatal(err)
	}

	var names struct{ Portals []string }
	call(t, srv, "GET", "/portal/", 200, &names)
	if len(names.Portals) != 1 || names.Portals[0] != "demo" {
		t.Fatalf("portals %v", names.Portals)
	}

	var envs []adminapi.EnvironmentJSON
	call(t, srv, "GET", "/portal/demo/environments/", 200, &envs)
	if len(envs) != 2 {
		t.Fatalf("environments %+v", envs)
	}
	// lab-a: alice holds one session and the reserve is topped up again.
	if e := envs[0]; e.Name != "demo-w01" || e.Workshop != "lab-a" || e.Capacity != 3 || e.Allocated != 1 || e.Available != 1 {
		t.Fatalf("lab-a environment %+v", e)
	}
	if e := envs[1]; e.Name != "demo-w02" || e.Capacity != 2 || e.Allocated != 1 || e.Available != 0 {
		t.Fatalf("lab-b environment %+v", e)
	}

	var all []adminapi.SessionJSON
	call(t, srv, "GET", "/portal/demo/sessions/", 200, &all)
	owned := map[string]string{}
	for _, s := range all {
		owned[s.Name] = s.Owner
	}
	if owned[a.Session.Name] != "alice" || owned[b.Session.Name] != "bob" || len(all) != 3 {
		t.Fatalf("sessions %+v", all)
	}

	var running []adminapi.SessionJSON
	call(t, srv, "GET", "/portal/demo/sessions/?state=running", 200, &running)
	if len(running) != 1 || running[0].Name != a.Session.Name || time.Time(running[0].Started).IsZero() {
		t.Fatalf("running sessions %+v", running)
	}
	// A misspelt state is a 400 that names the states, not an empty list.
	var refused map[string]string
	call(t, srv, "GET", "/portal/demo/sessions/?state=runing", 400, &refused)
	if !strings.Contains(refused["error"], `"runing"`) || !strings.Contains(refused["error"], "running") {
		t.Fatalf("unknown state: %v", refused)
	}
	var bobs []adminapi.SessionJSON
	call(t, srv, "GET", "/portal/demo/sessions/?user=bob&environment=demo-w02", 200, &bobs)
	if len(bobs) != 1 || bobs[0].Name != b.Session.Name || bobs[0].Upstream != "b-"+b.Session.Name+":80" {
		t.Fatalf("bob's sessions %+v", bobs)
	}

	var one adminapi.SessionJSON
	call(t, srv, "GET", "/portal/demo/sessions/"+a.Session.Name+"/", 200, &one)
	if one.Owner != "alice" || one.Environment != "demo-w01" || one.Workshop != "lab-a" || one.State != "RUNNING" || one.OwnerEmail != "" {
		t.Fatalf("session detail %+v", one)
	}
}

// TestSessionsByEmail: a learner who signed up on the web is known to an
// operator by email address: the list names it and filters by it in any
// case, as the admin pages do; a front end's id still filters.
func TestSessionsByEmail(t *testing.T) {
	srv, svc, _ := setup(t)
	ann, err := svc.CreateUser(context.Background(), sessions.User{Email: "ann@example.com", Group: sessions.GroupRegistered})
	if err != nil {
		t.Fatal(err)
	}
	mine := request(t, svc, "demo-w02", ann.ID)
	request(t, svc, "demo-w02", "bob")
	for _, who := range []string{"ann@example.com", "ANN@Example.COM", ann.ID} {
		var got []adminapi.SessionJSON
		call(t, srv, "GET", "/portal/demo/sessions/?user="+url.QueryEscape(who), 200, &got)
		if len(got) != 1 || got[0].Name != mine.Session.Name || got[0].Owner != ann.ID || got[0].OwnerEmail != "ann@example.com" {
			t.Fatalf("user=%s: %+v", who, got)
		}
	}
	var none []adminapi.SessionJSON
	call(t, srv, "GET", "/portal/demo/sessions/?user=nobody@example.com", 200, &none)
	if len(none) != 0 {
		t.Fatalf("an unknown address matched %+v", none)
	}
	var one adminapi.SessionJSON
	call(t, srv, "GET", "/portal/demo/sessions/"+mine.Session.Name+"/", 200, &one)
	if one.OwnerEmail != "ann@example.com" {
		t.Fatalf("session detail %+v", one)
	}
}

func TestActions(t *testing.T) {
	srv, svc, clk := setup(t)
	a := request(t, svc, "demo-w01", "alice")
	if _, err := svc.Activate(context.Background(), a.Session.Name, a.Token); err != nil {
		t.Fatal(err)
	}
	before, _ := svc.Get(context.Background(), a.Session.Name)

	// Extension is allowed once the session is within its overtime window.
	clk.Advance(25 * time.Minute)
	var ext adminapi.SessionJSON
	call(t, srv, "POST", "/portal/demo/sessions/"+a.Session.Name+"/extend/", 200, &ext)
	if ext.Extended == nil || !*ext.Extended || !time.Time(ext.Expires).After(before.Expires) {
		t.Fatalf("extend answered %+v (expires before %v)", ext, before.Expires)
	}

	var term adminapi.SessionJSON
	call(t, srv, "POST", "/portal/demo/sessions/"+a.Session.Name+"/terminate/", 200, &term)
	if term.State != "STOPPING" || term.Reason != "terminated" {
		t.Fatalf("terminate answered %+v", term)
	}
	got, _ := svc.Get(context.Background(), a.Session.Name)
	if got.State != "STOPPING" {
		t.Fatalf("stored state after terminate: %s", got.State)
	}

	clk.Advance(time.Minute)
	var e map[string]string
	call(t, srv, "POST", "/portal/demo/sessions/"+a.Session.Name+"/terminate/", 409, &e)
	if !strings.Contains(e["error"], "already ended") {
		t.Fatalf("terminating a stopped session: %v", e)
	}
}

func TestErrors(t *testing.T) {
	srv, svc, _ := setup(t)
	all, _ := svc.EnvironmentSessions(context.Background())
	reserve := all["demo-w01"][0].Name
	for _, c := range []struct {
		method, path string
		status       int
		msg          string
	}{
		{"GET", "/portal/nope/sessions/", 404, "no running portal"},
		{"GET", "/portal/demo/sessions/demo-w01-s999/", 404, "not found"},
		{"POST", "/portal/demo/sessions/demo-w01-s999/terminate/", 404, "not found"},
		{"GET", "/portal/demo/sessions/?environment=nope", 404, "no environment"},
		{"GET", "/portal/demo/sessions/" + reserve + "/terminate/", 405, "use POST"},
		{"POST", "/portal/demo/sessions/", 405, "use GET"},
		{"POST", "/portal/demo/sessions/" + reserve + "/terminate/", 409, "not currently in use"},
		{"POST", "/portal/demo/sessions/" + reserve + "/extend/", 409, "not currently in use"},
		{"GET", "/portal/demo/whatever/", 404, "unknown portal admin route"},
		{"GET", "/portal/demo/sessions/x/y/z/", 404, "unknown portal admin route"},
	} {
		var e map[string]string
		call(t, srv, c.method, c.path, c.status, &e)
		if !strings.Contains(e["error"], c.msg) {
			t.Errorf("%s %s: error %q, want it to mention %q", c.method, c.path, e["error"], c.msg)
		}
	}
}
