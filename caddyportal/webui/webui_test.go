package webui_test

import (
	"context"
	"crypto/tls"
	"fmt"
	"html"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/caddyportal/caddyportal/caddyportal/config"
	"github.com/caddyportal/caddyportal/caddyportal/lifecycle"
	"github.com/caddyportal/caddyportal/caddyportal/sessions"
	"github.com/caddyportal/caddyportal/caddyportal/tokens"
	"github.com/caddyportal/caddyportal/caddyportal/webui"
)

// TestRoutesLeaveAPIAlone: the pages claim their own paths and never the
// REST API's or the gate's.
func TestRoutesLeaveAPIAlone(t *testing.T) {
	p := newPortal(t, portalConfig(config.RegistrationOneStep, ""))
	for _, path := range []string{"/workshops/catalog/environments/", "/workshops/catalog/workshops",
		"/workshops/environment/demo-w01/request/", "/workshops/session/demo-w01-s001/activate/",
		"/workshops/session/demo-w01-s001/", "/workshops/user/bob/sessions/", "/oauth2/token/",
		"/workshops/environment/demo-w01/create/", "/favicon.ico", "/workshops/"} {
		if h := pageRoute(p.ui, httptest.NewRequest("GET", path, nil)); h != nil {
			t.Errorf("webui claims %s", path)
		}
	}
	for _, path := range []string{"/", "/accounts/login/", "/accounts/logout/", "/accounts/signup/",
		"/workshops/catalog/", "/workshops/catalog", "/admin/", "/admin/sessions/", "/admin/sessions/demo-w01-s001/",
		"/admin/users/", "/admin/nope/", "/accounts/nope"} {
		if h := pageRoute(p.ui, httptest.NewRequest("GET", path, nil)); h == nil {
			t.Errorf("webui does not serve %s", path)
		}
	}
	b := p.browser()
	for path, want := range map[string]int{"/admin/nope/": 404, "/accounts/nope": 404,
		"/admin/sessions/BAD_NAME/": 404, "/admin/sessions/x/terminate/": 405} {
		r := b.get(path)
		if r.status != want || !strings.Contains(r.header.Get("Content-Type"), "text/html") || !strings.Contains(r.body, `id="error"`) {
			t.Errorf("GET %s: %d %q, want %d with an HTML error page", path, r.status, r.header.Get("Content-Type"), want)
		}
	}
	if r := b.do("DELETE", "/admin/", nil); r.status != http.StatusMethodNotAllowed {
		t.Errorf("DELETE /admin/: %d", r.status)
	}
	if r := b.get("/admin"); r.status != http.StatusMovedPermanently || r.location() != "/admin/" {
		t.Errorf("GET /admin: %d %q", r.status, r.location())
	}
}

// TestAdminPagesNeedAdmin: nobody but the admin sees admin pages. A
// visitor is sent to the login page with a next that brings them back; a
// signed-in learner, whom the login page would send straight back (a
// redirect loop in the browser), is told the page is for administrators.
func TestAdminPagesNeedAdmin(t *testing.T) {
	p := newPortal(t, portalConfig(config.RegistrationOneStep, ""))
	name := p.restRequest("bob")
	learner := p.browser()
	learner.signup("ann@example.com", "ann-password") // and signed in
	for _, path := range []string{"/admin/", "/admin/sessions/?state=all", "/admin/users/", "/admin/sessions/" + name + "/"} {
		r := p.browser().get(path)
		want := "/accounts/login/?next=" + url.QueryEscape(path)
		if r.status != http.StatusFound || r.location() != want {
			t.Errorf("GET %s: %d to %q, want 302 to %q", path, r.status, r.location(), want)
		}
		r = learner.get(path)
		if r.status != http.StatusForbidden || !strings.Contains(r.body, "signed in as a learner") {
			t.Errorf("GET %s as a learner: %d %s", path, r.status, r.body)
		}
		// The login page sends the learner on to the page, once.
		r = learner.get(want)
		if r.status != http.StatusFound || r.location() != path {
			t.Errorf("GET %s as a learner: %d to %q", want, r.status, r.location())
		}
	}
	// A cookie signed with another key is nobody.
	forged := p.browser()
	u, _ := url.Parse(p.srv.URL)
	other, _ := tokens.NewSigner(make([]byte, 32))
	forged.hc.Jar.SetCookies(u, []*http.Cookie{{Name: cookieName, Path: "/",
		Value: other.Sign("webui-login", []byte("admin\nadmin\nsid\nbind"), time.Now().Add(time.Hour))}})
	if r := forged.get("/admin/"); r.status != http.StatusFound {
		t.Errorf("forged admin cookie: %d", r.status)
	}
}

// TestSignupKeepsWhereTheLearnerWasGoing: a visitor sent to the login
// page on the way to a workshop (next) who creates an account there is
// taken there once signed in; a next that is not the portal's is dropped.
func TestSignupKeepsWhereTheLearnerWasGoing(t *testing.T) {
	p := newPortal(t, portalConfig(config.RegistrationOneStep, ""))
	b := p.browser()
	const next = "/workshops/environment/demo-w01/"
	login := b.get("/accounts/login/?next=" + url.QueryEscape(next))
	link := `href="/accounts/signup/?next=` + url.QueryEscape(next) + `"`
	if login.status != http.StatusOK || !strings.Contains(strings.ToLower(login.body), strings.ToLower(link)) {
		t.Fatalf("the login page's sign-up link lacks the next: %s", login.body)
	}
	form := b.get("/accounts/signup/?next=" + url.QueryEscape(next))
	if form.status != http.StatusOK || !strings.Contains(form.body, `name="next" value="`+next+`"`) {
		t.Fatalf("the sign-up form does not carry the next: %s", form.body)
	}
	r := b.post("/accounts/signup/", url.Values{"csrf": {b.csrf("/accounts/signup/")}, "email": {"ann@example.com"},
		"password": {"ann-password"}, "password2": {"ann-password"}, "next": {next}})
	want := "/accounts/login/?" + url.Values{"notice": {"signed-up"}, "username": {"ann@example.com"}, "next": {next}}.Encode()
	if r.status != http.StatusSeeOther || r.location() != want {
		t.Fatalf("sign-up: %d to %q, want %q", r.status, r.location(), want)
	}
	in := b.post("/accounts/login/", url.Values{"csrf": {b.csrf(r.location())}, "username": {"ann@example.com"},
		"password": {"ann-password"}, "next": {next}})
	if in.status != http.StatusSeeOther || in.location() != next {
		t.Fatalf("sign-in after sign-up: %d to %q, want %q", in.status, in.location(), next)
	}
	if r := p.browser().get("/accounts/signup/?next=https://evil.example/"); r.status != http.StatusBadRequest {
		t.Fatalf("a sign-up form with another site's next: %d", r.status)
	}
	other := p.browser()
	r = other.post("/accounts/signup/", url.Values{"csrf": {other.csrf("/accounts/signup/")}, "email": {"bob@example.com"},
		"password": {"bob-password"}, "password2": {"bob-password"}, "next": {"https://evil.example/"}})
	if r.status != http.StatusSeeOther || r.location() != signedUp("bob@example.com") {
		t.Fatalf("a sign-up posting another site's next: %d to %q", r.status, r.location())
	}
}

// TestSignInFirst: a visitor's Start (an old catalog page, signed out in
// another tab) is refused with a page that links to the login; a learner's
// refusals do not offer one.
func TestSignInFirst(t *testing.T) {
	p := newPortal(t, portalConfig(config.RegistrationOneStep, ""))
	r := p.browser().post("/workshops/catalog/", url.Values{"environment": {"demo-w01"}})
	if r.status != http.StatusForbidden || !strings.Contains(r.body, `id="sign-in"`) {
		t.Fatalf("a visitor's Start: %d %s", r.status, r.body)
	}
	learner := p.browser()
	learner.signup("ann@example.com", "ann-password")
	if r := learner.get("/admin/"); r.status != http.StatusForbidden || strings.Contains(r.body, `id="sign-in"`) {
		t.Fatalf("a learner's refusal: %d %s", r.status, r.body)
	}
}

// TestAdminActionsRefused: every admin POST without an admin login, without
// a valid CSRF token of that login, or from another origin is refused and
// changes nothing.
func TestAdminActionsRefused(t *testing.T) {
	p := newPortal(t, portalConfig(config.RegistrationOneStep, ""))
	name := p.restRequest("bob")
	before := p.session(name).Expires

	anon := p.browser()
	visitor := p.browser()
	visitorTok := visitor.csrf("/accounts/login/")
	learner := p.browser()
	learner.signup("ann@example.com", "ann-password")
	learnerTok := learner.csrf("/workshops/catalog/")
	admin := p.browser()
	admin.login(adminUser, adminPass, "/admin/")
	adminTok := admin.csrf("/admin/sessions/" + name + "/")
	other := p.browser()
	other.login(adminUser, adminPass, "/admin/")
	otherTok := other.csrf("/admin/")

	self := p.srv.URL
	su, _ := url.Parse(self)
	var cookieVal string
	for _, c := range admin.hc.Jar.Cookies(su) {
		if c.Name == cookieName {
			cookieVal = c.Value
		}
	}
	if cookieVal == "" {
		t.Fatal("admin has no login cookie")
	}
	cases := []struct {
		what string
		b    *browser
		csrf string
		hdr  []string
	}{
		{"no login, no token", anon, "", nil},
		{"no login, garbage token", anon, "x", nil},
		{"visitor with its own valid token", visitor, visitorTok, nil},
		{"learner with its own valid token", learner, learnerTok, nil},
		{"admin without token", admin, "", nil},
		{"admin with garbage token", admin, "garbage", nil},
		{"admin with another login's token", admin, otherTok, nil},
		{"admin with its login cookie value as token", admin, cookieVal, nil},
		{"admin, cross-origin", admin, adminTok, []string{"Origin", "https://evil.example"}},
		{"admin, origin null", admin, adminTok, []string{"Origin", "null"}},
		{"admin, other port", admin, adminTok, []string{"Origin", "http://127.0.0.1:1"}},
		{"admin, cross-site fetch metadata", admin, adminTok, []string{"Sec-Fetch-Site", "cross-site"}},
	}
	for _, action := range []string{"terminate", "extend"} {
		path := "/admin/sessions/" + name + "/" + action + "/"
		for _, c := range cases {
			r := c.b.post(path, url.Values{"csrf": {c.csrf}}, c.hdr...)
			if r.status != http.StatusForbidden || !strings.Contains(r.body, `id="error"`) {
				t.Errorf("%s %s: %d, want 403 page", action, c.what, r.status)
			}
		}
	}
	s := p.session(name)
	if s.State != lifecycle.Waiting || !s.Expires.Equal(before) {
		t.Fatalf("refused actions changed the session: %s, expires %v (was %v)", s.State, s.Expires, before)
	}
	// Logging out needs the token too.
	if r := admin.post("/accounts/logout/", url.Values{}); r.status != http.StatusForbidden {
		t.Fatalf("logout without token: %d", r.status)
	}
	if r := admin.get("/admin/"); r.status != http.StatusOK {
		t.Fatalf("admin logged out by a tokenless POST: %d", r.status)
	}
	// The real thing, same origin.
	r := admin.post("/admin/sessions/"+name+"/terminate/", url.Values{"csrf": {adminTok}}, "Origin", self)
	if r.status != http.StatusSeeOther || r.location() != "/admin/sessions/?notice=terminated" {
		t.Fatalf("terminate: %d %q %s", r.status, r.location(), r.body)
	}
	if s := p.session(name); s.State != lifecycle.Stopping || s.Reason != "terminated" {
		t.Fatalf("after terminate: %s %q", s.State, s.Reason)
	}
	// After logout the old token is worthless even with a new login.
	if r := admin.post("/accounts/logout/", url.Values{"csrf": {adminTok}}); r.status != http.StatusSeeOther {
		t.Fatalf("logout: %d", r.status)
	}
	admin.login(adminUser, adminPass, "/admin/")
	name2 := p.restRequest("carol")
	if r := admin.post("/admin/sessions/"+name2+"/terminate/", url.Values{"csrf": {adminTok}}); r.status != http.StatusForbidden {
		t.Fatalf("token of an ended login accepted: %d", r.status)
	}
}

// TestFetchMetadataRefused: a same-origin script (a path-mode dashboard)
// cannot fetch admin pages to read their CSRF tokens.
func TestFetchMetadataRefused(t *testing.T) {
	p := newPortal(t, portalConfig(config.RegistrationOneStep, ""))
	admin := p.browser()
	admin.login(adminUser, adminPass, "/admin/")
	for _, dest := range []string{"empty", "iframe", "script"} {
		r := admin.get("/admin/sessions/", "Sec-Fetch-Dest", dest)
		if r.status != http.StatusForbidden || strings.Contains(r.body, `name="csrf"`) {
			t.Errorf("Sec-Fetch-Dest %s: %d", dest, r.status)
		}
	}
	r := admin.get("/admin/sessions/", "Sec-Fetch-Dest", "document")
	if r.status != http.StatusOK {
		t.Fatalf("document navigation: %d", r.status)
	}
	for k, want := range map[string]string{"X-Frame-Options": "DENY", "Cross-Origin-Opener-Policy": "same-origin", "Cache-Control": "no-store"} {
		if got := r.header.Get(k); got != want {
			t.Errorf("%s = %q, want %q", k, got, want)
		}
	}
	if csp := r.header.Get("Content-Security-Policy"); !strings.Contains(csp, "frame-ancestors 'none'") || strings.Contains(csp, "script-src") {
		t.Errorf("CSP %q", csp)
	}
}

// TestRegistrationDisabled: only the admin can log in; sign-up is refused;
// even a learner with a stored password cannot log in.
func TestRegistrationDisabled(t *testing.T) {
	p := newPortal(t, portalConfig(config.RegistrationDisabled, ""))
	hash, _ := bcrypt.GenerateFromPassword([]byte("ann-password"), bcrypt.MinCost)
	if _, err := p.svc.CreateUser(context.Background(), sessions.User{Email: "ann@example.com", Group: sessions.GroupRegistered,
		PasswordHash: string(hash)}); err != nil {
		t.Fatal(err)
	}
	b := p.browser()
	page := b.get("/accounts/login/")
	if page.status != http.StatusOK || !strings.Contains(page.body, "Only the portal administrator") || strings.Contains(page.body, "/accounts/signup/") ||
		!strings.Contains(page.body, "the link their training site gives them") {
		t.Fatalf("login page: %d %s", page.status, page.body)
	}
	// With anonymous registration, learners start from the catalog.
	anon := newPortal(t, portalConfig(config.RegistrationAnonymous, "")).browser().get("/accounts/login/")
	if !strings.Contains(anon.body, `Learners start their workshops from the <a href="/workshops/catalog/">workshop catalog</a>`) {
		t.Errorf("login page of an anonymous portal: %s", anon.body)
	}
	tok := b.csrf("/accounts/login/")
	r := b.post("/accounts/login/", url.Values{"csrf": {tok}, "username": {"ann@example.com"}, "password": {"ann-password"}})
	if r.status != http.StatusForbidden || !strings.Contains(r.body, "only the administrator can sign in") {
		t.Fatalf("learner login: %d %s", r.status, r.body)
	}
	if c := loginCookie(r); c != nil {
		t.Fatalf("refused login set a cookie: %v", c)
	}
	if r := b.get("/workshops/catalog/"); r.status != http.StatusFound || !strings.HasPrefix(r.location(), "/accounts/login/") {
		t.Fatalf("catalog after refused login: %d %q", r.status, r.location())
	}
	if r := b.get("/accounts/signup/"); r.status != http.StatusForbidden {
		t.Fatalf("signup page: %d", r.status)
	}
	r = b.post("/accounts/signup/", url.Values{"csrf": {tok}, "email": {"bob@example.com"}, "password": {"bob-password"}, "password2": {"bob-password"}})
	if r.status != http.StatusForbidden {
		t.Fatalf("signup post: %d", r.status)
	}
	if _, err := p.svc.FindUserByEmail(context.Background(), "bob@example.com"); err == nil {
		t.Fatal("signup stored a user")
	}
	b.login(adminUser, adminPass, "/admin/")
	if r := b.get("/admin/"); r.status != http.StatusOK {
		t.Fatalf("admin overview: %d", r.status)
	}
}

// TestSignupAndLogin: one-step registration end to end over HTTP, with the
// cookie's flags and the form's validation.
func TestSignupAndLogin(t *testing.T) {
	p := newPortal(t, portalConfig(config.RegistrationOneStep, ""))
	b := p.browser()
	tok := b.csrf("/accounts/signup/")
	for what, form := range map[string]url.Values{
		"bad email":      {"email": {"not an email"}, "password": {"long-enough"}, "password2": {"long-enough"}},
		"short password": {"email": {"ann@example.com"}, "password": {"short"}, "password2": {"short"}},
		"long password":  {"email": {"ann@example.com"}, "password": {strings.Repeat("x", 73)}, "password2": {strings.Repeat("x", 73)}},
		"mismatch":       {"email": {"ann@example.com"}, "password": {"long-enough"}, "password2": {"long-enough2"}},
		"long name":      {"email": {"ann@example.com"}, "first_name": {strings.Repeat("n", 101)}, "password": {"long-enough"}, "password2": {"long-enough"}},
		"tab in a name":  {"email": {"ann@example.com"}, "first_name": {"Ann\tMarie"}, "password": {"long-enough"}, "password2": {"long-enough"}},
		"not UTF-8":      {"email": {"ann@example.com"}, "last_name": {"Lee\xff"}, "password": {"long-enough"}, "password2": {"long-enough"}},
		"line separator": {"email": {"ann@example.com"}, "last_name": {"Lee\u2028Jones"}, "password": {"long-enough"}, "password2": {"long-enough"}},
	} {
		form.Set("csrf", tok)
		r := b.post("/accounts/signup/", form)
		if r.status != http.StatusBadRequest || !strings.Contains(r.body, `id="error"`) {
			t.Errorf("%s: %d", what, r.status)
		}
		if (form.Get("first_name") != "" && !strings.Contains(what, "long")) || form.Get("last_name") != "" {
			if !strings.Contains(r.body, "control characters") {
				t.Errorf("%s: the page does not say what is wrong with the name: %s", what, r.body)
			}
		}
	}
	if _, err := p.svc.FindUserByEmail(context.Background(), "ann@example.com"); err == nil {
		t.Fatal("a refused sign-up created the account")
	}
	if r := b.post("/accounts/signup/", url.Values{"email": {"ann@example.com"}, "password": {"ann-password"}, "password2": {"ann-password"}}); r.status != http.StatusForbidden {
		t.Fatalf("signup without CSRF: %d", r.status)
	}
	first := b.post("/accounts/signup/", url.Values{"csrf": {tok}, "email": {"ann@example.com"}, "first_name": {"Ann"},
		"password": {"ann-password"}, "password2": {"ann-password"}})
	if first.status != http.StatusSeeOther || first.location() != signedUp("ann@example.com") {
		t.Fatalf("signup: %d %q", first.status, first.location())
	}
	if page := b.get(first.location()); page.status != http.StatusOK || !strings.Contains(page.body, `id="notice"`) ||
		!strings.Contains(page.body, `value="ann@example.com"`) {
		t.Fatalf("login page after sign-up: %d without the notice: %s", page.status, page.body)
	}
	r := b.post("/accounts/login/", url.Values{"csrf": {b.csrf("/accounts/login/")}, "username": {"ann@example.com"}, "password": {"ann-password"}})
	if r.status != http.StatusSeeOther || r.location() != "/workshops/catalog/" {
		t.Fatalf("first login: %d %q", r.status, r.location())
	}
	c := loginCookie(r)
	if c == nil || !c.HttpOnly || c.SameSite != http.SameSiteLaxMode || c.Secure || c.Path != "/" || c.Expires.IsZero() {
		t.Fatalf("login cookie flags: %+v", c)
	}
	usr, err := p.svc.FindUserByEmail(context.Background(), "ann@example.com")
	if err != nil || usr.Group != sessions.GroupRegistered || bcrypt.CompareHashAndPassword([]byte(usr.PasswordHash), []byte("ann-password")) != nil {
		t.Fatalf("stored user %+v, %v", usr, err)
	}
	cat := b.get("/workshops/catalog/")
	if cat.status != http.StatusOK || !strings.Contains(cat.body, "Kubernetes 101") || !strings.Contains(cat.body, `id="start-demo-w01"`) ||
		!strings.Contains(cat.body, "ann@example.com") || !strings.Contains(cat.body, `class="availability ready" id="status-demo-w01"`) {
		t.Fatalf("catalog: %d %s", cat.status, cat.body)
	}
	// Sign out, then in again: a wrong password is refused, the right one works.
	if r := b.post("/accounts/logout/", url.Values{"csrf": {b.csrf("/workshops/catalog/")}}); r.status != http.StatusSeeOther {
		t.Fatalf("logout: %d", r.status)
	}
	if r := b.get("/workshops/catalog/"); r.status != http.StatusFound {
		t.Fatalf("catalog after logout: %d", r.status)
	}
	tok = b.csrf("/accounts/login/")
	for _, bad := range [][2]string{{"ann@example.com", "wrong-password"}, {"nobody@example.com", "ann-password"}} {
		r := b.post("/accounts/login/", url.Values{"csrf": {tok}, "username": {bad[0]}, "password": {bad[1]}})
		if r.status != http.StatusUnauthorized || !strings.Contains(r.body, "not correct") || loginCookie(r) != nil {
			t.Fatalf("login %v: %d", bad, r.status)
		}
	}
	b.login("ANN@example.com", "ann-password", "/workshops/catalog/")
	// The same email cannot sign up twice, and the answer is the same as
	// for a new address, so the form does not reveal who has an account.
	other := p.browser()
	tok = other.csrf("/accounts/signup/")
	r = other.post("/accounts/signup/", url.Values{"csrf": {tok}, "email": {"ann@example.com"}, "password": {"x-password"}, "password2": {"x-password"}})
	if r.status != first.status || r.location() != first.location() || r.body != first.body ||
		len(r.header.Values("Set-Cookie")) != len(first.header.Values("Set-Cookie")) {
		t.Fatalf("sign-up for an existing address answered %d %q %v %q, a new one %d %q %v %q", r.status, r.location(),
			r.header.Values("Set-Cookie"), r.body, first.status, first.location(), first.header.Values("Set-Cookie"), first.body)
	}
	if usr, err := p.svc.FindUserByEmail(context.Background(), "ann@example.com"); err != nil ||
		bcrypt.CompareHashAndPassword([]byte(usr.PasswordHash), []byte("ann-password")) != nil {
		t.Fatalf("the second sign-up changed the account: %+v %v", usr, err)
	}
}

// TestSignupLimitedPerAddress: sign-ups are limited per client address,
// counted whether or not the address is new (issue 12: 200 accounts in
// 54 s with one CSRF token).
func TestSignupLimitedPerAddress(t *testing.T) {
	p := newPortal(t, portalConfig(config.RegistrationOneStep, ""))
	// A fresh browser each time, all from the same address.
	signup := func(email string) response {
		b := p.browser()
		return b.post("/accounts/signup/", url.Values{"csrf": {b.csrf("/accounts/signup/")}, "email": {email},
			"password": {"long-enough"}, "password2": {"long-enough"}})
	}
	for i := range webui.SignupBurst {
		email := fmt.Sprintf("learner%d@example.com", i)
		if i%3 == 0 {
			email = "learner0@example.com" // existing addresses count too
		}
		if r := signup(email); r.status != http.StatusSeeOther {
			t.Fatalf("sign-up %d: %d %s", i, r.status, r.body)
		}
	}
	r := signup("one-more@example.com")
	if r.status != http.StatusTooManyRequests || r.header.Get("Retry-After") == "" || !strings.Contains(r.body, "Too many accounts") {
		t.Fatalf("sign-up past the limit: %d (Retry-After %q) %s", r.status, r.header.Get("Retry-After"), r.body)
	}
	if _, err := p.svc.FindUserByEmail(context.Background(), "one-more@example.com"); err == nil {
		t.Fatal("the refused sign-up created an account")
	}
}

// TestSecureCookieOverTLS: the login cookie is Secure when the request came
// over TLS.
func TestSecureCookieOverTLS(t *testing.T) {
	p := newPortal(t, portalConfig(config.RegistrationOneStep, ""))
	req := httptest.NewRequest("GET", "https://portal.example.com/accounts/login/", nil)
	req.TLS = &tls.ConnectionState{}
	w := httptest.NewRecorder()
	pageRoute(p.ui, req).ServeHTTP(w, req)
	cs := w.Result().Cookies()
	if w.Code != http.StatusOK || len(cs) != 1 || !cs[0].Secure || !cs[0].HttpOnly || cs[0].SameSite != http.SameSiteLaxMode {
		t.Fatalf("TLS login page: %d cookies %+v", w.Code, cs)
	}
}

// TestOpenRedirectRefused: `next` must be a path on this portal.
func TestOpenRedirectRefused(t *testing.T) {
	p := newPortal(t, portalConfig(config.RegistrationOneStep, ""))
	b := p.browser()
	tok := b.csrf("/accounts/login/")
	for _, next := range []string{"https://evil.example/", "//evil.example/", "/\\evil.example/", `\\evil.example`,
		"javascript:alert(1)", "http:/evil.example", "evil.example", "/ /evil", hubIndex} {
		if r := b.get("/accounts/login/?next=" + url.QueryEscape(next)); r.status != http.StatusBadRequest {
			t.Errorf("GET login next=%q: %d", next, r.status)
		}
		r := b.post("/accounts/login/", url.Values{"csrf": {tok}, "username": {adminUser}, "password": {adminPass}, "next": {next}})
		if r.status != http.StatusBadRequest || loginCookie(r) != nil {
			t.Errorf("POST login next=%q: %d to %q", next, r.status, r.location())
		}
	}
	r := b.post("/accounts/login/", url.Values{"csrf": {tok}, "username": {adminUser}, "password": {adminPass}, "next": {"/admin/users/"}})
	if r.status != http.StatusSeeOther || r.location() != "/admin/users/" {
		t.Fatalf("local next: %d %q", r.status, r.location())
	}
}

// TestLoginRateLimited: after ten failures from one address even the right
// password gets 429 until a minute has passed.
func TestLoginRateLimited(t *testing.T) {
	p := newPortal(t, portalConfig(config.RegistrationOneStep, ""))
	b := p.browser()
	tok := b.csrf("/accounts/login/")
	for i := range 10 {
		r := b.post("/accounts/login/", url.Values{"csrf": {tok}, "username": {adminUser}, "password": {"wrong"}})
		if r.status != http.StatusUnauthorized {
			t.Fatalf("attempt %d: %d", i, r.status)
		}
	}
	r := b.post("/accounts/login/", url.Values{"csrf": {tok}, "username": {adminUser}, "password": {adminPass}})
	if r.status != http.StatusTooManyRequests || r.header.Get("Retry-After") == "" || loginCookie(r) != nil {
		t.Fatalf("after 10 failures: %d", r.status)
	}
	p.clk.Advance(61 * time.Second)
	r = b.post("/accounts/login/", url.Values{"csrf": {tok}, "username": {adminUser}, "password": {adminPass}})
	if r.status != http.StatusSeeOther {
		t.Fatalf("after the window: %d", r.status)
	}
}

// TestStartWorkshop: the catalog's Start form allocates a session for the
// learner and hands the browser the activation link, which the REST API's
// activation route turns into a dashboard login.
func TestStartWorkshop(t *testing.T) {
	p := newPortal(t, portalConfig(config.RegistrationOneStep, ""))
	b := p.browser()
	b.signup("ann@example.com", "ann-password")
	usr, err := p.svc.FindUserByEmail(context.Background(), "ann@example.com")
	if err != nil {
		t.Fatal(err)
	}
	tok := b.csrf("/workshops/catalog/")
	if r := b.post("/workshops/catalog/", url.Values{"environment": {env1}}); r.status != http.StatusForbidden {
		t.Fatalf("start without CSRF: %d", r.status)
	}
	if r := p.browser().post("/workshops/catalog/", url.Values{"environment": {env1}, "csrf": {tok}}); r.status != http.StatusForbidden {
		t.Fatalf("start without login: %d", r.status)
	}
	if r := b.post("/workshops/catalog/", url.Values{"environment": {"demo-w99"}, "csrf": {tok}}); r.status != http.StatusNotFound {
		t.Fatalf("start unknown environment: %d", r.status)
	}
	r := b.post("/workshops/catalog/", url.Values{"environment": {env1}, "csrf": {tok}})
	if r.status != http.StatusSeeOther || !strings.HasPrefix(r.location(), "/workshops/session/"+env1+"-s") {
		t.Fatalf("start: %d %q %s", r.status, r.location(), r.body)
	}
	loc, _ := url.Parse(r.location())
	name := strings.Split(loc.Path, "/")[3]
	if loc.Path != "/workshops/session/"+name+"/activate/" || loc.Query().Get("token") == "" || loc.Query().Get("index_url") != "/workshops/catalog/" {
		t.Fatalf("activation link %q", r.location())
	}
	if s := p.session(name); s.Owner != usr.ID || s.State != lifecycle.Waiting {
		t.Fatalf("session %s: owner %q state %s", name, s.Owner, s.State)
	}
	r = b.get(r.location())
	if r.status != http.StatusFound || r.location() != "/workshops/session/"+name+"/" {
		t.Fatalf("activate: %d %q %s", r.status, r.location(), r.body)
	}
	if r := b.get(r.location()); r.status != http.StatusOK || !strings.Contains(r.body, "Workshop dashboard "+name) {
		t.Fatalf("dashboard: %d %s", r.status, r.body)
	}
	if s := p.session(name); s.State != lifecycle.Running {
		t.Fatalf("after activation: %s", s.State)
	}
	// The catalog now offers to resume it, and says how long it has.
	p.clk.Advance(90 * time.Second)
	if cat := b.get("/workshops/catalog/"); !strings.Contains(cat.body, "Resume workshop") ||
		!strings.Contains(cat.body, "You have a session of this workshop, with 58 min left.") {
		t.Fatalf("catalog does not offer resume: %s", cat.body)
	}
}

// TestStartRefusedIsReported: a Start the service refuses (capacity full)
// is reported to the service's OnRequestFailed, so allocation metrics count
// the pages' requests as they count the REST API's.
func TestStartRefusedIsReported(t *testing.T) {
	p := newPortal(t, portalConfig(config.RegistrationOneStep, ""))
	for i := range 4 { // capacity 3
		b := p.browser()
		b.signup(fmt.Sprintf("learner%d@example.com", i), "learner-password")
		tok := b.csrf("/workshops/catalog/")
		r := b.post("/workshops/catalog/", url.Values{"environment": {env1}, "csrf": {tok}})
		want := http.StatusSeeOther
		if i == 3 {
			want = http.StatusServiceUnavailable
		}
		if r.status != want {
			t.Fatalf("learner %d start: %d, want %d", i, r.status, want)
		}
	}
	if want := []string{env1 + " " + sessions.ErrNoSession.Error()}; !slices.Equal(*p.failed, want) {
		t.Fatalf("reported failures %q, want %q", *p.failed, want)
	}
}

// TestIndexRules: `/` and the catalog follow reference §3.3.
func TestIndexRules(t *testing.T) {
	p := newPortal(t, portalConfig(config.RegistrationOneStep, hubIndex))
	b := p.browser()
	if r := b.get("/"); r.status != http.StatusFound || r.location() != hubIndex {
		t.Fatalf("/ with index: %d %q", r.status, r.location())
	}
	b.signup("ann@example.com", "ann-password")
	if r := b.get("/workshops/catalog/"); r.status != http.StatusFound || r.location() != hubIndex {
		t.Fatalf("learner catalog with index: %d %q", r.status, r.location())
	}
	admin := p.browser()
	admin.login(adminUser, adminPass, "/admin/")
	if r := admin.get("/"); r.status != http.StatusFound || r.location() != "/admin/" {
		t.Fatalf("/ as admin: %d %q", r.status, r.location())
	}
	// The admin tries a workshop in a session of their own.
	if r := admin.get("/workshops/catalog/"); r.status != http.StatusOK || !strings.Contains(r.body, `class="start"`) {
		t.Fatalf("admin catalog: %d without Start", r.status)
	}
	started := admin.post("/workshops/catalog/", url.Values{"csrf": {admin.csrf("/workshops/catalog/")}, "environment": {"demo-w01"}})
	if started.status != http.StatusSeeOther || !strings.Contains(started.location(), "/activate/?token=") {
		t.Fatalf("admin's Start: %d %q %s", started.status, started.location(), started.body)
	}

	q := newPortal(t, portalConfig(config.RegistrationOneStep, ""))
	if r := q.browser().get("/"); r.status != http.StatusFound || r.location() != "/workshops/catalog/" {
		t.Fatalf("/ without index: %d %q", r.status, r.location())
	}
	if r := q.browser().get("/workshops/catalog/"); r.status != http.StatusFound || r.location() != "/accounts/login/?next=%2Fworkshops%2Fcatalog%2F" {
		t.Fatalf("private catalog, not logged in: %d %q", r.status, r.location())
	}
	cfg := portalConfig(config.RegistrationAnonymous, "")
	cfg.Catalog = config.CatalogPublic
	an := newPortal(t, cfg)
	r := an.browser().get("/workshops/catalog/")
	if r.status != http.StatusOK || !strings.Contains(r.body, `href="/workshops/environment/demo-w01/create/"`) {
		t.Fatalf("anonymous catalog: %d %s", r.status, r.body)
	}
	if r := an.browser().get("/accounts/signup/"); r.status != http.StatusForbidden {
		t.Fatalf("signup in anonymous mode: %d", r.status)
	}
}

// TestAdminPages: what the admin sees of a REST-created session, filters,
// extend, and the users list.
func TestAdminPages(t *testing.T) {
	cfg := portalConfig(config.RegistrationOneStep, "")
	cfg.Workshops[0].Orphaned = config.Duration(15 * time.Minute)
	p := newPortal(t, cfg)
	name := p.restRequest("bob")
	admin := p.browser()
	admin.login(adminUser, adminPass, "/admin/")

	ov := admin.get("/admin/")
	if ov.status != http.StatusOK || !strings.Contains(ov.body, `<dd id="allocated">1</dd>`) || !strings.Contains(ov.body, `<svg`) ||
		!strings.Contains(ov.body, `id="env-demo-w01"`) || !strings.Contains(ov.body, "1h / 10m / 1h30m") || !strings.Contains(ov.body, "<td>15m</td>") {
		t.Fatalf("overview: %d %s", ov.status, ov.body)
	}
	list := admin.get("/admin/sessions/")
	if !strings.Contains(list.body, `id="row-`+name+`"`) {
		t.Fatalf("sessions list lacks %s: %s", name, list.body)
	}
	// The owner is shown by email, what an instructor knows a learner by,
	// and the user filter takes an email in any case as well as the id.
	if !strings.Contains(list.body, `title="bob">bob@example.org</a>`) {
		t.Errorf("sessions list does not show the owner's email: %s", list.body)
	}
	for q, want := range map[string]bool{"user=bob": true, "user=nobody": false, "environment=demo-w01&state=WAITING": true,
		"user=Bob@Example.org": true, "user=bob@example.com": false,
		"state=stopped": false, "state=all": true, "environment=other": false} {
		r := admin.get("/admin/sessions/?" + q)
		if r.status != http.StatusOK || strings.Contains(r.body, `id="row-`+name+`"`) != want {
			t.Errorf("filter %s: %d, listed = %v, want %v", q, r.status, !want, want)
		}
	}
	for _, q := range []string{"state=bogus", "user=%zz", "user=" + strings.Repeat("u", 300)} {
		if r := admin.get("/admin/sessions/?" + q); r.status != http.StatusBadRequest {
			t.Errorf("filter %s: %d, want 400", q, r.status)
		}
	}
	det := admin.get("/admin/sessions/" + name + "/")
	// Extend is offered only once the session can be extended: not to a
	// session that waits for its activation.
	for _, want := range []string{"bob@example.org", `id="terminate-ask"`, `id="terminate"`, "Allocated to bob@example.org", "Activation deadline", "dash-" + name + ".svc:8080"} {
		if !strings.Contains(det.body, want) {
			t.Errorf("detail lacks %q", want)
		}
	}
	if strings.Contains(det.body, `id="extend"`) {
		t.Errorf("detail offers Extend for a session that cannot be extended yet")
	}
	if r := admin.get("/admin/sessions/demo-w01-s999/"); r.status != http.StatusNotFound {
		t.Fatalf("unknown session: %d", r.status)
	}
	tok := admin.csrf("/admin/sessions/" + name + "/")
	r := admin.post("/admin/sessions/"+name+"/extend/", url.Values{"csrf": {tok}})
	if r.status != http.StatusSeeOther || r.location() != "/admin/sessions/"+name+"/?notice=not-extended" {
		t.Fatalf("extend: %d %q", r.status, r.location())
	}
	// A reserve cannot be terminated.
	reserve := p.reserve(env1)
	if r := admin.post("/admin/sessions/"+reserve+"/terminate/", url.Values{"csrf": {tok}}); r.status != http.StatusConflict {
		t.Fatalf("terminate reserve: %d", r.status)
	}
	users := admin.get("/admin/users/")
	if !strings.Contains(users.body, `id="user-bob"`) || !strings.Contains(users.body, "bob@example.org") || strings.Contains(users.body, "$2a$") {
		t.Fatalf("users page: %s", users.body)
	}
	// Once bob's session has ended and he has another, the users page
	// counts both and lists the live one, and his sessions of every state
	// are listed by the user filter (both read from his own records).
	if _, err := p.svc.Terminate(context.Background(), name, ""); err != nil {
		t.Fatal(err)
	}
	p.clk.Advance(time.Minute)
	if err := p.svc.Reconcile(context.Background()); err != nil {
		t.Fatal(err)
	}
	next := p.restRequest("bob")
	users = admin.get("/admin/users/")
	row := users.body[strings.Index(users.body, `id="user-bob"`):]
	row = row[:strings.Index(row, "</tr>")]
	if !strings.Contains(row, `href="/admin/sessions/`+next+`/"`) || strings.Contains(row, `href="/admin/sessions/`+name+`/"`) ||
		!strings.Contains(row, `state=all">2</a>`) {
		t.Fatalf("bob's row after a second session: %s", row)
	}
	for q, want := range map[string][]string{"user=bob&state=all": {name, next}, "user=bob&state=STOPPED": {name}, "user=bob": {next}} {
		r := admin.get("/admin/sessions/?" + q)
		for _, n := range []string{name, next} {
			if listed := strings.Contains(r.body, `id="row-`+n+`"`); listed != slices.Contains(want, n) {
				t.Errorf("filter %s: %s listed = %v, want %v", q, n, listed, !listed)
			}
		}
	}
}

// TestRootLeftToHubOnSameHost: when the portal index is the portal host's
// own `/`, the pages must not claim `/` (they would redirect to themselves);
// on any other host, or with another index, `/` is theirs.
func TestRootLeftToHubOnSameHost(t *testing.T) {
	p := newPortal(t, portalConfig(config.RegistrationOneStep, "http://portal.test:8080/"))
	for _, c := range []struct {
		host string
		path string
		want bool
	}{
		{"portal.test:8080", "/", false},
		{"PORTAL.test:8080", "/", false},
		{"other.test", "/", true},
		{"portal.test:8080", "/admin/", true},
	} {
		r := httptest.NewRequest("GET", "http://"+c.host+c.path, nil)
		if got := pageRoute(p.ui, r) != nil; got != c.want {
			t.Errorf("%s%s claimed by the pages = %v, want %v", c.host, c.path, got, c.want)
		}
	}
	other := newPortal(t, portalConfig(config.RegistrationOneStep, hubIndex))
	if pageRoute(other.ui, httptest.NewRequest("GET", "http://portal.test:8080/", nil)) == nil {
		t.Error("with an index elsewhere the pages must serve `/`")
	}
}

// TestCatalogExplainsNotifications: when the portal's index is its own
// catalog, learners sent back with one of Educates' notifications land on
// the catalog (no redirect to itself) and read what happened; a made-up
// notification shows nothing; with another index, the catalog passes the
// known notification on to it.
func TestCatalogExplainsNotifications(t *testing.T) {
	cfg := portalConfig(config.RegistrationOneStep, "http://portal.test/workshops/catalog/")
	cfg.URL, cfg.Catalog = "http://portal.test", config.CatalogPublic
	p := newPortal(t, cfg)
	b := p.browser()
	for note, want := range map[string]string{
		"session-deleted": "Your workshop session has ended",
		"startup-timeout": "could not be started in time",
		"session-invalid": "no longer valid",
	} {
		r := b.get("/workshops/catalog/?notification=" + note)
		if r.status != http.StatusOK || !strings.Contains(r.body, `id="notice"`) || !strings.Contains(r.body, want) {
			t.Errorf("catalog with %s: %d %.400s", note, r.status, r.body)
		}
	}
	if r := b.get("/workshops/catalog/?notification=%3Cscript%3E"); r.status != http.StatusOK || strings.Contains(r.body, `id="notice"`) {
		t.Errorf("catalog with a made-up notification: %d shows a notice", r.status)
	}

	// With a private catalog, a learner who is not signed in reads the
	// notification on the sign-in page it sends them to.
	privCfg := portalConfig(config.RegistrationOneStep, "http://portal.test/workshops/catalog/")
	privCfg.URL = "http://portal.test"
	priv := newPortal(t, privCfg).browser()
	r := priv.get("/workshops/catalog/?notification=startup-timeout")
	if want := "/accounts/login/?next=%2Fworkshops%2Fcatalog%2F&notice=startup-timeout"; r.status != http.StatusFound || r.location() != want {
		t.Fatalf("private catalog with a notification: %d %q, want %q", r.status, r.location(), want)
	}
	if login := priv.get(r.location()); login.status != http.StatusOK || !strings.Contains(login.body, `id="notice"`) ||
		!strings.Contains(login.body, "could not be started in time") {
		t.Errorf("sign-in page after a failed start: %d %.400s", login.status, login.body)
	}
	if r := priv.get("/workshops/catalog/?notification=%3Cscript%3E"); r.status != http.StatusFound || r.location() != "/accounts/login/?next=%2Fworkshops%2Fcatalog%2F" {
		t.Errorf("private catalog with a made-up notification: %d %q", r.status, r.location())
	}

	other := newPortal(t, portalConfig(config.RegistrationOneStep, "https://hub.example.com/home"))
	if r := other.browser().get("/workshops/catalog/?notification=session-deleted"); r.status != http.StatusFound || r.location() != "https://hub.example.com/home?notification=session-deleted" {
		t.Errorf("catalog with another index: %d %q", r.status, r.location())
	}
}

// TestBulkTerminate: the admin terminates every learner's session a filter
// matches, after a confirmation that lists them; reserves are left alone;
// nobody else can.
func TestBulkTerminate(t *testing.T) {
	p := newPortal(t, portalConfig(config.RegistrationOneStep, ""))
	bob, carol := p.restRequest("bob"), p.restRequest("carol")
	admin := p.browser()
	admin.login(adminUser, adminPass, "/admin/")
	tok := admin.csrf("/admin/sessions/")
	list := admin.get("/admin/sessions/?environment=demo-w01")
	if !strings.Contains(list.body, `id="bulk-terminate"`) || !strings.Contains(list.body, "Terminate the 2 shown") {
		t.Fatalf("the sessions list offers no bulk action for 2: %s", list.body)
	}
	form := url.Values{"csrf": {tok}, "action": {"terminate"}, "environment": {"demo-w01"}, "state": {"active"}}
	confirm := admin.post("/admin/bulk/", form)
	if confirm.status != http.StatusOK || !strings.Contains(confirm.body, "<li>"+bob+"</li>") || !strings.Contains(confirm.body, "<li>"+carol+"</li>") ||
		!strings.Contains(confirm.body, `id="bulk-confirm"`) {
		t.Fatalf("confirmation: %d %s", confirm.status, confirm.body)
	}
	if s := p.session(bob); s.State.Ending() {
		t.Fatal("the first POST already terminated")
	}
	learner := p.browser()
	learner.signup("ann@example.com", "ann-password")
	lform := url.Values{"csrf": {learner.csrf("/workshops/catalog/")}, "action": {"terminate"}, "confirm": {"yes"}}
	if r := learner.post("/admin/bulk/", lform); r.status == http.StatusSeeOther || p.session(bob).State.Ending() {
		t.Fatalf("a learner's bulk terminate: %d", r.status)
	}
	// The form names what the page listed, the learners' sessions and not
	// the reserve; a learner who starts a session after the admin saw the
	// list (here taking that reserve) is not ended with the others.
	shown := regexp.MustCompile(`<input type="hidden" name="name" value="([^"]+)">`).FindAllStringSubmatch(confirm.body, -1)
	if len(shown) != 2 || !strings.Contains(confirm.body, `value="`+bob+`"`) || !strings.Contains(confirm.body, `value="`+carol+`"`) {
		t.Fatalf("the confirmation's form names %d sessions, want bob's and carol's: %s", len(shown), confirm.body)
	}
	for _, m := range shown {
		form.Add("name", m[1])
	}
	all, _ := p.svc.EnvironmentSessions(context.Background())
	reserves := 0
	for _, s := range all["demo-w01"] {
		if s.Reserved() && !s.State.Ending() {
			reserves++
		}
	}
	if reserves == 0 {
		t.Fatal("no reserve to leave alone")
	}
	dave := p.restRequest("dave")
	// A form naming a thousand more sessions is past the other forms'
	// 16 KB; names the filter does not match are counted as listed but
	// not acted on.
	for i := range 1000 {
		form.Add("name", fmt.Sprintf("demo-w01-s%05d", 10000+i))
	}
	if n := len(form.Encode()); n <= 16<<10 {
		t.Fatalf("the form is only %d bytes", n)
	}
	form.Set("confirm", "yes")
	// Back to the list as it was filtered, saying how many were ended.
	r := admin.post("/admin/bulk/", form)
	if r.status != http.StatusSeeOther || r.location() != "/admin/sessions/?done=2&environment=demo-w01&notice=bulk-terminate&of=1002&state=active" {
		t.Fatalf("confirmed: %d %q", r.status, r.location())
	}
	if back := admin.get(r.location()); !strings.Contains(back.body, "2 of the 1002 sessions listed were terminated") {
		t.Errorf("the list after the bulk terminate: %s", back.body)
	}
	// A form past the bulk action's bound is refused whole.
	huge := url.Values{"csrf": {tok}, "action": {"terminate"}, "environment": {"demo-w01"}, "state": {"active"}, "confirm": {"yes"},
		"name": {strings.Repeat("x", 1<<20)}}
	if r := admin.post("/admin/bulk/", huge); r.status != http.StatusBadRequest {
		t.Errorf("a 1 MB bulk form: %d, want 400", r.status)
	}
	// The counts are read as numbers or not at all.
	if r := admin.get("/admin/sessions/?notice=bulk-terminate&done=%3Cb%3E&of=2"); !strings.Contains(r.body, "The sessions were terminated") || strings.Contains(r.body, "<b>") {
		t.Errorf("a bulk notice with a made-up count: %s", r.body)
	}
	for _, name := range []string{bob, carol} {
		if s := p.session(name); !s.State.Ending() {
			t.Errorf("%s is %s after the bulk terminate", name, s.State)
		}
	}
	if s := p.session(dave); s.State.Ending() {
		t.Errorf("dave's session, started after the confirmation was shown, is %s", s.State)
	}
}

// TestSessionLimitInCatalog: a learner at their own cap (`sessions
// registered 1`) is told so, not "no session available, try again later":
// Start of another workshop brings them back to the catalog with a notice,
// whose other cards say why, and whose card of their session offers
// Resume and End session. Ending it there lets them start another once it
// has stopped (the catalog says so meanwhile), and nobody else can end it.
func TestSessionLimitInCatalog(t *testing.T) {
	cfg := portalConfig(config.RegistrationOneStep, "")
	cfg.Sessions.Registered = 1
	second := cfg.Workshops[0]
	second.Name, second.Title = "lab-python", "Python"
	cfg.Workshops = append(cfg.Workshops, second)
	p := newPortal(t, cfg)
	const env2 = "demo-w02"
	b := p.browser()
	b.signup("ann@example.com", "ann-password")
	tok := b.csrf("/workshops/catalog/")
	r := b.post("/workshops/catalog/", url.Values{"environment": {env1}, "csrf": {tok}})
	if r.status != http.StatusSeeOther || !strings.HasPrefix(r.location(), "/workshops/session/"+env1+"-s") {
		t.Fatalf("first start: %d %q", r.status, r.location())
	}
	mine := strings.Split(r.location(), "/")[3]

	r = b.post("/workshops/catalog/", url.Values{"environment": {env2}, "csrf": {tok}})
	if r.status != http.StatusSeeOther || r.location() != "/workshops/catalog/?notice=session-limit" {
		t.Fatalf("start beyond the cap: %d %q, want 303 to the catalog's notice; %s", r.status, r.location(), r.body)
	}
	// Educates' web start link says the same when it comes back to the
	// catalog; a hub gets Educates' session-unavailable.
	if r := b.get("/workshops/environment/" + env2 + "/"); r.status != http.StatusFound || r.location() != "/workshops/catalog/?notice=session-limit" {
		t.Errorf("web start beyond the cap: %d %q", r.status, r.location())
	}
	if r := b.get("/workshops/environment/" + env2 + "/?index_url=" + url.QueryEscape(hubIndex)); r.status != http.StatusFound ||
		r.location() != hubIndex+"?notification=session-unavailable" {
		t.Errorf("web start beyond the cap, hub index: %d %q", r.status, r.location())
	}
	cat := b.get(r.location())
	for _, want := range []string{
		`id="notice">You already have as many workshop sessions as you may have at once.`,
		`class="availability limit" id="status-` + env2 + `">You may have 1 session at once: end yours to start this one.`,
		`id="status-` + env1 + `">You have a session of this workshop.`,
		`name="end" value="` + mine + `"`,
		// Start is greyed out where it could only bring the notice back;
		// Resume is not.
		`id="start-` + env2 + `" disabled>`,
		`id="start-` + env1 + `">Resume workshop`,
	} {
		if !strings.Contains(cat.body, want) {
			t.Errorf("catalog at the cap lacks %q:\n%s", want, cat.body)
		}
	}
	if strings.Contains(cat.body, `name="end" value="`+env2) {
		t.Errorf("catalog offers to end a session the learner does not have")
	}
	// The notice comes only from the code, and only this code.
	if c := b.get("/workshops/catalog/?notice=terminated"); strings.Contains(c.body, `id="notice"`) {
		t.Errorf("catalog shows an admin notice: %s", c.body)
	}

	// Nobody else ends it: another learner, a forged form, a reserve.
	eve := p.browser()
	eve.signup("eve@example.com", "eve-password")
	etok := eve.csrf("/workshops/catalog/")
	reserve := p.reserve(env1)
	for _, name := range []string{mine, reserve, env1 + "-s999", "x"} {
		if r := eve.post("/workshops/catalog/", url.Values{"end": {name}, "csrf": {etok}}); r.status != http.StatusNotFound {
			t.Errorf("eve ends %s: %d, want 404", name, r.status)
		}
	}
	if s := p.session(reserve); s.State.Ending() {
		t.Fatalf("a refused end ended the reserve: %s", s.State)
	}
	if r := b.post("/workshops/catalog/", url.Values{"end": {mine}}); r.status != http.StatusForbidden {
		t.Errorf("end without CSRF: %d, want 403", r.status)
	}
	if s := p.session(mine); s.State.Ending() {
		t.Fatalf("refused ends ended the session: %s", s.State)
	}

	r = b.post("/workshops/catalog/", url.Values{"end": {mine}, "csrf": {tok}})
	if r.status != http.StatusSeeOther || r.location() != "/workshops/catalog/?notification=session-deleted" {
		t.Fatalf("end: %d %q; %s", r.status, r.location(), r.body)
	}
	if s := p.session(mine); !s.State.Ending() {
		t.Fatalf("after End session: %s", s.State)
	}
	// While it stops (the stopping grace) it still counts against the cap,
	// as Educates counts it: the catalog says so and reloads itself.
	cat = b.get(r.location())
	for _, want := range []string{"Your workshop session has ended.", `<meta http-equiv="refresh" content="3">`,
		`class="availability ending" id="status-` + env2 + `">Your last session is still ending`} {
		if !strings.Contains(cat.body, want) {
			t.Errorf("catalog after ending lacks %q: %s", want, cat.body)
		}
	}
	r = b.post("/workshops/catalog/", url.Values{"environment": {env2}, "csrf": {tok}})
	if r.status != http.StatusSeeOther || r.location() != "/workshops/catalog/?notice=session-limit" {
		t.Fatalf("start while the other stops: %d %q; %s", r.status, r.location(), r.body)
	}
	if c := b.get(r.location()); !strings.Contains(c.body, `id="notice">Your last workshop session is still ending.`) {
		t.Errorf("the notice while the other stops: %s", c.body)
	}
	p.clk.Advance(3 * time.Second) // past the stopping grace
	cat = b.get("/workshops/catalog/")
	if strings.Contains(cat.body, `http-equiv="refresh"`) || !strings.Contains(cat.body, `class="availability ready" id="status-`+env2) {
		t.Errorf("catalog once stopped: %s", cat.body)
	}
	r = b.post("/workshops/catalog/", url.Values{"environment": {env2}, "csrf": {tok}})
	if r.status != http.StatusSeeOther || !strings.HasPrefix(r.location(), "/workshops/session/"+env2+"-s") {
		t.Fatalf("start once the other stopped: %d %q; %s", r.status, r.location(), r.body)
	}
	// Ending twice is harmless.
	if r := b.post("/workshops/catalog/", url.Values{"end": {mine}, "csrf": {tok}}); r.status != http.StatusSeeOther {
		t.Errorf("second end: %d", r.status)
	}
}

// TestAdminSetsPassword: the admin gives a learner who forgot their
// password a new one from the users page. The learner's earlier logins end,
// the new password works and the old one does not; only the admin, with
// the form's token and from the portal's own origin, can do it, and only
// for a learner who has a web password.
func TestAdminSetsPassword(t *testing.T) {
	p := newPortal(t, portalConfig(config.RegistrationOneStep, ""))
	p.restRequest("bob") // a REST user: no password to set
	learner := p.browser()
	learner.signup("ann@example.com", "ann-password")
	ann, err := p.svc.FindUserByEmail(context.Background(), "ann@example.com")
	if err != nil {
		t.Fatal(err)
	}
	learnerTok := learner.csrf("/workshops/catalog/")
	admin := p.browser()
	admin.login(adminUser, adminPass, "/admin/")
	users := admin.get("/admin/users/")
	if !strings.Contains(users.body, `id="password-`+ann.ID+`"`) || strings.Contains(users.body, `id="password-bob"`) {
		t.Fatalf("users page: Set password for ann only: %s", users.body)
	}
	tok := admin.csrf("/admin/users/")
	set := func(b *browser, csrf, user, pw string, hdr ...string) response {
		return b.post("/admin/users/", url.Values{"csrf": {csrf}, "user": {user}, "password": {pw}}, hdr...)
	}
	for _, c := range []struct {
		what   string
		r      response
		status int
	}{
		{"a learner", set(learner, learnerTok, ann.ID, "new-password-1"), http.StatusForbidden},
		{"admin without token", set(admin, "", ann.ID, "new-password-1"), http.StatusForbidden},
		{"admin, cross-origin", set(admin, tok, ann.ID, "new-password-1", "Origin", "https://evil.example"), http.StatusForbidden},
		{"too short", set(admin, tok, ann.ID, "short"), http.StatusBadRequest},
		{"too long", set(admin, tok, ann.ID, strings.Repeat("p", 73)), http.StatusBadRequest},
		{"unknown user", set(admin, tok, "nobody", "new-password-1"), http.StatusNotFound},
		{"a REST user", set(admin, tok, "bob", "new-password-1"), http.StatusNotFound},
	} {
		if c.r.status != c.status || !strings.Contains(c.r.body, `id="error"`) {
			t.Errorf("%s: %d, want a %d page", c.what, c.r.status, c.status)
		}
	}
	if u, _ := p.svc.GetUser(context.Background(), "bob"); u == nil || u.PasswordHash != "" {
		t.Fatalf("the REST user got a password: %+v", u)
	}
	if r := learner.get("/workshops/catalog/"); r.status != http.StatusOK { // refused attempts changed nothing
		t.Fatalf("the learner's login after refused attempts: %d", r.status)
	}

	r := set(admin, tok, ann.ID, "new-password-1")
	if r.status != http.StatusSeeOther || r.location() != "/admin/users/?notice=password-set" {
		t.Fatalf("set: %d %q %s", r.status, r.location(), r.body)
	}
	if page := admin.get(r.location()); !strings.Contains(page.body, `id="notice">The learner&#39;s password was changed.`) {
		t.Errorf("users page after setting: %s", page.body)
	}
	// The learner's login made with the old password has ended.
	if r := learner.get("/workshops/catalog/"); r.status != http.StatusFound || !strings.HasPrefix(r.location(), "/accounts/login/") {
		t.Errorf("old login after the change: %d %q", r.status, r.location())
	}
	b := p.browser()
	btok := b.csrf("/accounts/login/")
	if r := b.post("/accounts/login/", url.Values{"csrf": {btok}, "username": {"ann@example.com"}, "password": {"ann-password"}}); r.status == http.StatusSeeOther {
		t.Errorf("the old password still signs in")
	}
	p.browser().login("ann@example.com", "new-password-1", "/workshops/catalog/")
}

// TestCatalogSaysWhySessionEnded: sent back to the catalog with the session
// the gate names, its owner reads why it ended; anyone else, or a session
// that has not ended, adds nothing to Educates' notification.
func TestCatalogSaysWhySessionEnded(t *testing.T) {
	p := newPortal(t, portalConfig(config.RegistrationOneStep, ""))
	ann := p.browser()
	ann.signup("ann@example.com", "ann-password")
	eve := p.browser()
	eve.signup("eve@example.com", "eve-password")
	start := func(b *browser) string {
		t.Helper()
		tok := b.csrf("/workshops/catalog/")
		r := b.post("/workshops/catalog/", url.Values{"environment": {env1}, "csrf": {tok}})
		if r.status != http.StatusSeeOther {
			t.Fatalf("start: %d %s", r.status, r.body)
		}
		if a := b.get(r.location()); a.status != http.StatusFound { // activates it
			t.Fatalf("activation: %d %s", a.status, a.body)
		}
		return strings.Split(r.location(), "/")[3]
	}
	back := func(b *browser, name string) string {
		t.Helper()
		r := b.get("/workshops/catalog/?notification=session-deleted&session=" + name)
		m := regexp.MustCompile(`id="notice">([^<]*)<`).FindStringSubmatch(r.body)
		if m == nil {
			t.Fatalf("no notice: %s", r.body)
		}
		return html.UnescapeString(m[1])
	}
	const ended = "Your workshop session has ended. Start the workshop again for a new session."

	mine := start(ann)
	if got := back(ann, mine); got != ended {
		t.Errorf("a live session: %q", got)
	}
	if _, err := p.svc.Terminate(context.Background(), mine, sessions.ReasonTerminated); err != nil {
		t.Fatal(err)
	}
	if got := back(ann, mine); got != ended+" It was ended by an instructor or the training site." {
		t.Errorf("terminated, to its owner: %q", got)
	}
	// The admin's session page gives the same words beside the reason.
	admin := p.browser()
	admin.login(adminUser, adminPass, "/admin/")
	if page := admin.get("/admin/sessions/" + mine + "/"); !strings.Contains(page.body,
		`id="reason">terminated <span class="muted">(it was ended by an instructor or the training site)</span>`) {
		t.Errorf("admin session page: %s", page.body)
	}
	for _, name := range []string{mine, "demo-w01-s999", "x"} {
		if got := back(eve, name); got != ended {
			t.Errorf("eve sent back with %s: %q", name, got)
		}
	}

	// Its time ran out.
	p.clk.Advance(2 * time.Second) // the first one is STOPPED
	other := start(eve)
	p.clk.Advance(61 * time.Minute)
	if got := back(eve, other); got != ended+" It reached its time limit." {
		t.Errorf("expired: %q", got)
	}
}

// TestAdminListsArePaged: the sessions and users lists show a page of rows
// at a time, with links that keep the filter, so a busy portal's lists stay
// a page an instructor can open (unpaged, 100,000 stored sessions made
// 35-43 MB pages); a bulk action still covers every matching session, and
// the users page finds a learner by part of their address or name.
func TestAdminListsArePaged(t *testing.T) {
	cfg := portalConfig(config.RegistrationOneStep, "")
	cfg.Workshops[0].Capacity, cfg.Workshops[0].Reserved = intp(300), intp(0)
	p := newPortal(t, cfg)
	ctx := context.Background()
	const n = 230
	for i := range n {
		usr, err := p.svc.CreateUser(ctx, sessions.User{Email: fmt.Sprintf("learner-%03d@example.com", i), Group: sessions.GroupRegistered})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := p.svc.RequestSession(ctx, sessions.Request{Environment: env1, User: usr.ID}); err != nil {
			t.Fatal(err)
		}
	}
	admin := p.browser()
	admin.login(adminUser, adminPass, "/admin/")
	rows := regexp.MustCompile(`<tr class="session" id="row-([^"]+)"`)
	seen := map[string]bool{}
	path := "/admin/sessions/?environment=" + env1
	for page, want := range []int{100, 100, 30} {
		r := admin.get(path)
		got := rows.FindAllStringSubmatch(r.body, -1)
		if r.status != http.StatusOK || len(got) != want {
			t.Fatalf("page %d (%s): %d, %d rows, want %d", page+1, path, r.status, len(got), want)
		}
		for _, m := range got {
			if seen[m[1]] {
				t.Fatalf("session %s on two pages", m[1])
			}
			seen[m[1]] = true
		}
		from := page*100 + 1
		if !strings.Contains(r.body, fmt.Sprintf("Sessions %d–%d of the %d that match", from, from+want-1, n)) ||
			!strings.Contains(r.body, fmt.Sprintf("Terminate the %d matching, on every page", n)) {
			t.Fatalf("page %d does not say where it is or what a bulk action covers: %s", page+1, r.body)
		}
		if hasPrev := strings.Contains(r.body, `rel="prev"`); hasPrev != (page > 0) {
			t.Fatalf("page %d: previous link %v", page+1, hasPrev)
		}
		next := regexp.MustCompile(`<a href="([^"]+)" rel="next">`).FindStringSubmatch(r.body)
		if page == 2 {
			if next != nil {
				t.Fatalf("the last page links to %s", next[1])
			}
			break
		}
		wantNext := fmt.Sprintf("/admin/sessions/?environment=%s&amp;page=%d", env1, page+2)
		if next == nil || next[1] != wantNext {
			t.Fatalf("page %d: next link %v, want %s", page+1, next, wantNext)
		}
		path = html.UnescapeString(next[1])
	}
	if len(seen) != n {
		t.Fatalf("the pages showed %d sessions of %d", len(seen), n)
	}
	// The bulk confirmation lists the first 100 and carries all of them.
	confirm := admin.post("/admin/bulk/", url.Values{"csrf": {admin.csrf("/admin/sessions/")}, "action": {"extend"}, "environment": {env1}, "state": {"active"}})
	listed := regexp.MustCompile(`<li>[^<]+</li>`).FindAllString(confirm.body, -1)
	carried := regexp.MustCompile(`<input type="hidden" name="name" value="([^"]+)">`).FindAllStringSubmatch(confirm.body, -1)
	if confirm.status != http.StatusOK || len(listed) != 100 || len(carried) != n ||
		!strings.Contains(confirm.body, fmt.Sprintf("and %d more.", n-100)) || !strings.Contains(confirm.body, fmt.Sprintf("Extend %d sessions", n)) {
		t.Errorf("bulk confirmation of %d: %d, %d listed, %d in the form: %.600s", n, confirm.status, len(listed), len(carried), confirm.body)
	}
	// Confirmed, none of them can be extended yet (their expiry is an hour
	// away), and the list says so.
	ext := url.Values{"csrf": {admin.csrf("/admin/sessions/")}, "action": {"extend"}, "environment": {env1}, "state": {"active"}, "confirm": {"yes"}}
	for _, m := range carried {
		ext.Add("name", m[1])
	}
	if r := admin.post("/admin/bulk/", ext); r.status != http.StatusSeeOther {
		t.Errorf("bulk extend: %d", r.status)
	} else if back := admin.get(r.location()); !strings.Contains(back.body, fmt.Sprintf("0 of the %d sessions listed were extended. The others could not be", n)) {
		t.Errorf("the list after a bulk extend of sessions far from their expiry (%s): %.300s", r.location(), back.body)
	}
	// A notice of what was just done is not carried to the next page.
	if r := admin.get("/admin/sessions/?notice=terminated&state=all"); !strings.Contains(r.body, `<a href="/admin/sessions/?page=2&amp;state=all" rel="next">`) {
		t.Errorf("the next link after a notice: %s", regexp.MustCompile(`<a href="[^"]*" rel="next">`).FindString(r.body))
	}
	// Past the end is the last page; a page that is not a number is a 400.
	if r := admin.get("/admin/sessions/?page=99"); len(rows.FindAllString(r.body, -1)) != 30 {
		t.Errorf("page 99: %d rows, want the last page's 30", len(rows.FindAllString(r.body, -1)))
	}
	for _, bad := range []string{"0", "-1", "two", "1e3"} {
		if r := admin.get("/admin/sessions/?page=" + bad); r.status != http.StatusBadRequest {
			t.Errorf("page=%s: %d, want 400", bad, r.status)
		}
	}

	users := regexp.MustCompile(`<tr class="user" id="user-`)
	all, err := p.svc.Users(ctx)
	if err != nil {
		t.Fatal(err)
	}
	r := admin.get("/admin/users/")
	newest := all[len(all)-1]
	if got := len(users.FindAllString(r.body, -1)); got != 100 || !strings.Contains(r.body, fmt.Sprintf("Users 1–100 of %d, newest first.", len(all))) ||
		!strings.Contains(r.body, `<tr class="user" id="user-`+newest.ID+`">`) {
		t.Fatalf("users page 1: %d rows, want 100 from the newest, %s: %s", got, newest.Email, r.body)
	}
	r = admin.get("/admin/users/?q=learner")
	if !strings.Contains(r.body, fmt.Sprintf("Users 1–100 of the %d that match (%d in all).", n, len(all))) || !strings.Contains(r.body, `href="/admin/users/?page=2&amp;q=learner" rel="next"`) {
		t.Fatalf("search learner, page 1: %s", r.body)
	}
	r = admin.get("/admin/users/?q=LEARNER-01")
	if got := len(users.FindAllString(r.body, -1)); got != 10 || !strings.Contains(r.body, "learner-015@example.com") || strings.Contains(r.body, `rel="next"`) {
		t.Fatalf("search LEARNER-01: %d rows, want learner-010 to 019: %s", got, r.body)
	}
	r = admin.get("/admin/users/?q=" + url.QueryEscape("<nobody>"))
	if !strings.Contains(r.body, `id="no-users">No user matches.`) || !strings.Contains(r.body, `value="&lt;nobody&gt;"`) {
		t.Fatalf("a search that finds nobody: %s", r.body)
	}
}

// TestClosedWorkshop: a workshop with `capacity 0` takes no sessions, and
// the catalog says so without a Start button, instead of promising a start
// that would only bring the learner back with "no session available".
func TestClosedWorkshop(t *testing.T) {
	cfg := portalConfig(config.RegistrationOneStep, "")
	cfg.Workshops = append(cfg.Workshops, config.Workshop{Name: "lab-closed", Title: "Closed lab", Capacity: intp(0),
		Upstreams: []string{"closed-{session}.svc:8080"}})
	p := newPortal(t, cfg)
	ann := p.browser()
	ann.signup("ann@example.com", "ann-password")
	r := ann.get("/workshops/catalog/")
	status := regexp.MustCompile(`id="status-demo-w02">([^<]*)<`).FindStringSubmatch(r.body)
	if status == nil || !strings.HasPrefix(status[1], "Closed:") || strings.Contains(r.body, `id="start-demo-w02"`) {
		t.Fatalf("the closed workshop in the catalog: %v\n%s", status, r.body)
	}
	if !strings.Contains(r.body, `id="start-demo-w01"`) {
		t.Fatal("the open workshop lost its Start button")
	}
	// A start posted anyway (from a page loaded before it closed) is
	// refused in the same words.
	tok := ann.csrf("/workshops/catalog/")
	if r := ann.post("/workshops/catalog/", url.Values{"environment": {"demo-w02"}, "csrf": {tok}}); r.status != http.StatusConflict ||
		!strings.Contains(r.body, "This workshop takes no sessions at the moment.") {
		t.Fatalf("a start of the closed workshop: %d %s", r.status, r.body)
	}
}
