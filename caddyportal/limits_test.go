package caddyportal_test

import (
	"cmp"
	"encoding/base64"
	"fmt"
	"html"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
)

// trustedLocal makes Caddy take the client address from X-Forwarded-For
// when the request comes from 127.0.0.1, the test's own "proxy": each
// test request can then come from the client address it names.
const trustedLocal = `servers {
		trusted_proxies static 127.0.0.1/32
	}`

// startProxiedPortal is startPortal behind a trusted proxy (see
// trustedLocal).
func startProxiedPortal(t *testing.T, dir, body string) *portal {
	t.Helper()
	p := &portal{t: t, port: freePort(t), dir: dir, global: trustedLocal}
	p.base = fmt.Sprintf("http://127.0.0.1:%d", p.port)
	p.load(body)
	t.Cleanup(func() { _ = caddy.Stop() })
	return p
}

// passwordGrant asks the token endpoint for a password grant from client
// address from ("": the test's own).
func (p *portal) passwordGrant(from, user, pass string) resp {
	p.t.Helper()
	return p.grant(from, url.Values{"grant_type": {"password"}, "username": {user}, "password": {pass}})
}

// grant posts form to the token endpoint with the client's credentials.
func (p *portal) grant(from string, form url.Values) resp {
	p.t.Helper()
	hdr := map[string]string{
		"Content-Type":  "application/x-www-form-urlencoded",
		"Authorization": "Basic " + base64.StdEncoding.EncodeToString([]byte(clientID+":"+clientSec)),
	}
	if from != "" {
		hdr["X-Forwarded-For"] = from
	}
	return p.do("POST", "/oauth2/token/", "", strings.NewReader(form.Encode()), hdr)
}

var csrfField = regexp.MustCompile(`name="csrf" value="([^"]*)"`)

// formClient is a browser-like client with its own cookies that does not
// follow redirects.
func formClient(t *testing.T) *http.Client {
	t.Helper()
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	return &http.Client{Jar: jar, Timeout: noRedirect.Timeout, CheckRedirect: noRedirect.CheckRedirect}
}

// postForm fetches the form page at path (for its CSRF token) and posts
// values to it, both from client address from.
func (p *portal) postForm(c *http.Client, from, path string, values url.Values) resp {
	p.t.Helper()
	page, err := doWith(c, "GET", p.base+path, "", nil, map[string]string{"X-Forwarded-For": from})
	if err != nil {
		p.t.Fatal(err)
	}
	m := csrfField.FindSubmatch(page.body)
	if page.status != http.StatusOK || m == nil {
		p.t.Fatalf("GET %s: %d without a CSRF token: %s", path, page.status, page.body)
	}
	values.Set("csrf", html.UnescapeString(string(m[1])))
	res, err := doWith(c, "POST", p.base+path, "", strings.NewReader(values.Encode()), map[string]string{
		"Content-Type": "application/x-www-form-urlencoded", "Origin": p.base, "X-Forwarded-For": from,
	})
	if err != nil {
		p.t.Fatal(err)
	}
	return res
}

// webLogin signs in through the login form from client address from.
func (p *portal) webLogin(from, user, pass string) resp {
	p.t.Helper()
	return p.postForm(formClient(p.t.(*testing.T)), from, "/accounts/login/", url.Values{"username": {user}, "password": {pass}})
}

// wantLimited checks the API's answer to a refused attempt: 429, a JSON
// error and a Retry-After.
func wantLimited(t *testing.T, what string, r resp) {
	t.Helper()
	if r.status != http.StatusTooManyRequests || r.header.Get("Retry-After") == "" {
		t.Fatalf("%s: %d (Retry-After %q) %s, want 429 with Retry-After", what, r.status, r.header.Get("Retry-After"), r.body)
	}
	if e := r.json(t)["error"]; e == nil || e == "" {
		t.Fatalf("%s: 429 without a JSON error: %s", what, r.body)
	}
}

// wantPageLimited checks the web login's answer to a refused attempt.
func wantPageLimited(t *testing.T, what string, r resp) {
	t.Helper()
	if r.status != http.StatusTooManyRequests || r.header.Get("Retry-After") == "" ||
		!strings.Contains(string(r.body), "Too many failed sign-in attempts") {
		t.Fatalf("%s: %d (Retry-After %q), want 429 with a message; body %s", what, r.status, r.header.Get("Retry-After"), r.body)
	}
}

// TestLoginLimitsOnCaddy: failed logins are counted per client address
// and per account, across both doors (the token endpoint and the web
// login), a success on one account does not clear the address, and
// concurrent guesses count before their passwords are checked (issue 12,
// item 3).
func TestLoginLimitsOnCaddy(t *testing.T) {
	p := startProxiedPortal(t, t.TempDir(), pagesBody("one-step", "127.0.0.1:1"))

	// One address: 9 admin guesses spread over both doors, then a robot
	// login that succeeds, then one more guess. The success must not have
	// cleared the address, so the 10th failure closes it for everyone.
	const a = "203.0.113.1"
	for i := range 5 {
		if r := p.passwordGrant(a, adminUser, fmt.Sprint("guess-", i)); r.status != http.StatusBadRequest {
			t.Fatalf("API guess %d: %d %s", i, r.status, r.body)
		}
	}
	for i := range 4 {
		if r := p.webLogin(a, adminUser, fmt.Sprint("web-guess-", i)); r.status != http.StatusForbidden && r.status != http.StatusUnauthorized {
			t.Fatalf("web guess %d: %d", i, r.status)
		}
	}
	if r := p.passwordGrant(a, robotUser, robotPass); r.status != http.StatusOK {
		t.Fatalf("robot login from the address with 9 failures: %d %s", r.status, r.body)
	}
	if r := p.webLogin(a, "nobody@example.com", "wrong"); r.status != http.StatusUnauthorized {
		t.Fatalf("10th guess: %d", r.status)
	}
	wantLimited(t, "robot login after 10 failures from its address", p.passwordGrant(a, robotUser, robotPass))
	wantPageLimited(t, "web login after 10 failures from its address", p.webLogin(a, "ann@example.com", "whatever"))
	// Another address is not affected.
	if r := p.passwordGrant("203.0.113.2", robotUser, robotPass); r.status != http.StatusOK {
		t.Fatalf("robot login from another address: %d %s", r.status, r.body)
	}

	// One account guessed at from ten addresses is locked at both doors,
	// even from a fresh address and with the right password; other
	// accounts are not.
	const target = "ann@example.com"
	for i := range 10 {
		from := fmt.Sprintf("198.51.100.%d", i+1)
		var r resp
		if i%2 == 0 {
			r = p.passwordGrant(from, target, "wrong")
		} else {
			r = p.webLogin(from, target, "wrong")
		}
		if r.status == http.StatusTooManyRequests || r.status >= 500 {
			t.Fatalf("guess %d at %s from %s: %d", i, target, from, r.status)
		}
	}
	wantLimited(t, "API login to an account with 10 failures", p.passwordGrant("192.0.2.1", target, "wrong"))
	wantPageLimited(t, "web login to an account with 10 failures", p.webLogin("192.0.2.1", target, "wrong"))
	if r := p.webLogin("192.0.2.1", adminUser, adminPass); r.status != http.StatusSeeOther {
		t.Fatalf("admin login from a clean address while another account is locked: %d %s", r.status, r.body)
	}

	// 100 concurrent wrong web logins from one address: at most 10 are
	// checked, the rest are refused before their password is looked at.
	// (The web login checks learner passwords with bcrypt, so without
	// reservation all 100 would pass the check while the first are still
	// hashing.)
	const from = "192.0.2.77"
	type prepared struct {
		c    *http.Client
		csrf string
	}
	var forms []prepared
	for range 100 {
		c := formClient(t)
		// Without reservation all 100 hash at once on a busy machine.
		c.Timeout = 3 * time.Minute
		page, err := doWith(c, "GET", p.base+"/accounts/login/", "", nil, map[string]string{"X-Forwarded-For": from})
		m := csrfField.FindSubmatch(page.body)
		if err != nil || m == nil {
			t.Fatalf("login page: %v %d", err, page.status)
		}
		forms = append(forms, prepared{c, html.UnescapeString(string(m[1]))})
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	statuses := map[int]int{}
	var firstErr error
	for i, f := range forms {
		wg.Add(1)
		go func() {
			defer wg.Done()
			form := url.Values{"csrf": {f.csrf}, "username": {fmt.Sprintf("user-%d@example.com", i)}, "password": {"wrong"}}
			r, err := doWith(f.c, "POST", p.base+"/accounts/login/", "", strings.NewReader(form.Encode()), map[string]string{
				"Content-Type": "application/x-www-form-urlencoded", "Origin": p.base, "X-Forwarded-For": from,
			})
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				statuses[-1]++
				firstErr = cmp.Or(firstErr, err)
				return
			}
			statuses[r.status]++
		}()
	}
	wg.Wait()
	if statuses[http.StatusUnauthorized] > 10 || statuses[http.StatusUnauthorized]+statuses[http.StatusTooManyRequests] != 100 {
		t.Fatalf("100 concurrent wrong logins answered %v: want at most 10 checked (401), the rest 429 (error: %v)", statuses, firstErr)
	}
	wantLimited(t, "API login from the address after the concurrent guesses", p.passwordGrant(from, robotUser, robotPass))
}

// tokenPair logs in with the password grant and returns the access and
// refresh tokens.
func (p *portal) tokenPair(user, pass string) (access, refresh string) {
	p.t.Helper()
	r := p.passwordGrant("", user, pass)
	if r.status != http.StatusOK {
		p.t.Fatalf("login %s: %d %s", user, r.status, r.body)
	}
	m := r.json(p.t)
	return m["access_token"].(string), m["refresh_token"].(string)
}

// refresh uses the refresh grant.
func (p *portal) refresh(tok string) resp {
	p.t.Helper()
	return p.grant("", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok}})
}

// TestPasswordChangeEndsTokensOnCaddy: access and refresh tokens are bound
// to the password they were issued under. A reload that keeps the
// passwords keeps them working; a reload that changes the robot's password
// ends the robot's tokens (refresh cannot rotate them either) and leaves
// the admin's; changing the admin's ends the admin's (issue 12, item 7).
func TestPasswordChangeEndsTokensOnCaddy(t *testing.T) {
	p := startPortal(t, t.TempDir(), defaultBody)
	robotAccess, robotRefresh := p.tokenPair(robotUser, robotPass)
	adminAccess, _ := p.tokenPair(adminUser, adminPass)
	works := func(what, tok string, want bool) {
		t.Helper()
		r := p.do("GET", "/workshops/catalog/environments/", tok, nil, nil)
		if want && r.status != http.StatusOK {
			t.Fatalf("%s: %d %s, want 200", what, r.status, r.body)
		}
		if !want && r.status != http.StatusForbidden {
			t.Fatalf("%s: %d %s, want 403", what, r.status, r.body)
		}
	}

	// Same passwords, other changes: tokens survive the reload.
	p.load(strings.Replace(defaultBody, `"Kubernetes 101"`, `"Kubernetes 102"`, 1))
	works("robot token after a reload that kept the password", robotAccess, true)
	r := p.refresh(robotRefresh)
	if r.status != http.StatusOK {
		t.Fatalf("refresh after a reload that kept the password: %d %s", r.status, r.body)
	}
	robotAccess, robotRefresh = r.json(t)["access_token"].(string), r.json(t)["refresh_token"].(string)

	// The robot's password changes.
	p.load(strings.Replace(defaultBody, "robot robot@portal robot-pass", "robot robot@portal robot-pass-2", 1))
	works("robot access token issued under the old password", robotAccess, false)
	if r := p.refresh(robotRefresh); r.status != http.StatusBadRequest || r.json(t)["error"] != "invalid_grant" {
		t.Fatalf("refresh of a token issued under the old password: %d %s, want 400 invalid_grant", r.status, r.body)
	}
	works("admin token after the robot's password changed", adminAccess, true)
	newAccess, newRefresh := p.tokenPair(robotUser, "robot-pass-2")
	works("robot token under the new password", newAccess, true)

	// Changing it back does not revive the old tokens' rotation chain,
	// but the admin's password change ends the admin's token.
	p.load(strings.Replace(strings.Replace(defaultBody, "robot robot@portal robot-pass", "robot robot@portal robot-pass-2", 1),
		"admin admin admin-pass", "admin admin admin-pass-2", 1))
	works("admin token issued under the old password", adminAccess, false)
	works("robot token after the admin's password changed", newAccess, true)
	if r := p.refresh(newRefresh); r.status != http.StatusOK {
		t.Fatalf("refresh of a token whose password did not change: %d %s", r.status, r.body)
	}
}

// TestRevokeLimitedOnCaddy: the unauthenticated revoke endpoint is limited
// per client address, with a JSON error and Retry-After; other addresses
// and real revocations are unaffected.
func TestRevokeLimitedOnCaddy(t *testing.T) {
	p := startProxiedPortal(t, t.TempDir(), defaultBody)
	revoke := func(from, tok string) resp {
		return p.do("POST", "/oauth2/revoke-token/", "", strings.NewReader(url.Values{"token": {tok}}.Encode()),
			map[string]string{"Content-Type": "application/x-www-form-urlencoded", "X-Forwarded-For": from})
	}
	n := 0
	var r resp
	for ; n < 200; n++ {
		if r = revoke("203.0.113.9", fmt.Sprint("unknown-token-", n)); r.status != http.StatusOK {
			break
		}
	}
	if n == 0 || n > 60 || r.status != http.StatusTooManyRequests || r.header.Get("Retry-After") == "" || r.json(t)["error"] == nil {
		t.Fatalf("after %d revokes from one address: %d (Retry-After %q) %s, want a 429 with a JSON error soon", n, r.status, r.header.Get("Retry-After"), r.body)
	}
	tok := p.token(robotUser, robotPass)
	if r := revoke("203.0.113.10", tok); r.status != http.StatusOK {
		t.Fatalf("revoke from another address: %d %s", r.status, r.body)
	}
	if r := p.do("GET", "/workshops/catalog/environments/", tok, nil, nil); r.status != http.StatusForbidden {
		t.Fatalf("revoked token still works: %d", r.status)
	}
}

// TestAnonymousCreateOnlyGetOnCaddy: only a GET of the anonymous start link
// starts a session; HEAD and POST get a 405 with a JSON error and take no
// place, and starts are limited per client address.
func TestAnonymousCreateOnlyGetOnCaddy(t *testing.T) {
	up := startUpstream(t, "alpha")
	p := startProxiedPortal(t, t.TempDir(), gateBody("registration anonymous", up.addr))
	const create = "/workshops/environment/demo-w01/create/"
	for _, m := range []string{"HEAD", "POST", "PUT"} {
		r := p.do(m, create, "", nil, map[string]string{"X-Forwarded-For": "203.0.113.20"})
		if r.status != http.StatusMethodNotAllowed || r.header.Get("Allow") != "GET" {
			t.Fatalf("%s %s: %d (Allow %q), want 405", m, create, r.status, r.header.Get("Allow"))
		}
		if m != "HEAD" {
			if e := r.json(t)["error"]; e == nil || e == "" {
				t.Fatalf("%s %s: 405 without a JSON error: %s", m, create, r.body)
			}
		}
	}
	// The only place is still free: a GET gets it.
	r := p.do("GET", create, "", nil, map[string]string{"X-Forwarded-For": "203.0.113.20"})
	if r.status != http.StatusFound || !strings.HasPrefix(r.header.Get("Location"), "/workshops/session/demo-w01-s") {
		t.Fatalf("GET %s after HEAD and POST: %d to %q, want the dashboard", create, r.status, r.header.Get("Location"))
	}

	// Starts from one address are limited (unknown workshops count too:
	// the limit comes first).
	const from = "203.0.113.21"
	n := 0
	for ; n < 200; n++ {
		r = p.do("GET", "/workshops/environment/demo-w99/create/", "", nil, map[string]string{"X-Forwarded-For": from})
		if r.status != http.StatusFound {
			break
		}
	}
	if n == 0 || n > 50 || r.status != http.StatusTooManyRequests || r.header.Get("Retry-After") == "" {
		t.Fatalf("after %d starts from one address: %d (Retry-After %q), want 429 soon", n, r.status, r.header.Get("Retry-After"))
	}
	if r := p.do("GET", "/workshops/environment/demo-w99/create/", "", nil, map[string]string{"X-Forwarded-For": "203.0.113.22"}); r.status != http.StatusFound {
		t.Fatalf("another address after the limit: %d", r.status)
	}
}
