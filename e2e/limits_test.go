package e2e

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

	"github.com/caddyportal/caddyportal/internal/e2etest"
	"github.com/caddyportal/caddyportal/internal/e2etest/echo"
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
	p := &portal{&e2etest.Portal{T: t, Dir: dir, Global: trustedLocal}}
	p.Start(body)
	return p
}

// passwordGrant asks the token endpoint for a password grant from client
// address from ("": the test's own).
func (p *portal) passwordGrant(from, user, pass string) resp {
	p.T.Helper()
	return p.grant(from, url.Values{"grant_type": {"password"}, "username": {user}, "password": {pass}})
}

// grant posts form to the token endpoint with the client's credentials.
func (p *portal) grant(from string, form url.Values) resp {
	p.T.Helper()
	hdr := map[string]string{
		"Content-Type":  "application/x-www-form-urlencoded",
		"Authorization": "Basic " + base64.StdEncoding.EncodeToString([]byte(e2etest.ClientID+":"+e2etest.ClientSecret)),
	}
	if from != "" {
		hdr["X-Forwarded-For"] = from
	}
	return p.Do("POST", "/oauth2/token/", "", strings.NewReader(form.Encode()), hdr)
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
	return &http.Client{Jar: jar, Timeout: e2etest.NoRedirect.Timeout, CheckRedirect: e2etest.NoRedirect.CheckRedirect}
}

// postForm fetches the form page at path (for its CSRF token) and posts
// values to it, both from client address from.
func (p *portal) postForm(c *http.Client, from, path string, values url.Values) resp {
	p.T.Helper()
	page, err := e2etest.DoWith(c, "GET", p.Base+path, "", nil, map[string]string{"X-Forwarded-For": from})
	if err != nil {
		p.T.Fatal(err)
	}
	m := csrfField.FindSubmatch(page.Body)
	if page.Status != http.StatusOK || m == nil {
		p.T.Fatalf("GET %s: %d without a CSRF token: %s", path, page.Status, page.Body)
	}
	values.Set("csrf", html.UnescapeString(string(m[1])))
	res, err := e2etest.DoWith(c, "POST", p.Base+path, "", strings.NewReader(values.Encode()), map[string]string{
		"Content-Type": "application/x-www-form-urlencoded", "Origin": p.Base, "X-Forwarded-For": from,
	})
	if err != nil {
		p.T.Fatal(err)
	}
	return res
}

// webLogin signs in through the login form from client address from.
func (p *portal) webLogin(from, user, pass string) resp {
	p.T.Helper()
	return p.postForm(formClient(p.T.(*testing.T)), from, "/accounts/login/", url.Values{"username": {user}, "password": {pass}})
}

// wantLimited checks the API's answer to a refused attempt: 429, a JSON
// error and a Retry-After.
func wantLimited(t *testing.T, what string, r resp) {
	t.Helper()
	if r.Status != http.StatusTooManyRequests || r.Header.Get("Retry-After") == "" {
		t.Fatalf("%s: %d (Retry-After %q) %s, want 429 with Retry-After", what, r.Status, r.Header.Get("Retry-After"), r.Body)
	}
	if e := r.JSON(t)["error"]; e == nil || e == "" {
		t.Fatalf("%s: 429 without a JSON error: %s", what, r.Body)
	}
}

// wantPageLimited checks the web login's answer to a refused attempt.
func wantPageLimited(t *testing.T, what string, r resp) {
	t.Helper()
	if r.Status != http.StatusTooManyRequests || r.Header.Get("Retry-After") == "" ||
		!strings.Contains(string(r.Body), "Too many failed sign-in attempts") {
		t.Fatalf("%s: %d (Retry-After %q), want 429 with a message; body %s", what, r.Status, r.Header.Get("Retry-After"), r.Body)
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
		if r := p.passwordGrant(a, e2etest.AdminUser, fmt.Sprint("guess-", i)); r.Status != http.StatusBadRequest {
			t.Fatalf("API guess %d: %d %s", i, r.Status, r.Body)
		}
	}
	for i := range 4 {
		if r := p.webLogin(a, e2etest.AdminUser, fmt.Sprint("web-guess-", i)); r.Status != http.StatusForbidden && r.Status != http.StatusUnauthorized {
			t.Fatalf("web guess %d: %d", i, r.Status)
		}
	}
	if r := p.passwordGrant(a, e2etest.RobotUser, e2etest.RobotPass); r.Status != http.StatusOK {
		t.Fatalf("robot login from the address with 9 failures: %d %s", r.Status, r.Body)
	}
	if r := p.webLogin(a, "nobody@example.com", "wrong"); r.Status != http.StatusUnauthorized {
		t.Fatalf("10th guess: %d", r.Status)
	}
	wantLimited(t, "robot login after 10 failures from its address", p.passwordGrant(a, e2etest.RobotUser, e2etest.RobotPass))
	wantPageLimited(t, "web login after 10 failures from its address", p.webLogin(a, "ann@example.com", "whatever"))
	// Another address is not affected.
	if r := p.passwordGrant("203.0.113.2", e2etest.RobotUser, e2etest.RobotPass); r.Status != http.StatusOK {
		t.Fatalf("robot login from another address: %d %s", r.Status, r.Body)
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
		if r.Status == http.StatusTooManyRequests || r.Status >= 500 {
			t.Fatalf("guess %d at %s from %s: %d", i, target, from, r.Status)
		}
	}
	wantLimited(t, "API login to an account with 10 failures", p.passwordGrant("192.0.2.1", target, "wrong"))
	wantPageLimited(t, "web login to an account with 10 failures", p.webLogin("192.0.2.1", target, "wrong"))
	if r := p.webLogin("192.0.2.1", e2etest.AdminUser, e2etest.AdminPass); r.Status != http.StatusSeeOther {
		t.Fatalf("admin login from a clean address while another account is locked: %d %s", r.Status, r.Body)
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
		page, err := e2etest.DoWith(c, "GET", p.Base+"/accounts/login/", "", nil, map[string]string{"X-Forwarded-For": from})
		m := csrfField.FindSubmatch(page.Body)
		if err != nil || m == nil {
			t.Fatalf("login page: %v %d", err, page.Status)
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
			r, err := e2etest.DoWith(f.c, "POST", p.Base+"/accounts/login/", "", strings.NewReader(form.Encode()), map[string]string{
				"Content-Type": "application/x-www-form-urlencoded", "Origin": p.Base, "X-Forwarded-For": from,
			})
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				statuses[-1]++
				firstErr = cmp.Or(firstErr, err)
				return
			}
			statuses[r.Status]++
		}()
	}
	wg.Wait()
	if statuses[http.StatusUnauthorized] > 10 || statuses[http.StatusUnauthorized]+statuses[http.StatusTooManyRequests] != 100 {
		t.Fatalf("100 concurrent wrong logins answered %v: want at most 10 checked (401), the rest 429 (error: %v)", statuses, firstErr)
	}
	wantLimited(t, "API login from the address after the concurrent guesses", p.passwordGrant(from, e2etest.RobotUser, e2etest.RobotPass))
}

// tokenPair logs in with the password grant and returns the access and
// refresh tokens.
func (p *portal) tokenPair(user, pass string) (access, refresh string) {
	p.T.Helper()
	r := p.passwordGrant("", user, pass)
	if r.Status != http.StatusOK {
		p.T.Fatalf("login %s: %d %s", user, r.Status, r.Body)
	}
	m := r.JSON(p.T)
	return m["access_token"].(string), m["refresh_token"].(string)
}

// refresh uses the refresh grant.
func (p *portal) refresh(tok string) resp {
	p.T.Helper()
	return p.grant("", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok}})
}

// TestLoginLimitsSurviveAReload: a config reload does not forgive an
// address its failed logins: the limits are kept per portal across
// configs, not made afresh with each.
func TestLoginLimitsSurviveAReload(t *testing.T) {
	body := pagesBody("one-step", "127.0.0.1:1")
	p := startProxiedPortal(t, t.TempDir(), body)
	const a = "203.0.113.9"
	for i := range 10 {
		if r := p.passwordGrant(a, e2etest.AdminUser, fmt.Sprint("guess-", i)); r.Status != http.StatusBadRequest {
			t.Fatalf("guess %d: %d %s", i, r.Status, r.Body)
		}
	}
	wantLimited(t, "robot login after 10 failures", p.passwordGrant(a, e2etest.RobotUser, e2etest.RobotPass))

	p.Load(strings.Replace(body, `"Gate lab"`, `"Gate lab, reloaded"`, 1))
	if r := p.Do("GET", "/workshops/catalog/environments/", p.Token(e2etest.RobotUser, e2etest.RobotPass), nil, nil); !strings.Contains(string(r.Body), "Gate lab, reloaded") {
		t.Fatalf("the reload did not apply: %d %s", r.Status, r.Body)
	}
	wantLimited(t, "robot login after 10 failures and a reload", p.passwordGrant(a, e2etest.RobotUser, e2etest.RobotPass))
	wantPageLimited(t, "web login after 10 failures and a reload", p.webLogin(a, "ann@example.com", "whatever"))
	// Another address is not affected.
	if r := p.passwordGrant("203.0.113.10", e2etest.RobotUser, e2etest.RobotPass); r.Status != http.StatusOK {
		t.Fatalf("robot login from another address after the reload: %d %s", r.Status, r.Body)
	}
}

// TestPasswordChangeEndsTokensOnCaddy: access and refresh tokens are bound
// to the password they were issued under. A reload that keeps the
// passwords keeps them working; a reload that changes the robot's password
// ends the robot's tokens (refresh cannot rotate them either) and leaves
// the admin's; changing the admin's ends the admin's (issue 12, item 7).
func TestPasswordChangeEndsTokensOnCaddy(t *testing.T) {
	p := startPortal(t, t.TempDir(), e2etest.DefaultBody)
	robotAccess, robotRefresh := p.tokenPair(e2etest.RobotUser, e2etest.RobotPass)
	adminAccess, _ := p.tokenPair(e2etest.AdminUser, e2etest.AdminPass)
	works := func(what, tok string, want bool) {
		t.Helper()
		r := p.Do("GET", "/workshops/catalog/environments/", tok, nil, nil)
		if want && r.Status != http.StatusOK {
			t.Fatalf("%s: %d %s, want 200", what, r.Status, r.Body)
		}
		if !want && r.Status != http.StatusForbidden {
			t.Fatalf("%s: %d %s, want 403", what, r.Status, r.Body)
		}
	}

	// Same passwords, other changes: tokens survive the reload.
	p.Load(strings.Replace(e2etest.DefaultBody, `"Kubernetes 101"`, `"Kubernetes 102"`, 1))
	works("robot token after a reload that kept the password", robotAccess, true)
	r := p.refresh(robotRefresh)
	if r.Status != http.StatusOK {
		t.Fatalf("refresh after a reload that kept the password: %d %s", r.Status, r.Body)
	}
	robotAccess, robotRefresh = r.JSON(t)["access_token"].(string), r.JSON(t)["refresh_token"].(string)

	// The robot's password changes.
	p.Load(strings.Replace(e2etest.DefaultBody, "robot robot@portal robot-pass", "robot robot@portal robot-pass-2", 1))
	works("robot access token issued under the old password", robotAccess, false)
	if r := p.refresh(robotRefresh); r.Status != http.StatusBadRequest || r.JSON(t)["error"] != "invalid_grant" {
		t.Fatalf("refresh of a token issued under the old password: %d %s, want 400 invalid_grant", r.Status, r.Body)
	}
	works("admin token after the robot's password changed", adminAccess, true)
	newAccess, newRefresh := p.tokenPair(e2etest.RobotUser, "robot-pass-2")
	works("robot token under the new password", newAccess, true)

	// Changing it back does not revive the old tokens' rotation chain,
	// but the admin's password change ends the admin's token.
	p.Load(strings.Replace(strings.Replace(e2etest.DefaultBody, "robot robot@portal robot-pass", "robot robot@portal robot-pass-2", 1),
		"admin admin admin-pass", "admin admin admin-pass-2", 1))
	works("admin token issued under the old password", adminAccess, false)
	works("robot token after the admin's password changed", newAccess, true)
	if r := p.refresh(newRefresh); r.Status != http.StatusOK {
		t.Fatalf("refresh of a token whose password did not change: %d %s", r.Status, r.Body)
	}
}

// TestRevokeLimitedOnCaddy: the unauthenticated revoke endpoint is limited
// per client address, with a JSON error and Retry-After; other addresses
// and real revocations are unaffected.
func TestRevokeLimitedOnCaddy(t *testing.T) {
	p := startProxiedPortal(t, t.TempDir(), e2etest.DefaultBody)
	revoke := func(from, tok string) resp {
		return p.Do("POST", "/oauth2/revoke-token/", "", strings.NewReader(url.Values{"token": {tok}}.Encode()),
			map[string]string{"Content-Type": "application/x-www-form-urlencoded", "X-Forwarded-For": from})
	}
	n := 0
	var r resp
	for ; n < 200; n++ {
		if r = revoke("203.0.113.9", fmt.Sprint("unknown-token-", n)); r.Status != http.StatusOK {
			break
		}
	}
	if n == 0 || n > 60 || r.Status != http.StatusTooManyRequests || r.Header.Get("Retry-After") == "" || r.JSON(t)["error"] == nil {
		t.Fatalf("after %d revokes from one address: %d (Retry-After %q) %s, want a 429 with a JSON error soon", n, r.Status, r.Header.Get("Retry-After"), r.Body)
	}
	tok := p.Token(e2etest.RobotUser, e2etest.RobotPass)
	if r := revoke("203.0.113.10", tok); r.Status != http.StatusOK {
		t.Fatalf("revoke from another address: %d %s", r.Status, r.Body)
	}
	if r := p.Do("GET", "/workshops/catalog/environments/", tok, nil, nil); r.Status != http.StatusForbidden {
		t.Fatalf("revoked token still works: %d", r.Status)
	}
}

// TestAnonymousCreateOnlyGetOnCaddy: only a GET of the anonymous start link
// starts a session; HEAD and POST get a 405 with a JSON error and take no
// place, and starts are limited per client address.
func TestAnonymousCreateOnlyGetOnCaddy(t *testing.T) {
	up := echo.Start(t, "alpha")
	p := startProxiedPortal(t, t.TempDir(), gateBody("registration anonymous", up.Addr))
	const create = "/workshops/environment/demo-w01/create/"
	for _, m := range []string{"HEAD", "POST", "PUT"} {
		r := p.Do(m, create, "", nil, map[string]string{"X-Forwarded-For": "203.0.113.20"})
		if r.Status != http.StatusMethodNotAllowed || r.Header.Get("Allow") != "GET" {
			t.Fatalf("%s %s: %d (Allow %q), want 405", m, create, r.Status, r.Header.Get("Allow"))
		}
		if m != "HEAD" {
			if e := r.JSON(t)["error"]; e == nil || e == "" {
				t.Fatalf("%s %s: 405 without a JSON error: %s", m, create, r.Body)
			}
		}
	}
	// The only place is still free: a GET gets it.
	r := p.Do("GET", create, "", nil, map[string]string{"X-Forwarded-For": "203.0.113.20"})
	if r.Status != http.StatusFound || !strings.HasPrefix(r.Header.Get("Location"), "/workshops/session/demo-w01-s") {
		t.Fatalf("GET %s after HEAD and POST: %d to %q, want the dashboard", create, r.Status, r.Header.Get("Location"))
	}

	// Starts from one address are limited (unknown workshops count too:
	// the limit comes first).
	const from = "203.0.113.21"
	n := 0
	for ; n < 200; n++ {
		r = p.Do("GET", "/workshops/environment/demo-w99/create/", "", nil, map[string]string{"X-Forwarded-For": from})
		if r.Status != http.StatusFound {
			break
		}
	}
	if n == 0 || n > 50 || r.Status != http.StatusTooManyRequests || r.Header.Get("Retry-After") == "" {
		t.Fatalf("after %d starts from one address: %d (Retry-After %q), want 429 soon", n, r.Status, r.Header.Get("Retry-After"))
	}
	if r := p.Do("GET", "/workshops/environment/demo-w99/create/", "", nil, map[string]string{"X-Forwarded-For": "203.0.113.22"}); r.Status != http.StatusFound {
		t.Fatalf("another address after the limit: %d", r.Status)
	}
}
