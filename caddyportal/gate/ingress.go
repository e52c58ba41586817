package gate

import (
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/caddyportal/caddyportal/caddyportal/routes"
	"github.com/caddyportal/caddyportal/caddyportal/sessions"
)

// Ingress hosts are a session's extra host names in host mode,
// `<ingress>-<session>.<domain>` for the ingress names its workshop lists
// (config.Workshop.Ingresses), as Educates names them, and the suffixed
// `<session>-<ingress>.<domain>` that Educates' gateway still serves for
// older workshop content. They go to the session's own dashboard with
// their Host, which decides what each serves (Educates' gateway proxies
// them to its editor, console or a session ingress). A browser signs in
// to each with the same one-time ticket as to the session host, which it
// gets from the session host: a browser holding the session there is sent
// on with a ticket (ingressHandoff).

// ingressParam names the ingress host (its first label) the session
// host's hand-off sends a browser to; pathParam the path (and query) it
// asked for there.
const (
	ingressParam = "to"
	pathParam    = "path"
)

// hostLabel splits a host-mode session host's first label into the
// session's name and, for an ingress host, the ingress. A label that is
// neither `<ingress>-<session>` nor `<session>-<ingress>` for a configured
// ingress name and a name of this portal's shape is a session's own host.
func (g *Gate) hostLabel(label string) (name, ingress string) {
	for _, n := range g.ingresses {
		// Names are sorted longest first, so "app-x" wins over "app";
		// the rest must be a whole session name of this portal, or an
		// ingress named like the portal would take its own sessions'
		// hosts.
		if rest, ok := strings.CutPrefix(label, n+"-"); ok && rest != "" && g.sessionLen(rest) == len(rest) {
			return rest, n
		}
	}
	if k := g.sessionLen(label); k > 0 && k < len(label) && label[k] == '-' && slices.Contains(g.ingresses, label[k+1:]) {
		return label[:k], label[k+1:]
	}
	return label, ""
}

// sessionLen is the length of the session name of this portal that label
// begins with, or 0. Its digits-only numbers keep `<session>-<ingress>`
// unambiguous.
func (g *Gate) sessionLen(label string) int { return sessions.NameLen(g.portal, label) }

// allowsIngress reports whether sess's workshop lists ingress.
func (g *Gate) allowsIngress(sess *sessions.Session, ingress string) bool {
	e := g.svc.Environment(sess.Environment)
	return e != nil && slices.Contains(e.Workshop.Ingresses, ingress)
}

// serveIngress serves an ingress host (label is its first label) of sess,
// already loaded to check the host: its dashboard, to the browser that
// holds the session, with the host it asked for. A GET without the host's
// cookie is sent to the session host to get one.
func (g *Gate) serveIngress(w http.ResponseWriter, r *http.Request, sess *sessions.Session, label string) {
	name := sess.Name
	user, cerr := g.o.Cookies.Verify(r, name, g.svc.Now())
	if cerr != nil && (r.Method == http.MethodGet || r.Method == http.MethodHead) && !webSocket(r) {
		q := url.Values{ingressParam: {label}, pathParam: {r.URL.RequestURI()}}
		http.Redirect(w, r, g.hostURL(r, name)+routes.IngressPath(name)+"?"+q.Encode(), http.StatusFound)
		return
	}
	sess, user = g.admitLoaded(w, r, name, sess, user, cerr)
	if sess == nil {
		return
	}
	g.forward(w, r, sess, user)
}

// ingressHandoff serves the session host's hand-off to one of its ingress
// hosts: the browser that holds the session there is sent to the ingress
// host with a one-time ticket, to the path it asked for.
func (g *Gate) ingressHandoff(w http.ResponseWriter, r *http.Request, name string) {
	sess, user := g.admit(w, r, name)
	if sess == nil {
		return
	}
	q := r.URL.Query()
	label := q.Get(ingressParam)
	if owner, ingress := g.hostLabel(label); owner != sess.Name || ingress == "" || !g.allowsIngress(sess, ingress) {
		g.refused(page(w, http.StatusNotFound, "Unknown host", "This workshop session has no such host."))
		return
	}
	// Only a path on the ingress host: anything else starts over at its
	// root.
	target, err := url.Parse(q.Get(pathParam))
	if err != nil || target.Scheme != "" || target.Host != "" || !strings.HasPrefix(target.Path, "/") || strings.HasPrefix(target.Path, "//") {
		target = &url.URL{Path: "/"}
	}
	to, err := g.ticketURL(r, label, target, sess.Name, user)
	if err != nil {
		g.refused(page(w, http.StatusServiceUnavailable, "Portal unavailable", "Try again in a moment."))
		return
	}
	http.Redirect(w, r, to, http.StatusFound)
}

// hostURL is the origin of the session-domain host with first label
// label, with r's scheme and port.
func (g *Gate) hostURL(r *http.Request, label string) string {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	host := label + "." + g.o.Domain
	if _, port, err := net.SplitHostPort(r.Host); err == nil {
		host = net.JoinHostPort(host, port)
	}
	return scheme + "://" + host
}
