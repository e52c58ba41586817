package api_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/caddyportal/caddyportal/caddyportal/api"
	"github.com/caddyportal/caddyportal/caddyportal/redirects"
	"github.com/caddyportal/caddyportal/caddyportal/sessions"
)

// hookLog records the calls of the observability hooks.
type hookLog struct {
	mu     sync.Mutex
	tokens []string
	fails  []string
	errs   []error
}

func (l *hookLog) token(grant, result string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.tokens = append(l.tokens, grant+" "+result)
}

func (l *hookLog) failed(env string, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.fails = append(l.fails, env)
	l.errs = append(l.errs, err)
}

// withHooks serves a second API over the harness's service and issuer,
// with the hooks recording into a log, and points the harness at it.
func withHooks(t *testing.T, h *harness) *hookLog {
	t.Helper()
	cfg := h.svc.Config()
	pol, err := redirects.NewPolicy(append([]string{cfg.Index, cfg.URL}, cfg.Redirects...)...)
	if err != nil {
		t.Fatal(err)
	}
	log := &hookLog{}
	a := api.New(api.Options{Service: h.svc, Issuer: h.is, Redirects: pol, PortalUID: "uid-1",
		OnToken: log.token})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if hh := apiRoute(a, r); hh != nil {
			hh.ServeHTTP(w, r)
			return
		}
		http.NotFound(w, r)
	}))
	t.Cleanup(srv.Close)
	h.srv = srv
	return log
}

// TestTokenHook checks that every exit of the token endpoint reports its
// grant and result, and only once.
func TestTokenHook(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	log := withHooks(t, h)
	pw := url.Values{"grant_type": {"password"}, "username": {robotUser}, "password": {robotPass}}
	ok := h.form("/oauth2/token/", pw, true, clientID, clientSec)
	if ok.status != 200 {
		t.Fatalf("password grant: %d %s", ok.status, ok.body)
	}
	refresh := ok.json(t)["refresh_token"].(string)
	steps := []struct {
		v          url.Values
		id, secret string
		status     int
	}{
		{merge(pw, url.Values{"password": {"nope"}}), clientID, clientSec, 400},
		{pw, clientID, "nope", 401},
		{url.Values{"grant_type": {"refresh_token"}, "refresh_token": {"bogus"}}, "", "", 400},
		{url.Values{"grant_type": {"refresh_token"}, "refresh_token": {refresh}}, "", "", 200},
		{url.Values{"grant_type": {"client_credentials"}}, clientID, clientSec, 400},
		{url.Values{"grant_type": {"password"}, "username": {strings.Repeat("x", 70<<10)}}, clientID, clientSec, 400},
	}
	for _, s := range steps {
		if r := h.form("/oauth2/token/", s.v, s.id != "", s.id, s.secret); r.status != s.status {
			t.Fatalf("%v: status %d, want %d: %s", s.v.Get("grant_type"), r.status, s.status, r.body)
		}
	}
	want := []string{"password ok", "password invalid_grant", "password invalid_client",
		"refresh_token invalid_grant", "refresh_token ok", "client_credentials unsupported_grant_type",
		" invalid_request"}
	log.mu.Lock()
	defer log.mu.Unlock()
	if fmt.Sprint(log.tokens) != fmt.Sprint(want) {
		t.Fatalf("token hook calls\n got %q\nwant %q", log.tokens, want)
	}
}

// TestRequestFailedHook checks that refused session requests reach the
// hook with the environment and the service's error, and that successful
// and malformed requests do not.
func TestRequestFailedHook(t *testing.T) {
	log := &hookLog{}
	h := newHarness(t, harnessOpts{onRequestFailed: log.failed})
	tokens := withHooks(t, h)
	// demo-w02 holds two sessions and keeps no reserve.
	for i, user := range []string{"u1", "u2"} {
		r := h.request("demo-w02", url.Values{"user": {user}, "analytics_url": {"https://a.example.com/hook?n=" + user}})
		if r.Name == "" {
			t.Fatalf("request %d gave no session", i)
		}
		// The per-session webhook is stored with the session.
		sess, err := h.svc.Get(context.Background(), r.Name)
		if err != nil || sess.AnalyticsURL != "https://a.example.com/hook?n="+user {
			t.Fatalf("session %s: analytics URL not stored: %+v %v", r.Name, sess, err)
		}
	}
	bad := h.get("/workshops/environment/demo-w02/request/?timeout=x", h.robot)
	if bad.status != 400 {
		t.Fatalf("malformed request: %d %s", bad.status, bad.body)
	}
	for _, c := range []struct {
		path   string
		status int
	}{
		{"/workshops/environment/demo-w02/request/?user=u3", 503},
		{"/workshops/environment/nope/request/?user=u3", 403},
		{"/workshops/environment/k8s/request/?user=" + adminUser, 400},
		// Reacquire-only with nothing to reacquire.
		{"/workshops/environment/demo-w01/request/?user=u4&session=demo-w01-s009", 503},
	} {
		if r := h.get(c.path, h.robot); r.status != c.status {
			t.Fatalf("%s: %d %s, want %d", c.path, r.status, r.body, c.status)
		}
	}
	log.mu.Lock()
	defer log.mu.Unlock()
	wantEnv := []string{"demo-w02", "nope", "demo-w01", "demo-w01"}
	wantErr := []error{sessions.ErrNoSession, sessions.ErrNoEnvironment, sessions.ErrUserNotPermitted, sessions.ErrNoSession}
	if fmt.Sprint(log.fails) != fmt.Sprint(wantEnv) {
		t.Fatalf("failed-request hook environments %q, want %q", log.fails, wantEnv)
	}
	for i, err := range log.errs {
		if !errors.Is(err, wantErr[i]) {
			t.Errorf("call %d: error %v, want %v", i, err, wantErr[i])
		}
	}
	if len(tokens.tokens) != 0 {
		t.Errorf("token hook called by session requests: %q", log.tokens)
	}
}
