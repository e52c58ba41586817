package gate

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"testing"

	"github.com/caddyportal/caddyportal/caddyportal/routes"
	"github.com/caddyportal/caddyportal/caddyportal/sessions"
	"github.com/caddyportal/caddyportal/caddyportal/store/storetest"
	"github.com/caddyportal/caddyportal/caddyportal/tokens"
)

// stdProxy is a Proxy over the standard library's reverse proxy: the gate
// needs nothing of Caddy's.
type stdProxy struct{}

func (stdProxy) Forward(w http.ResponseWriter, r *http.Request, upstream string) error {
	var perr error
	rp := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(&url.URL{Scheme: "http", Host: upstream})
			pr.Out.Host = pr.In.Host
		},
	}
	rp.ErrorHandler = func(_ http.ResponseWriter, _ *http.Request, err error) {
		perr = &ProxyError{Status: http.StatusBadGateway, Err: err}
	}
	rp.ServeHTTP(w, r)
	return perr
}

// gateSetup returns a path-mode gate over a service whose activated
// session's dashboard is upstream, and a server running the gate as the
// portal routes it.
func gateSetup(t *testing.T, upstream string) (*Gate, *sessions.Service, string, *httptest.Server) {
	t.Helper()
	return gateSetupWith(t, upstream, Options{})
}

// gateSetupWith is gateSetup with more options.
func gateSetupWith(t *testing.T, upstream string, o Options) (*Gate, *sessions.Service, string, *httptest.Server) {
	t.Helper()
	g, svc, _, name, srv := gateSetupClock(t, upstream, o)
	return g, svc, name, srv
}

// gateSetupClock is gateSetupWith that also returns the service's clock.
func gateSetupClock(t *testing.T, upstream string, o Options) (*Gate, *sessions.Service, *storetest.Clock, string, *httptest.Server) {
	t.Helper()
	svc, clk, name := activitySetup(t)
	signer, err := tokens.NewSigner(tokens.DeriveKey([]byte("0123456789abcdef0123456789abcdef"), "cookies"))
	if err != nil {
		t.Fatal(err)
	}
	o.Service, o.Cookies, o.Proxy = svc, NewCookies(signer, "portal-act-"), upstreamOf{stdProxy{}, upstream}
	g, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		m, ok := routes.Match(r)
		if h := g.Handler(m); ok && h != nil {
			h.ServeHTTP(w, r)
			return
		}
		http.NotFound(w, r)
	}))
	t.Cleanup(srv.Close)
	return g, svc, clk, name, srv
}

// activate activates the session name of g's service as the gate's
// activation does and returns the dashboard cookie it sets, and the
// session.
func activate(t *testing.T, g *Gate, svc *sessions.Service, name string) (*http.Cookie, *sessions.Session) {
	t.Helper()
	sess, err := svc.Get(context.Background(), name)
	if err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	if _, err := g.Activated(rec, httptest.NewRequest("GET", "/", nil), sess); err != nil {
		t.Fatal(err)
	}
	return rec.Result().Cookies()[0], sess
}

// upstreamOf sends every request to one address: the test session's
// stored upstream is a pool address, the test's dashboard another.
type upstreamOf struct {
	p    Proxy
	addr string
}

func (u upstreamOf) Forward(w http.ResponseWriter, r *http.Request, _ string) error {
	return u.p.Forward(w, r, u.addr)
}

// TestGateAdmitsTheHolderOnly drives the gate with httptest alone: the
// session's browser reaches its dashboard with the prefix stripped and its
// identity claims replaced; a browser without the cookie, or after the
// session ended, does not.
func TestGateAdmitsTheHolderOnly(t *testing.T) {
	seen := make(chan *http.Request, 4)
	dash := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen <- r
		http.SetCookie(w, &http.Cookie{Name: "portal-act-other", Value: "x", Path: "/"})
		io.WriteString(w, "dashboard")
	}))
	t.Cleanup(dash.Close)
	g, svc, name, srv := gateSetup(t, strings.TrimPrefix(dash.URL, "http://"))
	sess, err := svc.Get(context.Background(), name)
	if err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	entry, err := g.Activated(rec, httptest.NewRequest("GET", "/", nil), sess)
	if err != nil || entry != routes.SessionPath(name) {
		t.Fatalf("Activated = %q, %v", entry, err)
	}
	cookie := rec.Result().Cookies()[0]

	get := func(path string, withCookie bool) *http.Response {
		req, _ := http.NewRequest("GET", srv.URL+path, nil)
		req.Header.Set("X-Remote-User", "mallory")
		if withCookie {
			req.AddCookie(cookie)
		}
		res, err := (&http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { res.Body.Close() })
		return res
	}
	res := get(routes.SessionPath(name)+"files/a%2Fb?x=1", true)
	body, _ := io.ReadAll(res.Body)
	if res.StatusCode != 200 || string(body) != "dashboard" {
		t.Fatalf("holder: %d %q", res.StatusCode, body)
	}
	up := <-seen
	if up.URL.EscapedPath() != "/files/a%2Fb" || up.URL.RawQuery != "x=1" {
		t.Errorf("dashboard got path %q query %q", up.URL.EscapedPath(), up.URL.RawQuery)
	}
	if got := up.Header.Get("X-Forwarded-Prefix"); got != routes.SessionPrefix+name {
		t.Errorf("X-Forwarded-Prefix = %q", got)
	}
	if up.Header.Get("X-Remote-User") == "mallory" || strings.Contains(up.Header.Get("Cookie"), "portal-act-") {
		t.Errorf("identity claims or the gate cookie reached the dashboard: %v", up.Header)
	}
	if sc := res.Header.Values("Set-Cookie"); len(sc) != 0 {
		t.Errorf("the dashboard set a portal cookie through the gate: %q", sc)
	}

	if res := get(routes.SessionPath(name), false); res.StatusCode != http.StatusForbidden {
		t.Errorf("no cookie: %d, want 403", res.StatusCode)
	}
	if res := get(routes.SessionPrefix+name, true); res.StatusCode != http.StatusFound ||
		res.Header.Get("Location") != routes.SessionPath(name) {
		t.Errorf("entry without slash: %d to %q", res.StatusCode, res.Header.Get("Location"))
	}
	if _, err := svc.Terminate(context.Background(), name, "deleted"); err != nil {
		t.Fatal(err)
	}
	if res := get(routes.SessionPath(name), true); res.StatusCode != http.StatusGone {
		t.Errorf("after the session ended: %d, want 410", res.StatusCode)
	}
	select {
	case r := <-seen:
		t.Errorf("a refused request reached the dashboard: %s", r.URL)
	default:
	}
}

// TestGateDashboardDown: a dashboard that refuses connections gets the
// browser a 502 page, not the proxy's error.
func TestGateDashboardDown(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	g, svc, name, srv := gateSetup(t, addr)
	sess, _ := svc.Get(context.Background(), name)
	rec := httptest.NewRecorder()
	if _, err := g.Activated(rec, httptest.NewRequest("GET", "/", nil), sess); err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest("GET", srv.URL+routes.SessionPath(name), nil)
	req.AddCookie(rec.Result().Cookies()[0])
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	if res.StatusCode != http.StatusBadGateway || !strings.Contains(string(body), "Dashboard not reachable") {
		t.Fatalf("dashboard down: %d %q", res.StatusCode, body)
	}
}

// TestErrorStatus: a Proxy's error stands for its own status, else 500.
func TestErrorStatus(t *testing.T) {
	if got := errorStatus(&ProxyError{Status: 504, Err: errors.New("slow")}); got != 504 {
		t.Errorf("ProxyError 504 -> %d", got)
	}
	if got := errorStatus(errors.New("boom")); got != 500 {
		t.Errorf("plain error -> %d", got)
	}
}

// TestGateKeepsPrefix: with KeepPrefix the dashboard gets the whole path
// (it was told its base URL) and no X-Forwarded-Prefix, and the cookies it
// scopes to the session's prefix pass while wider ones are dropped.
func TestGateKeepsPrefix(t *testing.T) {
	seen := make(chan *http.Request, 1)
	dash := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen <- r
		prefix := strings.Join(strings.SplitN(r.URL.Path, "/", 5)[:4], "/") + "/"
		http.SetCookie(w, &http.Cookie{Name: "_xsrf", Value: "1", Path: prefix})
		http.SetCookie(w, &http.Cookie{Name: "wide", Value: "1", Path: "/"})
		io.WriteString(w, "dashboard")
	}))
	t.Cleanup(dash.Close)
	g, svc, name, srv := gateSetupWith(t, strings.TrimPrefix(dash.URL, "http://"), Options{KeepPrefix: true})
	cookie, _ := activate(t, g, svc, name)
	req, _ := http.NewRequest("GET", srv.URL+routes.SessionPath(name)+"api/contents/a%2Fb?x=1", nil)
	req.AddCookie(cookie)
	req.Header.Set("X-Forwarded-Prefix", "/evil")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if res.StatusCode != 200 {
		t.Fatalf("status %d", res.StatusCode)
	}
	up := <-seen
	if want := routes.SessionPath(name) + "api/contents/a%2Fb"; up.URL.EscapedPath() != want || up.URL.RawQuery != "x=1" {
		t.Errorf("dashboard got %q ?%s, want %q", up.URL.EscapedPath(), up.URL.RawQuery, want)
	}
	if v, ok := up.Header["X-Forwarded-Prefix"]; ok {
		t.Errorf("X-Forwarded-Prefix %q reached a dashboard that has its prefix", v)
	}
	var names []string
	for _, c := range res.Cookies() {
		names = append(names, c.Name)
	}
	if len(names) != 1 || names[0] != "_xsrf" {
		t.Errorf("cookies through the gate: %v, want only the one scoped to the session", names)
	}
}

// TestEndedSessionNamedToOwnCatalog: a browser of an ended session goes to
// its index with Educates' notification; when that index is the portal's
// own catalog, the session is named too, so the catalog can tell its owner
// why it ended. A hub's index, even at the same path, gets no more than
// Educates gives.
func TestEndedSessionNamedToOwnCatalog(t *testing.T) {
	for _, tc := range []struct {
		index   string
		ownPage bool
	}{
		{"http://portal.test/workshops/catalog/", true},
		{"http://PORTAL.test:8443/workshops/catalog/?x=1", true},
		{"/workshops/catalog/", true},
		// The catalog's route answers without its trailing slash too.
		{"http://portal.test/workshops/catalog", true},
		{"https://hub.example.com/workshops/catalog/", false},
		{"//hub.example.com/workshops/catalog/", false},
		{"http://portal.test/hub/", false},
	} {
		g, svc, name, srv := gateSetupWith(t, "127.0.0.1:1", Options{Index: tc.index, Origins: NewOrigins("http://portal.test")})
		cookie, _ := activate(t, g, svc, name)
		if _, err := svc.Terminate(context.Background(), name, sessions.ReasonTerminated); err != nil {
			t.Fatal(err)
		}
		req, _ := http.NewRequest("GET", srv.URL+routes.SessionPath(name), nil)
		req.AddCookie(cookie)
		res, err := (&http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		loc, err := url.Parse(res.Header.Get("Location"))
		if res.StatusCode != http.StatusFound || err != nil {
			t.Fatalf("index %s: %d to %q", tc.index, res.StatusCode, res.Header.Get("Location"))
		}
		q := loc.Query()
		if q.Get("notification") != "session-deleted" || (q.Get("session") == name) != tc.ownPage || !tc.ownPage && q.Has("session") {
			t.Errorf("index %s: sent to %s", tc.index, loc)
		}
	}

	// In a frame (the session frame's dashboard, a front end's), the
	// index would open inside the frame: the page says why and links
	// there for the whole window.
	g, svc, name, srv := gateSetupWith(t, "127.0.0.1:1", Options{Index: "http://portal.test/workshops/catalog/", Origins: NewOrigins("http://portal.test")})
	cookie, _ := activate(t, g, svc, name)
	if _, err := svc.Terminate(context.Background(), name, sessions.ReasonTerminated); err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest("GET", srv.URL+routes.SessionPath(name)+"files/", nil)
	req.AddCookie(cookie)
	req.Header.Set("Sec-Fetch-Dest", "iframe")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	framed, _ := io.ReadAll(res.Body)
	res.Body.Close()
	link := `href="http://portal.test/workshops/catalog/?notification=session-deleted&amp;session=` + name + `" target="_top"`
	if res.StatusCode != http.StatusGone || !strings.Contains(string(framed), "it was ended by an instructor") || !strings.Contains(string(framed), link) {
		t.Errorf("in a frame: %d %s", res.StatusCode, framed)
	}

	// Without an index the gate's own page says why.
	g, svc, name, srv = gateSetupWith(t, "127.0.0.1:1", Options{})
	cookie, _ = activate(t, g, svc, name)
	if _, err := svc.Terminate(context.Background(), name, sessions.ReasonTerminated); err != nil {
		t.Fatal(err)
	}
	req, _ = http.NewRequest("GET", srv.URL+routes.SessionPath(name), nil)
	req.AddCookie(cookie)
	res, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusGone || !strings.Contains(string(body), "This workshop session has ended: it was ended by an instructor or the training site. Start the workshop again") {
		t.Errorf("no index: %d %s", res.StatusCode, body)
	}
}
