package webui_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/caddyportal/caddyportal/caddyportal/config"
	"github.com/caddyportal/caddyportal/caddyportal/loginlimit"
)

const accessCode = "event-2026"

// accessCookie returns the Set-Cookie of the access cookie in r, or nil.
func accessCookie(r response) *http.Cookie {
	for _, c := range (&http.Response{Header: r.header}).Cookies() {
		if c.Name == "portal-demo-access" {
			return c
		}
	}
	return nil
}

// accessPortal is a portal whose front door asks for accessCode.
func accessPortal(t *testing.T) *portal {
	cfg := portalConfig(config.RegistrationOneStep, "")
	cfg.Password = accessCode
	return newPortal(t, cfg)
}

// TestAccessCode: with a `password`, `/` and the catalog send a browser
// to the access form first, which comes back once the code is right
// (posted, or in the link's query as Educates allows); wrong codes and
// bad redirect URLs are refused; the admin needs no code.
func TestAccessCode(t *testing.T) {
	p := accessPortal(t)
	b := p.browser()

	toAccess := func(back string) string { return "/workshops/access/?redirect_url=" + url.QueryEscape(back) }
	if r := b.get("/"); r.status != http.StatusFound || r.location() != toAccess("/") {
		t.Fatalf("/: %d %q", r.status, r.location())
	}
	if r := b.get("/workshops/catalog/?notification=x"); r.status != http.StatusFound || r.location() != toAccess("/workshops/catalog/") {
		t.Fatalf("catalog: %d %q", r.status, r.location())
	}
	if r := b.post("/workshops/catalog/", url.Values{"environment": {env1}}); r.status != http.StatusForbidden ||
		!strings.Contains(r.body, "Access code required") {
		t.Fatalf("start without the code: %d %s", r.status, r.body)
	}

	// redirect_url is required and must be allowed.
	for _, bad := range []string{"/workshops/access/", toAccess("https://evil.example/"), toAccess("//evil.example/")} {
		if r := b.get(bad); r.status != http.StatusBadRequest || r.location() != "" {
			t.Fatalf("%s: %d %q", bad, r.status, r.location())
		}
	}

	// The form, a wrong code, then the right one.
	form := b.get(toAccess("/workshops/catalog/"))
	if form.status != http.StatusOK || !strings.Contains(form.body, `id="access-form"`) ||
		!strings.Contains(form.body, `name="redirect_url" value="/workshops/catalog/"`) {
		t.Fatalf("form: %d %s", form.status, form.body)
	}
	tok := b.csrf(toAccess("/workshops/catalog/"))
	if r := b.post("/workshops/access/", url.Values{"redirect_url": {"/workshops/catalog/"}, "password": {accessCode}}); r.status != http.StatusForbidden || accessCookie(r) != nil {
		t.Fatalf("without CSRF: %d", r.status)
	}
	r := b.post("/workshops/access/", url.Values{"csrf": {tok}, "redirect_url": {"/workshops/catalog/"}, "password": {"guess"}})
	if r.status != http.StatusForbidden || accessCookie(r) != nil || !strings.Contains(r.body, "The access code is not correct") {
		t.Fatalf("wrong code: %d %s", r.status, r.body)
	}
	r = b.post("/workshops/access/", url.Values{"csrf": {tok}, "redirect_url": {"/workshops/catalog/"}, "password": {accessCode}})
	ck := accessCookie(r)
	if r.status != http.StatusFound || r.location() != "/workshops/catalog/" || ck == nil || !ck.HttpOnly || ck.SameSite != http.SameSiteLaxMode {
		t.Fatalf("right code: %d %q %+v", r.status, r.location(), ck)
	}
	// In: the private catalog now asks for a login, as without a code.
	if r := b.get("/workshops/catalog/"); r.status != http.StatusFound || !strings.HasPrefix(r.location(), "/accounts/login/") {
		t.Fatalf("catalog after the code: %d %q", r.status, r.location())
	}
	b.signup("ann@example.com", "ann-password")
	if r := b.get("/workshops/catalog/"); r.status != http.StatusOK {
		t.Fatalf("learner's catalog: %d", r.status)
	}

	// A forged cookie is no grant.
	f := p.browser()
	if r := f.get("/", "Cookie", "portal-demo-access="+ck.Value[:len(ck.Value)-2]+"xx"); r.location() != toAccess("/") {
		t.Fatalf("forged cookie: %d %q", r.status, r.location())
	}

	// Educates' link form: the code in the query.
	q := p.browser()
	r = q.get(toAccess("/workshops/catalog/") + "&password=" + accessCode)
	if r.status != http.StatusFound || r.location() != "/workshops/catalog/" || accessCookie(r) == nil {
		t.Fatalf("code in the link: %d %q", r.status, r.location())
	}

	// The admin needs no code; start links are not behind it (as in
	// Educates).
	admin := p.browser()
	admin.login(adminUser, adminPass, "/admin/")
	if r := admin.get("/"); r.status != http.StatusFound || r.location() != "/admin/" {
		t.Fatalf("admin: %d %q", r.status, r.location())
	}
	if r := p.browser().get("/workshops/environment/" + env1 + "/"); r.status != http.StatusFound || !strings.HasPrefix(r.location(), "/accounts/login/") {
		t.Fatalf("start link: %d %q", r.status, r.location())
	}
}

// TestAccessCodeKeepsNotification: a learner sent back to the catalog
// with one of Educates' notifications, who has not entered the event's
// code in this browser (they came in through a front end's start link),
// reads why above the access form and still has it behind the door; a
// made-up notification goes nowhere.
func TestAccessCodeKeepsNotification(t *testing.T) {
	p := accessPortal(t)
	b := p.browser()
	back := "/workshops/catalog/?notification=session-deleted"
	r := b.get(back)
	if want := "/workshops/access/?redirect_url=" + url.QueryEscape(back); r.status != http.StatusFound || r.location() != want {
		t.Fatalf("catalog with a notification: %d %q, want %q", r.status, r.location(), want)
	}
	form := b.get(r.location())
	if form.status != http.StatusOK || !strings.Contains(form.body, `id="notice"`) || !strings.Contains(form.body, "Your workshop session has ended") ||
		!strings.Contains(form.body, `id="access-form"`) {
		t.Fatalf("access form after a session ended: %d %.600s", form.status, form.body)
	}
	tok := b.csrf(r.location())
	// A wrong code: the error, and still the reason they are here.
	wrong := b.post("/workshops/access/", url.Values{"csrf": {tok}, "redirect_url": {back}, "password": {"guess"}})
	if wrong.status != http.StatusForbidden || !strings.Contains(wrong.body, "The access code is not correct") ||
		!strings.Contains(wrong.body, "Your workshop session has ended") {
		t.Fatalf("wrong code after a session ended: %d %.600s", wrong.status, wrong.body)
	}
	in := b.post("/workshops/access/", url.Values{"csrf": {tok}, "redirect_url": {back}, "password": {accessCode}})
	if in.status != http.StatusFound || in.location() != back {
		t.Fatalf("right code: %d %q, want %q", in.status, in.location(), back)
	}
	// Behind the door the private catalog passes it on to the sign-in page.
	login := b.get(b.get(back).location())
	if login.status != http.StatusOK || !strings.Contains(login.body, "Your workshop session has ended") {
		t.Fatalf("sign-in page behind the door: %d %.600s", login.status, login.body)
	}

	made := p.browser().get("/workshops/catalog/?notification=%3Cscript%3E")
	if want := "/workshops/access/?redirect_url=" + url.QueryEscape("/workshops/catalog/"); made.status != http.StatusFound || made.location() != want {
		t.Fatalf("catalog with a made-up notification: %d %q", made.status, made.location())
	}
	if f := p.browser().get(made.location()); f.status != http.StatusOK || strings.Contains(f.body, `id="notice"`) {
		t.Fatalf("access form without a notification shows a notice: %d", f.status)
	}
}

// TestAccessCodeGuessesLimited: wrong codes count against the client
// address like failed logins.
func TestAccessCodeGuessesLimited(t *testing.T) {
	p := accessPortal(t)
	b := p.browser()
	link := "/workshops/access/?redirect_url=%2F&password="
	for i := 0; i < loginlimit.Burst; i++ {
		if r := b.get(link + "guess"); r.status != http.StatusForbidden {
			t.Fatalf("guess %d: %d", i, r.status)
		}
	}
	r := b.get(link + accessCode)
	if r.status != http.StatusTooManyRequests || r.header.Get("Retry-After") == "" || accessCookie(r) != nil {
		t.Fatalf("after %d wrong codes: %d %q", loginlimit.Burst, r.status, r.header.Get("Retry-After"))
	}
}

// TestNoAccessCode: without a `password` there is no door and no form.
func TestNoAccessCode(t *testing.T) {
	p := newPortal(t, portalConfig(config.RegistrationOneStep, ""))
	b := p.browser()
	if r := b.get("/workshops/access/?redirect_url=%2F&password=x"); r.status != http.StatusNotFound {
		t.Fatalf("access form without a code: %d", r.status)
	}
	if r := b.get("/"); r.status != http.StatusFound || r.location() != "/workshops/catalog/" {
		t.Fatalf("/: %d %q", r.status, r.location())
	}
}
