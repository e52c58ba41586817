package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strings"
	"testing"

	"github.com/caddyportal/caddyportal/internal/e2etest"
	"github.com/caddyportal/caddyportal/internal/e2etest/engine"
)

// browserFor is a client with a cookie jar that follows redirects and
// reaches every host (the session hosts of host mode) at the portal.
func browserFor(p *portal) *http.Client {
	addr := fmt.Sprintf("127.0.0.1:%d", p.Port)
	var d net.Dialer
	tr := &http.Transport{DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
		return d.DialContext(ctx, network, addr)
	}}
	p.T.Cleanup(tr.CloseIdleConnections)
	jar, _ := cookiejar.New(nil)
	return &http.Client{Jar: jar, Transport: tr}
}

// TestDashboardLogsInThroughThePortal runs, per session, a dashboard that
// logs its learner in through the portal exactly as Educates' workshop
// gateway does (testdash's login.go follows access.ts request by request):
// the browser goes from the activation link through the gateway's
// handshake, the portal's authorization endpoint on the session's host,
// the code exchange and the authorize call, to the dashboard, whose
// countdown and Extend relay the session's routes with the token. The
// token is good for its own session's routes only, and not after the
// session ended; codes are single-use and bound to their client.
func TestDashboardLogsInThroughThePortal(t *testing.T) {
	// The dashboard reaches the portal, and the browser the session's
	// host, through the portal's url: the port is picked before the
	// Caddyfile is written.
	port := e2etest.FreePort(t)
	p := &portal{&e2etest.Portal{T: t, Dir: t.TempDir(), Site: "http://:%d", Port: port}}
	p.Start(fmt.Sprintf(`
		name demo
		url http://127.0.0.1:%d
		storage badger {dir}
		index https://hub.example.com/
		redirects https://hub.example.com
		robot robot@portal robot-pass
		client test-client test-secret
		replica `+e2eReplica+`
		dashboards host demo.test
		workshop lab-gw {
			capacity 2
			expires 60m
			spawner process {
				command %s 127.0.0.1:{port}
				ready /session/activity 60s
				stop_timeout 5s
				portal_login
			}
		}
`, port, engine.Testdash(t)))
	tok := p.Token(e2etest.RobotUser, e2etest.RobotPass)
	open := func(user string) (string, *http.Client, string) {
		m := p.Request(tok, "demo-w01", "user="+user+"&index_url=https://hub.example.com/").JSON(t)
		name := m["name"].(string)
		// A portal that stops leaves its environments running for the
		// next start to adopt: end the session, so its dashboard goes.
		t.Cleanup(func() { endSession(t, p, tok, name) })
		host := fmt.Sprintf("http://%s.demo.test:%d", name, p.Port)
		b := browserFor(p)
		waitFor(t, name+"'s dashboard through the gateway's login", func() bool {
			r := get(t, b, p.Base+m["url"].(string), nil)
			return r.Status == http.StatusOK && strings.Contains(string(r.Body), "Workshop dashboard "+name)
		})
		return name, b, host
	}
	a, browserA, hostA := open("alice")
	b, _, hostB := open("bob")

	var id struct{ Owner, User string }
	if r := get(t, browserA, hostA+"/session/identity", nil); json.Unmarshal(r.Body, &id) != nil || id.Owner != "alice" || id.User != "alice" {
		t.Fatalf("the dashboard's idea of its learner: %d %s", r.Status, r.Body)
	}
	var sch map[string]any
	if r := get(t, browserA, hostA+"/session/schedule", nil); json.Unmarshal(r.Body, &sch) != nil || sch["status"] != "RUNNING" || sch["expires"] == nil {
		t.Fatalf("the countdown's schedule through the token: %d %s", r.Status, r.Body)
	}
	if r := get(t, browserA, hostA+"/session/extend", nil); r.Status != http.StatusOK || !strings.Contains(string(r.Body), `"extended"`) {
		t.Fatalf("Extend through the token: %d %s", r.Status, r.Body)
	}

	// Now the same flow by hand, to hold the token: the client's secret is
	// in the dashboard's environment (the dashboard shows it to its own
	// learner here; a real one keeps it).
	var env map[string]string
	if r := get(t, browserA, hostA+"/env", nil); json.Unmarshal(r.Body, &env) != nil || env["PORTAL_CLIENT_ID"] != a || env["PORTAL_URL"] != hostA {
		t.Fatalf("the dashboard's login client: %d %.300s", r.Status, r.Body)
	}
	raw := hostClient(p, browserA.Jar)
	callback := hostA + "/oauth_callback"
	authorize := func(host, client, redirect string) resp {
		q := url.Values{"response_type": {"code"}, "client_id": {client}, "redirect_uri": {redirect}, "state": {"s1"}, "scope": {"user:info"}}
		return get(t, raw, host+"/oauth2/authorize/?"+q.Encode(), nil)
	}
	codeOf := func(r resp) string {
		loc, err := url.Parse(r.Header.Get("Location"))
		if r.Status != http.StatusFound || err != nil || loc.Query().Get("state") != "s1" || loc.Query().Get("code") == "" {
			t.Fatalf("authorize: %d to %q", r.Status, r.Header.Get("Location"))
		}
		return loc.Query().Get("code")
	}
	for what, r := range map[string]resp{
		"another session's client":   authorize(hostA, b, callback),
		"a foreign redirect URI":     authorize(hostA, a, "https://evil.example/oauth_callback"),
		"a browser without a cookie": get(t, hostClient(p, nil), hostA+"/oauth2/authorize/?client_id="+a+"&redirect_uri="+url.QueryEscape(callback)+"&response_type=code", nil),
		"the wrong session's host":   authorize(hostB, a, callback),
	} {
		if r.Status == http.StatusFound {
			t.Errorf("authorize with %s redirected to %q", what, r.Header.Get("Location"))
		}
	}
	exchange := func(code, secret string) resp {
		form := url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {callback},
			"client_id": {a}, "client_secret": {secret}}
		return p.Do(http.MethodPost, "/oauth2/token/", "", strings.NewReader(form.Encode()),
			map[string]string{"Content-Type": "application/x-www-form-urlencoded"})
	}
	if r := exchange(codeOf(authorize(hostA, a, callback)), "wrong"); r.Status != http.StatusUnauthorized {
		t.Errorf("a code with a wrong client secret: %d %s", r.Status, r.Body)
	}
	code := codeOf(authorize(hostA, a, callback))
	r := exchange(code, env["PORTAL_CLIENT_SECRET"])
	access, _ := r.JSON(t)["access_token"].(string)
	if r.Status != http.StatusOK || access == "" {
		t.Fatalf("the code exchange: %d %s", r.Status, r.Body)
	}
	if r := exchange(code, env["PORTAL_CLIENT_SECRET"]); r.Status != http.StatusBadRequest {
		t.Errorf("a code used twice: %d %s", r.Status, r.Body)
	}
	// The gateway refreshes its token with its own client; that client
	// cannot refresh anyone else's.
	refresh := func(token string) resp {
		form := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {token}, "scope": {"user:info"},
			"client_id": {a}, "client_secret": {env["PORTAL_CLIENT_SECRET"]}}
		return p.Do(http.MethodPost, "/oauth2/token/", "", strings.NewReader(form.Encode()),
			map[string]string{"Content-Type": "application/x-www-form-urlencoded"})
	}
	rr := refresh(r.JSON(t)["refresh_token"].(string))
	if rr.Status != http.StatusOK {
		t.Fatalf("the dashboard's refresh: %d %s", rr.Status, rr.Body)
	}
	access = rr.JSON(t)["access_token"].(string)
	robotGrant := p.Do(http.MethodPost, "/oauth2/token/", "", strings.NewReader(url.Values{"grant_type": {"password"},
		"username": {e2etest.RobotUser}, "password": {e2etest.RobotPass}, "client_id": {"test-client"}, "client_secret": {"test-secret"}}.Encode()),
		map[string]string{"Content-Type": "application/x-www-form-urlencoded"})
	if rt, _ := robotGrant.JSON(t)["refresh_token"].(string); refresh(rt).Status != http.StatusBadRequest {
		t.Error("a session's client refreshed the robot's token")
	}
	for path, want := range map[string]int{
		"/workshops/session/" + a + "/schedule/":                                                   http.StatusOK,
		"/workshops/session/" + a + "/authorize/":                                                  http.StatusOK,
		"/workshops/session/" + b + "/schedule/":                                                   http.StatusForbidden,
		"/workshops/session/" + a + "/terminate/":                                                  http.StatusForbidden,
		"/workshops/catalog/environments/":                                                         http.StatusForbidden,
		"/workshops/environment/demo-w01/request/?user=mallory&index_url=https://hub.example.com/": http.StatusForbidden,
	} {
		if r := p.Do(http.MethodGet, path, access, nil, nil); r.Status != want {
			t.Errorf("dashboard token on %s: %d, want %d (%s)", path, r.Status, want, r.Body)
		}
	}
	// The dashboard's analytics events go through with its token.
	ev := p.Do(http.MethodPost, "/workshops/session/"+a+"/event/", access, strings.NewReader(`{"event":{"name":"Workshop/View","data":{"page":"step-1"}}}`),
		map[string]string{"Content-Type": "application/json"})
	if ev.Status != http.StatusOK {
		t.Errorf("the dashboard's event: %d %s", ev.Status, ev.Body)
	}
	if r := p.Do(http.MethodPost, "/workshops/session/"+a+"/terminate/", tok, nil, nil); r.Status != http.StatusOK {
		t.Fatalf("terminate: %d %s", r.Status, r.Body)
	}
	waitFor(t, "the session to be STOPPED", func() bool {
		return p.Do(http.MethodGet, "/workshops/session/"+a+"/schedule/", tok, nil, nil).Status == http.StatusNotFound
	})
	if r := p.Do(http.MethodGet, "/workshops/session/"+a+"/schedule/", access, nil, nil); r.Status != http.StatusNotFound {
		t.Errorf("the dashboard token after its session ended: %d %s", r.Status, r.Body)
	}
}
