package gate

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"

	"github.com/caddyportal/caddyportal/caddyportal/routes"
)

// TestAskAnswersLiveSessionHostsOnly: Caddy's on-demand TLS `ask` gets 200
// for a live session's host and the portal's own host only (README's site
// serves both with one on-demand policy, and Caddy asks for the portal's
// host too: it was refused, so the portal got no certificate); every
// refusal, including a method other than GET or HEAD, is a JSON error like
// every other route under the portal's prefixes (it was a plain-text 404
// for any method).
func TestAskAnswersLiveSessionHostsOnly(t *testing.T) {
	g, svc, name, _ := gateSetupWith(t, "127.0.0.1:1", Options{Domain: "sessions.test", Origins: NewOrigins("https://portal.test:8443/")})
	ask := func(method, domain string) *httptest.ResponseRecorder {
		t.Helper()
		r := httptest.NewRequest(method, "http://portal.test"+routes.TLSAskPath+"?domain="+url.QueryEscape(domain), nil)
		m, ok := routes.Match(r)
		h := g.Handler(m)
		if !ok || h == nil {
			t.Fatalf("%s %s: no gate route", method, r.URL)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, r)
		return rec
	}
	refused := func(what string, rec *httptest.ResponseRecorder, status int) {
		t.Helper()
		var body map[string]any
		if rec.Code != status || rec.Header().Get("Content-Type") != "application/json" ||
			json.Unmarshal(rec.Body.Bytes(), &body) != nil || body["error"] == "" || body["error"] == nil {
			t.Errorf("%s: %d %q %s, want %d with a JSON error", what, rec.Code, rec.Header().Get("Content-Type"), rec.Body, status)
		}
	}
	host := name + ".sessions.test"
	for _, m := range []string{"GET", "HEAD"} {
		if rec := ask(m, host); rec.Code != http.StatusOK {
			t.Errorf("%s for the live session's host: %d %s", m, rec.Code, rec.Body)
		}
	}
	for _, portal := range []string{"portal.test", "Portal.Test."} {
		if rec := ask("GET", portal); rec.Code != http.StatusOK {
			t.Errorf("the portal's own host %q: %d %s", portal, rec.Code, rec.Body)
		}
	}
	refused("another host of the portal's parent domain", ask("GET", "other.test"), http.StatusNotFound)
	refused("the session domain itself", ask("GET", "sessions.test"), http.StatusNotFound)
	refused("another session's host", ask("GET", "demo-w01-s999.sessions.test"), http.StatusNotFound)
	refused("a host outside the session domain", ask("GET", "evil.example"), http.StatusNotFound)
	for _, m := range []string{"POST", "PUT", "DELETE", "OPTIONS"} {
		rec := ask(m, host)
		refused(m, rec, http.StatusMethodNotAllowed)
		if rec.Header().Get("Allow") != "GET, HEAD" {
			t.Errorf("%s: Allow %q", m, rec.Header().Get("Allow"))
		}
	}
	if _, err := svc.Terminate(context.Background(), name, ""); err != nil {
		t.Fatal(err)
	}
	refused("the host of an ended session", ask("GET", host), http.StatusNotFound)
}
