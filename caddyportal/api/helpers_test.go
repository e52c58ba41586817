package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/caddyportal/caddyportal/caddyportal/api"
	"github.com/caddyportal/caddyportal/caddyportal/config"
	"github.com/caddyportal/caddyportal/caddyportal/oauth"
	"github.com/caddyportal/caddyportal/caddyportal/redirects"
	"github.com/caddyportal/caddyportal/caddyportal/routes"
	"github.com/caddyportal/caddyportal/caddyportal/sessions"
	"github.com/caddyportal/caddyportal/caddyportal/spawner"
	"github.com/caddyportal/caddyportal/caddyportal/store"
	"github.com/caddyportal/caddyportal/caddyportal/store/badgerstore"
	"github.com/caddyportal/caddyportal/caddyportal/store/etcdstore"
	"github.com/caddyportal/caddyportal/caddyportal/store/storetest"
)

// fakeClock is the conformance suite's settable clock, shared by store,
// service and API.
type fakeClock = storetest.Clock

const (
	robotUser   = "robot@educates"
	robotPass   = "robot-pw"
	adminUser   = "admin"
	adminPass   = "admin-pw"
	clientID    = "client-id"
	clientSec   = "client-secret"
	hubIndex    = "https://hub.example.com/workshops/"
	lmsOrigin   = "https://lms.example.org"
	stopGrace   = 2 * time.Second
	defaultWait = 60 * time.Second
)

func intp(n int) *int { return &n }

// testPortal has two workshops: demo-w01 (lab-k8s, alias k8s, 60m/120m,
// capacity 3, one reserve) and demo-w02 (lab-go, unlimited, capacity 2).
func testPortal() config.Portal {
	return config.Portal{
		Name:      "demo",
		Index:     hubIndex,
		Redirects: []string{lmsOrigin},
		Robot:     config.Credentials{Password: robotPass},
		Admin:     &config.Credentials{Username: adminUser, Password: adminPass},
		Client:    config.Client{ID: clientID, Secret: clientSec},
		Workshops: []config.Workshop{
			{Name: "lab-k8s", Alias: "k8s", Title: "Kubernetes 101", Description: "Learn k8s", Vendor: "acme",
				Authors: []string{"Ann"}, Difficulty: "beginner", Duration: "30m", Tags: []string{"k8s"},
				Labels: map[string]string{"level": "beginner", "topic": "k8s"}, Capacity: intp(3), Reserved: intp(1),
				Expires: config.Duration(60 * time.Minute), Deadline: config.Duration(120 * time.Minute),
				Upstreams: []string{"dash-{session}.svc:8080"}},
			{Name: "lab-go", Title: "Go", Labels: map[string]string{"level": "advanced"}, Capacity: intp(2),
				Reserved: intp(0), Upstreams: []string{"127.0.0.1:9001", "127.0.0.1:9002"}},
		},
	}
}

type harness struct {
	t     *testing.T
	srv   *httptest.Server
	svc   *sessions.Service
	is    *oauth.Issuer
	st    store.Store
	clk   *fakeClock
	t0    time.Time
	robot string // a robot access token
	hc    *http.Client
}

type harnessOpts struct {
	cfg config.Portal
	// before, if set, runs a first service with this configuration on the
	// store (to leave environments from an earlier configuration behind).
	before    *config.Portal
	stopGrace time.Duration
	// onRequestFailed is the service's hook for refused session requests.
	onRequestFailed func(env string, err error)
	// wrap, if set, wraps the store the service and the issuer use.
	wrap func(store.Store) store.Store
	// onEvent is the service's OnEvent.
	onEvent func(sessions.Event)
	// spawners and starts are the service's Spawners and Starts.
	spawners map[string]spawner.Spawner
	starts   int
}

func newHarness(t *testing.T, o harnessOpts) *harness {
	t.Helper()
	if o.cfg.Name == "" {
		o.cfg = testPortal()
	}
	if o.stopGrace == 0 {
		o.stopGrace = stopGrace
	}
	// Near the wall clock (Badger's own TTL follows it), with milliseconds.
	t0 := time.Now().UTC().Truncate(time.Second).Add(123 * time.Millisecond)
	clk := storetest.NewClock(t0)
	st := testStore(t, clk)
	if o.wrap != nil {
		st = o.wrap(st)
	}
	sopts := sessions.Options{Now: clk.Now, StopGrace: o.stopGrace, ReconcileInterval: time.Hour,
		OnRequestFailed: o.onRequestFailed, OnEvent: o.onEvent, Spawners: o.spawners, Starts: o.starts}
	if o.before != nil {
		prev, err := sessions.New(context.Background(), st, *o.before, sopts)
		if err != nil {
			t.Fatal(err)
		}
		prev.Close()
	}
	svc, err := sessions.New(context.Background(), st, o.cfg, sopts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(svc.Close)
	cfg := svc.Config()
	is := oauth.NewIssuer(sessions.WrapStore(st), cfg.Tokens.Access.D(), cfg.Tokens.Refresh.D(), clk.Now)
	pol, err := redirects.NewPolicy(append([]string{cfg.Index, cfg.URL}, cfg.Redirects...)...)
	if err != nil {
		t.Fatal(err)
	}
	a := api.New(api.Options{Service: svc, Issuer: is, Redirects: pol, PortalUID: "uid-1"})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := apiRoute(a, r)
		if h == nil {
			http.NotFound(w, r)
			return
		}
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	h := &harness{t: t, srv: srv, svc: svc, is: is, st: st, clk: clk, t0: t0,
		hc: &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
	h.robot = h.passwordToken(robotUser, robotPass)
	return h
}

type response struct {
	status int
	header http.Header
	body   []byte
}

func (r response) json(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.body, &m); err != nil {
		t.Fatalf("body %q is not a JSON object: %v", r.body, err)
	}
	return m
}

func (r response) errorText(t *testing.T) string {
	t.Helper()
	if ct := r.header.Get("Content-Type"); ct != "application/json" {
		t.Fatalf("status %d: content type %q, body %q", r.status, ct, r.body)
	}
	s, _ := r.json(t)["error"].(string)
	return s
}

// do sends a request. token "" sends no Authorization header.
func (h *harness) do(method, path, token string, body io.Reader, hdr ...string) response {
	h.t.Helper()
	req, err := http.NewRequest(method, h.srv.URL+path, body)
	if err != nil {
		h.t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := h.hc.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		h.t.Fatal(err)
	}
	return response{resp.StatusCode, resp.Header, b}
}

func (h *harness) get(path, token string) response { return h.do("GET", path, token, nil) }

// form posts a form to the token endpoint, with Basic client auth if basic.
func (h *harness) form(path string, v url.Values, basic bool, id, secret string) response {
	h.t.Helper()
	req, err := http.NewRequest("POST", h.srv.URL+path, strings.NewReader(v.Encode()))
	if err != nil {
		h.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if basic {
		req.SetBasicAuth(id, secret)
	}
	resp, err := h.hc.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return response{resp.StatusCode, resp.Header, b}
}

func (h *harness) passwordToken(user, pass string) string {
	h.t.Helper()
	r := h.form("/oauth2/token/", url.Values{"grant_type": {"password"}, "username": {user}, "password": {pass}}, true, clientID, clientSec)
	if r.status != 200 {
		h.t.Fatalf("password grant for %s: %d %s", user, r.status, r.body)
	}
	return r.json(h.t)["access_token"].(string)
}

// userToken issues an access token for an end user (as the gate would).
func (h *harness) userToken(user string) string {
	h.t.Helper()
	g, err := h.is.Issue(context.Background(), oauth.Principal{User: user, Group: sessions.GroupAnonymous})
	if err != nil {
		h.t.Fatal(err)
	}
	return g.AccessToken
}

type requested struct {
	Name, Session, User, URL, Namespace, Workshop, Environment string
	token, index                                               string
}

// request allocates a session through the API and returns the response.
func (h *harness) request(env string, q url.Values) requested {
	h.t.Helper()
	r := h.get("/workshops/environment/"+env+"/request/?"+q.Encode(), h.robot)
	if r.status != 200 {
		h.t.Fatalf("request %s %v: %d %s", env, q, r.status, r.body)
	}
	var out requested
	m := r.json(h.t)
	for k, dst := range map[string]*string{"name": &out.Name, "session": &out.Session, "user": &out.User, "url": &out.URL,
		"namespace": &out.Namespace, "workshop": &out.Workshop, "environment": &out.Environment} {
		*dst, _ = m[k].(string)
	}
	u, err := url.Parse(out.URL)
	if err != nil {
		h.t.Fatal(err)
	}
	out.token, out.index = u.Query().Get("token"), u.Query().Get("index_url")
	return out
}

// objectKeys returns the keys of the JSON object raw in document order.
func objectKeys(t *testing.T, raw []byte) []string {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(raw))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		t.Fatalf("not an object: %s", raw)
	}
	var keys []string
	for dec.More() {
		k, err := dec.Token()
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, k.(string))
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			t.Fatal(err)
		}
	}
	return keys
}

// field returns the raw JSON at a path of object keys and array indexes.
func field(t *testing.T, raw []byte, path ...any) []byte {
	t.Helper()
	for _, p := range path {
		switch p := p.(type) {
		case string:
			var m map[string]json.RawMessage
			if err := json.Unmarshal(raw, &m); err != nil {
				t.Fatalf("at %q: %v in %s", p, err, raw)
			}
			v, ok := m[p]
			if !ok {
				t.Fatalf("key %q missing in %s", p, raw)
			}
			raw = v
		case int:
			var a []json.RawMessage
			if err := json.Unmarshal(raw, &a); err != nil || p >= len(a) {
				t.Fatalf("index %d: %v in %s", p, err, raw)
			}
			raw = a[p]
		}
	}
	return raw
}

func wantKeys(t *testing.T, what string, raw []byte, want ...string) {
	t.Helper()
	if got := objectKeys(t, raw); !slices.Equal(got, want) {
		t.Errorf("%s keys = %v, want %v", what, got, want)
	}
}

// etcdEnv names the etcd endpoint the suite runs on instead of Badger; see
// TestSuiteOnEtcd.
const etcdEnv = "PORTAL_TEST_ETCD"

// testStore opens the store a test runs on: in-memory Badger, or a fresh
// key prefix on the etcd named by $PORTAL_TEST_ETCD.
func testStore(t *testing.T, clk *storetest.Clock) store.Store {
	t.Helper()
	var (
		st  store.Store
		err error
	)
	if ep := os.Getenv(etcdEnv); ep != "" {
		st, err = etcdstore.Open(context.Background(), etcdstore.Options{Endpoints: []string{ep},
			Prefix: fmt.Sprintf("/apitest/%s/%d/", t.Name(), time.Now().UnixNano()), Now: clk.Now, SweepInterval: -1})
	} else {
		st, err = badgerstore.Open(badgerstore.Options{InMemory: true, Now: clk.Now, SweepInterval: -1})
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	return st
}

// apiRoute is the REST API's handler for r through the portal's route
// table, or nil.
func apiRoute(a *api.API, r *http.Request) http.Handler {
	m, _ := routes.Match(r)
	return a.Handler(m)
}
