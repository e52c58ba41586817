// Package webui serves the portal's server-rendered web pages: the admin
// pages (overview, sessions, session detail, users), the learner pages
// (login, sign-up, HTML catalog) and the `/` redirect, following the
// portal's `registration` mode (Educates reference §3.3, §5.2). It does not
// import Caddy; the glue asks Handler for each request and falls through
// when it returns nil, as it does for the REST API.
//
// Security model: the login state is a signed, expiring, HttpOnly cookie
// (SameSite=Lax, Secure over TLS) that carries a random per-login id; every
// form carries a CSRF token signed for that id, and every POST is checked
// for it and for a same-origin Origin header. Learner passwords are stored
// as bcrypt hashes; the admin password is compared in constant time; failed
// logins are rate limited per account and per client address (together with
// the REST API's token endpoint) and never logged with the password; sign-ups
// are rate limited per client address.
package webui

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/caddyportal/caddyportal/caddyportal/clientip"
	"github.com/caddyportal/caddyportal/caddyportal/config"
	"github.com/caddyportal/caddyportal/caddyportal/health"
	"github.com/caddyportal/caddyportal/caddyportal/loginlimit"
	"github.com/caddyportal/caddyportal/caddyportal/redirects"
	"github.com/caddyportal/caddyportal/caddyportal/routes"
	"github.com/caddyportal/caddyportal/caddyportal/sessions"
	"github.com/caddyportal/caddyportal/caddyportal/tokens"
)

// Options configure the web pages.
type Options struct {
	// Service holds the portal state and lifecycle. Required.
	Service *sessions.Service
	// Key signs the login cookie and CSRF tokens; at least 32 bytes. The
	// glue derives it from the portal secret with tokens.DeriveKey.
	Key []byte
	// CookiePrefix starts the login cookie's name ("portal-<name>-"). Using
	// the gate's prefix means the gate strips the login cookie from
	// requests it proxies to dashboards.
	CookiePrefix string
	// Redirects validates redirect targets. Required.
	Redirects *redirects.Policy
	// Logger; default no-op.
	Logger *zap.Logger
	// ClientIP returns the address failed logins and sign-ups are counted
	// against; default: the host of r.RemoteAddr.
	ClientIP func(r *http.Request) string
	// Logins counts failed logins. The glue passes the REST API's Limiter
	// here, so guesses at either door count against both; default: a
	// Limiter of the pages' own.
	Logins *loginlimit.Limiter
	// Signups limits sign-ups per client address; default: a Rate of the
	// pages' own.
	Signups *loginlimit.Rate
	// PasswordCost is the bcrypt cost for new learner passwords; 0 means
	// bcrypt.DefaultCost. Tests lower it to stay fast.
	PasswordCost int
	// Health, if set, returns the dashboards' last probe results, which
	// the overview page lists so an operator sees a dead one.
	Health func() []health.Status
	// OpenAs, if set, lets the admin open a learner's dashboard: it
	// issues the gate's credentials of session for user and returns where
	// the browser goes (the gate's ActivatedAs). Nil hides the button.
	OpenAs func(w http.ResponseWriter, r *http.Request, sess *sessions.Session, user string) (string, error)
	// StaffGrant is how long such access lasts; 0 means an hour.
	StaffGrant time.Duration
	// PortalHost reports whether a host name is the portal's own (the
	// gate's Origins.PortalHost), for telling whether the index is the
	// portal's catalog; nil counts only a relative index as that.
	PortalHost func(hostname string) bool
}

// UI serves the web pages.
type UI struct {
	svc    *sessions.Service
	cfg    config.Portal
	signer *tokens.Signer
	cookie string
	// accessCookie holds the event access code's grant.
	accessCookie string
	redirect     *redirects.Policy
	log          *zap.Logger
	clientIP     func(r *http.Request) string
	health       func() []health.Status
	openAs       func(w http.ResponseWriter, r *http.Request, sess *sessions.Session, user string) (string, error)
	staffGrant   time.Duration
	portalHost   func(hostname string) bool
	logins       *loginlimit.Limiter
	signups      *loginlimit.Rate
	cost         int
	pages        map[string]*pageTemplate
	bindKey      []byte // keys credential fingerprints in login cookies
	// dummyHash is compared against when a login names no known user, so
	// the answer takes as long as for a wrong password.
	dummyHash []byte
}

// Sign-up limits per client address: SignupBurst accounts at once, then one
// every SignupEvery. A classroom behind one NAT address can still sign up
// together; a script cannot create accounts by the hundred.
const (
	SignupBurst = 30
	SignupEvery = 20 * time.Second
)

// New returns the web pages for opts.
func New(opts Options) (*UI, error) {
	if opts.Service == nil {
		return nil, errors.New("webui: a sessions service is required")
	}
	if opts.Redirects == nil {
		return nil, errors.New("webui: a redirect policy is required")
	}
	signer, err := tokens.NewSigner(opts.Key)
	if err != nil {
		return nil, fmt.Errorf("webui: %w", err)
	}
	if opts.Logger == nil {
		opts.Logger = zap.NewNop()
	}
	if opts.ClientIP == nil {
		opts.ClientIP = clientip.Remote
	}
	if opts.Logins == nil {
		opts.Logins = loginlimit.New(opts.Service.Now)
	}
	if opts.Signups == nil {
		opts.Signups = loginlimit.NewRate(opts.Service.Now, SignupBurst, SignupEvery)
	}
	pages, err := loadTemplates()
	if err != nil {
		return nil, fmt.Errorf("webui: %w", err)
	}
	u := &UI{openAs: opts.OpenAs, staffGrant: opts.StaffGrant,
		svc: opts.Service, cfg: opts.Service.Config(), signer: signer, cookie: opts.CookiePrefix + "login",
		accessCookie: opts.CookiePrefix + "access",
		redirect:     opts.Redirects, log: opts.Logger, clientIP: opts.ClientIP,
		health: opts.Health, portalHost: opts.PortalHost,
		logins: opts.Logins, signups: opts.Signups,
		cost: opts.PasswordCost, pages: pages,
		bindKey: tokens.DeriveKey(opts.Key, "webui-bind")}
	if u.dummyHash, err = hashPassword("not a password of anyone", u.cost); err != nil {
		return nil, fmt.Errorf("webui: %w", err)
	}
	return u, nil
}

// route is a matched page: its handler and the methods it accepts.
type route struct {
	get  func(u *UI, w http.ResponseWriter, r *http.Request, arg string)
	post func(u *UI, w http.ResponseWriter, r *http.Request, arg string)
	arg  string
	// slash is the canonical path when the request lacked the trailing
	// slash; GETs are redirected there.
	slash string
	// door, when set, puts the route behind the event access code; the
	// access form comes back to this path.
	door string
	// maxForm bounds the route's form body; default maxFormBytes.
	maxForm int64
}

// Handler returns the handler of a page route matched by routes.Match,
// or nil when the pages leave it to the next handler (`/` when the index
// is this host's own root). The REST API's routes never come here.
func (u *UI) Handler(m routes.Route, r *http.Request) http.Handler {
	if m.ID.Face() != routes.Pages || m.ID == routes.Index && u.indexIsRoot(r) {
		return nil
	}
	rt := pageRoutes[m.ID]
	rt.arg, rt.slash = m.Arg, m.Slash
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { u.serve(w, r, rt) })
}

// pageRoutes are the handlers of each page route; routes.PageNotFound has
// none, which serve answers with a 404 page.
var pageRoutes = map[routes.ID]route{
	routes.Index:            {get: (*UI).index, door: "/"},
	routes.Login:            {get: (*UI).loginPage, post: (*UI).login},
	routes.Logout:           {get: (*UI).logoutPage, post: (*UI).logout},
	routes.Signup:           {get: (*UI).signupPage, post: (*UI).signup},
	routes.Catalog:          {get: (*UI).catalog, post: (*UI).start, door: routes.CatalogPath},
	routes.EnvironmentStart: {get: (*UI).environmentStart},
	routes.Access:           {get: (*UI).accessPage, post: (*UI).access},
	routes.AdminOverview:    {get: (*UI).overview},
	routes.AdminSessions:    {get: (*UI).sessionsPage},
	routes.AdminUsers:       {get: (*UI).usersPage, post: (*UI).setPassword},
	routes.AdminSession:     {get: (*UI).sessionPage},
	routes.AdminTerminate:   {post: (*UI).terminate},
	routes.AdminExtend:      {post: (*UI).extend},
	routes.AdminOpen:        {post: (*UI).open},
	routes.AdminBulk:        {post: (*UI).bulk, maxForm: maxBulkFormBytes},
	routes.AdminRelease:     {post: (*UI).release},
}

// indexIsRoot reports whether the portal index is this host's own `/`
// (a hub page served by a later handler, as in Caddyfile.example): `/` is
// then left to that handler instead of redirecting to itself forever.
func (u *UI) indexIsRoot(r *http.Request) bool {
	idx, err := url.Parse(u.cfg.Index)
	return err == nil && u.cfg.Index != "" && strings.EqualFold(idx.Host, r.Host) &&
		(idx.Path == "" || idx.Path == "/")
}

func (u *UI) serve(w http.ResponseWriter, r *http.Request, rt route) {
	securityHeaders(w.Header())
	if rt.get == nil && rt.post == nil {
		u.fail(w, r, http.StatusNotFound, "Page not found", "There is no page at this address.")
		return
	}
	// Only top-level navigations may load these pages: a script on a
	// same-origin dashboard (path mode) must not fetch an admin page and
	// read its CSRF token. Browsers send Sec-Fetch-Dest; without it (old
	// browsers, curl) the CSRF and Origin checks still apply.
	if d := r.Header.Get("Sec-Fetch-Dest"); d != "" && d != "document" {
		// Rendered as nobody: the refusal must not carry a CSRF token
		// either (the layout's sign-out form has one).
		u.render(w, r, http.StatusForbidden, "error", identity{}, view{Title: "Not allowed",
			Error: "This page can only be opened directly in the browser."})
		return
	}
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		if rt.get == nil {
			w.Header().Set("Allow", "POST")
			u.fail(w, r, http.StatusMethodNotAllowed, "Method not allowed", "This address only accepts form submissions.")
			return
		}
		if rt.slash != "" {
			target := rt.slash
			if r.URL.RawQuery != "" {
				target += "?" + r.URL.RawQuery
			}
			http.Redirect(w, r, target, http.StatusMovedPermanently)
			return
		}
		if rt.door != "" && !u.eventDoor(w, r, rt.door) {
			return
		}
		rt.get(u, w, r, rt.arg)
	case http.MethodPost:
		if rt.post == nil {
			w.Header().Set("Allow", "GET, HEAD")
			u.fail(w, r, http.StatusMethodNotAllowed, "Method not allowed", "This page cannot be submitted to.")
			return
		}
		if !u.sameOrigin(r) {
			u.fail(w, r, http.StatusForbidden, "Request refused", "The form was submitted from another site.")
			return
		}
		limit := rt.maxForm
		if limit == 0 {
			limit = maxFormBytes
		}
		r.Body = http.MaxBytesReader(w, r.Body, limit)
		if err := r.ParseForm(); err != nil {
			u.fail(w, r, http.StatusBadRequest, "Bad request", "The form could not be read.")
			return
		}
		if rt.door != "" && !u.eventDoor(w, r, rt.door) {
			return
		}
		rt.post(u, w, r, rt.arg)
	default:
		allow := "GET, HEAD"
		if rt.post != nil {
			allow += ", POST"
		}
		w.Header().Set("Allow", allow)
		u.fail(w, r, http.StatusMethodNotAllowed, "Method not allowed", "This method is not supported here.")
	}
}

// maxFormBytes bounds a form body; the largest form (sign-up) is far below.
const maxFormBytes = 16 << 10

// maxBulkFormBytes bounds a bulk action's confirmed form, which names every
// session it covers (about 25 bytes each): 40,000 sessions, eight times
// the live sessions of the largest portal measured.
const maxBulkFormBytes = 1 << 20

func securityHeaders(h http.Header) {
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "same-origin")
	// Inline CSS and SVG only; no scripts at all. form-action is left out
	// on purpose: the Start form redirects on to the activation link and,
	// in host mode, to a session host, which form-action would block.
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'")
	// A page opened by a dashboard's script (window.open) lands in its own
	// browsing context group, so the opener cannot read it.
	h.Set("Cross-Origin-Opener-Policy", "same-origin")
}

// sameOrigin reports whether a POST may be from one of our own pages: an
// Origin header, when present, must name the request's host or the
// configured public URL; a browser that says the request is cross-site is
// refused either way.
func (u *UI) sameOrigin(r *http.Request) bool {
	if r.Header.Get("Sec-Fetch-Site") == "cross-site" {
		return false
	}
	o := r.Header.Get("Origin")
	if o == "" {
		return true
	}
	if u.cfg.URL != "" {
		if want, err := config.Origin(u.cfg.URL); err == nil && strings.EqualFold(o, want) {
			return true
		}
	}
	got, err := config.Origin(o)
	if err != nil {
		return false // "null" (sandboxed or privacy-redirected) included
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	self := strings.ToLower(scheme + "://" + r.Host)
	// Behind a TLS-terminating proxy the request arrives over plain HTTP
	// while the browser's origin is https; the host must match either way.
	return got == self || strings.TrimPrefix(got, "https://") == strings.TrimPrefix(self, "http://")
}
