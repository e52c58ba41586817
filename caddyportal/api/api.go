// Package api serves the training portal REST API, wire-compatible with the
// Educates training portal (reference §1, §2, §8), as plain net/http
// handlers over the sessions service and the OAuth issuer. It does not
// import Caddy.
//
// Where the original has flaws (reference §7.2) this API fixes them and keeps
// the wire format: every error has a JSON {"error": ...} body, 500s for bad
// input are 400s, user ids may be any percent-encoded string, and a request
// may name a workshop (or its alias) instead of its environment.
package api

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/caddyportal/caddyportal/caddyportal/assertion"
	"github.com/caddyportal/caddyportal/caddyportal/clientip"
	"github.com/caddyportal/caddyportal/caddyportal/config"
	"github.com/caddyportal/caddyportal/caddyportal/httperr"
	"github.com/caddyportal/caddyportal/caddyportal/loginlimit"
	"github.com/caddyportal/caddyportal/caddyportal/oauth"
	"github.com/caddyportal/caddyportal/caddyportal/redirects"
	"github.com/caddyportal/caddyportal/caddyportal/routes"
	"github.com/caddyportal/caddyportal/caddyportal/sessions"
)

// Limits on what a client may send.
const (
	// maxBodyBytes bounds a session request's parameters: they are stored
	// in the session record, which must fit one store transaction
	// (Badger takes about 600 KB with the store's 4 MB memtables).
	maxBodyBytes  = 128 << 10
	maxFormBytes  = 64 << 10
	maxParameters = 200
)

// Options configure an API.
type Options struct {
	// Service allocates and manages sessions. Required.
	Service *sessions.Service
	// Issuer issues and checks bearer tokens. Required.
	Issuer *oauth.Issuer
	// Redirects decides which index_url values are allowed. Required.
	Redirects *redirects.Policy
	// Logger; default no-op.
	Logger *zap.Logger
	// ClientIP returns the address failed logins are counted against;
	// default: the host of r.RemoteAddr.
	ClientIP func(r *http.Request) string
	// Logins counts failed logins. The glue passes the same Limiter to the
	// web pages, so guesses at either door count against both; default: a
	// Limiter of the API's own.
	Logins *loginlimit.Limiter
	// Revokes limits token revocations per client address; default: a
	// Rate of the API's own.
	Revokes *loginlimit.Rate
	// OnActivate is called after a successful activation, before the
	// redirect: the gate issues its cookie here and returns where the
	// browser goes. Default: the path-mode dashboard entry.
	OnActivate func(w http.ResponseWriter, r *http.Request, sess *sessions.Session) (string, error)
	// Assertions, when set, are published at routes.JWKSPath.
	Assertions *assertion.Signer
	// PortalUID identifies this portal in catalog responses.
	PortalUID string
	// OnToken, if set, is told the outcome of every token request: the
	// grant_type the client sent and "ok" or the OAuth2 error code
	// answered. It runs on the request path and must not block.
	OnToken func(grant, result string)
	// CheckAnalyticsURL refuses a request's analytics_url whose host is
	// plainly one the webhook guard would not connect to (a literal
	// private address, localhost), so the caller learns it at once rather
	// than from missing events. Nil accepts any valid URL.
	CheckAnalyticsURL func(raw string) error
}

// API is the REST API.
type API struct {
	svc      *sessions.Service
	cfg      config.Portal
	issuer   *oauth.Issuer
	redirect *redirects.Policy
	log      *zap.Logger
	clientIP func(r *http.Request) string
	logins   *loginlimit.Limiter
	revokes  *loginlimit.Rate
	opts     Options
}

// New returns an API.
func New(opts Options) *API {
	if opts.Logger == nil {
		opts.Logger = zap.NewNop()
	}
	if opts.ClientIP == nil {
		opts.ClientIP = clientip.Remote
	}
	if opts.OnActivate == nil {
		opts.OnActivate = func(_ http.ResponseWriter, _ *http.Request, sess *sessions.Session) (string, error) {
			return routes.SessionPath(sess.Name), nil
		}
	}
	if opts.Logins == nil {
		opts.Logins = loginlimit.New(opts.Service.Now)
	}
	if opts.Revokes == nil {
		opts.Revokes = loginlimit.NewRate(opts.Service.Now, RevokeBurst, RevokeEvery)
	}
	return &API{svc: opts.Service, cfg: opts.Service.Config(), issuer: opts.Issuer, redirect: opts.Redirects,
		log: opts.Logger, clientIP: opts.ClientIP, logins: opts.Logins,
		revokes: opts.Revokes, opts: opts}
}

// route is a matched API route: a handler and the path segments it uses.
type route struct {
	handle    func(a *API, w http.ResponseWriter, r *http.Request, arg string)
	arg       string
	methods   string // allowed methods, comma-separated
	protected bool
	// catalog routes check the token themselves (the catalog may be
	// public), but like protected routes answer 403 before 405.
	catalog bool
	// dashboard routes also take a session's dashboard token (one issued
	// by the authorization-code grant), for that session only.
	dashboard bool
}

// Handler returns the handler of a REST API route matched by
// routes.Match, or nil for a route of another face.
func (a *API) Handler(m routes.Route) http.Handler {
	if m.ID == routes.APINotFound {
		return http.HandlerFunc(a.notFound)
	}
	rt, ok := apiRoutes[m.ID]
	if !ok {
		return nil
	}
	rt.arg = m.Arg
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { a.serve(w, r, rt) })
}

// apiRoutes are the handler and the rules of each REST API route.
var apiRoutes = map[routes.ID]route{
	routes.Token:               {handle: (*API).token, methods: "POST"},
	routes.RevokeToken:         {handle: (*API).revoke, methods: "POST"},
	routes.CatalogEnvironments: {handle: (*API).catalogEnvironments, methods: "GET,HEAD", catalog: true},
	routes.CatalogWorkshops:    {handle: (*API).catalogWorkshops, methods: "GET,HEAD", catalog: true},
	routes.EnvironmentStatus:   {handle: (*API).environmentStatus, methods: "GET,HEAD", protected: true},
	routes.EnvironmentRequest:  {handle: (*API).request, methods: "GET,POST", protected: true},
	// GET only: a HEAD from a link prefetcher must not start a session.
	routes.SessionActivate:  {handle: (*API).activate, methods: "GET"},
	routes.SessionSchedule:  {handle: (*API).schedule, methods: "GET,HEAD", protected: true, dashboard: true},
	routes.SessionExtend:    {handle: (*API).extend, methods: "GET,POST", protected: true, dashboard: true},
	routes.SessionTerminate: {handle: (*API).terminate, methods: "GET,POST", protected: true},
	routes.SessionAuthorize: {handle: (*API).authorize, methods: "GET,HEAD", protected: true, dashboard: true},
	routes.SessionProgress:  {handle: (*API).progress, methods: "GET,HEAD", protected: true},
	routes.SessionConfig:    {handle: (*API).config, methods: "GET,HEAD", protected: true},
	routes.SessionEvent:     {handle: (*API).event, methods: "POST", protected: true, dashboard: true},
	routes.UserSessions:     {handle: (*API).userSessions, methods: "GET,HEAD", protected: true},
	routes.JWKS:             {handle: (*API).jwks, methods: "GET,HEAD"},
}

type principalKey struct{}

func (a *API) serve(w http.ResponseWriter, r *http.Request, rt route) {
	w.Header().Set("Access-Control-Allow-Origin", "*")
	if r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != "" {
		w.Header().Set("Access-Control-Allow-Methods", rt.methods+",OPTIONS")
		w.Header().Set("Access-Control-Allow-Headers", "Authorization, Content-Type")
		w.Header().Set("Access-Control-Max-Age", "86400")
		w.WriteHeader(http.StatusOK)
		return
	}
	if rt.protected {
		p, err := a.bearer(r)
		if err == nil && p.Session != "" && (!rt.dashboard || rt.arg != p.Session) {
			// A dashboard's token acts for its learner on its own
			// session only.
			err = errSessionScoped
		}
		if err != nil {
			// Educates answers a bare 403 here, and clients test for it;
			// keep the status and add the JSON body.
			a.fail(w, http.StatusForbidden, "Authentication credentials were not provided or are invalid", err)
			return
		}
		r = r.WithContext(context.WithValue(r.Context(), principalKey{}, p))
	}
	if !methodAllowed(r.Method, rt.methods) {
		if rt.catalog {
			if _, ok := a.catalogAccess(w, r); !ok {
				return
			}
		}
		w.Header().Set("Allow", rt.methods)
		writeError(w, http.StatusMethodNotAllowed, "Method \""+r.Method+"\" not allowed")
		return
	}
	rt.handle(a, w, r, rt.arg)
}

func methodAllowed(m, allowed string) bool {
	for _, a := range strings.Split(allowed, ",") {
		if m == a {
			return true
		}
	}
	return false
}

// errSessionScoped refuses a session's dashboard token on a route that is
// not that session's.
var errSessionScoped = errors.New("a dashboard token is valid only for its own session")

// bearer returns the principal of the request's bearer token.
func (a *API) bearer(r *http.Request) (oauth.Principal, error) {
	h := r.Header.Get("Authorization")
	const prefix = "bearer "
	if len(h) <= len(prefix) || !strings.EqualFold(h[:len(prefix)], prefix) {
		return oauth.Principal{}, oauth.ErrInvalid
	}
	return a.issuer.Check(r.Context(), strings.TrimSpace(h[len(prefix):]))
}

func principal(r *http.Request) (oauth.Principal, bool) {
	p, ok := r.Context().Value(principalKey{}).(oauth.Principal)
	return p, ok
}

func isRobot(p oauth.Principal) bool { return p.Group == sessions.GroupRobot }
func isStaff(p oauth.Principal) bool { return p.Group == sessions.GroupStaff }

// fail writes an error response, turning outages (httperr.Temporary) into
// 503 with a Retry-After and logging anything unexpected; cause may be nil.
func (a *API) fail(w http.ResponseWriter, status int, msg string, cause error) {
	switch {
	case cause == nil, errors.Is(cause, oauth.ErrInvalid), httperr.Refusal(cause):
	case httperr.Temporary(cause):
		w.Header().Set("Retry-After", "1")
		status, msg = http.StatusServiceUnavailable, httperr.UnavailableMessage
		a.log.Warn("request failed: backend unavailable", zap.Error(cause))
	case status >= 500:
		a.log.Error("request failed", zap.Error(cause))
	}
	writeError(w, status, msg)
}

// unavailable answers 503 for a failure of the backend (logged by fail).
func (a *API) unavailable(w http.ResponseWriter, err error) {
	a.fail(w, http.StatusServiceUnavailable, httperr.UnavailableMessage, err)
}

// serviceError answers an error of the session service with the status
// and text httperr gives it, except where the Educates training portal,
// whose clients this API serves, answers a refusal with another status
// (educatesStatus); outages and unknown errors go to unavailable.
func (a *API) serviceError(w http.ResponseWriter, err error) {
	a.fail(w, httperr.Status(err, educatesStatus...), httperr.Message(err), err)
}

// educatesStatus are the refusals Educates answers with another status
// than httperr.Status: its clients depend on these.
var educatesStatus = []httperr.Override{
	{Err: sessions.ErrUserNotPermitted, Status: http.StatusBadRequest},
	{Err: sessions.ErrNoEnvironment, Status: http.StatusForbidden},
	{Err: sessions.ErrNotInUse, Status: http.StatusBadRequest},
}

// writeJSON and writeError write the REST API's wire format (see httperr).
var (
	writeJSON  = httperr.WriteJSON
	writeError = httperr.Write
)

// selfOrigin is the origin the request arrived on, or the configured URL.
func (a *API) selfOrigin(r *http.Request) string {
	if a.cfg.URL != "" {
		return strings.TrimSuffix(a.cfg.URL, "/")
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host
}

// query parses the query string strictly: a malformed one is a 400.
func query(w http.ResponseWriter, r *http.Request) (url.Values, bool) {
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		writeError(w, http.StatusBadRequest, "Malformed query string")
		return nil, false
	}
	return q, true
}

func now(a *API) time.Time { return a.svc.Now() }

// jwks publishes the keys that verify the gate's X-Portal-Assertion (404
// when the portal does not sign assertions). Readers may cache the set for
// a minute: a new key is published well before it signs anything.
func (a *API) jwks(w http.ResponseWriter, r *http.Request, _ string) {
	if a.opts.Assertions == nil {
		writeError(w, http.StatusNotFound, "Not found")
		return
	}
	set, err := a.opts.Assertions.JWKS(r.Context())
	if err != nil {
		a.unavailable(w, err)
		return
	}
	w.Header().Set("Content-Type", "application/jwk-set+json")
	w.Header().Set("Cache-Control", "public, max-age=60")
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		_, _ = w.Write(set)
	}
}
