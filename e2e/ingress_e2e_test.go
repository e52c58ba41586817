package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strings"
	"testing"

	"github.com/caddyportal/caddyportal/internal/e2etest"
	"github.com/caddyportal/caddyportal/internal/e2etest/echo"
)

// TestGateIngressHosts: in host mode a session's ingress hosts
// (`<ingress>-<session>.<domain>`, as Educates names the editor, the
// console and session ingresses) reach the session's own dashboard with
// their own Host, for the learner who holds the session only: a browser
// signed in to the session host is signed in to each of them through a
// one-time ticket, and nobody else gets in. A host the session's
// workshop does not list serves nothing, and the TLS ask agrees.
func TestGateIngressHosts(t *testing.T) {
	upA, upB := echo.Start(t, "alpha"), echo.Start(t, "beta")
	body := strings.Replace(gateBody("dashboards host demo.test", upA.Addr, "127.0.0.1:1"),
		"health_check off", "health_check off\n\t\t\tingresses editor\n\t\t\tingresses app-x", 1) + `
		workshop other {
			reserved 0
			upstream ` + upB.Addr + `
			health_check off
			ingresses console
		}
`
	p := startPortalSites(t, t.TempDir(), body, "http://:%d", "")
	tok := p.Token(e2etest.RobotUser, e2etest.RobotPass)
	raw := hostClient(p, nil)
	host := func(label string) string { return fmt.Sprintf("http://%s.demo.test:%d", label, p.Port) }

	// signIn requests a session of env for user and follows its activation
	// in a browser of its own, which ends at the session host.
	signIn := func(env, user string) (string, *http.Client, http.CookieJar) {
		t.Helper()
		m := p.Request(tok, env, "user="+user).JSON(t)
		name := m["name"].(string)
		act := p.Do("GET", m["url"].(string), "", nil, nil)
		jar, _ := cookiejar.New(nil)
		c := hostClient(p, jar)
		c.CheckRedirect = nil
		res, err := c.Get(act.Header.Get("Location"))
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != 200 || res.Request.URL.String() != host(name)+"/" {
			t.Fatalf("%s's landing: %d at %s", user, res.StatusCode, res.Request.URL)
		}
		return name, c, jar
	}
	browse := func(c *http.Client, rawURL string) (*http.Response, []byte) {
		t.Helper()
		res, err := c.Get(rawURL)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		return res, b
	}
	a, alice, aliceJar := signIn("demo-w01", "alice")
	b, bob, _ := signIn("demo-w02", "bob")
	editorA := host("editor-" + a)

	t.Run("the learner's browser reaches the ingress host", func(t *testing.T) {
		// The first request goes to the session host for a ticket.
		first := get(t, raw, editorA+"/files/x?q=1", nil)
		want := host(a) + "/workshops/session/" + a + "/ingress/?" + url.Values{"path": {"/files/x?q=1"}, "to": {"editor-" + a}}.Encode()
		wantRedirect(t, first, want)
		res, body := browse(alice, editorA+"/files/x?q=1")
		var s echo.Seen
		if err := json.Unmarshal(body, &s); err != nil || res.StatusCode != 200 {
			t.Fatalf("editor host: %d %s (%v)", res.StatusCode, body, err)
		}
		if res.Request.URL.String() != editorA+"/files/x?q=1" || s.Upstream != "alpha" || s.Path != "/files/x" || s.Query != "q=1" ||
			s.Host != fmt.Sprintf("editor-%s.demo.test:%d", a, p.Port) || s.Header.Get("X-Portal-Session") != a || s.Header.Get("X-Portal-User") != "alice" {
			t.Fatalf("at %s the dashboard saw %+v", res.Request.URL, s)
		}
		// The ingress host has its own cookie now, for the session only.
		u, _ := url.Parse(editorA)
		cks := aliceJar.Cookies(u)
		if len(cks) != 1 || cks[0].Name != "portal-demo-"+a {
			t.Fatalf("editor host cookies: %v", cks)
		}
		if r := get(t, raw, editorA+"/again", cookieHdr(cks[0])); r.Status != 200 {
			t.Fatalf("with the editor host's cookie: %d %s", r.Status, r.Body)
		}
		// A longer ingress name is told from a shorter one.
		if res, body := browse(alice, host("app-x-"+a)+"/y"); res.StatusCode != 200 || !strings.Contains(string(body), `"path":"/y"`) {
			t.Fatalf("app-x host: %d %s", res.StatusCode, body)
		}
		// WebSockets too.
		c, wres, err := dialWS(t, hostClient(p, nil), "ws"+strings.TrimPrefix(editorA, "http")+"/ws", cookieHdr(cks[0]))
		if err != nil {
			t.Fatalf("websocket on the editor host: %v %v", err, wres)
		}
		wantEcho(t, c, "hello editor")
	})
	t.Run("Educates' older suffixed form", func(t *testing.T) {
		// <session>-<ingress>: the browser stays on the host it asked for.
		old := host(a + "-editor")
		first := get(t, raw, old+"/old?q=2", nil)
		wantRedirect(t, first, host(a)+"/workshops/session/"+a+"/ingress/?"+url.Values{"path": {"/old?q=2"}, "to": {a + "-editor"}}.Encode())
		res, body := browse(alice, old+"/old?q=2")
		var s echo.Seen
		if err := json.Unmarshal(body, &s); err != nil || res.StatusCode != 200 {
			t.Fatalf("suffixed editor host: %d %s (%v)", res.StatusCode, body, err)
		}
		if res.Request.URL.String() != old+"/old?q=2" || s.Upstream != "alpha" || s.Path != "/old" ||
			s.Host != fmt.Sprintf("%s-editor.demo.test:%d", a, p.Port) || s.Header.Get("X-Portal-Session") != a || s.Header.Get("X-Portal-User") != "alice" {
			t.Fatalf("at %s the dashboard saw %+v", res.Request.URL, s)
		}
		if res, _ := browse(bob, old+"/"); res.StatusCode != http.StatusForbidden {
			t.Fatalf("bob at A's suffixed editor host: %d at %s", res.StatusCode, res.Request.URL)
		}
		wantPage(t, get(t, raw, host(a+"-console")+"/", nil), http.StatusNotFound, "Unknown host")
	})
	t.Run("nobody else gets in", func(t *testing.T) {
		// Bob's browser is sent to A's session host, which does not know it.
		res, _ := browse(bob, editorA+"/")
		if res.StatusCode != http.StatusForbidden || res.Request.URL.Host != strings.TrimPrefix(host(a), "http://") {
			t.Fatalf("bob at A's editor host: %d at %s", res.StatusCode, res.Request.URL)
		}
		// Nor does anything but a GET without the host's cookie go anywhere.
		req, _ := http.NewRequest("POST", editorA+"/x", nil)
		pres, err := raw.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		pres.Body.Close()
		if pres.StatusCode != http.StatusForbidden {
			t.Fatalf("POST without a cookie: %d", pres.StatusCode)
		}
		// Bob's own session's cookie is not one for A's.
		u, _ := url.Parse(host(b))
		bc := bob.Jar.Cookies(u)
		if len(bc) != 1 {
			t.Fatalf("bob's cookies: %v", bc)
		}
		wantPage(t, get(t, raw, host(a)+"/workshops/session/"+a+"/ingress/?to=editor-"+a+"&path=/", cookieHdr(bc[0])), http.StatusForbidden, "Not signed in to this session")
	})
	t.Run("unlisted hosts serve nothing", func(t *testing.T) {
		// console is the other workshop's ingress, not lab's.
		wantPage(t, get(t, raw, host("console-"+a)+"/", nil), http.StatusNotFound, "Unknown host")
		res, _ := browse(bob, host("console-"+b)+"/z")
		if res.StatusCode != 200 || res.Request.URL.String() != host("console-"+b)+"/z" {
			t.Fatalf("bob's console host: %d at %s", res.StatusCode, res.Request.URL)
		}
		u, _ := url.Parse(host(a))
		ac := aliceJar.Cookies(u)
		// Nor does the hand-off send a browser to a host that is not one
		// of its session's: not an unlisted one, not another session's,
		// not a bare name.
		for _, to := range []string{"console-" + a, "editor-" + b, "console-" + b, b + "-console", "editor", b, ""} {
			wantPage(t, get(t, raw, host(a)+"/workshops/session/"+a+"/ingress/?"+url.Values{"to": {to}, "path": {"/"}}.Encode(), cookieHdr(ac[0])),
				http.StatusNotFound, "Unknown host")
		}
	})
	t.Run("the hand-off stays on the ingress host", func(t *testing.T) {
		u, _ := url.Parse(host(a))
		ac := aliceJar.Cookies(u)
		for _, path := range []string{"//evil.example/x", "https://evil.example/", "/\\evil.example/", "x", ""} {
			r := get(t, raw, host(a)+"/workshops/session/"+a+"/ingress/?"+url.Values{"to": {"editor-" + a}, "path": {path}}.Encode(), cookieHdr(ac[0]))
			loc, err := url.Parse(r.Header.Get("Location"))
			if r.Status != http.StatusFound || err != nil || loc.Host != strings.TrimPrefix(editorA, "http://") ||
				!strings.HasPrefix(loc.Path, "/") || strings.HasPrefix(loc.Path, "//") || loc.Query().Get("portal_ticket") == "" {
				t.Errorf("hand-off to %q: %d %q", path, r.Status, r.Header.Get("Location"))
			}
		}
	})
	t.Run("ask endpoint", func(t *testing.T) {
		for domain, want := range map[string]int{
			"editor-" + a + ".demo.test":     200,
			"app-x-" + a + ".demo.test":      200,
			"console-" + b + ".demo.test":    200,
			"console-" + a + ".demo.test":    404,
			"nope-" + a + ".demo.test":       404,
			"editor-demo-w01-s999.demo.test": 404,
			a + "-editor.demo.test":          200,
			a + "-app-x.demo.test":           200,
			a + "-console.demo.test":         404,
			b + "-console.demo.test":         200,
		} {
			if got := p.Do("GET", "/workshops/tls/ask?domain="+url.QueryEscape(domain), "", nil, nil).Status; got != want {
				t.Errorf("ask %q: %d, want %d", domain, got, want)
			}
		}
	})
	t.Run("an ended session's ingress hosts say so", func(t *testing.T) {
		if r := p.Do("GET", "/workshops/session/"+a+"/terminate/", tok, nil, nil); r.Status != 200 {
			t.Fatalf("terminate: %d", r.Status)
		}
		u, _ := url.Parse(editorA)
		cks := aliceJar.Cookies(u)
		if len(cks) != 1 {
			t.Fatalf("editor host cookies: %v", cks)
		}
		wantRedirect(t, get(t, raw, editorA+"/", cookieHdr(cks[0])), e2etest.HubOrigin+"/?notification=session-deleted")
		if got := p.Do("GET", "/workshops/tls/ask?domain="+url.QueryEscape("editor-"+a+".demo.test"), "", nil, nil).Status; got != 404 {
			t.Fatalf("ask for an ended session's editor host: %d", got)
		}
	})
}
