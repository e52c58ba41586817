package webui_test

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/caddyportal/caddyportal/caddyportal/api"
	"github.com/caddyportal/caddyportal/caddyportal/config"
	"github.com/caddyportal/caddyportal/caddyportal/gate"
	"github.com/caddyportal/caddyportal/caddyportal/oauth"
	"github.com/caddyportal/caddyportal/caddyportal/redirects"
	"github.com/caddyportal/caddyportal/caddyportal/routes"
	"github.com/caddyportal/caddyportal/caddyportal/sessions"
	"github.com/caddyportal/caddyportal/caddyportal/store"
	"github.com/caddyportal/caddyportal/caddyportal/store/badgerstore"
	"github.com/caddyportal/caddyportal/caddyportal/store/storetest"
	"github.com/caddyportal/caddyportal/caddyportal/tokens"
	"github.com/caddyportal/caddyportal/caddyportal/webui"
)

const (
	robotUser  = "robot@educates"
	robotPass  = "robot-pw"
	adminUser  = "admin"
	adminPass  = "admin-pw-0123"
	clientID   = "client-id"
	clientSec  = "client-secret"
	hubIndex   = "https://hub.example.com/workshops/"
	cookieName = "portal-demo-login"
	env1       = "demo-w01"
)

func intp(n int) *int { return &n }

// portalConfig is a one-workshop portal with the given registration mode
// and index (empty for none).
func portalConfig(registration, index string) config.Portal {
	return config.Portal{
		Name:         "demo",
		Index:        index,
		Redirects:    []string{"https://hub.example.com"},
		Registration: registration,
		Robot:        config.Credentials{Password: robotPass},
		Admin:        &config.Credentials{Username: adminUser, Password: adminPass},
		Client:       config.Client{ID: clientID, Secret: clientSec},
		Sessions:     config.SessionLimits{Registered: 2},
		Workshops: []config.Workshop{{Name: "lab-k8s", Title: "Kubernetes 101", Description: "Pods and services.",
			Difficulty: "beginner", Capacity: intp(3), Reserved: intp(1),
			Expires: config.Duration(60 * time.Minute), Overtime: config.Duration(10 * time.Minute),
			Deadline: config.Duration(90 * time.Minute), Upstreams: []string{"dash-{session}.svc:8080"}}},
	}
}

// portal is the REST API, the web pages and a stand-in for the gate's
// dashboard route behind one real HTTP server on 127.0.0.1.
type portal struct {
	t   *testing.T
	srv *httptest.Server
	svc *sessions.Service
	// st is the service's store, for another replica's service.
	st  store.Store
	clk *storetest.Clock
	ui  *webui.UI
	cfg config.Portal
	// failed records what the service reported to OnRequestFailed, as
	// "<env> <error>".
	failed *[]string
}

func newPortal(t *testing.T, cfg config.Portal) *portal {
	t.Helper()
	return newPortalWith(t, cfg, sessions.Options{})
}

// newPortalWith is newPortal with service options of the test's own (its
// spawners, its bound on starts); the clock, the stopping grace, the
// reconcile interval and the failure hook are the helper's.
func newPortalWith(t *testing.T, cfg config.Portal, opts sessions.Options) *portal {
	t.Helper()
	clk := storetest.NewClock(time.Now().UTC())
	st, err := badgerstore.Open(badgerstore.Options{InMemory: true, Now: clk.Now, SweepInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	var mu sync.Mutex
	failed := &[]string{}
	opts.Now, opts.StopGrace, opts.ReconcileInterval = clk.Now, 2*time.Second, time.Hour
	opts.OnRequestFailed = func(env string, err error) {
		mu.Lock()
		defer mu.Unlock()
		*failed = append(*failed, env+" "+err.Error())
	}
	svc, err := sessions.New(context.Background(), st, cfg, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(svc.Close)
	cfg = svc.Config()
	pol, err := redirects.NewPolicy(append([]string{cfg.Index, cfg.URL}, cfg.Redirects...)...)
	if err != nil {
		t.Fatal(err)
	}
	secret := make([]byte, 32)
	if _, err := rand.Read(secret); err != nil {
		t.Fatal(err)
	}
	signer, err := tokens.NewSigner(tokens.DeriveKey(secret, "cookies"))
	if err != nil {
		t.Fatal(err)
	}
	cookies := gate.NewCookies(signer, "portal-demo-")
	a := api.New(api.Options{Service: svc, Redirects: pol,
		Issuer: oauth.NewIssuer(sessions.WrapStore(st), cfg.Tokens.Access.D(), cfg.Tokens.Refresh.D(), clk.Now),
		// As the glue does in path mode: the gate's cookie, scoped to the
		// session's dashboard.
		OnActivate: func(w http.ResponseWriter, r *http.Request, sess *sessions.Session) (string, error) {
			entry := "/workshops/session/" + sess.Name + "/"
			http.SetCookie(w, cookies.Issue(sess.Name, sess.Owner, entry, r.TLS != nil, clk.Now()))
			return entry, nil
		}})
	ui, err := webui.New(webui.Options{Service: svc, Key: tokens.DeriveKey(secret, "webui"), CookiePrefix: "portal-demo-",
		Redirects: pol, PasswordCost: bcrypt.MinCost, PortalHost: gate.NewOrigins(cfg.URL).PortalHost})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if h := apiRoute(a, r); h != nil {
			h.ServeHTTP(w, r)
			return
		}
		if h := pageRoute(ui, r); h != nil {
			h.ServeHTTP(w, r)
			return
		}
		// The dashboard, admitted only with the gate cookie the
		// activation issued, as the gate does.
		if rest, ok := strings.CutPrefix(r.URL.Path, "/workshops/session/"); ok {
			name, _, _ := strings.Cut(rest, "/")
			user, err := cookies.Verify(r, name, clk.Now())
			if err != nil {
				http.Error(w, "not signed in to this session", http.StatusForbidden)
				return
			}
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			_, _ = io.WriteString(w, "<!doctype html><title>dashboard</title><h1 id=\"dashboard\">Workshop dashboard "+
				html.EscapeString(name)+"</h1><p id=\"user\">"+html.EscapeString(user)+"</p>")
			return
		}
		http.NotFound(w, r)
	}))
	t.Cleanup(srv.Close)
	return &portal{t: t, srv: srv, svc: svc, st: st, clk: clk, ui: ui, cfg: cfg, failed: failed}
}

// browser is an HTTP client with its own cookie jar that does not follow
// redirects, so each step can be checked.
type browser struct {
	p  *portal
	hc *http.Client
}

func (p *portal) browser() *browser {
	jar, err := cookiejar.New(nil)
	if err != nil {
		p.t.Fatal(err)
	}
	return &browser{p: p, hc: &http.Client{Jar: jar,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

type response struct {
	status int
	header http.Header
	body   string
}

func (r response) location() string { return r.header.Get("Location") }

func (b *browser) do(method, path string, form url.Values, hdr ...string) response {
	b.p.t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, b.p.srv.URL+path, body)
	if err != nil {
		b.p.t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := b.hc.Do(req)
	if err != nil {
		b.p.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		b.p.t.Fatal(err)
	}
	return response{resp.StatusCode, resp.Header, string(raw)}
}

func (b *browser) get(path string, hdr ...string) response { return b.do("GET", path, nil, hdr...) }

func (b *browser) post(path string, form url.Values, hdr ...string) response {
	return b.do("POST", path, form, hdr...)
}

var csrfRE = regexp.MustCompile(`name="csrf" value="([^"]*)"`)

// csrf returns the CSRF token of the page at path (the first form's).
func (b *browser) csrf(path string) string {
	b.p.t.Helper()
	r := b.get(path)
	if r.status != http.StatusOK {
		b.p.t.Fatalf("GET %s: %d", path, r.status)
	}
	m := csrfRE.FindStringSubmatch(r.body)
	if m == nil || m[1] == "" {
		b.p.t.Fatalf("GET %s: no CSRF token in %s", path, r.body)
	}
	return html.UnescapeString(m[1])
}

// login signs in through the form and checks where it lands.
func (b *browser) login(user, pass, wantLocation string) {
	b.p.t.Helper()
	tok := b.csrf("/accounts/login/")
	r := b.post("/accounts/login/", url.Values{"csrf": {tok}, "username": {user}, "password": {pass}})
	if r.status != http.StatusSeeOther || r.location() != wantLocation {
		b.p.t.Fatalf("login %s: %d to %q, want 303 to %q; body %s", user, r.status, r.location(), wantLocation, r.body)
	}
}

// signedUp is where a sign-up of email sends the browser, for a new
// address and an existing one alike: the login page, the address filled in.
func signedUp(email string) string {
	return "/accounts/login/?" + url.Values{"notice": {"signed-up"}, "username": {email}}.Encode()
}

// signup creates a learner account through the form and signs in with it.
func (b *browser) signup(email, pass string) {
	b.p.t.Helper()
	tok := b.csrf("/accounts/signup/")
	r := b.post("/accounts/signup/", url.Values{"csrf": {tok}, "email": {email}, "first_name": {"Ann"},
		"last_name": {"Lee"}, "password": {pass}, "password2": {pass}})
	if r.status != http.StatusSeeOther || r.location() != signedUp(email) {
		b.p.t.Fatalf("signup %s: %d to %q; body %s", email, r.status, r.location(), r.body)
	}
	b.login(email, pass, "/workshops/catalog/")
}

// robotToken gets a real OAuth access token for the robot.
func (p *portal) robotToken() string {
	p.t.Helper()
	form := url.Values{"grant_type": {"password"}, "username": {robotUser}, "password": {robotPass}}
	req, _ := http.NewRequest("POST", p.srv.URL+"/oauth2/token/", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(clientID, clientSec)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		p.t.Fatal(err)
	}
	defer resp.Body.Close()
	var m map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&m); err != nil || resp.StatusCode != 200 {
		p.t.Fatalf("token: %d %v %v", resp.StatusCode, m, err)
	}
	return m["access_token"].(string)
}

// restRequest requests a session of env1 through the REST API, as a front
// end would, and returns its name.
func (p *portal) restRequest(user string) string {
	p.t.Helper()
	return p.restRequestTo(env1, user)
}

// restRequestTo is restRequest for the environment env.
func (p *portal) restRequestTo(env, user string) string {
	p.t.Helper()
	q := url.Values{"user": {user}, "index_url": {hubIndex}, "email": {user + "@example.org"}}
	req, _ := http.NewRequest("POST", p.srv.URL+"/workshops/environment/"+env+"/request/?"+q.Encode(), nil)
	req.Header.Set("Authorization", "Bearer "+p.robotToken())
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		p.t.Fatal(err)
	}
	defer resp.Body.Close()
	var m map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&m); err != nil || resp.StatusCode != 200 {
		p.t.Fatalf("request: %d %v %v", resp.StatusCode, m, err)
	}
	return m["name"].(string)
}

// reserve is the name of a reserve of env that nobody holds.
func (p *portal) reserve(env string) string {
	p.t.Helper()
	live, err := p.svc.EnvironmentSessions(context.Background())
	if err != nil {
		p.t.Fatal(err)
	}
	for _, s := range live[env] {
		if s.Reserved() {
			return s.Name
		}
	}
	p.t.Fatalf("%s has no reserve", env)
	return ""
}

func (p *portal) session(name string) *sessions.Session {
	p.t.Helper()
	s, err := p.svc.Get(context.Background(), name)
	if err != nil {
		p.t.Fatalf("Get(%s): %v", name, err)
	}
	return s
}

// loginCookie returns the Set-Cookie of the login cookie in r, or nil.
func loginCookie(r response) *http.Cookie {
	for _, c := range (&http.Response{Header: r.header}).Cookies() {
		if c.Name == cookieName {
			return c
		}
	}
	return nil
}

// apiRoute is the REST API's handler for r through the portal's route
// table, or nil.
func apiRoute(a *api.API, r *http.Request) http.Handler {
	m, _ := routes.Match(r)
	return a.Handler(m)
}

// pageRoute is the pages' handler for r through the portal's route table,
// or nil.
func pageRoute(u *webui.UI, r *http.Request) http.Handler {
	m, _ := routes.Match(r)
	return u.Handler(m, r)
}
