package gate

import (
	"errors"
	"net"
	"net/http"
	"net/url"
	"strings"

	"github.com/caddyportal/caddyportal/caddyportal/config"
	"github.com/caddyportal/caddyportal/caddyportal/httperr"
	"github.com/caddyportal/caddyportal/caddyportal/routes"
)

// Reasons a browser request is refused because of the page that made it.
var (
	// ErrOtherSession: a page of another session's dashboard made the request.
	ErrOtherSession = errors.New("gate: request made by another session's dashboard")
	// ErrUnattributed: a same-origin subrequest (fetch, frame, image, ...)
	// that does not show it came from this session's own pages.
	ErrUnattributed = errors.New("gate: same-origin request not made by this session's pages")
	// ErrFromDashboard: a dashboard page asked for a portal page or API.
	ErrFromDashboard = errors.New("gate: portal request made by a dashboard page")
	// ErrOtherHost: in host mode, a page of another host (another
	// session's, say) opened or posted to this session host.
	ErrOtherHost = errors.New("gate: request made by a page of another site")
)

// Origins are the portal's own origins as a browser sees them, for telling
// which page made a request. Only hosts are compared: behind a
// TLS-terminating proxy the request arrives over http while the browser's
// pages are https.
type Origins struct {
	hosts []string // lower-case host[:port]
}

// NewOrigins returns the origins of a portal whose configured public URL is
// publicURL ("" if none); the Host of each request counts as well.
func NewOrigins(publicURL string) Origins {
	var o Origins
	// config.Origin normalizes as browsers do (no default port), so a URL
	// configured with :443 still matches the Referers browsers send.
	if origin, err := config.Origin(publicURL); err == nil {
		o.hosts = append(o.hosts, origin[strings.Index(origin, "://")+3:])
	}
	return o
}

// PortalHost reports whether name, a host name as Caddy's on-demand TLS
// `ask` gives it (no port), is the host of the portal's public URL.
func (o Origins) PortalHost(name string) bool {
	name = strings.TrimSuffix(name, ".")
	for _, h := range o.hosts {
		if host, _, err := net.SplitHostPort(h); err == nil {
			h = host
		}
		if strings.EqualFold(name, h) {
			return true
		}
	}
	return false
}

func (o Origins) own(r *http.Request, host string) bool {
	host = strings.ToLower(host)
	if host == strings.ToLower(r.Host) {
		return true
	}
	for _, h := range o.hosts {
		if host == h {
			return true
		}
	}
	return false
}

// RefererSession returns the session whose path-mode dashboard page made r,
// as its Referer shows: T for a Referer on one of the portal's own origins
// under /workshops/session/T/, else "".
func (o Origins) RefererSession(r *http.Request) string {
	ref := r.Header.Get("Referer")
	if ref == "" {
		return ""
	}
	u, err := url.Parse(ref)
	if err != nil || !o.own(r, u.Host) {
		return ""
	}
	// The decoded path: a page's address written with escapes
	// (/workshops/%73ession/...) is the same page.
	rest, ok := strings.CutPrefix(u.Path, routes.SessionPrefix)
	if !ok {
		return ""
	}
	name, _, _ := strings.Cut(rest, "/")
	return name
}

// webSocket reports whether r is a WebSocket handshake.
func webSocket(r *http.Request) bool {
	return r.Header.Get("Sec-Fetch-Mode") == "websocket" || strings.EqualFold(r.Header.Get("Upgrade"), "websocket")
}

// CheckPathDashboard decides, from the browser's fetch metadata (Sec-Fetch-*)
// and Referer, whether a path-mode dashboard request for session may go on.
// In path mode every dashboard shares the portal's origin, so a page of
// session A could otherwise fetch session B's dashboard with the cookie
// the same browser holds for B and read the answer.
//
//   - A Referer on a page of another session's dashboard: refused.
//   - A same-origin request that is a subrequest (fetch, XHR, frame, image,
//     script) must show it came from this session's pages (Referer under
//     its prefix), since a page can suppress its Referer. To keep
//     dashboards with a stricter Referrer-Policy working, the gate sets one
//     that sends same-origin referrers (DashboardReferrerPolicy).
//   - Top-level navigations (from the portal's pages, hubs, activation
//     redirects, typed addresses) and requests without fetch metadata
//     (non-browser clients) pass; the cookie check still applies.
//   - WebSocket handshakes carry an Origin but never a Referer, so the
//     page that opened one cannot be told apart from another session's
//     page in path mode: same-origin WebSockets pass. So does a popup
//     opened without a referrer. Host mode is the isolation boundary.
func (o Origins) CheckPathDashboard(r *http.Request, session string) error {
	ref := o.RefererSession(r)
	if ref != "" && ref != session {
		return ErrOtherSession
	}
	if ref == session || r.Header.Get("Sec-Fetch-Site") != "same-origin" {
		return nil
	}
	if httperr.Navigation(r) || webSocket(r) {
		return nil
	}
	return ErrUnattributed
}

// CheckPortal decides whether a request for the portal's own pages or API
// (path mode) may go on: a dashboard page may navigate there (a "back to
// the workshops" link), but not fetch, frame or post to them in the
// background. Requests without fetch metadata pass (the pages' CSRF checks
// and the API's bearer tokens still apply).
func (o Origins) CheckPortal(r *http.Request) error {
	if r.Header.Get("Sec-Fetch-Mode") == "" || httperr.Navigation(r) {
		return nil
	}
	if o.RefererSession(r) != "" {
		return ErrFromDashboard
	}
	return nil
}

// CheckSessionHost decides whether a host-mode dashboard request may go on:
// an Origin header (sent with WebSocket handshakes, fetches and form posts)
// naming another host is refused. Session hosts of one portal are the same
// site, so their SameSite=Lax cookies would go along: without this check a
// page of session A could open session B's terminal over a WebSocket.
// Top-level navigations from elsewhere (the portal's hand-off, links) carry
// no Origin, or pass as navigations.
func CheckSessionHost(r *http.Request) error {
	origin := r.Header.Get("Origin")
	if origin == "" || httperr.Navigation(r) && !webSocket(r) {
		return nil
	}
	u, err := url.Parse(origin)
	if err != nil || !strings.EqualFold(u.Host, r.Host) {
		return ErrOtherHost
	}
	return nil
}

// DashboardReferrerPolicy rewrites a path-mode dashboard's Referrer-Policy
// response header when it would keep the dashboard's own pages from
// sending same-origin referrers (no-referrer, origin, strict-origin), which
// CheckPathDashboard needs to attribute their subrequests. The replacement
// sends no more to other sites than the dashboard's own policy did.
func DashboardReferrerPolicy(h http.Header) {
	vals := h.Values("Referrer-Policy")
	if len(vals) == 0 {
		return
	}
	// The last policy token a browser knows wins.
	effective := ""
	for _, v := range vals {
		for _, tok := range strings.Split(v, ",") {
			switch tok = strings.ToLower(strings.TrimSpace(tok)); tok {
			case "no-referrer", "no-referrer-when-downgrade", "same-origin", "origin", "strict-origin",
				"origin-when-cross-origin", "strict-origin-when-cross-origin", "unsafe-url":
				effective = tok
			}
		}
	}
	switch effective {
	case "no-referrer":
		h.Set("Referrer-Policy", "same-origin")
	case "origin", "strict-origin":
		h.Set("Referrer-Policy", "strict-origin-when-cross-origin")
	}
}

// SameOriginNavigation reports whether r is a navigation (GET or a form
// POST) that a browser made from the same origin or from no page at all (a
// typed address, a bookmark), as a state-changing link such as a session's
// delete link requires: a SameSite=Lax cookie also goes along with
// navigations that other sites start. Prefetches and HEADs are not
// navigations. A POST must come from the same origin (its Origin header,
// when sent, names this host). Requests without fetch metadata
// (non-browser clients, old browsers) pass.
func SameOriginNavigation(r *http.Request) bool {
	if r.Method != http.MethodGet && r.Method != http.MethodPost {
		return false
	}
	if m := r.Header.Get("Sec-Fetch-Mode"); m != "" && m != "navigate" || r.Header.Get("Sec-Purpose") != "" ||
		strings.EqualFold(r.Header.Get("Purpose"), "prefetch") {
		return false
	}
	switch r.Header.Get("Sec-Fetch-Site") {
	case "", "same-origin":
	case "none":
		if r.Method != http.MethodGet {
			return false
		}
	default:
		return false
	}
	if o := r.Header.Get("Origin"); o != "" && r.Method == http.MethodPost {
		u, err := url.Parse(o)
		return err == nil && strings.EqualFold(u.Host, r.Host)
	}
	return true
}
