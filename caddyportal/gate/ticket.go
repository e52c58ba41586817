package gate

import (
	"errors"
	"net/http"
	"net/url"
	"strings"

	"github.com/caddyportal/caddyportal/caddyportal/routes"
	"github.com/caddyportal/caddyportal/caddyportal/sessions"
	"github.com/caddyportal/caddyportal/caddyportal/tokens"
)

// ticketParam carries the host-mode hand-off ticket.
const ticketParam = "portal_ticket"

// exchangeTicket turns a one-time hand-off ticket into the session host's
// own cookie and redirects to the same URL without the ticket.
func (g *Gate) exchangeTicket(w http.ResponseWriter, r *http.Request, name, ticket string) {
	now := g.svc.Now()
	user, nonce, err := g.o.Cookies.VerifyTicket(ticket, name, now)
	if err == nil {
		var first bool
		first, err = g.svc.UseOnce(r.Context(), sessions.OnceTicket+nonce, now.Add(TicketTTL))
		if err == nil && !first {
			err = errors.New("ticket already used")
		}
	}
	if err != nil {
		page(w, http.StatusForbidden, "Link expired",
			"This sign-in link is invalid, expired or already used. Open the workshop again from your training portal.")
		return
	}
	http.SetCookie(w, g.o.Cookies.Issue(name, user, "/", r.TLS != nil, now))
	// One leading slash only: a path like //evil.example/ would make the
	// Location protocol-relative, an open redirect off the session host.
	target := "/" + strings.TrimLeft(r.URL.EscapedPath(), "/")
	q := r.URL.Query()
	q.Del(ticketParam)
	if len(q) > 0 {
		target += "?" + q.Encode()
	}
	http.Redirect(w, r, target, http.StatusFound)
}

// Activated issues the session's dashboard credentials after a successful
// activation and returns where the browser goes: the path-mode dashboard
// with a fresh cookie, or the session host with a one-time ticket.
func (g *Gate) Activated(w http.ResponseWriter, r *http.Request, sess *sessions.Session) (string, error) {
	return g.ActivatedAs(w, r, sess, sess.Owner)
}

// ActivatedAs is Activated for another user than the session's owner: a
// staff member the session has granted access (sessions.GrantStaff).
func (g *Gate) ActivatedAs(w http.ResponseWriter, r *http.Request, sess *sessions.Session, user string) (string, error) {
	now := g.svc.Now()
	if !g.HostMode() {
		entry := routes.SessionPath(sess.Name)
		http.SetCookie(w, g.o.Cookies.Issue(sess.Name, user, entry, r.TLS != nil, now))
		return entry, nil
	}
	return g.ticketURL(r, sess.Name, &url.URL{Path: "/"}, sess.Name, user)
}

// ticketURL is target (a path and query) on the session-domain host with
// first label label, with a one-time ticket that signs the browser in to
// session name there as user.
func (g *Gate) ticketURL(r *http.Request, label string, target *url.URL, name, user string) (string, error) {
	nonce, err := tokens.New()
	if err != nil {
		return "", err
	}
	q := target.Query()
	q.Set(ticketParam, g.o.Cookies.IssueTicket(name, user, nonce, g.svc.Now()))
	return g.hostURL(r, label) + (&url.URL{Path: target.Path, RawPath: target.RawPath, RawQuery: q.Encode()}).RequestURI(), nil
}

// ServeAsk answers Caddy's on_demand_tls `ask`: 200 only for the host of a
// live session in host mode, one of its workshop's ingress hosts, or the
// host of the portal's own public URL (a site that serves the portal and
// its session hosts with one on-demand policy asks for that one too).
// Caddy reads only the status; refusals carry a JSON error like every
// other route under the portal's prefixes.
func (g *Gate) ServeAsk(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		jsonRefusal(w, http.StatusMethodNotAllowed, "Method \""+r.Method+"\" not allowed")
		return
	}
	domain := r.URL.Query().Get("domain")
	if g.o.Origins.PortalHost(domain) {
		w.WriteHeader(http.StatusOK)
		return
	}
	req := &http.Request{Host: domain}
	name, ingress := g.SessionHost(req)
	if name != "" {
		if sess, err := g.svc.Get(r.Context(), name); err == nil && !sess.State.Ending() && (ingress == "" || g.allowsIngress(sess, ingress)) {
			w.WriteHeader(http.StatusOK)
			return
		}
	}
	jsonRefusal(w, http.StatusNotFound, "Not the host of a live session")
}
