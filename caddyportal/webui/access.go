package webui

import (
	"net/http"
	"net/url"
	"strings"

	"go.uber.org/zap"

	"github.com/caddyportal/caddyportal/caddyportal/loginlimit"
	"github.com/caddyportal/caddyportal/caddyportal/redirects"
	"github.com/caddyportal/caddyportal/caddyportal/routes"
	"github.com/caddyportal/caddyportal/caddyportal/tokens"
)

// The event access code (Educates' portal.password, its views/access.py):
// with `password` set, a browser enters the code at /workshops/access/
// once before the portal's front door (`/` and the catalog page) lets it
// in. As in Educates it guards only that door: start links handed out by
// a front end, the REST API and the login page are not behind it. Unlike
// Educates, the redirect_url it returns to must pass the redirect policy,
// the code is compared in constant time, and wrong codes count against the
// client address like failed logins.

// purposeAccess binds the access cookie's signature to its use.
const purposeAccess = "webui-access"

// accessData is the access form's state.
type accessData struct {
	RedirectURL string
}

// hasAccess reports whether r's browser entered the current access code
// (a changed code asks again), or needs none.
func (u *UI) hasAccess(r *http.Request) bool {
	if u.cfg.Password == "" {
		return true
	}
	ck, err := r.Cookie(u.accessCookie)
	if err != nil {
		return false
	}
	payload, err := u.signer.Verify(purposeAccess, ck.Value, u.svc.Now())
	return err == nil && tokens.Equal(string(payload), u.fingerprint(u.cfg.Password))
}

// grantAccess gives the browser the access cookie: signed, bound to the
// code, as long-lived as a login.
func (u *UI) grantAccess(w http.ResponseWriter, r *http.Request) {
	exp := u.svc.Now().Add(LoginTTL)
	http.SetCookie(w, &http.Cookie{Name: u.accessCookie, Value: u.signer.Sign(purposeAccess, []byte(u.fingerprint(u.cfg.Password)), exp),
		Path: "/", Expires: exp, HttpOnly: true, Secure: r.TLS != nil, SameSite: http.SameSiteLaxMode})
}

// eventDoor lets a request through the front door of a portal with an
// access code, or answers it: a GET goes to the access form, which comes
// back to back; a form post is refused. The admin needs no code.
func (u *UI) eventDoor(w http.ResponseWriter, r *http.Request, back string) bool {
	if u.hasAccess(r) || u.current(r).admin() {
		return true
	}
	if r.Method == http.MethodPost {
		u.fail(w, r, http.StatusForbidden, "Access code required", "Enter the event's access code first.")
		return false
	}
	// A learner sent back with one of Educates' notifications (a session
	// ended, a start failed) keeps it through the door: the form shows it,
	// and the page behind the door gets it too.
	if n := knownNotification(r.URL.Query()); n != "" {
		back = redirects.WithNotification(back, n)
	}
	http.Redirect(w, r, routes.AccessPath+"?redirect_url="+url.QueryEscape(back), http.StatusFound)
	return false
}

// targetNotice is the fixed message for a known notification that target
// carries, or "".
func targetNotice(target string) string {
	t, err := url.Parse(target)
	if err != nil {
		return ""
	}
	return notice(t.Query().Get("notification"))
}

// accessTarget checks a redirect_url: required, and an address the
// redirect policy allows (a path on this portal, or an allowed origin),
// never an open redirect.
func (u *UI) accessTarget(w http.ResponseWriter, r *http.Request, raw string) (string, bool) {
	raw = strings.TrimSpace(raw)
	if raw == "" {
		u.fail(w, r, http.StatusBadRequest, "Bad request", "Need redirect URL for access check.")
		return "", false
	}
	if err := u.redirect.Check(raw, u.selfOrigin(r)); err != nil {
		u.fail(w, r, http.StatusBadRequest, "Bad redirect", "The address to return to is not allowed on this portal.")
		return "", false
	}
	return raw, true
}

// accessPage is GET /workshops/access/?redirect_url=: the form, or, with
// the right `password` in the query (Educates' shareable link), straight
// on to redirect_url.
func (u *UI) accessPage(w http.ResponseWriter, r *http.Request, _ string) {
	if u.cfg.Password == "" {
		u.fail(w, r, http.StatusNotFound, "Page not found", "This portal has no access code.")
		return
	}
	q := r.URL.Query()
	target, ok := u.accessTarget(w, r, q.Get("redirect_url"))
	if !ok {
		return
	}
	if pw := q.Get("password"); pw != "" {
		if u.checkAccess(w, r, pw) {
			http.Redirect(w, r, target, http.StatusFound)
		}
		return
	}
	id, err := u.visitor(w, r)
	if err != nil {
		u.unavailable(w, r, err)
		return
	}
	u.render(w, r, http.StatusOK, "access", id, view{Title: "Access code", CSRF: u.csrfToken(id), Notice: targetNotice(target), Data: accessData{RedirectURL: target}})
}

// access is the form's POST.
func (u *UI) access(w http.ResponseWriter, r *http.Request, _ string) {
	if u.cfg.Password == "" {
		u.fail(w, r, http.StatusNotFound, "Page not found", "This portal has no access code.")
		return
	}
	id := u.current(r)
	if !u.csrfOK(r, id) {
		u.csrfFail(w, r)
		return
	}
	target, ok := u.accessTarget(w, r, r.PostFormValue("redirect_url"))
	if !ok {
		return
	}
	if u.checkAccess(w, r, r.PostFormValue("password")) {
		http.Redirect(w, r, target, http.StatusFound)
	}
}

// checkAccess compares pw with the access code and gives the browser the
// access cookie when it matches; otherwise it answers with the form again
// (429 once the client address guessed too often) and reports false.
func (u *UI) checkAccess(w http.ResponseWriter, r *http.Request, pw string) bool {
	ip := u.clientIP(r)
	again := func(status int, msg string) {
		id, err := u.visitor(w, r)
		if err != nil {
			u.unavailable(w, r, err)
			return
		}
		back := strings.TrimSpace(r.FormValue("redirect_url"))
		u.render(w, r, status, "access", id, view{Title: "Access code", CSRF: u.csrfToken(id), Error: msg,
			Notice: targetNotice(back), Data: accessData{RedirectURL: back}})
	}
	// Counted per address only: one shared code has no account whose
	// counter a stranger could exhaust for everyone.
	attempt, wait := u.logins.Reserve("", ip)
	if attempt == nil {
		w.Header().Set("Retry-After", loginlimit.RetryAfter(wait))
		u.log.Info("webui: access code refused: too many failures", zap.String("client", ip))
		again(http.StatusTooManyRequests, "Too many wrong access codes from your network. Wait "+waitText(wait)+" and try again.")
		return false
	}
	// Hashes compared, so not even the code's length leaks.
	if !tokens.Matches(pw, tokens.Hash(u.cfg.Password)) {
		attempt.Fail()
		u.log.Info("webui: wrong access code", zap.String("client", ip))
		again(http.StatusForbidden, "The access code is not correct.")
		return false
	}
	attempt.Succeed()
	u.grantAccess(w, r)
	return true
}
