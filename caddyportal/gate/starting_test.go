package gate

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/caddyportal/caddyportal/caddyportal/config"
	"github.com/caddyportal/caddyportal/caddyportal/lifecycle"
	"github.com/caddyportal/caddyportal/caddyportal/routes"
	"github.com/caddyportal/caddyportal/caddyportal/sessions"
	"github.com/caddyportal/caddyportal/caddyportal/spawner"
	"github.com/caddyportal/caddyportal/caddyportal/spawner/spawnertest"
	"github.com/caddyportal/caddyportal/caddyportal/store/badgerstore"
	"github.com/caddyportal/caddyportal/caddyportal/store/storetest"
	"github.com/caddyportal/caddyportal/caddyportal/tokens"
)

// startingSetup runs a path-mode gate over a service whose workshop "lab"
// (environment sp-w01, capacity 2) uses sp, one start at a time.
func startingSetup(t *testing.T, sp spawner.Spawner) (*sessions.Service, *Gate, *httptest.Server) {
	t.Helper()
	st, clk := startingStore(t)
	svc := startingService(t, st, sp, sessions.Options{Replica: "r1", Now: clk.Now})
	g, srv := startingGate(t, svc)
	return svc, g, srv
}

// startingStore is an in-memory store on a clock of its own.
func startingStore(t *testing.T) (*badgerstore.Store, *storetest.Clock) {
	t.Helper()
	clk := storetest.NewClock(time.Now().UTC().Truncate(time.Second))
	st, err := badgerstore.Open(badgerstore.Options{InMemory: true, Now: clk.Now, SweepInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	return st, clk
}

// startingService is startingSetup's service on st, with opts (its
// clock, a replica, a network) besides.
func startingService(t *testing.T, st *badgerstore.Store, sp spawner.Spawner, opts sessions.Options) *sessions.Service {
	t.Helper()
	capacity, reserved := 2, 0
	cfg := config.Portal{Name: "sp", Robot: config.Credentials{Password: "pw"}, Client: config.Client{ID: "c", Secret: "s"},
		Workshops: []config.Workshop{{Name: "lab", Capacity: &capacity, Reserved: &reserved}}}
	opts.ReconcileInterval, opts.Spawners, opts.Starts = time.Hour, map[string]spawner.Spawner{"lab": sp}, 1
	svc, err := sessions.New(context.Background(), st, cfg, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(svc.Close)
	return svc
}

// startingGate is startingSetup's gate over svc, and a server running it.
func startingGate(t *testing.T, svc *sessions.Service) (*Gate, *httptest.Server) {
	t.Helper()
	signer, err := tokens.NewSigner(tokens.DeriveKey([]byte("0123456789abcdef0123456789abcdef"), "cookies"))
	if err != nil {
		t.Fatal(err)
	}
	// The starting page at once; TestGateHoldsStartingRequest sets a hold.
	g, err := New(Options{Service: svc, Cookies: NewCookies(signer, "portal-sp-"), Proxy: stdProxy{}, StartingHold: -1})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		m, _ := routes.Match(r)
		g.Handler(m).ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return g, srv
}

// activated requests a session of sp-w01 for user, activates it in a
// browser, and returns it with that browser's cookie.
func activated(t *testing.T, svc *sessions.Service, g *Gate, user string) (*sessions.Session, *http.Cookie) {
	t.Helper()
	res, err := svc.RequestSession(context.Background(), sessions.Request{Environment: "sp-w01", User: user})
	if err != nil {
		t.Fatal(err)
	}
	sess, err := svc.Activate(context.Background(), res.Session.Name, res.Token)
	if err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	if _, err := g.Activated(rec, httptest.NewRequest("GET", "/", nil), sess); err != nil {
		t.Fatal(err)
	}
	return sess, rec.Result().Cookies()[0]
}

// waitState waits until a session is in state want.
func waitState(t *testing.T, svc *sessions.Service, name string, want lifecycle.State) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		s, err := svc.Get(context.Background(), name)
		if err == nil && s.State == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never became %s", name, want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// sessionPage GETs a session's dashboard as the browser holding ck.
func sessionPage(t *testing.T, srv *httptest.Server, name string, ck *http.Cookie) (int, string) {
	t.Helper()
	code, body, err := getSessionPage(srv, name, ck)
	if err != nil {
		t.Fatal(err)
	}
	return code, body
}

// getSessionPage is sessionPage for goroutines other than the test's, which
// must not fail the test themselves.
func getSessionPage(srv *httptest.Server, name string, ck *http.Cookie) (int, string, error) {
	req, _ := http.NewRequest("GET", srv.URL+routes.SessionPath(name), nil)
	req.AddCookie(ck)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body), nil
}

// A browser activated on a session whose environment could not start is
// told so, why (the spawner's words) and how to try again, not that the
// session merely ended.
func TestGateStartFailedPage(t *testing.T) {
	sp := spawnertest.New()
	sp.Fail = errors.New("no such image")
	svc, g, srv := startingSetup(t, sp)
	sess, ck := activated(t, svc, g, "u1")
	close(sp.Release) // the start fails now
	waitState(t, svc, sess.Name, lifecycle.Stopped)
	if code, body := sessionPage(t, srv, sess.Name, ck); code != http.StatusGone || !strings.Contains(body, "could not be started: no such image. Start the workshop again") {
		t.Fatalf("failed start: %d %s", code, body)
	}
}

// A browser on a running session whose environment died is told that it
// stopped, why (the spawner's words), and how to go on, at once and once
// the session is STOPPED; while the backend cannot tell, the session goes
// on.
func TestGateEnvironmentLostPage(t *testing.T) {
	sp := spawnertest.New()
	close(sp.Release)
	svc, g, srv := startingSetup(t, sp)
	sess, ck := activated(t, svc, g, "u1")
	waitState(t, svc, sess.Name, lifecycle.Running)
	sp.Unsure(errors.New("cannot reach the engine"))
	if err := svc.Reconcile(context.Background()); err != nil {
		t.Fatal(err)
	}
	if code, body := sessionPage(t, srv, sess.Name, ck); code != http.StatusOK || body != "dashboard of "+sess.Name {
		t.Fatalf("dashboard while the backend cannot tell: %d %s", code, body)
	}
	sp.Unsure(nil)
	sp.Kill(sess.Name)
	if err := svc.Reconcile(context.Background()); err != nil {
		t.Fatal(err)
	}
	check := func(when string) {
		t.Helper()
		code, body := sessionPage(t, srv, sess.Name, ck)
		if code != http.StatusGone || !strings.Contains(body, "Workshop environment stopped") ||
			!strings.Contains(body, "stopped: the test dashboard of "+sess.Name+" was killed.") ||
			!strings.Contains(body, "Start the workshop again") {
			t.Fatalf("lost environment, %s: %d %s", when, code, body)
		}
	}
	check("as soon as it is found gone")
	waitState(t, svc, sess.Name, lifecycle.Stopped)
	check("once STOPPED")
}

// A replica in another network than the one that started an environment
// on a loopback address does not dial it: there the address is its own
// socket of that port, another learner's dashboard or nothing. It says so
// to the learner and the operator, and a replica in the owner's network
// serves the dashboard.
func TestGateRefusesAnotherNetworksLoopback(t *testing.T) {
	sp := spawnertest.New()
	close(sp.Release)
	st, clk := startingStore(t)
	owner := startingService(t, st, sp, sessions.Options{Replica: "a", Network: "boot-1/net:[1]", Now: clk.Now})
	ownerGate, ownerSrv := startingGate(t, owner)
	sess, ck := activated(t, owner, ownerGate, "u1")
	waitState(t, owner, sess.Name, lifecycle.Running)
	if code, body := sessionPage(t, ownerSrv, sess.Name, ck); code != http.StatusOK || body != "dashboard of "+sess.Name {
		t.Fatalf("through the owner: %d %s", code, body)
	}
	for network, want := range map[string]int{"boot-1/net:[1]": http.StatusOK, "boot-2/net:[1]": http.StatusBadGateway} {
		other := startingService(t, st, sp, sessions.Options{Replica: "b", Network: network, Now: clk.Now})
		_, srv := startingGate(t, other)
		code, body := sessionPage(t, srv, sess.Name, ck)
		if code != want {
			t.Fatalf("through a replica in network %s: %d %s, want %d", network, code, body, want)
		}
		if want == http.StatusBadGateway && (strings.Contains(body, "dashboard of") ||
			!strings.Contains(body, "runs on another server of this portal")) {
			t.Fatalf("through another network: %s", body)
		}
	}
}

// A browser activated on a session whose environment is still starting
// gets the starting page (queue position, then the start's step), never
// the dashboard, and reaches the dashboard once it is ready.
func TestGateStartingPage(t *testing.T) {
	sp := spawnertest.New()
	svc, g, srv := startingSetup(t, sp)
	// Two sessions, activated at once: the first starts, the second waits.
	var names []string
	var cookies []*http.Cookie
	for _, user := range []string{"u1", "u2"} {
		res, err := svc.RequestSession(context.Background(), sessions.Request{Environment: "sp-w01", User: user})
		if err != nil {
			t.Fatal(err)
		}
		sess, err := svc.Activate(context.Background(), res.Session.Name, res.Token)
		if err != nil || sess.State != lifecycle.Starting {
			t.Fatalf("Activate = %v, %v; want STARTING", sess, err)
		}
		rec := httptest.NewRecorder()
		if _, err := g.Activated(rec, httptest.NewRequest("GET", "/", nil), sess); err != nil {
			t.Fatal(err)
		}
		names = append(names, sess.Name)
		cookies = append(cookies, rec.Result().Cookies()[0])
	}
	do := func(i int, method string) (*http.Response, string) {
		t.Helper()
		req, _ := http.NewRequest(method, srv.URL+routes.SessionPath(names[i]), nil)
		req.AddCookie(cookies[i])
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		body, _ := io.ReadAll(res.Body)
		return res, string(body)
	}
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(time.Minute)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s", what)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	waitFor("the first start under way", func() bool {
		s, err := svc.Get(context.Background(), names[0])
		return err == nil && s.Progress != nil && s.Progress.Step == spawner.StepStarting
	})
	res, body := do(1, "GET")
	if res.StatusCode != 200 || !strings.Contains(body, "queued at position 1") || !strings.Contains(body, `http-equiv="refresh" content="2"`) ||
		strings.Contains(body, "<script") || res.Header.Get("Cache-Control") != "no-store" {
		t.Fatalf("queued session's page: %d %v\n%s", res.StatusCode, res.Header, body)
	}
	// No start has ended yet: no pace, so no estimate.
	if strings.Contains(body, "pace") {
		t.Fatalf("an estimate before any start ended:\n%s", body)
	}
	waitFor("the first page's step", func() bool {
		_, body = do(0, "GET")
		return strings.Contains(body, "Starting: creating the test dashboard")
	})
	if res, _ := do(0, "POST"); res.StatusCode != http.StatusServiceUnavailable || res.Header.Get("Retry-After") != "2" {
		t.Fatalf("POST while starting: %d %v", res.StatusCode, res.Header)
	}
	close(sp.Release)
	for i, name := range names {
		waitFor(name+" RUNNING", func() bool {
			s, err := svc.Get(context.Background(), name)
			return err == nil && s.State == lifecycle.Running
		})
		waitFor(name+"'s dashboard", func() bool {
			res, body := do(i, "GET")
			return res.StatusCode == 200 && body == "dashboard of "+name
		})
	}
}

// A browser that opens a session whose environment is starting is held
// until the environment is ready and then gets the dashboard in that same
// request; one whose start fails while it is held is told so at once; one
// whose start outlasts the hold gets the starting page. POST is never held.
func TestGateHoldsStartingRequest(t *testing.T) {
	sp := spawnertest.New()
	svc, g, srv := startingSetup(t, sp)
	g.o.StartingHold = time.Minute
	sess, ck := activated(t, svc, g, "u1")
	type answer struct {
		code int
		body string
	}
	// page GETs the session's dashboard in the background (a transport
	// error is answered as code 0, since only the test goroutine may fail
	// the test).
	page := func(srv *httptest.Server, name string, ck *http.Cookie) <-chan answer {
		got := make(chan answer, 1)
		go func() {
			code, body, err := getSessionPage(srv, name, ck)
			if err != nil {
				body = err.Error()
			}
			got <- answer{code, body}
		}()
		return got
	}
	got := page(srv, sess.Name, ck)
	// The request is held while the start waits; it must still be
	// waiting when the start is let go (a page served at once would be
	// the starting page).
	time.Sleep(200 * time.Millisecond)
	select {
	case a := <-got:
		t.Fatalf("answered before the environment was ready: %d %s", a.code, a.body)
	default:
	}
	close(sp.Release)
	if a := <-got; a.code != http.StatusOK || a.body != "dashboard of "+sess.Name {
		t.Fatalf("held request: %d %s", a.code, a.body)
	}

	// A start that outlasts the hold: the starting page.
	sp2 := spawnertest.New()
	svc2, g2, srv2 := startingSetup(t, sp2)
	g2.o.StartingHold = 50 * time.Millisecond
	sess2, ck2 := activated(t, svc2, g2, "u2")
	if code, body := sessionPage(t, srv2, sess2.Name, ck2); code != http.StatusOK || !strings.Contains(body, "Starting your workshop") {
		t.Fatalf("start outlasting the hold: %d %s", code, body)
	}
	req, _ := http.NewRequest("POST", srv2.URL+routes.SessionPath(sess2.Name), nil)
	req.AddCookie(ck2)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("POST while starting: %d", res.StatusCode)
	}

	// A start that fails while the request is held.
	g2.o.StartingHold = time.Minute
	sp2.Fail = errors.New("no such image")
	got = page(srv2, sess2.Name, ck2)
	time.Sleep(200 * time.Millisecond)
	close(sp2.Release)
	if a := <-got; a.code != http.StatusGone || !strings.Contains(a.body, "could not be started") {
		t.Fatalf("held request whose start failed: %d %s", a.code, a.body)
	}
}

// TestStartingPageWait: the queued page says roughly how long the wait is
// when the service can estimate it.
func TestStartingPageWait(t *testing.T) {
	var b strings.Builder
	data := struct {
		Refresh, Position   int
		Wait, Step, Message string
	}{Refresh: 2, Position: 12, Wait: sessions.AboutWait(21 * time.Second)}
	if err := startingTmpl.Execute(&b, data); err != nil {
		t.Fatal(err)
	}
	if want := "queued at position 12: it starts as soon as the ones before it have, in about 25 seconds at the pace of the last starts."; !strings.Contains(b.String(), want) {
		t.Fatalf("page lacks %q:\n%s", want, b.String())
	}
}
