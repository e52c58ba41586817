package webui

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"net/http"
	"strings"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/caddyportal/caddyportal/caddyportal/config"
	"github.com/caddyportal/caddyportal/caddyportal/sessions"
	"github.com/caddyportal/caddyportal/caddyportal/tokens"
)

// Purposes bind signatures to their use, so a CSRF token is never accepted
// as a login cookie or a gate cookie, and the other way round.
const (
	purposeLogin = "webui-login"
	purposeCSRF  = "webui-csrf"
)

// LoginTTL is how long a login (and a visitor's pre-login CSRF state) lasts.
const LoginTTL = 12 * time.Hour

// Roles of a login cookie.
const (
	roleVisitor = "visitor" // not logged in; holds the CSRF id for the login and sign-up forms
	roleAdmin   = "admin"
	roleLearner = "learner"
	// roleAnonymous is an anonymous learner (registration anonymous),
	// signed in by their first start link so that the next one resumes
	// their session, as Educates' create view logs them in.
	roleAnonymous = "anonymous"
)

// identity is what the login cookie says about the browser.
type identity struct {
	Role string
	// User is the admin username or the learner's user id.
	User string
	// SID is random per login; CSRF tokens are signed for it, so logging
	// in again (or out) invalidates every earlier form.
	SID string
	// Bind is a fingerprint of the credential the login was made with: a
	// changed admin password or learner password ends earlier logins.
	Bind string
	// Learner is the stored learner, for role learner.
	Learner *sessions.User
}

func (id identity) admin() bool   { return id.Role == roleAdmin }
func (id identity) learner() bool { return id.Role == roleLearner }

// anonymous says id is an anonymous learner.
func (id identity) anonymous() bool { return id.Role == roleAnonymous }

// holdsSessions says id can own sessions the pages show: a learner, an
// anonymous learner, or the admin trying a workshop.
func (id identity) holdsSessions() bool { return id.learner() || id.anonymous() || id.admin() }

// newSID returns 128 random bits, base64url.
func newSID() (string, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(b[:]), nil
}

// fingerprint is a short keyed hash of a credential, safe to put in a
// cookie: without the key it says nothing about the credential.
func (u *UI) fingerprint(secret string) string {
	m := hmac.New(sha256.New, u.bindKey)
	m.Write([]byte(secret))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil)[:12])
}

// current reads and checks the login cookie. A missing, forged, expired or
// no longer valid cookie gives the zero identity (role ""). A learner
// login counts only while learners may log in (registration one-step) and
// the user still exists with the same password.
func (u *UI) current(r *http.Request) identity {
	ck, err := r.Cookie(u.cookie)
	if err != nil {
		return identity{}
	}
	payload, err := u.signer.Verify(purposeLogin, ck.Value, u.svc.Now())
	if err != nil {
		return identity{}
	}
	parts := strings.Split(string(payload), "\n")
	if len(parts) != 4 || parts[2] == "" {
		return identity{}
	}
	id := identity{Role: parts[0], User: parts[1], SID: parts[2], Bind: parts[3]}
	switch id.Role {
	case roleVisitor:
		return id
	case roleAdmin:
		a := u.cfg.Admin
		if a == nil || !tokens.Equal(id.User, a.Username) || !tokens.Equal(id.Bind, u.fingerprint(a.Password)) {
			return identity{}
		}
		return id
	case roleLearner:
		if u.cfg.Registration != config.RegistrationOneStep {
			return identity{}
		}
		usr, err := u.svc.GetUser(r.Context(), id.User)
		if err != nil || usr.PasswordHash == "" || !tokens.Equal(id.Bind, u.fingerprint(usr.PasswordHash)) {
			return identity{}
		}
		id.Learner = usr
		return id
	case roleAnonymous:
		// Valid while the portal is anonymous and the user exists: an
		// anonymous user is purged once its sessions are long gone, and
		// the browser then gets a new one.
		if u.cfg.Registration != config.RegistrationAnonymous {
			return identity{}
		}
		usr, err := u.svc.GetUser(r.Context(), id.User)
		if err != nil || usr.Group != sessions.GroupAnonymous || !tokens.Equal(id.Bind, u.fingerprint(anonymousBind+usr.ID)) {
			return identity{}
		}
		id.Learner = usr
		return id
	}
	return identity{}
}

// anonymousBind prefixes what an anonymous login's fingerprint is made of:
// the user has no credential to bind to.
const anonymousBind = "anonymous\n"

// AnonymousUser is the anonymous learner r's browser is signed in as, ""
// for none (gate.AnonymousLogins).
func (u *UI) AnonymousUser(r *http.Request) string {
	if id := u.current(r); id.anonymous() {
		return id.User
	}
	return ""
}

// RememberAnonymous signs w's browser in as the anonymous learner user
// (gate.AnonymousLogins). An admin's login in the same browser is kept:
// the admin tries workshops from the catalog instead.
func (u *UI) RememberAnonymous(w http.ResponseWriter, r *http.Request, user string) error {
	if u.current(r).admin() {
		return nil
	}
	_, err := u.setLogin(w, r, roleAnonymous, user, u.fingerprint(anonymousBind+user))
	return err
}

// setLogin writes a fresh login cookie for role and user with a new SID
// and returns the identity it holds.
func (u *UI) setLogin(w http.ResponseWriter, r *http.Request, role, user, bind string) (identity, error) {
	sid, err := newSID()
	if err != nil {
		return identity{}, err
	}
	exp := u.svc.Now().Add(LoginTTL)
	val := u.signer.Sign(purposeLogin, []byte(role+"\n"+user+"\n"+sid+"\n"+bind), exp)
	http.SetCookie(w, &http.Cookie{Name: u.cookie, Value: val, Path: "/", Expires: exp,
		HttpOnly: true, Secure: r.TLS != nil, SameSite: http.SameSiteLaxMode})
	return identity{Role: role, User: user, SID: sid, Bind: bind}, nil
}

// visitor returns the request's identity, giving a browser without any a
// visitor cookie so the form it is about to get has a CSRF token.
func (u *UI) visitor(w http.ResponseWriter, r *http.Request) (identity, error) {
	if id := u.current(r); id.Role != "" {
		return id, nil
	}
	return u.setLogin(w, r, roleVisitor, "", "")
}

func (u *UI) clearLogin(w http.ResponseWriter, r *http.Request) {
	http.SetCookie(w, &http.Cookie{Name: u.cookie, Value: "", Path: "/", MaxAge: -1,
		HttpOnly: true, Secure: r.TLS != nil, SameSite: http.SameSiteLaxMode})
}

// csrfToken returns the form token for id.
func (u *UI) csrfToken(id identity) string {
	if id.SID == "" {
		return ""
	}
	return u.signer.Sign(purposeCSRF, []byte(id.SID), u.svc.Now().Add(LoginTTL))
}

// csrfOK checks the posted csrf field against id's SID.
func (u *UI) csrfOK(r *http.Request, id identity) bool {
	if id.SID == "" {
		return false
	}
	payload, err := u.signer.Verify(purposeCSRF, r.PostFormValue("csrf"), u.svc.Now())
	return err == nil && tokens.Equal(string(payload), id.SID)
}

// hashPassword returns the bcrypt hash of pw at cost (0: the default).
func hashPassword(pw string, cost int) ([]byte, error) {
	if cost == 0 {
		cost = bcrypt.DefaultCost
	}
	return bcrypt.GenerateFromPassword([]byte(pw), cost)
}

// errLoginFailed covers every reason a login is refused, so the page never
// tells whether the account exists.
var errLoginFailed = errors.New("login failed")

// checkAdmin reports whether the credentials are the admin's, comparing in
// constant time.
func (u *UI) checkAdmin(user, pw string) bool {
	a := u.cfg.Admin
	if a == nil {
		return false
	}
	// Both compares always run, so timing does not tell which one failed.
	// Comparing hashes keeps the compare constant-time even when the
	// lengths differ, so not even the password's length leaks.
	okUser := tokens.Matches(user, tokens.Hash(a.Username))
	okPass := tokens.Matches(pw, tokens.Hash(a.Password))
	return okUser && okPass
}

// checkLearner returns the learner with this email and password. Unknown
// emails cost a bcrypt compare too, so timing does not reveal accounts.
func (u *UI) checkLearner(r *http.Request, email, pw string) (*sessions.User, error) {
	usr, err := u.svc.FindUserByEmail(r.Context(), email)
	if err != nil || usr.PasswordHash == "" {
		_ = bcrypt.CompareHashAndPassword(u.dummyHash, []byte(pw))
		if err != nil && !isNotFound(err) {
			return nil, err
		}
		return nil, errLoginFailed
	}
	if bcrypt.CompareHashAndPassword([]byte(usr.PasswordHash), []byte(pw)) != nil {
		return nil, errLoginFailed
	}
	return usr, nil
}
