package e2e

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/caddyportal/caddyportal/internal/e2etest"
	"github.com/caddyportal/caddyportal/internal/e2etest/echo"
)

// securityBody is the portal of the security suite: path-mode dashboards
// on two real upstreams that echo what they receive.
func securityBody(a, b string) string {
	return gateBody("admin admin admin-pass", a, b, "127.0.0.1:1", "127.0.0.1:2")
}

// openRedirects are index_url / redirect_url values that must never be
// accepted: each would send a browser off the allowed origins (or run
// script) once the session ends.
var openRedirects = []string{
	"//evil.example",
	"//evil.example/path",
	"///evil.example",
	`\\evil.example`,
	`/\evil.example`,
	`\/evil.example`,
	"https:evil.example",
	"https:/evil.example",
	"https:hub.example.com",
	"https://hub.example.com@evil.example",
	"https://hub.example.com:443@evil.example/",
	"//hub.example.com@evil.example",
	`https://evil.example\@hub.example.com`,
	"https://user:pass@hub.example.com/",
	"HTTPS://EVIL.EXAMPLE/",
	"hTtPs://EvIl.ExAmPlE/",
	"https://evil.example",
	"https://hub.example.com.evil.example/",
	"https://hub.example.com%2F@evil.example",
	"https://evil.example%2F@hub.example.com",
	"https://%65vil.example/",
	"https://hub%2Eexample.com/",
	"%2F%2Fevil.example",
	"https%3A%2F%2Fevil.example",
	"https://hub。example。com/",
	"https://hub．example．com/",
	"https://hub｡example｡com/",
	"https://hub.example.com%E3%80%82evil.example/",
	"https://ｅvil.example/",
	"http://hub.example.com/", // scheme differs
	"https://hub.example.com:8443/",
	"javascript:alert(document.cookie)",
	"JaVaScRiPt:alert(1)",
	"javascript://hub.example.com/%0aalert(1)",
	" javascript:alert(1)",
	"data:text/html,<script>alert(1)</script>",
	"data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==",
	"vbscript:msgbox(1)",
	"file:///etc/passwd",
	"ftp://hub.example.com/",
	"https://hub.example.com\t.evil.example/",
	"https://hub.example.com/\r\nLocation: https://evil.example/",
	"/\t/evil.example",
	"\x00https://hub.example.com/",
	"hub.example.com",
	"https://",
	"https:///evil.example",
}

// TestSecuritySuite runs the hostile-input checks of issue #5 against one
// real portal.
func TestSecuritySuite(t *testing.T) {
	upA, upB := echo.Start(t, "alpha"), echo.Start(t, "beta")
	body := securityBody(upA.Addr, upB.Addr)
	p := startPortal(t, t.TempDir(), body)
	tok := p.Token(e2etest.RobotUser, e2etest.RobotPass)
	a, ckA, _ := p.Activate(tok, "demo-w01", "alice")
	b, ckB, _ := p.Activate(tok, "demo-w01", "bob")

	t.Run("open redirects refused", func(t *testing.T) {
		for i, target := range openRedirects {
			for _, param := range []string{"index_url", "redirect_url"} {
				user := fmt.Sprintf("redir-%s-%d", param, i)
				q := url.Values{"user": {user}, param: {target}}
				r := p.Request(tok, "demo-w01", q.Encode())
				if r.Status != http.StatusBadRequest {
					t.Errorf("%s=%q: status %d, want 400: %s", param, target, r.Status, r.Body)
					continue
				}
				var m map[string]string
				if err := json.Unmarshal(r.Body, &m); err != nil || !strings.Contains(m["error"], "not allowed") {
					t.Errorf("%s=%q: error body %s", param, target, r.Body)
				}
				if us := p.Do("GET", "/workshops/user/"+user+"/sessions/", tok, nil, nil).JSON(t); len(us["sessions"].([]any)) != 0 {
					t.Errorf("%s=%q: a session was created anyway: %v", param, target, us)
				}
			}
		}
	})

	t.Run("activation ignores a hostile index_url", func(t *testing.T) {
		r := p.Request(tok, "demo-w01", url.Values{"user": {"carol"}, "index_url": {e2etest.HubOrigin + "/carol"}}.Encode()).JSON(t)
		name := r["name"].(string)
		link := mustParse(t, r["url"].(string))
		q := link.Query()
		q.Set("index_url", "https://evil.example/")
		act := p.Do("GET", link.Path+"?"+q.Encode(), "", nil, nil)
		wantRedirect(t, act, sessionPath(name))
		if term := p.Do("GET", "/workshops/session/"+name+"/terminate/", tok, nil, nil); term.Status != 200 {
			t.Fatalf("terminate: %d %s", term.Status, term.Body)
		}
		// The ended session goes back to the index it was requested with.
		wantRedirect(t, p.Do("GET", link.Path+"?"+q.Encode(), "", nil, nil), e2etest.HubOrigin+"/carol?notification=session-deleted")
	})

	t.Run("forged and tampered cookies refused", func(t *testing.T) {
		raw, err := base64.RawURLEncoding.DecodeString(ckA.Value)
		if err != nil || !bytes.Contains(raw, []byte(a+"\nalice")) {
			t.Fatalf("cookie layout changed (%v): update this test", err)
		}
		reencode := func(f func([]byte)) string {
			c := append([]byte(nil), raw...)
			f(c)
			return base64.RawURLEncoding.EncodeToString(c)
		}
		toB := reencode(func(c []byte) { copy(c[bytes.Index(c, []byte(a)):], b) })
		asBob := reencode(func(c []byte) {
			i := bytes.Index(c, []byte("alice"))
			copy(c[i:], "bobby")
		})
		later := reencode(func(c []byte) { c[1] ^= 0x40 }) // expiry pushed out
		flipMAC := reencode(func(c []byte) { c[len(c)-1] ^= 1 })
		cases := []struct {
			name, session, value string
		}{
			{"MAC byte flipped", a, flipMAC},
			{"expiry changed", a, later},
			{"user changed", a, asBob},
			{"session part rewritten to B", b, toB},
			{"truncated", a, ckA.Value[:len(ckA.Value)-3]},
			{"empty", a, ""},
			{"garbage", a, "not-a-cookie"},
			{"huge", a, strings.Repeat("A", 8000)},
			{"A's cookie on B", b, ckA.Value},
		}
		for _, c := range cases {
			hdr := map[string]string{"Cookie": "portal-demo-" + c.session + "=" + c.value}
			wantPage(t, p.Do("GET", sessionPath(c.session), "", nil, hdr), http.StatusForbidden, "Not signed in to this session")
		}
		if r := p.Do("GET", sessionPath(a), "", nil, cookieHdr(ckA)); r.Status != 200 {
			t.Fatalf("the genuine cookie stopped working: %d", r.Status)
		}
	})

	t.Run("spoofed identity and forwarding headers do not reach the upstream", func(t *testing.T) {
		spoof := map[string]string{
			"X-Portal-Session":    b,
			"X-Portal-User":       "bob",
			"X-Portal-Admin":      "1",
			"X-Forwarded-User":    "bob",
			"X-Forwarded-Email":   "bob@example.com",
			"X-Remote-User":       "bob",
			"Remote-User":         "bob",
			"X-Auth-Request-User": "bob",
			"X-Forwarded-For":     "203.0.113.7",
			"X-Forwarded-Host":    "evil.example",
			"X-Forwarded-Proto":   "https",
			"X-Forwarded-Prefix":  "/evil",
			"X-Real-Ip":           "203.0.113.7",
			"X-Forwarded-Port":    "8443",
			"X-Forwarded-Server":  "evil.example",
			"X-Client-Ip":         "203.0.113.7",
			"True-Client-Ip":      "203.0.113.7",
			"X-Original-Url":      "/admin",
			"X-Original-Host":     "evil.example",
			"Forwarded":           "for=203.0.113.7;host=evil.example;proto=https",
		}
		hdr := cookieHdr(ckA)
		for k, v := range spoof {
			hdr[k] = v
		}
		r := p.Do("GET", sessionPath(a)+"echo", "", nil, hdr)
		var s echo.Seen
		if r.Status != 200 || json.Unmarshal(r.Body, &s) != nil {
			t.Fatalf("%d %s", r.Status, r.Body)
		}
		for k, v := range spoof {
			for _, got := range s.Header.Values(k) {
				if strings.Contains(got, v) {
					t.Errorf("client-sent %s: %q reached the upstream as %q", k, v, got)
				}
			}
		}
		if s.Header.Get("X-Portal-Session") != a || s.Header.Get("X-Portal-User") != "alice" {
			t.Errorf("gate identity: %q %q", s.Header.Get("X-Portal-Session"), s.Header.Get("X-Portal-User"))
		}
		if got := s.Header.Get("X-Forwarded-For"); got != "127.0.0.1" {
			t.Errorf("X-Forwarded-For %q, want the real client 127.0.0.1", got)
		}
	})

	t.Run("oversized bodies and headers refused cleanly", func(t *testing.T) {
		big := bytes.Repeat([]byte("x"), 10<<20)
		bigJSON := append(append([]byte(`{"parameters":[{"name":"a","value":"`), big...), `"}]}`...)
		r := p.Do("POST", "/workshops/environment/demo-w01/request/?user=big&index_url="+url.QueryEscape(e2etest.HubOrigin), tok,
			bytes.NewReader(bigJSON), map[string]string{"Content-Type": "application/json"})
		if r.Status != http.StatusRequestEntityTooLarge {
			t.Errorf("10 MiB JSON body: %d %s", r.Status, r.Body)
		}
		form := append([]byte("grant_type=password&username=x&password="), big...)
		r = p.Do("POST", "/oauth2/token/", "", bytes.NewReader(form), map[string]string{"Content-Type": "application/x-www-form-urlencoded"})
		if r.Status < 400 || r.Status >= 500 {
			t.Errorf("10 MiB token form: %d %s", r.Status, r.Body)
		}
		r = p.Do("POST", "/oauth2/revoke-token/", "", bytes.NewReader(form), map[string]string{"Content-Type": "application/x-www-form-urlencoded"})
		if r.Status < 400 || r.Status >= 500 {
			t.Errorf("10 MiB revoke form: %d %s", r.Status, r.Body)
		}
		// A 1 MiB header: refused by the server before any handler.
		res, err := e2etest.DoWith(e2etest.HTTPClient(10*time.Second), "GET", p.Base+"/workshops/catalog/environments/", tok, nil,
			map[string]string{"X-Big": strings.Repeat("h", 1<<20)})
		if err == nil && (res.Status != http.StatusRequestHeaderFieldsTooLarge && res.Status != http.StatusBadRequest) {
			t.Errorf("1 MiB header: %d %s", res.Status, res.Body)
		}
		r = p.Do("GET", sessionPath(a), "", nil, map[string]string{"Cookie": "portal-demo-" + a + "=" + ckA.Value + "; junk=" + strings.Repeat("c", 512<<10)})
		if r.Status >= 500 {
			t.Errorf("512 KiB cookie: %d %s", r.Status, r.Body)
		}
		// Still serving.
		if r := p.Do("GET", "/workshops/catalog/environments/", tok, nil, nil); r.Status != 200 {
			t.Fatalf("after oversized input: %d %s", r.Status, r.Body)
		}
	})

	t.Run("no route answers 5xx to garbage", func(t *testing.T) {
		sweepRoutes(t, p, tok, a, ckA)
		rawGarbage(t, p)
		if r := p.Do("GET", sessionPath(b), "", nil, cookieHdr(ckB)); r.Status != 200 {
			t.Fatalf("after the sweep: %d %s", r.Status, r.Body)
		}
	})

	// Last, on a fresh limiter (a reload builds a new API), since it locks
	// this client address out of the token endpoint.
	t.Run("token brute force is rate limited", func(t *testing.T) {
		p.Load(body)
		// The reload closed the old server's idle connections; a POST is
		// not retried on one, so start afresh.
		e2etest.NoRedirect.CloseIdleConnections()
		try := func(pass string, hdr map[string]string) resp {
			form := url.Values{"grant_type": {"password"}, "username": {e2etest.RobotUser}, "password": {pass},
				"client_id": {e2etest.ClientID}, "client_secret": {e2etest.ClientSecret}}
			h := map[string]string{"Content-Type": "application/x-www-form-urlencoded"}
			for k, v := range hdr {
				h[k] = v
			}
			return p.Do("POST", "/oauth2/token/", "", strings.NewReader(form.Encode()), h)
		}
		var r resp
		n := 0
		for ; n < 50; n++ {
			// Rotating X-Forwarded-For must not give a fresh budget.
			r = try(fmt.Sprintf("guess-%d", n), map[string]string{"X-Forwarded-For": fmt.Sprintf("198.51.100.%d", n)})
			if r.Status != http.StatusBadRequest {
				break
			}
		}
		if r.Status != http.StatusTooManyRequests {
			t.Fatalf("after %d wrong passwords: %d %s", n, r.Status, r.Body)
		}
		if n == 0 || n > 20 {
			t.Fatalf("rate limit after %d failures: want a small positive budget", n)
		}
		if r.Header.Get("Retry-After") == "" || r.JSON(t)["error"] != "slow_down" {
			t.Fatalf("429 without Retry-After or OAuth error: %v %s", r.Header, r.Body)
		}
		// While blocked, even the right password is refused: guessing gains
		// nothing.
		if r := try(e2etest.RobotPass, nil); r.Status != http.StatusTooManyRequests {
			t.Fatalf("right password while blocked: %d %s", r.Status, r.Body)
		}
		// Tokens issued before keep working.
		if r := p.Do("GET", "/workshops/catalog/environments/", tok, nil, nil); r.Status != 200 {
			t.Fatalf("existing token during the block: %d", r.Status)
		}
	})
}

// sweepRoutes sends garbage to every route: bad methods, bad JSON, bad query
// encodings, huge parameters, NUL bytes and invalid UTF-8. No answer may be
// a 5xx except the 503s the reference prescribes for allocation outcomes,
// and API errors must be JSON.
func sweepRoutes(t *testing.T, p *portal, tok, sess string, ck *http.Cookie) {
	t.Helper()
	huge := strings.Repeat("q", 100<<10)
	paths := []string{
		"/oauth2/token/", "/oauth2/revoke-token/",
		"/workshops/catalog/environments/", "/workshops/catalog/workshops/",
		"/workshops/environment/demo-w01/status/", "/workshops/environment/demo-w01/request/",
		"/workshops/environment/%00/request/", "/workshops/environment/%ff%fe/status/",
		"/workshops/environment/" + strings.Repeat("e", 4096) + "/request/",
		"/workshops/session/" + sess + "/activate/", "/workshops/session/" + sess + "/schedule/",
		"/workshops/session/" + sess + "/extend/", "/workshops/session/" + sess + "/terminate/x/",
		"/workshops/session/" + sess + "/authorize/", "/workshops/session/demo-w01-s999/terminate/",
		"/workshops/session/%00/schedule/", "/workshops/session/..%2F..%2Fetc/schedule/",
		"/workshops/session/%ff/activate/", "/workshops/user/%ff%fe/sessions/",
		"/workshops/user/a%00b/sessions/", "/workshops/user/" + strings.Repeat("u", 8192) + "/sessions/",
		"/session/" + sess + "/schedule/", "//workshops//catalog//environments//",
		"/workshops/session/" + sess + "/delete/", "/workshops/environment/demo-w01/create/",
		"/workshops/tls/ask", sessionPath(sess) + "%00/%ff", "/workshops/session/%2e%2e/",
	}
	queries := []string{
		"", "user=%zz&index_url=%", "user=%00&index_url=" + url.QueryEscape(e2etest.HubOrigin),
		"user=%ff%fe%fd&email=%ff@x&timeout=-1&token=%ff", "token=" + huge + "&user=" + huge,
		"timeout=99999999999999999999&sessions=maybe&state=%00&domain=%ff",
		"a=1;b=2&&&==&session=" + sess,
	}
	bodies := []string{
		"", "{", `{"parameters":[{"name":"\u0000","value":"\ud800"}]}`, "\x00\x01\x02",
		"\xff\xfe\xfd", strings.Repeat("[", 20000), `{"parameters":[` + strings.Repeat(`{"name":"n","value":"v"},`, 300) + `{}]}`,
		`{"parameters":1e999999}`, "grant_type=password&username=%ff&password=%00",
	}
	methods := []string{"GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS", "TRACE", "PROPFIND", "X-BAD"}
	client := e2etest.HTTPClient(30 * time.Second)
	defer client.CloseIdleConnections()
	n := 0
	check := func(method, path, query, body string, token string, hdr map[string]string) {
		n++
		u := p.Base + path
		if query != "" {
			u += "?" + query
		}
		req, err := http.NewRequest(method, u, strings.NewReader(body))
		if err != nil {
			t.Fatalf("building %s %s: %v", method, u, err)
		}
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		res, err := client.Do(req)
		if err != nil {
			t.Errorf("%s %.120s: %.300v", method, u, err)
			return
		}
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode >= 500 && !(res.StatusCode == 503 && bytes.Contains(b, []byte("No session available"))) {
			t.Errorf("%s %.120s body %.60q: %d %s", method, u, body, res.StatusCode, b)
		}
		if res.StatusCode >= 400 && method != "HEAD" && strings.Contains(res.Header.Get("Content-Type"), "json") && !json.Valid(b) {
			t.Errorf("%s %.120s: invalid JSON error body %q", method, u, b)
		}
	}
	for _, path := range paths {
		for _, m := range methods {
			check(m, path, "", "{", tok, nil)
		}
		for _, q := range queries {
			for _, body := range bodies {
				for _, m := range []string{"GET", "POST"} {
					check(m, path, q, body, tok, map[string]string{"Content-Type": "application/json"})
				}
			}
			check("POST", path, q, bodies[len(bodies)-1], "", map[string]string{"Content-Type": "application/x-www-form-urlencoded"})
			check("GET", path, q, "", "\xff\xfe garbage", map[string]string{"Cookie": "portal-demo-" + sess + "=" + ck.Value[:10] + "\xff"})
		}
	}
	t.Logf("%d garbage requests", n)
}

// rawGarbage writes malformed HTTP straight to the socket: the server must
// answer with a 4xx (or close) and never with a 5xx.
func rawGarbage(t *testing.T, p *portal) {
	t.Helper()
	addr := fmt.Sprintf("127.0.0.1:%d", p.Port)
	for _, raw := range []string{
		"GET /workshops/catalog/environments/ HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Nul: a\x00b\r\n\r\n",
		"GET /workshops/\x00/ HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
		"GET /workshops/catalog/environments/ HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: -1\r\n\r\n",
		"POST /workshops/environment/demo-w01/request/ HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nabcdef",
		"POST /oauth2/token/ HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
		"GET \xff\xfe HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
		"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03 not really TLS\r\n\r\n",
	} {
		c, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		_, _ = c.Write([]byte(raw))
		line, err := bufio.NewReader(c).ReadString('\n')
		c.Close()
		if err != nil && line == "" {
			continue // the server closed the connection: a refusal too
		}
		var proto string
		var code int
		if _, err := fmt.Sscanf(line, "%s %d", &proto, &code); err != nil {
			t.Errorf("%q: unreadable status line %q", raw, line)
			continue
		}
		if code < 400 || code >= 500 {
			t.Errorf("%q: status %d, want a 4xx", raw, code)
		}
	}
}

// startTLSPortal runs the portal on an HTTPS site with Caddy's internal CA
// (trust not installed anywhere), for checks that depend on TLS.
func startTLSPortal(t *testing.T, dir, body string) *portal {
	t.Helper()
	p := remote(t, "", e2etest.FreePort(t), dir)
	p.Base = fmt.Sprintf("https://127.0.0.1:%d", p.Port)
	cf := fmt.Sprintf(`{
	admin off
	persist_config off
	storage file_system %s
	grace_period 1s
	local_certs
	skip_install_trust
	default_sni 127.0.0.1
	auto_https disable_redirects
	log default {
		output discard
	}
}
https://127.0.0.1:%d {
	bind 127.0.0.1
	tls internal
	portal {
%s
	}
	respond "not the portal" 404
}
`, filepath.Join(dir, "caddy"), p.Port, strings.ReplaceAll(body, "{dir}", filepath.Join(dir, "badger")))
	if err := e2etest.LoadCaddyfile(cf); err != nil {
		t.Fatalf("load: %v", err)
	}
	t.Cleanup(func() { _ = caddy.Stop() })
	// Caddy obtains the certificate in the background: wait (bounded) until
	// a handshake succeeds, so the test starts against a ready server.
	var err error
	for i := 0; i < 200; i++ {
		var c *tls.Conn
		c, err = tls.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", p.Port), &tls.Config{InsecureSkipVerify: true})
		if err == nil {
			c.Close()
			return p
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("no TLS certificate from Caddy's internal CA: %v", err)
	return nil
}

// TestSecurityCookieFlagsTLS: over TLS the dashboard cookie is Secure as
// well as HttpOnly, SameSite=Lax and scoped to the session's path; over
// plain HTTP (TestGateDashboard) it cannot be Secure.
func TestSecurityCookieFlagsTLS(t *testing.T) {
	up := echo.Start(t, "alpha")
	// Not t.TempDir: Caddy's certificate maintenance may still be tidying
	// its storage when the test ends, which would fail TempDir's removal.
	dir, err := os.MkdirTemp("", "caddyportal-tls")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	p := startTLSPortal(t, dir, gateBody("", up.Addr))
	// The certificate is from Caddy's internal CA, which this test does
	// not trust; what is checked is the cookie, not the chain.
	tr := &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 20 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

	form := url.Values{"grant_type": {"password"}, "username": {e2etest.RobotUser}, "password": {e2etest.RobotPass},
		"client_id": {e2etest.ClientID}, "client_secret": {e2etest.ClientSecret}}
	r, err := e2etest.DoWith(client, "POST", p.Base+"/oauth2/token/", "", strings.NewReader(form.Encode()),
		map[string]string{"Content-Type": "application/x-www-form-urlencoded"})
	if err != nil || r.Status != 200 {
		t.Fatalf("token over TLS: %v %d %s", err, r.Status, r.Body)
	}
	tok := r.JSON(t)["access_token"].(string)
	r, err = e2etest.DoWith(client, "GET", p.Base+"/workshops/environment/demo-w01/request/?user=tls&index_url="+url.QueryEscape(e2etest.HubOrigin), tok, nil, nil)
	if err != nil || r.Status != 200 {
		t.Fatalf("request over TLS: %v %d %s", err, r.Status, r.Body)
	}
	m := r.JSON(t)
	name := m["name"].(string)
	act, err := e2etest.DoWith(client, "GET", p.Base+m["url"].(string), "", nil, nil)
	if err != nil || act.Status != http.StatusFound {
		t.Fatalf("activation over TLS: %v %d %s", err, act.Status, act.Body)
	}
	var ck *http.Cookie
	for _, c := range (&http.Response{Header: act.Header}).Cookies() {
		if c.Name == "portal-demo-"+name {
			ck = c
		}
	}
	if ck == nil {
		t.Fatalf("no dashboard cookie: %q", act.Header.Values("Set-Cookie"))
	}
	if !ck.Secure || !ck.HttpOnly || ck.SameSite != http.SameSiteLaxMode || ck.Path != sessionPath(name) || ck.Domain != "" {
		t.Fatalf("cookie over TLS: %q", act.Header.Values("Set-Cookie"))
	}
	page, err := e2etest.DoWith(client, "GET", p.Base+sessionPath(name), "", nil, cookieHdr(ck))
	if err != nil || page.Status != 200 || !strings.Contains(string(page.Body), "Workshop dashboard alpha") {
		t.Fatalf("dashboard over TLS: %v %d %s", err, page.Status, page.Body)
	}
}

// TestSecurityCookieFromAnotherPortal: a genuine cookie of another portal
// (another data directory, so another signing secret) for a session of the
// same name opens nothing here.
func TestSecurityCookieFromAnotherPortal(t *testing.T) {
	up := echo.Start(t, "alpha")
	p1 := startPortal(t, t.TempDir(), gateBody("", up.Addr))
	name1, ck1, _ := p1.Activate(p1.Token(e2etest.RobotUser, e2etest.RobotPass), "demo-w01", "alice")
	if r := p1.Do("GET", sessionPath(name1), "", nil, cookieHdr(ck1)); r.Status != 200 {
		t.Fatalf("own portal: %d", r.Status)
	}
	if err := caddy.Stop(); err != nil {
		t.Fatal(err)
	}
	p2 := startPortal(t, t.TempDir(), gateBody("", up.Addr))
	name2, ck2, _ := p2.Activate(p2.Token(e2etest.RobotUser, e2etest.RobotPass), "demo-w01", "alice")
	if name2 != name1 || ck2.Name != ck1.Name {
		t.Fatalf("want the same session and cookie names on both portals: %s %s", name1, name2)
	}
	hits := up.Hits.Load()
	wantPage(t, p2.Do("GET", sessionPath(name2), "", nil, cookieHdr(ck1)), http.StatusForbidden, "Not signed in to this session")
	if up.Hits.Load() != hits {
		t.Fatal("the other portal's cookie reached the upstream")
	}
	if r := p2.Do("GET", sessionPath(name2), "", nil, cookieHdr(ck2)); r.Status != 200 {
		t.Fatalf("this portal's own cookie: %d", r.Status)
	}
}

// TestSecurityTickets: host-mode hand-off tickets that were tampered with,
// belong to another session or were already used are refused on the
// session host, and none of them sets a cookie.
func TestSecurityTickets(t *testing.T) {
	up := echo.Start(t, "alpha")
	p := startPortalSites(t, t.TempDir(), gateBody("dashboards host demo.test", up.Addr, "127.0.0.1:1"), "http://:%d", "")
	tok := p.Token(e2etest.RobotUser, e2etest.RobotPass)
	raw := hostClient(p, nil)
	ticketFor := func(user string) (string, *url.URL) {
		m := p.Request(tok, "demo-w01", "user="+user+"&index_url="+url.QueryEscape(e2etest.HubOrigin)).JSON(t)
		act := p.Do("GET", m["url"].(string), "", nil, nil)
		if act.Status != http.StatusFound {
			t.Fatalf("activation: %d %s", act.Status, act.Body)
		}
		return m["name"].(string), mustParse(t, act.Header.Get("Location"))
	}
	a, linkA := ticketFor("alice")
	b, linkB := ticketFor("bob")
	ticketA := linkA.Query().Get("portal_ticket")
	rawA, err := base64.RawURLEncoding.DecodeString(ticketA)
	if err != nil || !bytes.Contains(rawA, []byte(a)) {
		t.Fatalf("ticket layout changed (%v): update this test", err)
	}
	flip := func(i int) string {
		c := append([]byte(nil), rawA...)
		c[i] ^= 1
		return base64.RawURLEncoding.EncodeToString(c)
	}
	rewritten := append([]byte(nil), rawA...)
	copy(rewritten[bytes.Index(rewritten, []byte(a)):], b)
	refuse := func(host, ticket string) {
		t.Helper()
		r := get(t, raw, "http://"+host+"/?portal_ticket="+url.QueryEscape(ticket), nil)
		wantPage(t, r, http.StatusForbidden, "Link expired")
		if sc := r.Header.Values("Set-Cookie"); len(sc) != 0 {
			t.Fatalf("a refused ticket set a cookie: %q", sc)
		}
	}
	refuse(linkA.Host, flip(len(rawA)-1))                                        // MAC
	refuse(linkA.Host, flip(3))                                                  // expiry
	refuse(linkB.Host, base64.RawURLEncoding.EncodeToString(rewritten))          // session part
	refuse(linkB.Host, ticketA)                                                  // A's ticket on B's host
	refuse(linkA.Host, ticketA[:len(ticketA)/2])                                 // truncated
	refuse(linkA.Host, strings.Repeat("A", 5000))                                // huge
	refuse(linkA.Host, "%zz")                                                    // not base64
	refuse(linkA.Host, linkA.Query().Get("portal_ticket")+"="+"&portal_ticket=") // padding
	// The genuine ticket still works once, and only once.
	if r := get(t, raw, linkA.String(), nil); r.Status != http.StatusFound || len(r.Header.Values("Set-Cookie")) != 1 {
		t.Fatalf("genuine ticket: %d %q", r.Status, r.Header.Values("Set-Cookie"))
	}
	refuse(linkA.Host, ticketA)
}
