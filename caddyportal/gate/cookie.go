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
}

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
	ck, err := r.Cookie(c.Name(session))
	if err != nil {
		return "", err
	}
	payload, err := c.signer.Verify(cookiePurpose, ck.Value, now)
	if err != nil {
		return "", err
	}
	s, user, ok := strings.Cut(string(payload), "\n")
	if !ok || s != session {
		return "", ErrWrongSession
	}
	return user, nil
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
