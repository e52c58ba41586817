package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/caddyportal/caddyportal/internal/e2etest"
	"github.com/caddyportal/caddyportal/internal/e2etest/echo"
)

// cookieHdr is a Cookie request header carrying c (and more, if given).
func cookieHdr(c *http.Cookie, more ...string) map[string]string {
	return map[string]string{"Cookie": strings.Join(append([]string{c.Name + "=" + c.Value}, more...), "; ")}
}

func sessionPath(name string) string { return "/workshops/session/" + name + "/" }

// wantPage checks a portal refusal page: status, HTML, title.
func wantPage(t *testing.T, r resp, status int, title string) {
	t.Helper()
	if r.Status != status {
		t.Fatalf("status %d, want %d: %s", r.Status, status, r.Body)
	}
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/html") {
		t.Fatalf("Content-Type %q, want an HTML page: %s", ct, r.Body)
	}
	if !strings.Contains(string(r.Body), "<title>"+title+"</title>") {
		t.Fatalf("page is not %q: %s", title, r.Body)
	}
}

// wantRedirect checks a 302 to exactly location.
func wantRedirect(t *testing.T, r resp, location string) {
	t.Helper()
	if r.Status != http.StatusFound || r.Header.Get("Location") != location {
		t.Fatalf("got %d Location %q, want 302 to %q: %s", r.Status, r.Header.Get("Location"), location, r.Body)
	}
}

// dialWS opens a WebSocket to rawURL with hdr, through client (nil: the
// default client).
func dialWS(t *testing.T, client *http.Client, rawURL string, hdr map[string]string) (*websocket.Conn, *http.Response, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	h := http.Header{}
	for k, v := range hdr {
		h.Set(k, v)
	}
	c, res, err := websocket.Dial(ctx, rawURL, &websocket.DialOptions{HTTPClient: client, HTTPHeader: h})
	if c != nil {
		c.SetReadLimit(1 << 20)
		t.Cleanup(func() { c.CloseNow() })
	}
	return c, res, err
}

// wantEcho sends msg on c and checks that the same text comes back.
func wantEcho(t *testing.T, c *websocket.Conn, msg string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.Write(ctx, websocket.MessageText, []byte(msg)); err != nil {
		t.Fatalf("websocket write: %v", err)
	}
	typ, got, err := c.Read(ctx)
	if err != nil {
		t.Fatalf("websocket read: %v", err)
	}
	if typ != websocket.MessageText || string(got) != msg {
		t.Fatalf("websocket echo %v %q, want %q", typ, got, msg)
	}
}

// gateBody is a portal with one workshop whose dashboards are the given
// upstream addresses. Some are made up (nothing listens) and must still be
// handed out, so health probes are off.
func gateBody(extra string, upstreams ...string) string {
	return `
		name demo
		storage badger {dir}
		index https://hub.example.com/
		redirects https://hub.example.com
		sessions maximum 10 registered 1 anonymous 2
		robot robot@portal robot-pass
		client test-client test-secret
		` + extra + `
		workshop lab {
			title "Gate lab"
			reserved 0
			expires 60m
			upstream ` + strings.Join(upstreams, " ") + `
			health_check off
		}
`
}

// TestGateDashboard walks the learner's path: request, activation, cookie,
// the dashboard HTML through the gate with the prefix stripped, and a
// WebSocket echo through the gate.
func TestGateDashboard(t *testing.T) {
	up := echo.Start(t, "alpha")
	p := startPortal(t, t.TempDir(), gateBody("", up.Addr))
	tok := p.Token(e2etest.RobotUser, e2etest.RobotPass)
	name, ck, loc := p.Activate(tok, "demo-w01", "alice")
	if loc != sessionPath(name) {
		t.Fatalf("activation sent the browser to %q, want %q", loc, sessionPath(name))
	}
	if ck == nil || !ck.HttpOnly || ck.SameSite != http.SameSiteLaxMode || ck.Path != sessionPath(name) || ck.Secure {
		t.Fatalf("dashboard cookie: %+v", ck)
	}

	// Without the trailing slash: redirected to the dashboard root.
	wantRedirect(t, p.Do("GET", "/workshops/session/"+name, "", nil, cookieHdr(ck)), sessionPath(name))

	// A browser with a cookie jar follows the activation and lands on the
	// dashboard page served by the upstream.
	jar, _ := cookiejar.New(nil)
	client := &http.Client{Jar: jar, Timeout: 10 * time.Second}
	r2 := p.Request(tok, "demo-w01", "user=alice&index_url=https://hub.example.com/alice").JSON(t)
	res, err := client.Get(p.Base + r2["url"].(string))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != 200 || res.Request.URL.Path != sessionPath(name) ||
		!strings.Contains(string(body), "<h1>Workshop dashboard alpha</h1>") {
		t.Fatalf("landing: %d at %s: %s", res.StatusCode, res.Request.URL, body)
	}

	// The path prefix is stripped for the upstream; the query is kept and
	// escapes survive.
	for _, c := range []struct{ path, upPath, upRaw, query string }{
		{"echo/deep/path?x=1&y=two", "/echo/deep/path", "", "x=1&y=two"},
		{"files/a%20b", "/files/a b", "", ""},
		{"files/a%2Fb?q=%2F", "/files/a/b", "/files/a%2Fb", "q=%2F"},
	} {
		r := p.Do("GET", sessionPath(name)+c.path, "", nil, cookieHdr(ck))
		if r.Status != 200 {
			t.Fatalf("%s: %d %s", c.path, r.Status, r.Body)
		}
		var s echo.Seen
		if err := json.Unmarshal(r.Body, &s); err != nil {
			t.Fatalf("%s: %v: %s", c.path, err, r.Body)
		}
		if s.Path != c.upPath || s.RawPath != c.upRaw || s.Query != c.query {
			t.Fatalf("%s: upstream saw path %q (raw %q) query %q, want %q (%q) %q", c.path, s.Path, s.RawPath, s.Query, c.upPath, c.upRaw, c.query)
		}
		if got := s.Header.Get("X-Forwarded-Prefix"); got != "/workshops/session/"+name {
			t.Fatalf("X-Forwarded-Prefix %q", got)
		}
	}

	// WebSocket echo through the gate, with the jar's cookie.
	wsBase := "ws" + strings.TrimPrefix(p.Base, "http")
	c, res, err := dialWS(t, &http.Client{Jar: jar}, wsBase+sessionPath(name)+"ws", nil)
	if err != nil {
		t.Fatalf("websocket through the gate: %v (%v)", err, res)
	}
	for _, msg := range []string{"hello", "second message", strings.Repeat("x", 70000)} {
		wantEcho(t, c, msg)
	}
	if got := up.LastUpgrade().Get("X-Portal-Session"); got != name {
		t.Fatalf("upstream WebSocket handshake had X-Portal-Session %q", got)
	}
	c.Close(websocket.StatusNormalClosure, "")

	// No cookie: the WebSocket handshake is refused with 403.
	hits := up.Hits.Load()
	if _, res, err := dialWS(t, nil, wsBase+sessionPath(name)+"ws", nil); err == nil || res == nil || res.StatusCode != 403 {
		t.Fatalf("websocket without a cookie: %v %v", err, res)
	}
	if up.Hits.Load() != hits {
		t.Fatal("a refused WebSocket reached the upstream")
	}
}

// TestGateIdentityHeaders: the upstream sees the gate's identity headers,
// never client-sent identity headers nor the portal's own cookies.
func TestGateIdentityHeaders(t *testing.T) {
	up := echo.Start(t, "alpha")
	p := startPortal(t, t.TempDir(), gateBody("", up.Addr))
	tok := p.Token(e2etest.RobotUser, e2etest.RobotPass)
	name, ck, _ := p.Activate(tok, "demo-w01", "alice")

	forged := map[string]string{
		"X-Portal-User":       "evil",
		"X-Portal-Session":    "evil-session",
		"X-Portal-Admin":      "true",
		"X-Forwarded-User":    "evil",
		"X-Forwarded-Email":   "evil@example.com",
		"X-Forwarded-Groups":  "admins",
		"Remote-User":         "evil",
		"X-Remote-User":       "evil",
		"X-Auth-Request-User": "evil",
		"X-Webauth-User":      "evil",
		"X-Forwarded-Prefix":  "/evil",
		"X-App":               "kept",
	}
	check := func(t *testing.T, h http.Header) {
		t.Helper()
		if h.Get("X-Portal-Session") != name || h.Get("X-Portal-User") != "alice" {
			t.Fatalf("gate identity: session %q user %q", h.Get("X-Portal-Session"), h.Get("X-Portal-User"))
		}
		if v := h.Values("X-Portal-User"); len(v) != 1 {
			t.Fatalf("X-Portal-User values %q", v)
		}
		for k := range forged {
			if strings.HasPrefix(k, "X-Portal-") || k == "X-App" || k == "X-Forwarded-Prefix" {
				continue
			}
			if v := h.Values(k); len(v) > 0 {
				t.Fatalf("client-sent %s reached the upstream: %q", k, v)
			}
		}
		if h.Get("X-Portal-Admin") != "" {
			t.Fatal("client-sent X-Portal-Admin reached the upstream")
		}
		if h.Get("X-App") != "kept" {
			t.Fatalf("an ordinary header was dropped: %v", h)
		}
		if got := strings.Join(h.Values("Cookie"), "; "); got != "app=1; theme=dark" {
			t.Fatalf("upstream Cookie %q, want only the application's cookies", got)
		}
		for _, v := range h.Values("Cookie") {
			if strings.Contains(v, "portal-demo-") || strings.Contains(v, ck.Value) {
				t.Fatalf("the portal cookie reached the upstream: %q", v)
			}
		}
	}

	hdr := cookieHdr(ck, "app=1", "theme=dark")
	for k, v := range forged {
		hdr[k] = v
	}
	t.Run("http", func(t *testing.T) {
		r := p.Do("GET", sessionPath(name)+"headers", "", nil, hdr)
		if r.Status != 200 {
			t.Fatalf("%d %s", r.Status, r.Body)
		}
		var s echo.Seen
		if err := json.Unmarshal(r.Body, &s); err != nil {
			t.Fatal(err)
		}
		check(t, s.Header)
		if s.Header.Get("X-Forwarded-Prefix") != "/workshops/session/"+name {
			t.Fatalf("X-Forwarded-Prefix %q", s.Header.Get("X-Forwarded-Prefix"))
		}
	})
	t.Run("websocket", func(t *testing.T) {
		c, res, err := dialWS(t, nil, "ws"+strings.TrimPrefix(p.Base, "http")+sessionPath(name)+"ws", hdr)
		if err != nil {
			t.Fatalf("%v %v", err, res)
		}
		wantEcho(t, c, "ping")
		check(t, up.LastUpgrade())
	})
}

// TestGateCrossSession: a cookie of session A never opens session B, in
// whatever way it is presented, and the refused request never reaches B's
// upstream.
func TestGateCrossSession(t *testing.T) {
	upA, upB := echo.Start(t, "alpha"), echo.Start(t, "beta")
	p := startPortal(t, t.TempDir(), gateBody("", upA.Addr, upB.Addr))
	tok := p.Token(e2etest.RobotUser, e2etest.RobotPass)
	a, ckA, _ := p.Activate(tok, "demo-w01", "alice")
	b, ckB, _ := p.Activate(tok, "demo-w01", "bob")
	if a == b {
		t.Fatalf("one session for two users: %s", a)
	}
	// Each session reaches its own dashboard.
	own := map[string]string{}
	for _, s := range []struct {
		name string
		ck   *http.Cookie
	}{{a, ckA}, {b, ckB}} {
		r := p.Do("GET", sessionPath(s.name)+"who", "", nil, cookieHdr(s.ck))
		var sn echo.Seen
		if r.Status != 200 || json.Unmarshal(r.Body, &sn) != nil {
			t.Fatalf("%s: %d %s", s.name, r.Status, r.Body)
		}
		own[s.name] = sn.Upstream
	}
	if own[a] == own[b] {
		t.Fatalf("both sessions proxied to %s", own[a])
	}
	upOfB := upA
	if own[b] == "beta" {
		upOfB = upB
	}

	wsBase := "ws" + strings.TrimPrefix(p.Base, "http")
	hits := upOfB.Hits.Load()
	cases := []struct {
		name string
		hdr  map[string]string
	}{
		{"A's cookie under B's cookie name", map[string]string{"Cookie": "portal-demo-" + b + "=" + ckA.Value}},
		{"A's cookie as is", cookieHdr(ckA)},
		{"no cookie", nil},
		{"B's cookie tampered", map[string]string{"Cookie": ckB.Name + "=" + ckB.Value[:len(ckB.Value)-2] + "xx"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			wantPage(t, p.Do("GET", sessionPath(b), "", nil, c.hdr), http.StatusForbidden, "Not signed in to this session")
			wantPage(t, p.Do("GET", sessionPath(b)+"who", "", nil, c.hdr), http.StatusForbidden, "Not signed in to this session")
			if _, res, err := dialWS(t, nil, wsBase+sessionPath(b)+"ws", c.hdr); err == nil || res == nil || res.StatusCode != 403 {
				t.Fatalf("websocket: %v %v", err, res)
			}
		})
	}
	if n := upOfB.Hits.Load() - hits; n != 0 {
		t.Fatalf("%d refused requests reached session B's upstream", n)
	}
	// B's own cookie still works after all that.
	if r := p.Do("GET", sessionPath(b), "", nil, cookieHdr(ckB)); r.Status != 200 {
		t.Fatalf("B with its own cookie: %d %s", r.Status, r.Body)
	}
}

// TestGateEndedSessions: unknown, terminated and expired sessions send the
// browser back to an index with a notification.
func TestGateEndedSessions(t *testing.T) {
	up := echo.Start(t, "alpha")
	short := echo.Start(t, "short")
	body := gateBody("", up.Addr) + `
		workshop lab-short {
			reserved 0
			expires 1s
			upstream ` + short.Addr + `
		}
`
	p := startPortal(t, t.TempDir(), body)
	tok := p.Token(e2etest.RobotUser, e2etest.RobotPass)

	t.Run("unknown session", func(t *testing.T) {
		// No browser ever held it: the answer of any session to a
		// browser without its cookie (TestGateEndedToNonHolders).
		wantPage(t, p.Do("GET", sessionPath("demo-w01-s999"), "", nil, nil), http.StatusForbidden, "Not signed in to this session")
		wantPage(t, p.Do("GET", sessionPath("nope")+"deep/path", "", nil, nil), http.StatusForbidden, "Not signed in to this session")
	})
	t.Run("terminated", func(t *testing.T) {
		name, ck, _ := p.Activate(tok, "demo-w01", "carol")
		if r := p.Do("GET", sessionPath(name), "", nil, cookieHdr(ck)); r.Status != 200 {
			t.Fatalf("before terminate: %d %s", r.Status, r.Body)
		}
		if r := p.Do("GET", "/workshops/session/"+name+"/terminate/", tok, nil, nil); r.Status != 200 {
			t.Fatalf("terminate: %d %s", r.Status, r.Body)
		}
		want := e2etest.HubOrigin + "/carol?notification=session-deleted"
		wantRedirect(t, p.Do("GET", sessionPath(name), "", nil, cookieHdr(ck)), want)
		wantRedirect(t, p.Do("GET", sessionPath(name)+"ws", "", nil, cookieHdr(ck)), want)
		// Without a cookie the browser learns nothing of the ended session.
		wantPage(t, p.Do("GET", sessionPath(name), "", nil, nil), http.StatusForbidden, "Not signed in to this session")
	})
	t.Run("expired", func(t *testing.T) {
		name, ck, _ := p.Activate(tok, "demo-w02", "dave")
		want := e2etest.HubOrigin + "/dave?notification=session-deleted"
		// Poll (bounded) for the expiry; what is asserted is the answer
		// after it, not when it came.
		var r resp
		for i := 0; i < 100; i++ {
			r = p.Do("GET", sessionPath(name), "", nil, cookieHdr(ck))
			// 499: a request in flight at the expiry instant, which the
			// gate ends with the session; the next one gets the answer.
			if r.Status != 200 && r.Status != 499 {
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
		wantRedirect(t, r, want)
	})
}

// TestGateDeleteLink: the delete link ends the signed-in browser's session
// and redirects with session-deleted; without the cookie it does nothing.
func TestGateDeleteLink(t *testing.T) {
	up := echo.Start(t, "alpha")
	p := startPortal(t, t.TempDir(), gateBody("", up.Addr, "127.0.0.1:1"))
	tok := p.Token(e2etest.RobotUser, e2etest.RobotPass)
	name, ck, _ := p.Activate(tok, "demo-w01", "erin")
	other, ckOther, _ := p.Activate(tok, "demo-w01", "frank")
	del := sessionPath(name) + "delete/"

	wantPage(t, p.Do("GET", del, "", nil, nil), http.StatusForbidden, "Not signed in to this session")
	wantPage(t, p.Do("GET", del, "", nil, cookieHdr(ckOther)), http.StatusForbidden, "Not signed in to this session")
	wantPage(t, p.Do("GET", del, "", nil, map[string]string{"Cookie": "portal-demo-" + name + "=" + ckOther.Value}), http.StatusForbidden, "Not signed in to this session")
	if s := p.Do("GET", "/workshops/session/"+name+"/schedule/", tok, nil, nil).JSON(t)["status"]; s != "RUNNING" {
		t.Fatalf("refused delete changed the session: %v", s)
	}

	wantRedirect(t, p.Do("GET", del, "", nil, cookieHdr(ck)), e2etest.HubOrigin+"/erin?notification=session-deleted")
	if s := p.Do("GET", "/workshops/session/"+name+"/schedule/", tok, nil, nil); s.Status == 200 && s.JSON(t)["status"] == "RUNNING" {
		t.Fatalf("session still running after delete: %s", s.Body)
	}
	wantRedirect(t, p.Do("GET", sessionPath(name), "", nil, cookieHdr(ck)), e2etest.HubOrigin+"/erin?notification=session-deleted")
	// The other session is untouched; the form without the slash works too.
	if s := p.Do("GET", "/workshops/session/"+other+"/schedule/", tok, nil, nil).JSON(t)["status"]; s != "RUNNING" {
		t.Fatalf("other session: %v", s)
	}
	wantRedirect(t, p.Do("GET", sessionPath(other)+"delete", "", nil, cookieHdr(ckOther)), e2etest.HubOrigin+"/frank?notification=session-deleted")
}

// TestGateUpstreamDown: a dashboard that stops answering gives the HTML 502
// page, and the session can still be ended normally.
func TestGateUpstreamDown(t *testing.T) {
	up := echo.Start(t, "alpha")
	p := startPortal(t, t.TempDir(), gateBody("", up.Addr))
	tok := p.Token(e2etest.RobotUser, e2etest.RobotPass)
	name, ck, _ := p.Activate(tok, "demo-w01", "gina")
	if r := p.Do("GET", sessionPath(name), "", nil, cookieHdr(ck)); r.Status != 200 {
		t.Fatalf("while up: %d %s", r.Status, r.Body)
	}
	up.Close()
	wantPage(t, p.Do("GET", sessionPath(name), "", nil, cookieHdr(ck)), http.StatusBadGateway, "Dashboard not reachable")
	if _, res, err := dialWS(t, nil, "ws"+strings.TrimPrefix(p.Base, "http")+sessionPath(name)+"ws", cookieHdr(ck)); err == nil || res == nil || res.StatusCode != http.StatusBadGateway {
		t.Fatalf("websocket to a stopped upstream: %v %v", err, res)
	}
	wantRedirect(t, p.Do("GET", sessionPath(name)+"delete/", "", nil, cookieHdr(ck)), e2etest.HubOrigin+"/gina?notification=session-deleted")
	if r := p.Do("GET", "/workshops/session/"+name+"/terminate/", tok, nil, nil); r.Status != 200 {
		// A second terminate while STOPPING is still 200 (TestErrorMatrix).
		t.Fatalf("terminate after delete: %d %s", r.Status, r.Body)
	}
}

// hostClient sends every request, whatever its host, to the test server.
func hostClient(p *portal, jar http.CookieJar) *http.Client {
	addr := fmt.Sprintf("127.0.0.1:%d", p.Port)
	var d net.Dialer
	tr := &http.Transport{
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return d.DialContext(ctx, network, addr)
		},
	}
	p.T.Cleanup(tr.CloseIdleConnections)
	return &http.Client{
		Jar:           jar,
		Transport:     tr,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

func get(t *testing.T, c *http.Client, rawURL string, hdr map[string]string) resp {
	t.Helper()
	req, err := http.NewRequest("GET", rawURL, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	res, err := c.Do(req.WithContext(ctx))
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return resp{Status: res.StatusCode, Header: res.Header, Body: b}
}

// TestGateHostMode: with `dashboards host`, activation hands the browser a
// one-time ticket for the session host, which becomes that host's cookie;
// tickets do not replay and do not cross sessions; the ask endpoint answers
// for live session hosts only.
func TestGateHostMode(t *testing.T) {
	upA, upB := echo.Start(t, "alpha"), echo.Start(t, "beta")
	// A third slot for the session started after B is terminated (B holds
	// its slot while STOPPING); that one is never proxied to.
	p := startPortalSites(t, t.TempDir(), gateBody("dashboards host demo.test", upA.Addr, upB.Addr, "127.0.0.1:1"), "http://:%d", "")
	tok := p.Token(e2etest.RobotUser, e2etest.RobotPass)
	raw := hostClient(p, nil)

	// requestSession requests and activates without following anything.
	requestSession := func(user string) (string, string) {
		m := p.Request(tok, "demo-w01", "user="+user+"&index_url=https://hub.example.com/"+user).JSON(t)
		name := m["name"].(string)
		act := p.Do("GET", m["url"].(string), "", nil, nil)
		prefix := fmt.Sprintf("http://%s.demo.test:%d/?portal_ticket=", name, p.Port)
		if act.Status != http.StatusFound || !strings.HasPrefix(act.Header.Get("Location"), prefix) {
			t.Fatalf("activation: %d %q, want a redirect to %s…", act.Status, act.Header.Get("Location"), prefix)
		}
		if sc := act.Header.Values("Set-Cookie"); len(sc) != 0 {
			t.Fatalf("host mode activation set a cookie on the portal host: %q", sc)
		}
		return name, act.Header.Get("Location")
	}
	a, ticketA := requestSession("alice")
	b, ticketB := requestSession("bob")
	hostA := fmt.Sprintf("http://%s.demo.test:%d", a, p.Port)
	hostB := fmt.Sprintf("http://%s.demo.test:%d", b, p.Port)

	t.Run("ticket of A on B's host is refused", func(t *testing.T) {
		u, _ := url.Parse(ticketA)
		wantPage(t, get(t, raw, hostB+"/?"+u.RawQuery, nil), http.StatusForbidden, "Link expired")
	})
	t.Run("ticket exchange", func(t *testing.T) {
		r := get(t, raw, ticketA, nil)
		wantRedirect(t, r, "/")
		cks := (&http.Response{Header: r.Header}).Cookies()
		if len(cks) != 1 || cks[0].Name != "portal-demo-"+a || cks[0].Path != "/" || !cks[0].HttpOnly ||
			cks[0].SameSite != http.SameSiteLaxMode || cks[0].Domain != "" {
			t.Fatalf("host cookie: %v", r.Header.Values("Set-Cookie"))
		}
		// Replaying the ticket is refused.
		wantPage(t, get(t, raw, ticketA, nil), http.StatusForbidden, "Link expired")
		// The cookie opens the dashboard on A's host and its WebSocket.
		page := get(t, raw, hostA+"/", cookieHdr(cks[0]))
		if page.Status != 200 || !strings.Contains(string(page.Body), "Workshop dashboard") {
			t.Fatalf("dashboard on the session host: %d %s", page.Status, page.Body)
		}
		var s echo.Seen
		hd := get(t, raw, hostA+"/some/path?q=1", cookieHdr(cks[0], "app=1"))
		if err := json.Unmarshal(hd.Body, &s); err != nil || s.Path != "/some/path" || s.Query != "q=1" ||
			s.Header.Get("X-Portal-Session") != a || s.Header.Get("X-Portal-User") != "alice" || s.Header.Get("Cookie") != "app=1" {
			t.Fatalf("upstream saw %+v (%v)", s, err)
		}
		c, res, err := dialWS(t, hostClient(p, nil), "ws"+strings.TrimPrefix(hostA, "http")+"/ws", cookieHdr(cks[0]))
		if err != nil {
			t.Fatalf("websocket on the session host: %v %v", err, res)
		}
		wantEcho(t, c, "hello host mode")
		// A's host cookie is not B's.
		wantPage(t, get(t, raw, hostB+"/", map[string]string{"Cookie": "portal-demo-" + b + "=" + cks[0].Value}), http.StatusForbidden, "Not signed in to this session")
		wantPage(t, get(t, raw, hostB+"/", cookieHdr(cks[0])), http.StatusForbidden, "Not signed in to this session")
		wantPage(t, get(t, raw, hostA+"/", nil), http.StatusForbidden, "Not signed in to this session")
	})
	t.Run("the hand-off redirect stays on the session host", func(t *testing.T) {
		// Whoever holds a ticket (their own) must not turn the session
		// host into an open redirect.
		for _, path := range []string{"//evil.example/", "///evil.example/x", "/%2F/evil.example/", "/%5Cevil.example/", "/./evil.example/"} {
			_, ticket := requestSession("alice") // a fresh ticket each time
			u := mustParse(t, ticket)
			r := get(t, raw, "http://"+u.Host+path+"?"+u.RawQuery+"&keep=1", nil)
			loc := r.Header.Get("Location")
			if r.Status != http.StatusFound || !strings.HasPrefix(loc, "/") || strings.HasPrefix(loc, "//") || strings.HasPrefix(loc, "/\\") ||
				strings.Contains(loc, "portal_ticket") || !strings.Contains(loc, "keep=1") {
				t.Errorf("ticket exchange on %q: %d Location %q", path, r.Status, loc)
			}
			if ref, err := url.Parse(loc); err != nil || ref.Host != "" {
				t.Errorf("ticket exchange on %q leaves the host: %q", path, loc)
			}
		}
	})
	t.Run("a browser follows the whole hand-off", func(t *testing.T) {
		jar, _ := cookiejar.New(nil)
		c := hostClient(p, jar)
		c.CheckRedirect = nil
		res, err := c.Get(ticketB)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != 200 || res.Request.URL.String() != hostB+"/" || !strings.Contains(string(body), "Workshop dashboard") {
			t.Fatalf("landing: %d at %s: %s", res.StatusCode, res.Request.URL, body)
		}
	})
	t.Run("ask endpoint", func(t *testing.T) {
		ask := func(domain string) int {
			return p.Do("GET", "/workshops/tls/ask?domain="+url.QueryEscape(domain), "", nil, nil).Status
		}
		for domain, want := range map[string]int{
			a + ".demo.test":                  200,
			strings.ToUpper(a) + ".demo.test": 200,
			b + ".demo.test":                  200,
			"demo-w01-s999.demo.test":         404,
			a + ".other.test":                 404,
			"demo.test":                       404,
			"x." + a + ".demo.test":           404,
			"":                                404,
		} {
			if got := ask(domain); got != want {
				t.Errorf("ask %q: %d, want %d", domain, got, want)
			}
		}
		if r := p.Do("GET", "/workshops/session/"+b+"/terminate/", tok, nil, nil); r.Status != 200 {
			t.Fatalf("terminate: %d", r.Status)
		}
		if got := ask(b + ".demo.test"); got != 404 {
			t.Fatalf("ask for an ended session: %d", got)
		}
	})
	t.Run("delete link on the session host", func(t *testing.T) {
		_, ticket := requestSession("carol")
		r := get(t, raw, ticket, nil)
		cks := (&http.Response{Header: r.Header}).Cookies()
		if len(cks) != 1 {
			t.Fatalf("ticket exchange: %d %v", r.Status, r.Header)
		}
		host := "http://" + mustParse(t, ticket).Host
		name := strings.TrimPrefix(cks[0].Name, "portal-demo-")
		wantPage(t, get(t, raw, host+"/workshops/session/"+name+"/delete/", nil), http.StatusForbidden, "Not signed in to this session")
		wantRedirect(t, get(t, raw, host+"/workshops/session/"+name+"/delete/", cookieHdr(cks[0])), e2etest.HubOrigin+"/carol?notification=session-deleted")
		wantRedirect(t, get(t, raw, host+"/", cookieHdr(cks[0])), e2etest.HubOrigin+"/carol?notification=session-deleted")
	})
}

func mustParse(t *testing.T, raw string) *url.URL {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// TestGateAnonymousCreate: with `registration anonymous` the create link
// takes a browser straight to a new session's dashboard.
func TestGateAnonymousCreate(t *testing.T) {
	up := echo.Start(t, "alpha")
	p := startPortal(t, t.TempDir(), gateBody("registration anonymous", up.Addr))
	jar, _ := cookiejar.New(nil)
	client := &http.Client{Jar: jar, Timeout: 10 * time.Second}
	res, err := client.Get(p.Base + "/workshops/environment/demo-w01/create/?index_url=" + url.QueryEscape(e2etest.HubOrigin+"/anon"))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != 200 || !strings.HasPrefix(res.Request.URL.Path, "/workshops/session/demo-w01-s") ||
		!strings.Contains(string(body), "Workshop dashboard alpha") {
		t.Fatalf("create: %d at %s: %s", res.StatusCode, res.Request.URL, body)
	}
	name := strings.Trim(strings.TrimPrefix(res.Request.URL.Path, "/workshops/session/"), "/")

	// The pool of one is now taken: the next browser is told so.
	wantRedirect(t, p.Do("GET", "/workshops/environment/demo-w01/create/?index_url="+url.QueryEscape(e2etest.HubOrigin+"/anon"), "", nil, nil),
		e2etest.HubOrigin+"/anon?notification=session-unavailable")
	// Unknown environment; a disallowed index_url falls back to the index.
	wantRedirect(t, p.Do("GET", "/workshops/environment/demo-w99/create/?index_url="+url.QueryEscape(e2etest.HubOrigin+"/anon"), "", nil, nil),
		e2etest.HubOrigin+"/anon?notification=workshop-invalid")
	wantRedirect(t, p.Do("GET", "/workshops/environment/demo-w99/create/?index_url=https://evil.example.com/", "", nil, nil),
		"https://hub.example.com/?notification=workshop-invalid")

	// The session remembers its index: deleting it goes back there.
	u, _ := url.Parse(p.Base)
	var ck *http.Cookie
	for _, c := range jar.Cookies(&url.URL{Scheme: "http", Host: u.Host, Path: sessionPath(name)}) {
		if c.Name == "portal-demo-"+name {
			ck = c
		}
	}
	if ck == nil {
		t.Fatal("no dashboard cookie in the browser after create")
	}
	wantRedirect(t, p.Do("GET", sessionPath(name)+"delete/", "", nil, cookieHdr(ck)), e2etest.HubOrigin+"/anon?notification=session-deleted")

	// Without anonymous registration the create link is refused.
	p.Load(gateBody("", up.Addr))
	wantPage(t, p.Do("GET", "/workshops/environment/demo-w01/create/", "", nil, nil), http.StatusForbidden, "Not available")
}

// TestGateSlotReuse: with one dashboard, a terminated session's slot goes to
// a new session only once the old one is STOPPED, and the new session gets
// the dashboard while the old cookie stays refused.
func TestGateSlotReuse(t *testing.T) {
	up := echo.Start(t, "alpha")
	p := startPortal(t, t.TempDir(), gateBody("", up.Addr))
	tok := p.Token(e2etest.RobotUser, e2etest.RobotPass)
	a, ckA, _ := p.Activate(tok, "demo-w01", "alice")
	if r := p.Request(tok, "demo-w01", "user=bob&index_url=https://hub.example.com/"); r.Status != 503 {
		t.Fatalf("second session with a pool of one: %d %s", r.Status, r.Body)
	}
	if r := p.Do("GET", "/workshops/session/"+a+"/terminate/", tok, nil, nil); r.Status != 200 {
		t.Fatalf("terminate: %d %s", r.Status, r.Body)
	}
	// STOPPING: the slot is still held.
	if s := p.Do("GET", "/workshops/session/"+a+"/schedule/", tok, nil, nil); s.Status != 200 || s.JSON(t)["status"] != "STOPPING" {
		t.Fatalf("after terminate: %d %s", s.Status, s.Body)
	}
	if r := p.Request(tok, "demo-w01", "user=bob&index_url=https://hub.example.com/"); r.Status != 503 {
		t.Fatalf("slot handed out while the old session is STOPPING: %d %s", r.Status, r.Body)
	}
	// Wait (bounded) for STOPPED: the schedule route then says not found.
	stopped := false
	for i := 0; i < 200 && !stopped; i++ {
		stopped = p.Do("GET", "/workshops/session/"+a+"/schedule/", tok, nil, nil).Status == 404
		if !stopped {
			time.Sleep(50 * time.Millisecond)
		}
	}
	if !stopped {
		t.Fatal("the terminated session never became STOPPED")
	}
	b, ckB, _ := p.Activate(tok, "demo-w01", "bob")
	if b == a {
		t.Fatalf("session name reused: %s", b)
	}
	r := p.Do("GET", sessionPath(b)+"who", "", nil, cookieHdr(ckB))
	var s echo.Seen
	if r.Status != 200 || json.Unmarshal(r.Body, &s) != nil || s.Header.Get("X-Portal-User") != "bob" || s.Upstream != "alpha" {
		t.Fatalf("new session on the reused slot: %d %s", r.Status, r.Body)
	}
	wantRedirect(t, p.Do("GET", sessionPath(a), "", nil, cookieHdr(ckA)), e2etest.HubOrigin+"/alice?notification=session-deleted")
	wantPage(t, p.Do("GET", sessionPath(b), "", nil, map[string]string{"Cookie": "portal-demo-" + b + "=" + ckA.Value}), http.StatusForbidden, "Not signed in to this session")
}

// TestGateReloadKeepsWebSocket: a config reload does not drop a WebSocket
// open through the gate, and the cookie keeps working after the reload.
func TestGateReloadKeepsWebSocket(t *testing.T) {
	up := echo.Start(t, "alpha")
	body := gateBody("", up.Addr, "127.0.0.1:1")
	p := startPortal(t, t.TempDir(), body)
	tok := p.Token(e2etest.RobotUser, e2etest.RobotPass)
	name, ck, _ := p.Activate(tok, "demo-w01", "alice")
	c, res, err := dialWS(t, nil, "ws"+strings.TrimPrefix(p.Base, "http")+sessionPath(name)+"ws", cookieHdr(ck))
	if err != nil {
		t.Fatalf("%v %v", err, res)
	}
	wantEcho(t, c, "before reload")

	p.Load(strings.Replace(body, `"Gate lab"`, `"Gate lab, reloaded"`, 1))
	cat := p.Do("GET", "/workshops/catalog/environments/", tok, nil, nil).JSON(t)
	if title := cat["environments"].([]any)[0].(map[string]any)["workshop"].(map[string]any)["title"]; title != "Gate lab, reloaded" {
		t.Fatalf("reload not applied: %v", title)
	}
	for i := 0; i < 3; i++ {
		wantEcho(t, c, fmt.Sprintf("after reload %d", i))
	}
	// New requests with the same cookie pass the new config's gate.
	if r := p.Do("GET", sessionPath(name), "", nil, cookieHdr(ck)); r.Status != 200 {
		t.Fatalf("cookie after reload: %d %s", r.Status, r.Body)
	}
	c2, res, err := dialWS(t, nil, "ws"+strings.TrimPrefix(p.Base, "http")+sessionPath(name)+"ws", cookieHdr(ck))
	if err != nil {
		t.Fatalf("new websocket after reload: %v %v", err, res)
	}
	wantEcho(t, c2, "new socket")
	wantEcho(t, c, "old socket still")
	if err := c.Close(websocket.StatusNormalClosure, ""); err != nil && !errors.Is(err, net.ErrClosed) {
		t.Fatalf("closing the old socket: %v", err)
	}
}

// TestGateAnonymousLearnerRemembered: as Educates' create view logs the
// anonymous user in, the first start link signs the browser in as its
// anonymous learner. The same link again resumes that session instead of
// making a new user with a new session each time (which let one browser
// take sessions past `sessions anonymous 1` and lost the first one); a
// second workshop is refused by the learner's cap; the catalog shows their
// session with End session, which frees the cap once it has stopped;
// another browser is another learner.
func TestGateAnonymousLearnerRemembered(t *testing.T) {
	a1, a2, b1 := echo.Start(t, "alpha-1"), echo.Start(t, "alpha-2"), echo.Start(t, "beta")
	p := startPortal(t, t.TempDir(), `
		name demo
		storage badger {dir}
		registration anonymous
		sessions maximum 10 anonymous 1
		robot robot@portal robot-pass
		client test-client test-secret
		workshop alpha {
			reserved 0
			upstream `+a1.Addr+` `+a2.Addr+`
			health_check off
		}
		workshop beta {
			reserved 0
			upstream `+b1.Addr+`
			health_check off
		}
`)
	jar, _ := cookiejar.New(nil)
	browser := &http.Client{Jar: jar, Timeout: 10 * time.Second}
	get := func(c *http.Client, path string) (*http.Response, string) {
		t.Helper()
		res, err := c.Get(p.Base + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		return res, string(body)
	}
	start := func(c *http.Client, env string) (int, string, string) {
		t.Helper()
		res, body := get(c, "/workshops/environment/"+env+"/create/")
		return res.StatusCode, strings.Trim(strings.TrimPrefix(res.Request.URL.Path, "/workshops/session/"), "/"), body
	}
	status, first, body := start(browser, "demo-w01")
	if status != 200 || !strings.HasPrefix(first, "demo-w01-s") || !strings.Contains(body, "Workshop dashboard alpha") {
		t.Fatalf("first start: %d at %s: %s", status, first, body)
	}
	if status, again, body := start(browser, "demo-w01"); status != 200 || again != first {
		t.Fatalf("the same start link again: %d at %s, want the session %s: %s", status, again, first, body)
	}
	if status, _, body := start(browser, "demo-w02"); status != http.StatusServiceUnavailable || !strings.Contains(body, "Session limit reached") {
		t.Fatalf("a second workshop past the cap: %d: %s", status, body)
	}

	// The catalog knows the learner: their session, with End session.
	_, cat := get(browser, "/workshops/catalog/")
	for _, want := range []string{`id="status-demo-w01">You have a session of this workshop.`,
		`id="status-demo-w02">You may have 1 session at once`, `name="end" value="` + first + `"`} {
		if !strings.Contains(cat, want) {
			t.Fatalf("catalog lacks %q:\n%s", want, cat)
		}
	}
	// Sent back with Educates' session-unavailable, a learner at the cap
	// reads that the cap is why.
	if _, c := get(browser, "/workshops/catalog/?notification=session-unavailable"); !strings.Contains(c, `id="notice">You already have as many workshop sessions`) {
		t.Fatalf("catalog with session-unavailable at the cap: %s", c)
	}
	csrf := regexp.MustCompile(`name="csrf" value="([^"]+)"`).FindStringSubmatch(cat)
	if csrf == nil {
		t.Fatalf("no CSRF token in the catalog: %s", cat)
	}
	res, err := browser.PostForm(p.Base+"/workshops/catalog/", url.Values{"csrf": {html.UnescapeString(csrf[1])}, "end": {first}})
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.Request.URL.RawQuery != "notification=session-deleted" {
		t.Fatalf("End session landed at %s (%d)", res.Request.URL, res.StatusCode)
	}
	// It counts against the cap until it has stopped (the stopping grace,
	// which the webui tests follow on a clock of their own).
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(100 * time.Millisecond) {
		_, cat := get(browser, "/workshops/catalog/")
		if strings.Contains(cat, `class="availability ready" id="status-demo-w02"`) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the ended session never stopped: %s", cat)
		}
	}
	if status, second, body := start(browser, "demo-w02"); status != 200 || !strings.HasPrefix(second, "demo-w02-s") ||
		!strings.Contains(body, "Workshop dashboard beta") {
		t.Fatalf("start after the first stopped: %d at %s: %s", status, second, body)
	}
	// Its workshop is now full, yet the learner's own card reads as theirs,
	// not in the colour of "full".
	if _, cat := get(browser, "/workshops/catalog/"); !strings.Contains(cat, `class="availability ready" id="status-demo-w02">You have a session`) {
		t.Fatalf("catalog with the learner's session in a full workshop: %s", cat)
	}

	// Another browser is another anonymous learner with a session of its
	// own, and its catalog shows nothing of the first browser's.
	jar2, _ := cookiejar.New(nil)
	other := &http.Client{Jar: jar2, Timeout: 10 * time.Second}
	if status, s, body := start(other, "demo-w01"); status != 200 || !strings.HasPrefix(s, "demo-w01-s") || s == first {
		t.Fatalf("another browser: %d at %s: %s", status, s, body)
	}
	if _, cat := get(other, "/workshops/catalog/"); strings.Contains(cat, `id="end-demo-w02"`) || !strings.Contains(cat, `id="end-demo-w01"`) {
		t.Fatalf("the other browser's catalog: %s", cat)
	}
}
