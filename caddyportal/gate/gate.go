package gate

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/caddyportal/caddyportal/caddyportal/assertion"
	"github.com/caddyportal/caddyportal/caddyportal/clientip"
	"github.com/caddyportal/caddyportal/caddyportal/loginlimit"
	"github.com/caddyportal/caddyportal/caddyportal/metrics"
	"github.com/caddyportal/caddyportal/caddyportal/redirects"
	"github.com/caddyportal/caddyportal/caddyportal/routes"
	"github.com/caddyportal/caddyportal/caddyportal/sessions"
)

// AnonymousLogins remembers the anonymous learner of a browser; the web
// pages implement it with their login cookie.
type AnonymousLogins interface {
	// AnonymousUser is the id of the anonymous learner r's browser is
	// signed in as, "" for none.
	AnonymousUser(r *http.Request) string
	// RememberAnonymous signs w's browser in as the anonymous learner
	// user.
	RememberAnonymous(w http.ResponseWriter, r *http.Request, user string) error
}

// Options configure a Gate. Service, Cookies and Proxy are required.
type Options struct {
	// Service holds the sessions the gate admits browsers to.
	Service *sessions.Service
	// Cookies issues and checks the per-session dashboard cookies.
	Cookies *Cookies
	// Origins tells the portal's own origin from dashboards' (path mode).
	Origins Origins
	// Proxy forwards admitted requests to their dashboards.
	Proxy Proxy
	// Assertions, when set, signs the X-Portal-Assertion the gate adds to
	// every request it forwards; Issuer is the portal's URL, its issuer.
	Assertions *assertion.Signer
	Issuer     string
	// Framed reports whether the sessions of a workshop get the session
	// frame (a bar with countdown, Extend and End above the dashboard);
	// nil frames none.
	Framed func(workshop string) bool
	// Codes issues the authorization codes with which a session's
	// dashboard logs its learner in through the portal (host mode); nil
	// refuses such logins.
	Codes CodeIssuer
	// Streams ends open dashboard requests when their session ends; nil
	// makes a private registry.
	Streams *Streams
	// Domain puts dashboards in host mode, at <session>.<Domain>; empty
	// means path mode, under routes.SessionPrefix on the portal's host.
	Domain string
	// KeepPrefix, in path mode, forwards the whole path with the session's
	// prefix instead of stripping it (see config.Dashboards.KeepPrefix).
	KeepPrefix bool
	// Index is where learners go when their session has no index URL.
	Index string
	// Anonymous enables the anonymous start link.
	Anonymous bool
	// AnonymousLogins knows which anonymous learner a browser already is.
	// With it, a second start link from the same browser resumes that
	// learner's session, or counts against their `sessions anonymous`
	// cap, as Educates' does (its create view logs the anonymous user
	// in). Nil makes every start a new anonymous user.
	AnonymousLogins AnonymousLogins
	// Redirects checks the index_url a start link carries.
	Redirects *redirects.Policy
	// Creates limits anonymous starts per client address; nil means no limit.
	Creates *loginlimit.Rate
	// ClientIP is the address a request is counted against.
	ClientIP func(*http.Request) string
	// Metrics counts gate requests and WebSockets; nil counts nothing.
	Metrics *metrics.Metrics
	// Logger receives upstream failures and refusals; nil logs nothing.
	Logger *zap.Logger
	// StartingHold is how long a GET or HEAD of a session whose
	// environment is starting waits for it to be ready before the
	// starting page is shown: zero means DefaultStartingHold, negative
	// shows the page at once.
	StartingHold time.Duration
}

// Gate admits browsers to the dashboards of the sessions they hold and
// forwards their requests (HTTP and WebSockets) through a Proxy. It serves
// host mode (a host per session), path mode (a path prefix per session),
// the one-time host-mode tickets, the delete link, the anonymous start
// link and the on-demand TLS ask.
type Gate struct {
	o        Options
	svc      *sessions.Service
	log      *zap.Logger
	metrics  *metrics.Metrics
	activity *activity
	streams  *Streams
	audit    *audit
	// suffix is "."+Domain in lower case, for host-mode matching.
	suffix string
	// ingresses are every workshop's ingress names, longest first, and
	// portal names this portal's sessions: together they tell an ingress
	// host from a session host (hostLabel).
	ingresses []string
	portal    string
}

// New returns a gate. Call Run to record WebSocket activity.
func New(o Options) (*Gate, error) {
	if o.Service == nil || o.Cookies == nil || o.Proxy == nil {
		return nil, errors.New("gate: service, cookies and proxy are required")
	}
	if o.Logger == nil {
		o.Logger = zap.NewNop()
	}
	if o.Streams == nil {
		o.Streams = NewStreams(o.Service.Now)
	}
	if o.ClientIP == nil {
		o.ClientIP = clientip.Remote
	}
	g := &Gate{o: o, svc: o.Service, log: o.Logger, metrics: o.Metrics, streams: o.Streams,
		activity: newActivity(o.Service), audit: newAudit(o.Logger)}
	if o.Domain != "" {
		g.suffix = "." + strings.ToLower(o.Domain)
	}
	cfg := o.Service.Config()
	g.portal = cfg.Name
	for _, w := range cfg.Workshops {
		for _, n := range w.Ingresses {
			if !slices.Contains(g.ingresses, n) {
				g.ingresses = append(g.ingresses, n)
			}
		}
	}
	slices.SortFunc(g.ingresses, func(a, b string) int { return len(b) - len(a) })
	return g, nil
}

// HostMode reports whether each session has a host of its own.
func (g *Gate) HostMode() bool { return g.o.Domain != "" }

// SessionHost returns the session named by a host-mode request's Host, or
// "", and for one of the session's ingress hosts the ingress.
func (g *Gate) SessionHost(r *http.Request) (name, ingress string) {
	label := g.domainLabel(r)
	if label == "" {
		return "", ""
	}
	return g.hostLabel(label)
}

// domainLabel is the first label of r's Host when the rest is the
// dashboards domain (host mode), else "".
func (g *Gate) domainLabel(r *http.Request) string {
	if g.suffix == "" {
		return ""
	}
	host := r.Host
	if hh, _, err := net.SplitHostPort(host); err == nil {
		host = hh
	}
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	label, ok := strings.CutSuffix(host, g.suffix)
	if !ok || strings.Contains(label, ".") {
		return ""
	}
	return label
}

// ServeSessionHost serves a host-mode session host: the ticket hand-off,
// the delete link, the hand-off to the session's ingress hosts and the
// dashboard itself; for an ingress host (ingress not empty), the ticket
// hand-off and the dashboard.
func (g *Gate) ServeSessionHost(w http.ResponseWriter, r *http.Request, name, ingress string) {
	var sess *sessions.Session
	if ingress != "" {
		// A host the session's workshop does not list is nobody's.
		var ok bool
		if sess, ok = g.load(w, r, name); !ok {
			return
		}
		if sess == nil || !g.allowsIngress(sess, ingress) {
			g.refused(page(w, http.StatusNotFound, "Unknown host", "This workshop session has no such host."))
			return
		}
	}
	if ticket := r.URL.Query().Get(ticketParam); ticket != "" {
		g.exchangeTicket(w, r, name, ticket)
		return
	}
	if err := CheckSessionHost(r); err != nil {
		g.metrics.GateRequest("", http.StatusForbidden)
		g.refuseInitiator(w, r, err, false)
		return
	}
	if ingress != "" {
		g.serveIngress(w, r, sess, g.domainLabel(r))
		return
	}
	if r.URL.Path == routes.IngressPath(name) {
		g.ingressHandoff(w, r, name)
		return
	}
	if g.serveConfig(w, r, name, r.URL.EscapedPath()) {
		return
	}
	if p := r.URL.Path; p == routes.DeletePath(name) || p == strings.TrimSuffix(routes.DeletePath(name), "/") {
		g.ServeDelete(w, r, name)
		return
	}
	if r.URL.Path == routes.AuthorizePath {
		g.serveAuthorize(w, r, name)
		return
	}
	if g.serveFrame(w, r, name, r.URL.EscapedPath()) {
		return
	}
	sess, user := g.admit(w, r, name)
	if sess == nil {
		return
	}
	g.forward(w, r, sess, user)
}

// servePath serves a request under routes.SessionPrefix for session
// name; tail is the escaped path after "<name>" (empty or starting with
// "/"). In host mode only the delete link is served on the portal host.
func (g *Gate) servePath(w http.ResponseWriter, r *http.Request, name, tail string) {
	if g.HostMode() {
		g.ServeDelete(w, r, name)
		return
	}
	if err := g.o.Origins.CheckPathDashboard(r, name); err != nil {
		g.metrics.GateRequest("", http.StatusForbidden)
		g.refuseInitiator(w, r, err, false)
		return
	}
	switch {
	case isDelete(tail):
		g.ServeDelete(w, r, name)
	case tail == "":
		http.Redirect(w, r, routes.SessionPath(name), http.StatusFound)
	case g.serveConfig(w, r, name, tail):
	default:
		if g.serveFrame(w, r, name, tail) {
			return
		}
		g.serveDashboard(w, r, name, tail)
	}
}

// admit applies the gate rules to a dashboard request for session name and
// returns the session and its user, or writes the refusal and returns nil.
// Refusals are counted as gate requests without an environment: the
// session name came from the client and must not create label values.
func (g *Gate) admit(w http.ResponseWriter, r *http.Request, name string) (*sessions.Session, string) {
	sess, ok := g.load(w, r, name)
	if !ok {
		return nil, ""
	}
	user, cerr := g.o.Cookies.Verify(r, name, g.svc.Now())
	return g.admitLoaded(w, r, name, sess, user, cerr)
}

// load reads session name for the gate: nil if there is none. When the
// store cannot tell, it writes the refusal and returns false.
func (g *Gate) load(w http.ResponseWriter, r *http.Request, name string) (*sessions.Session, bool) {
	sess, err := g.svc.GetCached(r.Context(), name)
	if err != nil && !errors.Is(err, sessions.ErrSessionNotFound) {
		g.log.Warn("gate: loading session", zap.String("session", name), zap.Error(err))
		g.refusedBecause(r, name, "the portal's state is unavailable", page(w, http.StatusServiceUnavailable, "Portal unavailable", "The portal cannot check this session right now. Try again in a moment."))
		return nil, false
	}
	if err != nil {
		sess = nil
	}
	return sess, true
}

// admitLoaded is admit once session name is loaded (sess, nil if there is
// none) and the request's cookie verified (user, or cerr).
func (g *Gate) admitLoaded(w http.ResponseWriter, r *http.Request, name string, sess *sessions.Session, user string, cerr error) (*sessions.Session, string) {
	// Only a browser that held the session learns how it ended and where
	// its index is (the stored index_url, query included, is the
	// requester's); every other browser gets one answer whether the
	// session is live, ended or unknown, so names cannot be probed.
	if cerr != nil || sess != nil && !sess.Admits(user, g.svc.Now()) {
		why := "no valid cookie for the session"
		if cerr == nil {
			why = "the cookie is for " + user + ", neither the session's owner nor staff granted access now"
		}
		g.refusedBecause(r, name, why, page(w, http.StatusForbidden, "Not signed in to this session",
			"This browser is not signed in to this workshop session. Open the workshop from the link your training portal gave you."))
		return nil, ""
	}
	if sess == nil {
		// Held once, since purged.
		g.refusedBecause(r, name, "the session no longer exists", notify(w, r, g.o.Index, "session-invalid", http.StatusNotFound, "Unknown session",
			"This workshop session does not exist (it may have ended long ago)."))
		return nil, ""
	}
	if sess.State.Ending() {
		g.refuseEnded(w, r, sess)
		return nil, ""
	}
	return sess, user
}

// refuseEnded answers a request for a session that has ended, to the
// browser that held it: how it ended and where to go on.
func (g *Gate) refuseEnded(w http.ResponseWriter, r *http.Request, sess *sessions.Session) {
	name := sess.Name
	index := g.endedIndex(sess)
	if sess.StartFailed() {
		// Its environment never became ready: Educates' notification for
		// a session that did not start in time, and a page that says so,
		// why (the spawner's words) and how to try again.
		g.refusedBecause(r, name, "the session ended: its environment did not start", notify(w, r, index, "startup-timeout", http.StatusGone, "Workshop could not start",
			endedMessage(sess)))
		return
	}
	if sess.Reason == sessions.ReasonEnvironmentLost {
		// Its environment died under the learner: the page says why, in
		// the spawner's words, and how to go on.
		g.refusedBecause(r, name, "the session ended: its environment stopped", notify(w, r, index, "session-deleted", http.StatusGone, "Workshop environment stopped",
			endedMessage(sess)))
		return
	}
	g.audit.forget(name)
	g.refusedBecause(r, name, "the session ended ("+sess.Reason+")", notify(w, r, index, "session-deleted", http.StatusGone, "Session ended",
		endedMessage(sess)))
}

// refused counts a refused dashboard request.
func (g *Gate) refused(status int) { g.metrics.GateRequest("", status) }

// refusedBecause counts a refused dashboard request and records it, with
// why, in the access audit.
func (g *Gate) refusedBecause(r *http.Request, session, why string, status int) {
	g.audit.refused(g.o.ClientIP(r), session, why, status)
	g.refused(status)
}

// serveDashboard proxies a path-mode dashboard request to the session's
// upstream, with the /workshops/session/<name> prefix stripped unless the
// prefix is kept.
func (g *Gate) serveDashboard(w http.ResponseWriter, r *http.Request, name, rest string) {
	sess, user := g.admit(w, r, name)
	if sess == nil {
		return
	}
	if g.o.KeepPrefix {
		g.forward(w, r, sess, user)
		return
	}
	path, err := url.PathUnescape(rest)
	if err != nil {
		g.metrics.GateRequest(sess.Environment, http.StatusBadRequest)
		page(w, http.StatusBadRequest, "Bad request", "The request path is not valid.")
		return
	}
	r.URL.Path, r.URL.RawPath = path, rest
	g.forward(w, r, sess, user)
}

// forward proxies an admitted request to the session's upstream.
func (g *Gate) forward(w http.ResponseWriter, r *http.Request, sess *sessions.Session, user string) {
	if notReady(sess) {
		sess = g.awaitReady(r, sess)
		switch {
		case sess.State.Ending():
			// It ended while the request was held.
			g.refuseEnded(w, r, sess)
			return
		case notReady(sess):
			g.serveStarting(w, r, sess)
			return
		}
	}
	if !g.svc.Dialable(sess) {
		// Dialled here, its address would reach this machine's own socket
		// of that port: another learner's dashboard, or nothing.
		g.log.Error("gate: the session's dashboard listens on a loopback address of the replica that started it, "+
			"which this replica cannot reach; give the workshop's spawner a bind address every replica reaches",
			zap.String("session", sess.Name), zap.String("upstream", sess.Upstream), zap.String("owner", sess.EnvOwner))
		g.metrics.GateRequest(sess.Environment, http.StatusBadGateway)
		page(w, http.StatusBadGateway, "Dashboard not reachable",
			"Your workshop runs on another server of this portal, which this one cannot reach. Reload the page to "+
				"try again; if this message stays, tell the workshop's organiser.")
		return
	}
	// prefix scopes the dashboard's cookies (path mode); forwarded tells
	// the dashboard the prefix it was stripped of.
	prefix, forwarded := "", ""
	if !g.HostMode() {
		prefix = routes.SessionPrefix + sess.Name
		if !g.o.KeepPrefix {
			forwarded = prefix
		}
	}
	StripIdentity(r.Header, g.o.Cookies.Name(""), sess.Name, user, forwarded)
	stripTrailers(r)
	if g.o.Assertions != nil {
		g.assert(r, sess, user)
	}
	// The gate's checks above ran once; the registry ends the request
	// later if its session ends while it is open (a WebSocket, a stream)
	// by cancelling its context.
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	r = r.WithContext(ctx)
	dw := &dashboardWriter{ResponseWriter: w, cookiePrefix: g.o.Cookies.Name(""), host: r.Host, pathPrefix: prefix}
	var out http.ResponseWriter = dw
	stop := cancel
	client := g.o.ClientIP(r)
	g.audit.admitted(r, client, sess.Name, user)
	if isStream(r) {
		g.metrics.WebSocketOpened(sess.Environment)
		defer g.metrics.WebSocketClosed(sess.Environment)
		defer g.audit.websocket(client, sess.Name, user, r.URL.Path)()
		use, done := g.activity.stream(sess.Name, sess.LastActivity)
		defer done()
		// The observer sits under the closer: the proxy's hijack passes
		// through both (each unwraps to the next). Cancelling the context
		// makes the proxy close both ends of an upgraded connection;
		// closing the hijacked connection as well does not depend on it.
		cw := &closingWriter{ResponseWriter: observeStream(out, r, use)}
		out = cw
		stop = func() { cancel(); cw.close() }
	} else {
		g.activity.request(sess.Name, sess.LastActivity)
	}
	st := g.streams.Open(sess.Name, sess.Expires, sess.SharedDashboard(), stop)
	defer st.Done()
	err := g.o.Proxy.Forward(out, r, sess.Upstream)
	status := dw.Status(err)
	switch {
	case err == nil:
	case status >= 502 && status <= 504:
		g.log.Warn("gate: dashboard upstream failed", zap.String("session", sess.Name),
			zap.String("upstream", sess.Upstream), zap.Error(err))
		status = page(out, http.StatusBadGateway, "Dashboard not reachable",
			"The workshop dashboard is not answering right now. Wait a moment and reload the page.")
	default:
		// The browser went away or the session ended mid-request: answer
		// the status the proxy chose if nothing was sent yet.
		g.log.Debug("gate: dashboard request ended", zap.String("session", sess.Name), zap.Int("status", status), zap.Error(err))
		if !dw.Sent() {
			out.WriteHeader(status)
		}
	}
	g.metrics.GateRequest(sess.Environment, status)
}

func (g *Gate) indexOf(sess *sessions.Session) string {
	if sess != nil && sess.IndexURL != "" {
		return sess.IndexURL
	}
	return g.o.Index
}

// endedIndex is where a browser goes from a session that has ended: its
// index, which, when it is the portal's own catalog, also names the
// session (`session=`), so the catalog can tell its owner why it ended.
// A hub's index gets Educates' notification alone.
func (g *Gate) endedIndex(sess *sessions.Session) string {
	index := g.indexOf(sess)
	u, err := url.Parse(index)
	if err != nil || !routes.IsCatalogURL(index, g.o.Origins.PortalHost) {
		return index
	}
	q := u.Query()
	q.Set("session", sess.Name)
	u.RawQuery = q.Encode()
	return u.String()
}

// Run turns WebSocket traffic into session activity and, on a store shared
// by replicas, closes requests to shared dashboards while this replica
// cannot vouch for them (guardShared), until ctx ends.
func (g *Gate) Run(ctx context.Context) {
	go g.guardShared(ctx)
	g.activity.run(ctx)
}

// assert adds the signed assertion of who the request is for. A request
// that cannot get one (the store is down) goes without: a dashboard that
// requires it refuses the request, one that does not is not held up.
func (g *Gate) assert(r *http.Request, sess *sessions.Session, user string) {
	tok, err := g.o.Assertions.Assert(r.Context(), assertion.Claims{Issuer: g.o.Issuer, Audience: sess.Name,
		Subject: user, Session: sess.Name, Workshop: sess.Workshop, Environment: sess.Environment})
	if err != nil {
		g.log.Warn("gate: signing the assertion", zap.String("session", sess.Name), zap.Error(err))
		return
	}
	r.Header[assertion.Header] = []string{tok}
}
