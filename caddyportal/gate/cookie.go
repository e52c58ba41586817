// Package gate decides which browser may reach which session's dashboard
// and forwards the browsers it admits: host and path mode, the signed
// per-session dashboard cookie and host-mode tickets, the delete and
// anonymous start links, identity-header scrubbing, response filtering,
// activity and the registry that ends a session's streams with it. The
// proxy itself is behind the Proxy interface, so gate does not import
// Caddy and is tested with httptest.
package gate

import (
	"errors"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/caddyportal/caddyportal/caddyportal/tokens"
)

// cookiePurpose binds signatures to dashboard cookies, so a signed value
// made for another purpose (a ticket, a CSRF token) is refused here.
const cookiePurpose = "dashboard-cookie"

// CookieTTL bounds a dashboard cookie's signature; the session's own expiry
// is checked on every request as well.
const CookieTTL = 24 * time.Hour

// ErrWrongSession is returned for a valid cookie of another session.
var ErrWrongSession = errors.New("gate: cookie belongs to another session")

// Cookies issues and verifies dashboard cookies.
type Cookies struct {
	signer *tokens.Signer
	prefix string
	// verified remembers cookie values whose signature checked out, so a
	// browser's cookie is authenticated once, not on every request it
	// makes: a hit is the same value byte for byte (signature included),
	// and its expiry is still checked on each use.
	verified  sync.Map // value -> verifiedCookie
	nVerified atomic.Int64
}

// verifiedCookie is what a verified cookie value says.
type verifiedCookie struct {
	session, user string
	expires       time.Time
}

// maxVerified bounds the memory of verified cookie values (about 300
// bytes each); the memory starts afresh when it is full.
const maxVerified = 20000

// NewCookies returns a cookie codec whose cookie names start with prefix.
func NewCookies(signer *tokens.Signer, prefix string) *Cookies {
	return &Cookies{signer: signer, prefix: prefix}
}

// Name is the cookie name for a session: one cookie per session, so two
// sessions in one browser never overwrite each other.
func (c *Cookies) Name(session string) string { return c.prefix + session }

// Issue returns a fresh cookie for session and user. path scopes it to the
// session's dashboard; secure marks it for TLS only.
func (c *Cookies) Issue(session, user, path string, secure bool, now time.Time) *http.Cookie {
	exp := now.Add(CookieTTL)
	return &http.Cookie{
		Name:     c.Name(session),
		Value:    c.signer.Sign(cookiePurpose, []byte(session+"\n"+user), exp),
		Path:     path,
		Expires:  exp,
		HttpOnly: true,
		Secure:   secure,
		SameSite: http.SameSiteLaxMode,
	}
}

// Verify checks the request's cookie for session and returns its user.
func (c *Cookies) Verify(r *http.Request, session string, now time.Time) (string, error) {
	value, ok := cookieValue(r.Header, c.prefix, session)
	if !ok {
		return "", http.ErrNoCookie
	}
	var v verifiedCookie
	if hit, ok := c.verified.Load(value); ok {
		v = hit.(verifiedCookie)
	} else {
		payload, expires, err := c.signer.Open(cookiePurpose, value)
		if err != nil {
			return "", err
		}
		s, user, ok := strings.Cut(string(payload), "\n")
		if !ok {
			return "", ErrWrongSession
		}
		v = verifiedCookie{session: s, user: user, expires: expires}
		if c.nVerified.Add(1) > maxVerified {
			c.verified.Clear()
			c.nVerified.Store(1)
		}
		c.verified.Store(value, v)
	}
	if !now.Before(v.expires) {
		return "", tokens.ErrExpired
	}
	if v.session != session {
		return "", ErrWrongSession
	}
	return v.user, nil
}

// cookieValue returns the value of the first valid cookie named
// prefix+session in the request's Cookie lines, as http.Request.Cookie
// does, without allocating: it runs for every proxied request.
func cookieValue(h http.Header, prefix, session string) (string, bool) {
	for _, line := range h["Cookie"] {
		for line != "" {
			var part string
			part, line, _ = strings.Cut(line, ";")
			name, value, _ := strings.Cut(strings.TrimSpace(part), "=")
			name = strings.TrimSpace(name)
			if len(name) != len(prefix)+len(session) || !strings.HasPrefix(name, prefix) || !strings.HasSuffix(name, session) {
				continue
			}
			if len(value) > 1 && value[0] == '"' && value[len(value)-1] == '"' {
				value = value[1 : len(value)-1]
			}
			if validCookieValue(value) {
				return value, true
			}
		}
	}
	return "", false
}

// validCookieValue accepts the bytes net/http accepts in a cookie value.
func validCookieValue(v string) bool {
	for i := 0; i < len(v); i++ {
		if b := v[i]; b < 0x20 || b >= 0x7f || b == '"' || b == ';' || b == '\\' {
			return false
		}
	}
	return true
}

// ticketPurpose binds signatures to host-mode hand-off tickets.
const ticketPurpose = "dashboard-ticket"

// TicketTTL is how long a hand-off ticket is valid: long enough for one
// redirect, short enough that a leaked URL is useless.
const TicketTTL = 60 * time.Second

// IssueTicket returns a one-time hand-off ticket for session and user; nonce
// makes each ticket distinct so its single use can be recorded.
func (c *Cookies) IssueTicket(session, user, nonce string, now time.Time) string {
	return c.signer.Sign(ticketPurpose, []byte(session+"\n"+user+"\n"+nonce), now.Add(TicketTTL))
}

// VerifyTicket checks a ticket for session and returns its user and nonce.
func (c *Cookies) VerifyTicket(ticket, session string, now time.Time) (user, nonce string, err error) {
	payload, err := c.signer.Verify(ticketPurpose, ticket, now)
	if err != nil {
		return "", "", err
	}
	parts := strings.SplitN(string(payload), "\n", 3)
	if len(parts) != 3 || parts[0] != session {
		return "", "", ErrWrongSession
	}
	return parts[1], parts[2], nil
}

// formPurpose signs the session frame's form tokens.
const formPurpose = "frame-form"

// FormToken is the CSRF token of the session frame's forms (Extend, End
// session) for user in session, valid until exp.
func (c *Cookies) FormToken(session, user string, exp time.Time) string {
	return c.signer.Sign(formPurpose, []byte(session+"\n"+user), exp)
}

// CheckFormToken reports whether tok is a valid FormToken of user in
// session at now.
func (c *Cookies) CheckFormToken(tok, session, user string, now time.Time) bool {
	payload, err := c.signer.Verify(formPurpose, tok, now)
	return err == nil && string(payload) == session+"\n"+user
}
