package e2e

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddyportal/caddyportal/internal/e2etest"
	"github.com/caddyportal/caddyportal/internal/e2etest/echo"
)

// recorder is a real upstream that reads each request's body to the end
// and keeps the headers and trailers it received.
type recorder struct {
	addr    string
	mu      sync.Mutex
	header  http.Header
	trailer http.Header
	body    string
}

func startRecorder(t *testing.T) *recorder {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	rec := &recorder{addr: l.Addr().String()}
	srv := &http.Server{ReadHeaderTimeout: 10 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		rec.mu.Lock()
		rec.header, rec.trailer, rec.body = r.Header.Clone(), r.Trailer.Clone(), string(b)
		rec.mu.Unlock()
		fmt.Fprint(w, "recorded")
	})}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { _ = srv.Close() })
	return rec
}

func (rec *recorder) last() (http.Header, http.Header, string) {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	return rec.header, rec.trailer, rec.body
}

// rawRequest sends raw (an HTTP/1.1 request, CRLFs included) to the portal
// over a fresh connection and returns the response status.
func rawRequest(t *testing.T, p *portal, raw string) int {
	t.Helper()
	c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", p.Port), 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, raw); err != nil {
		t.Fatal(err)
	}
	res, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("reading the response: %v", err)
	}
	_, _ = io.Copy(io.Discard, res.Body)
	res.Body.Close()
	return res.StatusCode
}

// TestGateIdentityFamiliesAndTrailers: whole families of identity headers
// (Remote-*, X-Remote-*, Impersonate-*, X-Auth-Request-*, X-Forwarded-*
// other than For/Proto/Host, ...) never reach the dashboard, and neither do
// identity claims sent as chunked request trailers, declared or not. A
// harmless trailer still arrives, so the test sees trailers at all.
func TestGateIdentityFamiliesAndTrailers(t *testing.T) {
	rec := startRecorder(t)
	p := startPortal(t, t.TempDir(), gateBody("", rec.addr))
	tok := p.Token(e2etest.RobotUser, e2etest.RobotPass)
	name, ck, _ := p.Activate(tok, "demo-w01", "alice")

	forged := []string{
		"Remote-Groups", "Remote-Email", "Remote-Name", "Impersonate-User", "Impersonate-Group",
		"Impersonate-Extra-Scopes", "X-Remote-Extra-Scopes", "X-Remote-Group", "X-Forwarded-Access-Token",
		"X-Auth-Request-Access-Token", "X-Auth-Request-Anything", "X-Forwarded-Email", "X-Forwarded-Groups",
		"X-Forwarded-User", "X-Forwarded-Preferred-Username", "X-Forwarded-Uri", "X-Portal-Admin",
		"X-Webauth-Role", "X-User-Id", "X-Ms-Client-Principal-Name", "X-Goog-Authenticated-User-Email",
		"X-Amzn-Oidc-Identity", "Cf-Access-Authenticated-User-Email", "X-Original-Method",
	}
	var hdr strings.Builder
	for _, k := range forged {
		fmt.Fprintf(&hdr, "%s: root\r\n", k)
	}
	req := "POST " + sessionPath(name) + "upload HTTP/1.1\r\n" +
		fmt.Sprintf("Host: 127.0.0.1:%d\r\n", p.Port) +
		"Cookie: " + ck.Name + "=" + ck.Value + "\r\n" +
		hdr.String() +
		"X-App: kept\r\n" +
		"Transfer-Encoding: chunked\r\n" +
		"Trailer: X-Portal-User, Remote-Groups, X-Checksum\r\n" +
		"Connection: close\r\n\r\n" +
		"5\r\nhello\r\n0\r\n" +
		"X-Portal-User: root\r\n" +
		"Remote-Groups: admins\r\n" +
		"Impersonate-User: root\r\n" +
		"X-Forwarded-User: root\r\n" +
		"X-Checksum: abc\r\n\r\n"
	if st := rawRequest(t, p, req); st != http.StatusOK {
		t.Fatalf("chunked upload through the gate: %d", st)
	}
	h, tr, body := rec.last()
	if body != "hello" {
		t.Fatalf("upstream body %q", body)
	}
	for _, k := range forged {
		if v := h.Values(k); len(v) > 0 {
			t.Errorf("client-sent %s reached the upstream: %q", k, v)
		}
	}
	if h.Get("X-Portal-User") != "alice" || h.Get("X-App") != "kept" {
		t.Errorf("upstream headers: X-Portal-User %q, X-App %q", h.Get("X-Portal-User"), h.Get("X-App"))
	}
	if h.Get("X-Forwarded-Prefix") != "/workshops/session/"+name || h.Get("X-Forwarded-For") == "" {
		t.Errorf("gate/Caddy forwarding headers: prefix %q, for %q", h.Get("X-Forwarded-Prefix"), h.Get("X-Forwarded-For"))
	}
	if tr.Get("X-Checksum") != "abc" {
		t.Errorf("a harmless trailer did not arrive: %v", tr)
	}
	for _, k := range []string{"X-Portal-User", "Remote-Groups", "Impersonate-User", "X-Forwarded-User"} {
		if v := tr.Values(k); len(v) > 0 {
			t.Errorf("trailer %s reached the upstream: %q", k, v)
		}
	}
}

// TestGateEndedToNonHolders: a browser that never held a session gets one
// answer whether the session is live, ended or unknown, and never the
// index_url it was requested with (query included); its holder is still
// sent back to that index.
func TestGateEndedToNonHolders(t *testing.T) {
	up := echo.Start(t, "alpha")
	p := startPortal(t, t.TempDir(), gateBody("", up.Addr, "127.0.0.1:1"))
	tok := p.Token(e2etest.RobotUser, e2etest.RobotPass)
	index := e2etest.HubOrigin + "/carol?cohort=secret-cohort-42"
	m := p.Request(tok, "demo-w01", url.Values{"user": {"carol"}, "index_url": {index}}.Encode()).JSON(t)
	ended := m["name"].(string)
	act := p.Do("GET", m["url"].(string), "", nil, nil)
	var ck *http.Cookie
	for _, c := range (&http.Response{Header: act.Header}).Cookies() {
		if c.Name == "portal-demo-"+ended {
			ck = c
		}
	}
	live, ckLive, _ := p.Activate(tok, "demo-w01", "dave")
	if r := p.Do("GET", "/workshops/session/"+ended+"/terminate/", tok, nil, nil); r.Status != 200 {
		t.Fatalf("terminate: %d %s", r.Status, r.Body)
	}

	type answer struct {
		status   int
		location string
		body     string
	}
	ask := func(path string, hdr map[string]string) answer {
		r := p.Do("GET", path, "", nil, hdr)
		if strings.Contains(string(r.Body), "secret-cohort") || strings.Contains(r.Header.Get("Location"), "secret-cohort") {
			t.Errorf("%s disclosed the stored index_url: %d %q %s", path, r.Status, r.Header.Get("Location"), r.Body)
		}
		return answer{r.Status, r.Header.Get("Location"), string(r.Body)}
	}
	want := ask(sessionPath(live), nil)
	if want.status != http.StatusForbidden {
		t.Fatalf("live session without a cookie: %+v", want)
	}
	for _, c := range []struct {
		name, path string
		hdr        map[string]string
	}{
		{"ended, no cookie", sessionPath(ended), nil},
		{"ended, deep path", sessionPath(ended) + "files/x?y=1", nil},
		{"ended, another session's cookie", sessionPath(ended), cookieHdr(ckLive)},
		{"ended, delete link", sessionPath(ended) + "delete/", nil},
		{"unknown", sessionPath("demo-w01-s999"), nil},
		{"live, another session's cookie", sessionPath(live), map[string]string{"Cookie": "portal-demo-" + live + "=" + ck.Value}},
	} {
		if got := ask(c.path, c.hdr); got != want {
			t.Errorf("%s: %+v, want the live session's answer %+v", c.name, got, want)
		}
	}
	// The holder is sent back to the index it came from.
	wantRedirect(t, p.Do("GET", sessionPath(ended), "", nil, cookieHdr(ck)), index+"&notification=session-deleted")
}

// TestGateDeleteNeedsSameOrigin: another site sending the learner's browser
// to the delete link (a link, a redirect, a form) does not end the session;
// the browser gets a confirmation page instead, whose button posts from the
// portal's origin and ends it. The learner's own link on the dashboard
// (same-origin) ends it at once, and another session's dashboard page
// cannot use it.
func TestGateDeleteNeedsSameOrigin(t *testing.T) {
	up := echo.Start(t, "alpha")
	p := startPortal(t, t.TempDir(), gateBody("", up.Addr, "127.0.0.1:1", "127.0.0.1:2"))
	tok := p.Token(e2etest.RobotUser, e2etest.RobotPass)
	name, ck, _ := p.Activate(tok, "demo-w01", "erin")
	other, ckOther, _ := p.Activate(tok, "demo-w01", "frank")
	del := sessionPath(name) + "delete/"
	status := func(s string) any {
		return p.Do("GET", "/workshops/session/"+s+"/schedule/", tok, nil, nil).JSON(t)["status"]
	}
	nav := func(site, referer string) map[string]string {
		h := cookieHdr(ck)
		h["Sec-Fetch-Site"], h["Sec-Fetch-Mode"], h["Sec-Fetch-Dest"], h["Sec-Fetch-User"] = site, "navigate", "document", "?1"
		if referer != "" {
			h["Referer"] = referer
		}
		return h
	}
	for _, c := range []struct {
		name string
		hdr  map[string]string
	}{
		{"cross-site link", nav("cross-site", "https://evil.example/")},
		{"same-site link", nav("same-site", "http://other.127.0.0.1/")},
	} {
		r := p.Do("GET", del, "", nil, c.hdr)
		if r.Status != http.StatusOK || !strings.Contains(string(r.Body), "<title>End workshop session?</title>") ||
			!strings.Contains(string(r.Body), `<form method="post">`) || r.Header.Get("X-Frame-Options") != "DENY" {
			t.Fatalf("%s: %d %v %s", c.name, r.Status, r.Header, r.Body)
		}
		if s := status(name); s != "RUNNING" {
			t.Fatalf("%s ended the session: %v", c.name, s)
		}
	}
	// A form another site posts: refused the same way.
	post := nav("cross-site", "https://evil.example/")
	post["Origin"] = "https://evil.example"
	if r := p.Do("POST", del, "", nil, post); r.Status != http.StatusOK || status(name) != "RUNNING" {
		t.Fatalf("cross-site POST: %d, session %v", r.Status, status(name))
	}
	// Another session's dashboard page linking here: refused outright.
	fromOther := nav("same-origin", p.Base+sessionPath(other)+"page")
	wantPage(t, p.Do("GET", del, "", nil, fromOther), http.StatusForbidden, "Request refused")
	if s := status(name); s != "RUNNING" {
		t.Fatalf("another session's page ended the session: %v", s)
	}
	// The confirmation's button posts from the portal's own origin.
	confirm := nav("same-origin", p.Base+del)
	confirm["Origin"] = p.Base
	wantRedirect(t, p.Do("POST", del, "", nil, confirm), e2etest.HubOrigin+"/erin?notification=session-deleted")
	if s := status(name); s == "RUNNING" {
		t.Fatalf("the confirmed delete did not end the session")
	}
	// The learner's own link on the dashboard page ends it at once.
	own := cookieHdr(ckOther)
	own["Sec-Fetch-Site"], own["Sec-Fetch-Mode"], own["Sec-Fetch-Dest"] = "same-origin", "navigate", "document"
	own["Referer"] = p.Base + sessionPath(other)
	wantRedirect(t, p.Do("GET", sessionPath(other)+"delete/", "", nil, own), e2etest.HubOrigin+"/frank?notification=session-deleted")
}

// TestGateHostModeOrigin: in host mode the session hosts of one portal are
// the same site, so B's SameSite=Lax cookie goes along with a WebSocket
// that a page on A's host opens to B's host. The handshake's Origin shows
// it: refused, and it never reaches B's dashboard; B's own pages still
// open theirs.
func TestGateHostModeOrigin(t *testing.T) {
	upA, upB := echo.Start(t, "alpha"), echo.Start(t, "beta")
	p := startPortalSites(t, t.TempDir(), gateBody("dashboards host demo.test", upA.Addr, upB.Addr), "http://:%d", "")
	tok := p.Token(e2etest.RobotUser, e2etest.RobotPass)
	raw := hostClient(p, nil)
	hostOf := func(user string) (string, *http.Cookie) {
		m := p.Request(tok, "demo-w01", "user="+user+"&index_url=https://hub.example.com/").JSON(t)
		act := p.Do("GET", m["url"].(string), "", nil, nil)
		r := get(t, raw, act.Header.Get("Location"), nil)
		cks := (&http.Response{Header: r.Header}).Cookies()
		if len(cks) != 1 {
			t.Fatalf("ticket exchange for %s: %d %v", user, r.Status, r.Header)
		}
		return fmt.Sprintf("%s.demo.test:%d", m["name"], p.Port), cks[0]
	}
	hostA, _ := hostOf("alice")
	hostB, ckB := hostOf("bob")

	hdr := cookieHdr(ckB)
	hdr["Origin"] = "http://" + hostA
	hits := upA.Hits.Load() + upB.Hits.Load()
	if _, res, err := dialWS(t, hostClient(p, nil), "ws://"+hostB+"/ws", hdr); err == nil || res == nil || res.StatusCode != http.StatusForbidden {
		t.Fatalf("WebSocket to B from A's page: %v %v", err, res)
	}
	if upA.Hits.Load()+upB.Hits.Load() != hits {
		t.Fatal("the refused handshake reached the dashboard")
	}
	hdr["Origin"] = "http://" + hostB
	c, res, err := dialWS(t, hostClient(p, nil), "ws://"+hostB+"/ws", hdr)
	if err != nil {
		t.Fatalf("B's own WebSocket: %v %v", err, res)
	}
	wantEcho(t, c, "own origin")
}
