package caddyportal

import (
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

	"github.com/caddyportal/caddyportal/caddyportal/config"
	"github.com/caddyportal/caddyportal/caddyportal/gate"
	"github.com/caddyportal/caddyportal/caddyportal/loginlimit"
	"github.com/caddyportal/caddyportal/caddyportal/redirects"
	"github.com/caddyportal/caddyportal/caddyportal/sessions"
	"github.com/caddyportal/caddyportal/caddyportal/tokens"
)

// defaultStreamCloseDelay keeps dashboard WebSockets (terminals, editors)
// open this long after a config reload instead of cutting them at once.
const defaultStreamCloseDelay = 10 * time.Minute

// defaultDashboardTimeout bounds the wait for a dashboard's response
// headers; a hung dashboard then gets the browser an error page.
const defaultDashboardTimeout = 30 * time.Second

// upstreamVar is the request variable in which the gate leaves the dial
// address of the session's dashboard; the proxy's upstream dials it.
const upstreamVar = "portal.upstream"

// ticketParam carries the host-mode hand-off ticket.
const ticketParam = "portal_ticket"

// loadProxy loads Caddy's own reverse proxy, dialing the address the gate
// chose for the session, as a module of this config so Caddy cleans it up
// (and closes or delays closing its WebSockets) with the config.
func (h *Handler) loadProxy(ctx caddy.Context) error {
	delay := time.Duration(h.StreamCloseDelay)
	if delay == 0 {
		delay = defaultStreamCloseDelay
	}
	timeout := time.Duration(h.DashboardTimeout)
	if timeout == 0 {
		timeout = defaultDashboardTimeout
	}
	raw, err := json.Marshal(map[string]any{
		// One static upstream whose dial address is the placeholder the
		// gate fills per request. Dynamic upstreams would cost a copy of
		// the whole proxy handler and a global lock per request.
		"upstreams":          []map[string]string{{"dial": "{http.vars." + upstreamVar + "}"}},
		"stream_close_delay": int64(delay),
		"transport":          map[string]any{"protocol": "http", "response_header_timeout": int64(timeout)},
		// No flush_interval: Caddy already flushes streaming and
		// unknown-length responses (SSE, terminals) at once, and forcing a
		// flush on every write costs a syscall per chunk on plain pages.
	})
	if err != nil {
		return err
	}
	mod, err := ctx.LoadModuleByID("http.handlers.reverse_proxy", raw)
	if err != nil {
		return fmt.Errorf("loading reverse proxy: %w", err)
	}
	h.proxy = mod.(caddyhttp.MiddlewareHandler)
	h.activity = newActivity(h.svc)
	go h.activity.run(ctx)
	return nil
}

// sessionHost returns the session named by a host-mode request's Host, or "".
func (h *Handler) sessionHost(r *http.Request) string {
	if h.Dashboards.Mode != config.DashboardsHost {
		return ""
	}
	host := r.Host
	if hh, _, err := net.SplitHostPort(host); err == nil {
		host = hh
	}
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	suffix := "." + strings.ToLower(h.Dashboards.Domain)
	name, ok := strings.CutSuffix(host, suffix)
	if !ok || name == "" || strings.Contains(name, ".") {
		return ""
	}
	return name
}

// serveBrowser handles the portal's browser routes that are not REST API
// routes: dashboards (path mode), the delete link, anonymous create and
// the on-demand TLS ask endpoint. handled is false for other requests.
func (h *Handler) serveBrowser(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) (bool, error) {
	p := r.URL.Path
	switch {
	case p == "/workshops/tls/ask" || p == "/workshops/tls/ask/":
		h.serveAsk(w, r)
		return true, nil
	case strings.HasPrefix(p, "/workshops/environment/"):
		rest := strings.TrimPrefix(p, "/workshops/environment/")
		env, tail, _ := strings.Cut(rest, "/")
		if tail == "create" || tail == "create/" {
			if h.refusePortal(w, r, false) {
				return true, nil
			}
			h.serveCreate(w, r, env)
			return true, nil
		}
	case strings.HasPrefix(p, gate.SessionPrefix):
		rest := strings.TrimPrefix(r.URL.EscapedPath(), gate.SessionPrefix)
		name, tail, hasSlash := strings.Cut(rest, "/")
		if name == "" {
			return false, nil
		}
		if h.Dashboards.Mode == config.DashboardsHost {
			if tail == "delete" || tail == "delete/" {
				h.serveDelete(w, r, name)
				return true, nil
			}
			return false, nil
		}
		if err := h.origins.CheckPathDashboard(r, name); err != nil {
			h.metrics.GateRequest("", http.StatusForbidden)
			h.refuseInitiator(w, r, err, false)
			return true, nil
		}
		if tail == "delete" || tail == "delete/" {
			h.serveDelete(w, r, name)
			return true, nil
		}
		if !hasSlash {
			http.Redirect(w, r, gate.SessionPath(name), http.StatusFound)
			return true, nil
		}
		return true, h.serveDashboard(w, r, name, "/"+tail, next)
	}
	return false, nil
}

// admit applies the gate rules to a dashboard request for session name and
// returns the session and its user, or writes the refusal and returns nil.
// Refusals are counted as gate requests without an environment: the
// session name came from the client and must not create label values.
func (h *Handler) admit(w http.ResponseWriter, r *http.Request, name string) (sess *sessions.Session, user string) {
	rec := newStatusRecorder(w)
	w = rec
	defer func() {
		if sess == nil {
			h.metrics.GateRequest("", rec.Status(nil))
		}
	}()
	sess, err := h.svc.GetCached(r.Context(), name)
	if err != nil && !errors.Is(err, sessions.ErrSessionNotFound) {
		h.logger.Warn("gate: loading session", zap.String("session", name), zap.Error(err))
		page(w, http.StatusServiceUnavailable, "Portal unavailable", "The portal cannot check this session right now. Try again in a moment.")
		return nil, ""
	}
	if err != nil {
		sess = nil
	}
	// Only a browser that held the session learns how it ended and where
	// its index is (the stored index_url, query included, is the
	// requester's); every other browser gets one answer whether the
	// session is live, ended or unknown, so names cannot be probed.
	user, cerr := h.cookies.Verify(r, name, h.svc.Now())
	if cerr != nil || sess != nil && user != sess.Owner {
		page(w, http.StatusForbidden, "Not signed in to this session",
			"This browser is not signed in to this workshop session. Open the workshop from the link your training portal gave you.")
		return nil, ""
	}
	if sess == nil {
		// Held once, since purged.
		h.notify(w, r, h.Index, "session-invalid", http.StatusNotFound, "Unknown session",
			"This workshop session does not exist (it may have ended long ago).")
		return nil, ""
	}
	if sess.State.Ending() {
		h.notify(w, r, indexOf(sess, h.Index), "session-deleted", http.StatusGone, "Session ended",
			"This workshop session has ended.")
		return nil, ""
	}
	return sess, user
}

// serveDashboard proxies a path-mode dashboard request to the session's
// upstream, with the /workshops/session/<name> prefix stripped.
func (h *Handler) serveDashboard(w http.ResponseWriter, r *http.Request, name, rest string, next caddyhttp.Handler) error {
	sess, user := h.admit(w, r, name)
	if sess == nil {
		return nil
	}
	path, err := url.PathUnescape(rest)
	if err != nil {
		h.metrics.GateRequest(sess.Environment, http.StatusBadRequest)
		page(w, http.StatusBadRequest, "Bad request", "The request path is not valid.")
		return nil
	}
	r.URL.Path, r.URL.RawPath = path, rest
	return h.forward(w, r, sess, user, next)
}

// forward proxies an admitted request to the session's upstream.
func (h *Handler) forward(w http.ResponseWriter, r *http.Request, sess *sessions.Session, user string, next caddyhttp.Handler) error {
	gate.StripIdentity(r.Header, h.cookies.Name(""), sess.Name, user)
	if h.Dashboards.Mode != config.DashboardsHost {
		// Set after stripping: a client's own X-Forwarded-Prefix is gone.
		r.Header.Set("X-Forwarded-Prefix", gate.SessionPrefix+sess.Name)
	}
	stripTrailers(r)
	caddyhttp.SetVar(r.Context(), upstreamVar, sess.Upstream)
	// The recorder sits under the stream observer: the proxy's writes and
	// hijack pass through both (each unwraps to the next).
	rec := newStatusRecorder(w)
	w = rec
	w = h.filterResponse(w, r, sess.Name)
	if isStream(r) {
		h.metrics.WebSocketOpened(sess.Environment)
		defer h.metrics.WebSocketClosed(sess.Environment)
		use, done := h.activity.stream(sess.Name)
		defer done()
		w = observeStream(w, r, use)
	} else {
		h.activity.request(sess.Name)
	}
	// The gate's checks above ran once; the registry ends the request
	// later if its session ends while it is open (a WebSocket, a stream).
	w, r, untrack := h.track(w, r, sess)
	defer untrack()
	err := h.proxy.ServeHTTP(w, r, next)
	var he caddyhttp.HandlerError
	if errors.As(err, &he) && he.StatusCode >= 502 && he.StatusCode <= 504 {
		h.logger.Warn("gate: dashboard upstream failed", zap.String("session", sess.Name),
			zap.String("upstream", sess.Upstream), zap.Error(err))
		page(w, http.StatusBadGateway, "Dashboard not reachable",
			"The workshop dashboard is not answering right now. Wait a moment and reload the page.")
		err = nil
	}
	h.metrics.GateRequest(sess.Environment, rec.Status(err))
	return err
}

// refuseInitiator answers a request that the page which made it may not
// make (see gate.Origins): a JSON error for the REST API, a page otherwise.
func (h *Handler) refuseInitiator(w http.ResponseWriter, r *http.Request, err error, api bool) {
	h.logger.Debug("gate: refused a request by the page that made it", zap.String("path", r.URL.Path),
		zap.String("referer", r.Header.Get("Referer")), zap.String("origin", r.Header.Get("Origin")),
		zap.String("sec_fetch_site", r.Header.Get("Sec-Fetch-Site")), zap.Error(err))
	const msg = "This request was made by a page that may not make it: another workshop dashboard cannot reach this address."
	if api {
		jsonRefusal(w, http.StatusForbidden, "Request made by a workshop dashboard page is not permitted")
		return
	}
	page(w, http.StatusForbidden, "Request refused", msg)
}

// responseFilter drops the dashboard's Set-Cookie lines that reach beyond
// its session (gate.FilterSetCookies) and, in path mode, keeps its
// Referrer-Policy from hiding same-origin referrers, just before the
// response's header is sent (every 1xx, 101 and final header alike).
type responseFilter struct {
	caddyhttp.ResponseWriterWrapper
	cookiePrefix, host, pathPrefix string
	sent                           bool
}

// filterResponse wraps w with a responseFilter for session's dashboard.
func (h *Handler) filterResponse(w http.ResponseWriter, r *http.Request, session string) http.ResponseWriter {
	f := &responseFilter{ResponseWriterWrapper: caddyhttp.ResponseWriterWrapper{ResponseWriter: w},
		cookiePrefix: h.cookies.Name(""), host: r.Host}
	if h.Dashboards.Mode != config.DashboardsHost {
		f.pathPrefix = gate.SessionPrefix + session
	}
	return f
}

func (f *responseFilter) filter() {
	hdr := f.ResponseWriterWrapper.Header()
	gate.FilterSetCookies(hdr, f.cookiePrefix, f.host, f.pathPrefix)
	if f.pathPrefix != "" {
		gate.DashboardReferrerPolicy(hdr)
	}
}

// WriteHeader filters the header about to be sent.
func (f *responseFilter) WriteHeader(code int) {
	if !f.sent {
		f.filter()
		f.sent = code >= 200 || code == http.StatusSwitchingProtocols
	}
	f.ResponseWriterWrapper.WriteHeader(code)
}

// Write filters the header of a body sent without WriteHeader.
func (f *responseFilter) Write(b []byte) (int, error) {
	if !f.sent {
		f.WriteHeader(http.StatusOK)
	}
	return f.ResponseWriterWrapper.Write(b)
}

// ReadFrom filters the header of a body sent without WriteHeader; the
// embedded wrapper's ReadFrom would pass the writer below it directly.
func (f *responseFilter) ReadFrom(r io.Reader) (int64, error) {
	if !f.sent {
		f.WriteHeader(http.StatusOK)
	}
	return f.ResponseWriterWrapper.ReadFrom(r)
}

// stripTrailers filters a request's trailers as its headers: the declared
// ones now, and at the end of the body the ones that arrived, before
// Caddy's proxy copies r.Trailer for the upstream (it does so when the body
// it reads reaches EOF, which passes through this reader first).
func stripTrailers(r *http.Request) {
	if r.Body == nil || r.Body == http.NoBody {
		return
	}
	if r.Trailer != nil {
		gate.StripTrailers(r.Trailer)
	}
	r.Body = &trailerFilter{ReadCloser: r.Body, req: r}
}

// trailerFilter strips client claims from req's trailers once the body is
// read: net/http fills them in only then.
type trailerFilter struct {
	io.ReadCloser
	req *http.Request
}

func (t *trailerFilter) Read(p []byte) (int, error) {
	n, err := t.ReadCloser.Read(p)
	if err == io.EOF && t.req.Trailer != nil {
		gate.StripTrailers(t.req.Trailer)
	}
	return n, err
}

// statusRecorder notes the status a handler sends, for the gate metrics.
// It embeds Caddy's wrapper, whose Unwrap lets http.ResponseController
// reach the connection for hijacks (WebSockets), flushes and deadlines.
type statusRecorder struct {
	caddyhttp.ResponseWriterWrapper // by value: one allocation per request
	status                          int
}

func newStatusRecorder(w http.ResponseWriter) *statusRecorder {
	return &statusRecorder{ResponseWriterWrapper: caddyhttp.ResponseWriterWrapper{ResponseWriter: w}}
}

// WriteHeader records the first final status (or 101 Switching
// Protocols); other 1xx answers such as 103 Early Hints come before it.
func (s *statusRecorder) WriteHeader(code int) {
	if s.status == 0 && (code >= 200 || code == http.StatusSwitchingProtocols) {
		s.status = code
	}
	s.ResponseWriterWrapper.WriteHeader(code)
}

// Write records the implicit 200 of a body sent without a header.
func (s *statusRecorder) Write(b []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	return s.ResponseWriterWrapper.Write(b)
}

// Status is the status sent, or, when nothing was written, the one Caddy
// will send for err (a handler error's status, 500 for any other error,
// the implicit 200 for none).
func (s *statusRecorder) Status(err error) int {
	if s.status != 0 {
		return s.status
	}
	var he caddyhttp.HandlerError
	switch {
	case err == nil:
		return http.StatusOK
	case errors.As(err, &he) && he.StatusCode != 0:
		return he.StatusCode
	}
	return http.StatusInternalServerError
}

// isStream reports whether r opens a long-lived stream (a WebSocket over
// HTTP/1.1 Upgrade or HTTP/2 extended CONNECT).
func isStream(r *http.Request) bool {
	return r.Header.Get("Upgrade") != "" || r.Method == http.MethodConnect
}

// serveSessionHost serves a host-mode session host: the ticket hand-off,
// the delete link and the dashboard itself.
func (h *Handler) serveSessionHost(w http.ResponseWriter, r *http.Request, name string, next caddyhttp.Handler) error {
	if ticket := r.URL.Query().Get(ticketParam); ticket != "" {
		h.exchangeTicket(w, r, name, ticket)
		return nil
	}
	if err := gate.CheckSessionHost(r); err != nil {
		h.metrics.GateRequest("", http.StatusForbidden)
		h.refuseInitiator(w, r, err, false)
		return nil
	}
	if p := r.URL.Path; p == gate.DeletePath(name) || p == strings.TrimSuffix(gate.DeletePath(name), "/") {
		h.serveDelete(w, r, name)
		return nil
	}
	sess, user := h.admit(w, r, name)
	if sess == nil {
		return nil
	}
	return h.forward(w, r, sess, user, next)
}

// exchangeTicket turns a one-time hand-off ticket into the session host's
// own cookie and redirects to the same URL without the ticket.
func (h *Handler) exchangeTicket(w http.ResponseWriter, r *http.Request, name, ticket string) {
	now := h.svc.Now()
	user, nonce, err := h.cookies.VerifyTicket(ticket, name, now)
	if err == nil {
		var first bool
		first, err = h.svc.UseOnce(r.Context(), "ticket:"+nonce, now.Add(gate.TicketTTL))
		if err == nil && !first {
			err = errors.New("ticket already used")
		}
	}
	if err != nil {
		page(w, http.StatusForbidden, "Link expired",
			"This sign-in link is invalid, expired or already used. Open the workshop again from your training portal.")
		return
	}
	http.SetCookie(w, h.cookies.Issue(name, user, "/", r.TLS != nil, now))
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

// activated issues the session's dashboard credentials after a successful
// activation and returns where the browser goes: the path-mode dashboard
// with a fresh cookie, or the session host with a one-time ticket.
func (h *Handler) activated(w http.ResponseWriter, r *http.Request, sess *sessions.Session) (string, error) {
	now := h.svc.Now()
	if h.Dashboards.Mode != config.DashboardsHost {
		entry := gate.SessionPath(sess.Name)
		http.SetCookie(w, h.cookies.Issue(sess.Name, sess.Owner, entry, r.TLS != nil, now))
		return entry, nil
	}
	nonce, err := tokens.New()
	if err != nil {
		return "", err
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	host := sess.Name + "." + h.Dashboards.Domain
	if _, port, err := net.SplitHostPort(r.Host); err == nil {
		host = net.JoinHostPort(host, port)
	}
	q := url.Values{ticketParam: {h.cookies.IssueTicket(sess.Name, sess.Owner, nonce, now)}}
	return scheme + "://" + host + "/?" + q.Encode(), nil
}

// serveAsk answers Caddy's on_demand_tls `ask`: 200 only for the host of a
// live session in host mode.
func (h *Handler) serveAsk(w http.ResponseWriter, r *http.Request) {
	domain := r.URL.Query().Get("domain")
	req := &http.Request{Host: domain}
	name := h.sessionHost(req)
	if name != "" {
		if sess, err := h.svc.Get(r.Context(), name); err == nil && !sess.State.Ending() {
			w.WriteHeader(http.StatusOK)
			return
		}
	}
	http.Error(w, "not a live session host", http.StatusNotFound)
}

// serveDelete ends the session of a signed-in browser and sends it to the
// session's index with a notification (reference §3.2).
func (h *Handler) serveDelete(w http.ResponseWriter, r *http.Request, name string) {
	sess, _ := h.admit(w, r, name)
	if sess == nil {
		return
	}
	if !gate.SameOriginNavigation(r) {
		// Another site sent the browser here (the cookie is SameSite=Lax,
		// so it goes along with top-level GETs): ask first. The button
		// posts back from this origin, which passes.
		confirmDelete(w)
		return
	}
	if _, err := h.svc.Terminate(r.Context(), name, "deleted"); err != nil && !errors.Is(err, sessions.ErrSessionNotFound) {
		page(w, http.StatusServiceUnavailable, "Portal unavailable", "The session could not be ended right now. Try again.")
		return
	}
	note := "session-deleted"
	if n := r.URL.Query().Get("notification"); n == "startup-timeout" {
		note = n
	}
	h.notify(w, r, indexOf(sess, h.Index), note, http.StatusOK, "Session ended", "Your workshop session has ended.")
}

var confirmTmpl = template.Must(template.New("confirm").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>End workshop session?</title>
<style>body{font-family:system-ui,sans-serif;max-width:36rem;margin:4rem auto;padding:0 1rem;color:#222}
h1{font-size:1.4rem}p{line-height:1.5}button{font-size:1rem;padding:.5rem 1rem}</style></head>
<body><h1>End workshop session?</h1><p>Another site sent you to the link that ends this workshop session.
End it only if you meant to: everything in it will be gone.</p>
<form method="post"><button type="submit" id="end">End session</button></form></body></html>
`))

// confirmDelete asks the learner to confirm ending the session. It may
// not be framed, so no other page can trick a click on its button.
func confirmDelete(w http.ResponseWriter) {
	hdr := w.Header()
	hdr.Set("Content-Type", "text/html; charset=utf-8")
	hdr.Set("Cache-Control", "no-store")
	hdr.Set("X-Frame-Options", "DENY")
	hdr.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
	w.WriteHeader(http.StatusOK)
	_ = confirmTmpl.Execute(w, nil)
}

// Limits on anonymous session starts per client address: CreateBurst at
// once, then one every CreateEvery. A classroom behind one NAT address can
// start together; one client cannot take every place.
const (
	CreateBurst = 20
	CreateEvery = 15 * time.Second
)

// serveCreate is the anonymous-mode start link: it creates an anonymous
// user and session and takes the browser straight to the dashboard.
func (h *Handler) serveCreate(w http.ResponseWriter, r *http.Request, env string) {
	if h.Registration != config.RegistrationAnonymous {
		page(w, http.StatusForbidden, "Not available", "This portal does not offer anonymous workshop sessions.")
		return
	}
	// Only a GET, the browser following the start link, starts a
	// session: a HEAD from a link checker or a POST from another site's
	// form must not take a place.
	if r.Method != http.MethodGet {
		w.Header().Set("Allow", "GET")
		jsonRefusal(w, http.StatusMethodNotAllowed, "Method \""+r.Method+"\" not allowed")
		return
	}
	if wait := h.creates.Allow(clientIP(r)); wait > 0 {
		w.Header().Set("Retry-After", loginlimit.RetryAfter(wait))
		page(w, http.StatusTooManyRequests, "Too many workshop starts",
			"Too many workshop sessions were started from your network. Wait "+loginlimit.RetryAfter(wait)+" seconds and try again.")
		return
	}
	index := r.URL.Query().Get("index_url")
	if index == "" || h.redirects.Check(index, "") != nil {
		index = h.Index
	}
	e := h.svc.Environment(env)
	if e == nil || e.State != sessions.EnvRunning {
		h.svc.RefuseUnknownEnvironment(env)
		h.notify(w, r, index, "workshop-invalid", http.StatusNotFound, "Unknown workshop", "There is no such workshop.")
		return
	}
	res, err := h.svc.RequestSession(r.Context(), sessions.Request{Environment: env, Group: sessions.GroupAnonymous, IndexURL: index})
	if err != nil {
		h.notify(w, r, index, "session-unavailable", http.StatusServiceUnavailable, "No session available",
			"All workshop sessions are in use. Try again later.")
		return
	}
	sess, err := h.svc.Activate(r.Context(), res.Session.Name, res.Token)
	if err != nil {
		h.notify(w, r, index, "session-unavailable", http.StatusServiceUnavailable, "No session available",
			"The workshop session could not be started. Try again later.")
		return
	}
	target, err := h.activated(w, r, sess)
	if err != nil {
		page(w, http.StatusServiceUnavailable, "Portal unavailable", "Try again in a moment.")
		return
	}
	http.Redirect(w, r, target, http.StatusFound)
}

// notify redirects to target with a notification, or shows a page when
// there is nowhere to go.
func (h *Handler) notify(w http.ResponseWriter, r *http.Request, target, note string, status int, title, msg string) {
	if target == "" {
		page(w, status, title, msg)
		return
	}
	http.Redirect(w, r, redirects.WithNotification(target, note), http.StatusFound)
}

func indexOf(sess *sessions.Session, fallback string) string {
	if sess != nil && sess.IndexURL != "" {
		return sess.IndexURL
	}
	return fallback
}

var pageTmpl = template.Must(template.New("page").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{.Title}}</title>
<style>body{font-family:system-ui,sans-serif;max-width:36rem;margin:4rem auto;padding:0 1rem;color:#222}
h1{font-size:1.4rem}p{line-height:1.5}.code{color:#888}</style></head>
<body><h1>{{.Title}}</h1><p>{{.Message}}</p><p class="code">HTTP {{.Status}}</p></body></html>
`))

// jsonRefusal answers a request that is not a browser navigation (a HEAD or
// POST to a start link, a dashboard page's call to the REST API) with the
// REST API's {"error": ...} body.
func jsonRefusal(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": msg})
}

// page writes a small, clear HTML page for browser-facing refusals.
func page(w http.ResponseWriter, status int, title, msg string) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = pageTmpl.Execute(w, struct {
		Title, Message string
		Status         int
	}{title, msg, status})
}

// refusePortal refuses, in path mode, a request for the portal's pages or
// API made in the background by a dashboard page (gate.Origins.CheckPortal)
// and reports whether it did.
func (h *Handler) refusePortal(w http.ResponseWriter, r *http.Request, api bool) bool {
	if h.Dashboards.Mode == config.DashboardsHost {
		return false
	}
	if err := h.origins.CheckPortal(r); err != nil {
		h.refuseInitiator(w, r, err, api)
		return true
	}
	return false
}
