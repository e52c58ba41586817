// Package routes is the portal's route table: every path the portal serves
// on its own host, and the paths it links to, written once. Match
// normalises a request path once (extra leading slashes, an optional
// trailing slash, the documented /session/<s>/<action>/ alias) and names
// the route; the REST API, the pages and the gate serve what it names and
// match no paths themselves. It imports nothing of the portal, so every
// part can use it.
package routes

import (
	"net/http"
	"net/url"
	"strings"
)

// ID names a route. Its Face says which part of the portal serves it.
type ID uint8

// The REST API's routes (Educates training portal API).
const (
	None ID = iota
	Token
	RevokeToken
	CatalogEnvironments
	CatalogWorkshops
	EnvironmentStatus
	EnvironmentRequest
	SessionActivate
	SessionSchedule
	SessionExtend
	SessionTerminate
	SessionAuthorize
	SessionProgress
	// SessionConfig is Educates' session config: the session's URL and
	// config password.
	SessionConfig
	// SessionEvent takes a dashboard's analytics event.
	SessionEvent
	UserSessions
	// JWKS publishes the keys that verify the gate's assertions.
	JWKS
	// APINotFound is any other path under /workshops/ or /oauth2/ that no
	// part of the portal serves (a session's dashboard paths are the
	// gate's): the REST API answers a JSON 404 rather than passing it on
	// to the next handler, which in a bare site answers an empty 200.
	APINotFound

	// The web pages.
	Index
	Login
	Logout
	Signup
	Catalog
	AdminOverview
	AdminSessions
	AdminUsers
	AdminSession
	AdminTerminate
	AdminExtend
	// AdminOpen opens a learner's dashboard for the admin (staff access).
	AdminOpen
	// AdminBulk terminates or extends the sessions a filter matches.
	AdminBulk
	// AdminRelease releases the sessions of a replica gone for good
	// (Arg: the replica).
	AdminRelease
	// EnvironmentStart is Educates' web start route of a workshop
	// environment, /workshops/environment/<env>/: a logged-in learner's
	// session there, else the login page.
	EnvironmentStart
	// Access is the event access code form (Educates' portal password).
	Access
	// PageNotFound is any other path under /admin/ or /accounts/: the
	// pages own those trees and answer a page-styled 404.
	PageNotFound

	// The gate's routes on the portal host.
	TLSAsk
	EnvironmentCreate
	// SessionDashboard is everything under SessionPrefix that is not a
	// REST API route: the path-mode dashboard, its entry redirect and the
	// delete link.
	SessionDashboard
)

// Face is the part of the portal that serves a route.
type Face uint8

// The faces.
const (
	NoFace Face = iota
	API
	Pages
	Gate
)

// Face returns the part of the portal that serves id.
func (id ID) Face() Face {
	switch {
	case id == None:
		return NoFace
	case id <= APINotFound:
		return API
	case id <= PageNotFound:
		return Pages
	}
	return Gate
}

// Paths the portal links to and serves.
const (
	// SessionPrefix starts every path of a session on the portal host:
	// /workshops/session/<name>/...
	SessionPrefix = "/workshops/session/"
	// EnvironmentPrefix starts the paths of a workshop environment.
	EnvironmentPrefix = "/workshops/environment/"
	// CatalogPath is the learners' workshop catalog page.
	CatalogPath = "/workshops/catalog/"
	// LoginPath is the sign-in page.
	LoginPath = "/accounts/login/"
	// LogoutPath is the sign-out page.
	LogoutPath = "/accounts/logout/"
	// SignupPath is the sign-up page.
	SignupPath = "/accounts/signup/"
	// JWKSPath publishes the keys of the gate's assertions.
	JWKSPath = "/.well-known/caddyportal/jwks.json"
	// AuthorizePath is the OAuth authorization endpoint a session's
	// dashboard (an Educates workshop gateway) sends its learner to; the
	// gate serves it on each session's own host.
	AuthorizePath = "/oauth2/authorize/"
	// AccessPath is the event access code form.
	AccessPath = "/workshops/access/"
	// AdminPath is the admin overview page.
	AdminPath = "/admin/"
	// AdminSessionsPath lists sessions for the admin.
	AdminSessionsPath = "/admin/sessions/"
	// AdminUsersPath lists users for the admin.
	AdminUsersPath = "/admin/users/"
	// TLSAskPath answers Caddy's on_demand_tls ask.
	TLSAskPath = "/workshops/tls/ask/"
)

// SessionPath is the entry path of a session's dashboard in path mode,
// /workshops/session/<name>/, and the base of the session's own routes.
func SessionPath(name string) string { return SessionPrefix + name + "/" }

// ActivatePath is the session's activation link, without its query.
func ActivatePath(name string) string { return SessionPath(name) + "activate/" }

// DeletePath is the learner's link that ends the session.
func DeletePath(name string) string { return SessionPath(name) + "delete/" }

// IngressPath is, on a host-mode session host, the hand-off that signs the
// browser in to one of the session's ingress hosts.
func IngressPath(name string) string { return SessionPath(name) + "ingress/" }

// EnvironmentPath is the web start link of a workshop environment
// (Educates' catalog links there).
func EnvironmentPath(env string) string { return EnvironmentPrefix + url.PathEscape(env) + "/" }

// CreatePath is the anonymous start link of a workshop environment.
func CreatePath(env string) string { return EnvironmentPrefix + env + "/create/" }

// AdminSessionPath is the admin page of one session.
func AdminSessionPath(name string) string { return AdminSessionsPath + name + "/" }

// Route is a matched route.
type Route struct {
	ID ID
	// Arg is the path's variable segment, decoded: the environment,
	// session or user it names.
	Arg string
	// Tail is, for SessionDashboard, the escaped path after the session
	// name: "" or starting with "/".
	Tail string
	// Slash is, for pages, the canonical path when the request lacked
	// the trailing slash; GETs are redirected there.
	Slash string
}

// maxSegments is the most path segments any route but SessionDashboard
// has; longer paths are split no further.
const maxSegments = 4

// path is a request path normalised once for matching.
type path struct {
	// escaped is the escaped path with its leading slashes collapsed.
	escaped string
	// seg are the first segments of escaped without its outer slashes,
	// still escaped; n counts them, up to one more than seg holds.
	seg [maxSegments + 1]string
	n   int
	// slash says escaped ends in "/".
	slash bool
}

func parse(u *url.URL) path {
	p := path{escaped: normalise(u)}
	p.slash = strings.HasSuffix(p.escaped, "/")
	rest := strings.Trim(p.escaped, "/")
	for rest != "" {
		s, tail, more := strings.Cut(rest, "/")
		if p.n == len(p.seg) {
			// Longer than any route but a dashboard's: n only has to
			// say so, and a long path is not split further.
			p.n++
			break
		}
		p.seg[p.n] = s
		p.n++
		if !more {
			break
		}
		rest = tail
	}
	return p
}

// normalise is u's escaped path with its leading slashes collapsed.
func normalise(u *url.URL) string {
	escaped := u.EscapedPath()
	if escaped == "" {
		return "/"
	}
	if strings.HasPrefix(escaped, "//") {
		escaped = "/" + strings.TrimLeft(escaped, "/")
	}
	return escaped
}

// is reports whether segment i is lit once decoded.
func (p *path) is(i int, lit string) bool {
	s := p.seg[i]
	if s == lit {
		return true
	}
	if strings.IndexByte(s, '%') < 0 {
		return false
	}
	d, err := url.PathUnescape(s)
	return err == nil && d == lit
}

// arg returns segment i decoded; ok is false for an invalid escape.
func (p *path) arg(i int) (string, bool) {
	s := p.seg[i]
	if strings.IndexByte(s, '%') < 0 {
		return s, true
	}
	d, err := url.PathUnescape(s)
	return d, err == nil
}

// Match names the route of r on the portal host; ok is false for paths
// that are not the portal's (the next handler's, or a dashboard's in path
// mode under SessionPrefix only).
func Match(r *http.Request) (Route, bool) {
	p := parse(r.URL)
	if rt, ok := p.api(); ok {
		return rt, true
	}
	if rt, ok := p.pages(); ok {
		return rt, true
	}
	if rt, ok := p.gate(); ok {
		return rt, true
	}
	if p.n > 0 && (p.is(0, "workshops") || p.is(0, "oauth2")) {
		return Route{ID: APINotFound}, true
	}
	return Route{}, false
}

// IsCatalogURL reports whether index, an index URL, is the portal's own
// catalog page: relative or on a host portalHost accepts (host names only:
// behind a TLS-terminating proxy the scheme and port a browser sees are not
// Caddy's), at a path the route table names Catalog. The gate then tells
// the catalog which session ended; the catalog does not send learners on
// to an index that is itself.
func IsCatalogURL(index string, portalHost func(hostname string) bool) bool {
	u, err := url.Parse(index)
	if err != nil || u.Host != "" && !portalHost(u.Hostname()) {
		return false
	}
	p := parse(u)
	rt, ok := p.pages()
	return ok && rt.ID == Catalog
}

// ConfigTypes are the session config files Educates' workshop gateway
// serves at <session URL>/config/<type>?token=<config password>.
var ConfigTypes = []string{"environment", "variables", "kubeconfig", "id_rsa", "id_rsa.pub"}

// ConfigType returns the config type a dashboard path asks for: tail is a
// SessionDashboard Tail (path mode) or a session host's escaped path (host
// mode), /config/<type> with an optional trailing slash.
func ConfigType(tail string) (string, bool) {
	rest, ok := strings.CutPrefix(tail, "/config/")
	if !ok {
		return "", false
	}
	rest = strings.TrimSuffix(rest, "/")
	for _, t := range ConfigTypes {
		if rest == t {
			return t, true
		}
	}
	return "", false
}

// MatchSession matches r as a SessionDashboard route only, for the
// gate's handler of a request Match named so.
func MatchSession(r *http.Request) (Route, bool) {
	p := path{escaped: normalise(r.URL)}
	return p.session()
}

// api matches the REST API's routes: any slashes around the path, decoded
// segments, and the documented /session/<s>/<action>/ form as an alias
// (reference §2.1 DOC≠CODE).
func (p *path) api() (Route, bool) {
	n, off := p.n, 0
	if n == 3 && p.is(0, "session") {
		n, off = 4, -1 // seg[i+off] is the i-th segment of /workshops/session/...
	}
	at := func(i int, lit string) bool { return p.is(i+off, lit) }
	arg := func(i int) (string, bool) { return p.arg(i + off) }
	switch {
	case n == 2 && p.is(0, "oauth2") && p.is(1, "token"):
		return Route{ID: Token}, true
	case n == 2 && p.is(0, "oauth2") && p.is(1, "revoke-token"):
		return Route{ID: RevokeToken}, true
	case n == 3 && p.is(0, ".well-known") && p.is(1, "caddyportal") && p.is(2, "jwks.json"):
		return Route{ID: JWKS}, true
	case n == 3 && p.is(0, "workshops") && p.is(1, "catalog") && p.is(2, "environments"):
		return Route{ID: CatalogEnvironments}, true
	case n == 3 && p.is(0, "workshops") && p.is(1, "catalog") && p.is(2, "workshops"):
		return Route{ID: CatalogWorkshops}, true
	case n != 4 || off == 0 && !p.is(0, "workshops"):
		return Route{}, false
	}
	var id ID
	switch {
	case at(1, "environment") && at(3, "status"):
		id = EnvironmentStatus
	case at(1, "environment") && at(3, "request"):
		id = EnvironmentRequest
	case at(1, "session") && at(3, "activate"):
		id = SessionActivate
	case at(1, "session") && at(3, "schedule"):
		id = SessionSchedule
	case at(1, "session") && at(3, "extend"):
		id = SessionExtend
	case at(1, "session") && at(3, "terminate"):
		id = SessionTerminate
	case at(1, "session") && at(3, "authorize"):
		id = SessionAuthorize
	case at(1, "session") && at(3, "progress"):
		id = SessionProgress
	case at(1, "session") && at(3, "config"):
		id = SessionConfig
	case at(1, "session") && at(3, "event"):
		id = SessionEvent
	case at(1, "user") && at(3, "sessions"):
		id = UserSessions
	default:
		return Route{}, false
	}
	a, ok := arg(2)
	if !ok {
		return Route{}, false
	}
	return Route{ID: id, Arg: a}, true
}

// pages matches the web pages: `/`, the /accounts/ and /admin/ trees and
// the catalog, with or without the trailing slash (GETs are redirected to
// it).
func (p *path) pages() (Route, bool) {
	if p.n == 0 {
		return Route{ID: Index}, true
	}
	var rt Route
	switch {
	case p.is(0, "accounts"):
		rt.ID = PageNotFound
		if p.n == 2 {
			switch {
			case p.is(1, "login"):
				rt.ID = Login
			case p.is(1, "logout"):
				rt.ID = Logout
			case p.is(1, "signup"), p.is(1, "register"):
				rt.ID = Signup
			}
		}
	case p.is(0, "admin"):
		rt.ID = p.admin()
		if rt.ID == AdminSession || rt.ID == AdminTerminate || rt.ID == AdminExtend || rt.ID == AdminOpen || rt.ID == AdminRelease {
			rt.Arg = p.seg[2]
		}
	case p.n == 2 && p.is(0, "workshops") && p.is(1, "catalog"):
		rt.ID = Catalog
	case p.n == 2 && p.is(0, "workshops") && p.is(1, "access"):
		rt.ID = Access
	case p.n == 3 && p.is(0, "workshops") && p.is(1, "environment"):
		env, ok := p.arg(2)
		if !ok {
			return Route{}, false
		}
		rt.ID, rt.Arg = EnvironmentStart, env
	default:
		return Route{}, false
	}
	// Pages without a trailing slash redirect to it; a 404 and the
	// form targets have no page to redirect to.
	if !p.slash && rt.ID != PageNotFound && rt.ID != AdminTerminate && rt.ID != AdminExtend && rt.ID != AdminOpen && rt.ID != AdminBulk && rt.ID != AdminRelease {
		rt.Slash = p.escaped + "/"
	}
	return rt, true
}

// admin names a route of the /admin/ tree.
func (p *path) admin() ID {
	switch {
	case p.n == 1:
		return AdminOverview
	case p.n == 2 && p.is(1, "sessions"):
		return AdminSessions
	case p.n == 2 && p.is(1, "users"):
		return AdminUsers
	case p.n == 2 && p.is(1, "bulk"):
		return AdminBulk
	case p.n == 4 && p.is(1, "replicas") && p.is(3, "release") && validReplica(p.seg[2]):
		return AdminRelease
	case p.n < 3 || p.n > 4 || !p.is(1, "sessions") || !validName(p.seg[2]):
		return PageNotFound
	case p.n == 3:
		return AdminSession
	case p.is(3, "terminate"):
		return AdminTerminate
	case p.is(3, "extend"):
		return AdminExtend
	case p.is(3, "open"):
		return AdminOpen
	}
	return PageNotFound
}

// validName accepts the characters of session names, so a name never needs
// escaping in the paths the pages build.
func validName(s string) bool {
	if s == "" || len(s) > 128 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

// validReplica accepts the characters of replica names (host names), so a
// name never needs escaping in the paths the pages build.
func validReplica(s string) bool {
	if s == "" || len(s) > 253 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '.' || c == '_') {
			return false
		}
	}
	return true
}

// AdminReleasePath is the form target that releases a replica's sessions.
func AdminReleasePath(replica string) string { return AdminPath + "replicas/" + replica + "/release/" }

// gate matches the gate's routes on the portal host.
func (p *path) gate() (Route, bool) {
	switch {
	case p.n == 3 && p.is(0, "workshops") && p.is(1, "tls") && p.is(2, "ask"):
		return Route{ID: TLSAsk}, true
	case p.n == 4 && p.is(0, "workshops") && p.is(1, "environment") && p.is(3, "create"):
		env, ok := p.arg(2)
		return Route{ID: EnvironmentCreate, Arg: env}, ok
	}
	return p.session()
}

// session matches the paths under SessionPrefix.
func (p *path) session() (Route, bool) {
	rest, ok := strings.CutPrefix(p.escaped, SessionPrefix)
	if !ok {
		return Route{}, false
	}
	name, tail, slash := strings.Cut(rest, "/")
	if name == "" {
		return Route{}, false
	}
	if slash {
		tail = rest[len(name):]
	}
	return Route{ID: SessionDashboard, Arg: name, Tail: tail}, true
}
