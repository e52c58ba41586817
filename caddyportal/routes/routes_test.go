package routes

import (
	"net/http/httptest"
	"strings"
	"testing"
)

// TestMatch names the route of each path the portal answers, with the
// normalisation the REST API's clients rely on.
func TestMatch(t *testing.T) {
	for _, c := range []struct {
		path string
		want Route
		ok   bool
	}{
		{"/oauth2/token/", Route{ID: Token}, true},
		{"/oauth2/token", Route{ID: Token}, true},
		{"//oauth2/revoke-token/", Route{ID: RevokeToken}, true},
		{"/workshops/catalog/environments/", Route{ID: CatalogEnvironments}, true},
		{"/.well-known/caddyportal/jwks.json", Route{ID: JWKS}, true},
		{"/.well-known/other.json", Route{}, false},
		{"///workshops/catalog/workshops", Route{ID: CatalogWorkshops}, true},
		{"/workshops/environment/lab-w01/request/", Route{ID: EnvironmentRequest, Arg: "lab-w01"}, true},
		{"/workshops/environment/lab-w01/status", Route{ID: EnvironmentStatus, Arg: "lab-w01"}, true},
		{"/workshops/session/s1/activate/", Route{ID: SessionActivate, Arg: "s1"}, true},
		{"/workshops/session/s1/%61ctivate/", Route{ID: SessionActivate, Arg: "s1"}, true},
		{"/session/s1/schedule/", Route{ID: SessionSchedule, Arg: "s1"}, true},
		{"/session/s1/extend", Route{ID: SessionExtend, Arg: "s1"}, true},
		{"/workshops/session/s1/terminate/", Route{ID: SessionTerminate, Arg: "s1"}, true},
		{"/workshops/session/s1/authorize/", Route{ID: SessionAuthorize, Arg: "s1"}, true},
		{"/workshops/session/s1/progress", Route{ID: SessionProgress, Arg: "s1"}, true},
		{"/workshops/user/b%40o%2Fb/sessions/", Route{ID: UserSessions, Arg: "b@o/b"}, true},
		{"/workshops/session/s1/config/", Route{ID: SessionConfig, Arg: "s1"}, true},
		{"/workshops/session/s1/config", Route{ID: SessionConfig, Arg: "s1"}, true},
		{"/session/s1/config/", Route{ID: SessionConfig, Arg: "s1"}, true},
		{"/workshops/session/s1/event/", Route{ID: SessionEvent, Arg: "s1"}, true},
		{"/workshops/session/s1/config/environment", Route{ID: SessionDashboard, Arg: "s1", Tail: "/config/environment"}, true},
		{"/", Route{ID: Index}, true},
		{"/accounts/login/", Route{ID: Login}, true},
		{"/accounts/login", Route{ID: Login, Slash: "/accounts/login/"}, true},
		{"/accounts/register/", Route{ID: Signup}, true},
		{"/accounts/signup/", Route{ID: Signup}, true},
		{"/accounts/logout/", Route{ID: Logout}, true},
		{"/accounts/nope", Route{ID: PageNotFound}, true},
		{"/workshops/catalog", Route{ID: Catalog, Slash: "/workshops/catalog/"}, true},
		{"/workshops/catalog/x/", Route{ID: APINotFound}, true},
		{"/admin", Route{ID: AdminOverview, Slash: "/admin/"}, true},
		{"/adminx/", Route{}, false},
		{"/admin/sessions/", Route{ID: AdminSessions}, true},
		{"/admin/users/", Route{ID: AdminUsers}, true},
		{"/admin/sessions/s1/", Route{ID: AdminSession, Arg: "s1"}, true},
		{"/admin/sessions/S1/", Route{ID: PageNotFound}, true},
		{"/admin/sessions/s1/terminate/", Route{ID: AdminTerminate, Arg: "s1"}, true},
		{"/admin/sessions/s1/extend", Route{ID: AdminExtend, Arg: "s1"}, true},
		{"/admin/sessions/s1/extend/x/", Route{ID: PageNotFound}, true},
		{"/admin/sessions/s1/extend/x/y/z/", Route{ID: PageNotFound}, true},
		{"/admin/replicas/Host-2.example_a/release/", Route{ID: AdminRelease, Arg: "Host-2.example_a"}, true},
		{"/admin/replicas/r1/release", Route{ID: AdminRelease, Arg: "r1"}, true},
		{"/admin/replicas/r%2F1/release/", Route{ID: PageNotFound}, true},
		{"/admin/replicas/r1/", Route{ID: PageNotFound}, true},
		{"/admin/replicas/r1/stop/", Route{ID: PageNotFound}, true},
		{"/oauth2/token/a/b/c/d/e", Route{ID: APINotFound}, true},
		{"/oauth2/authorize/", Route{ID: APINotFound}, true},
		{"/oauth2", Route{ID: APINotFound}, true},
		{"/workshops/environment/lab-w01/", Route{ID: EnvironmentStart, Arg: "lab-w01"}, true},
		{"/workshops/environment/lab-w01", Route{ID: EnvironmentStart, Arg: "lab-w01", Slash: "/workshops/environment/lab-w01/"}, true},
		{"/workshops/environment/lab%2Dw01/", Route{ID: EnvironmentStart, Arg: "lab-w01"}, true},
		{"/workshops/access/", Route{ID: Access}, true},
		{"/workshops/access", Route{ID: Access, Slash: "/workshops/access/"}, true},
		{"/workshops/access/x/", Route{ID: APINotFound}, true},
		{"/workshops/user/u/sessions/x", Route{ID: APINotFound}, true},
		{"/%77orkshops/nope", Route{ID: APINotFound}, true},
		{"/workshopsx/", Route{}, false},
		{"/static/workshops/", Route{}, false},
		{"/workshops/tls/ask", Route{ID: TLSAsk}, true},
		{"/workshops/environment/lab-w01/create/", Route{ID: EnvironmentCreate, Arg: "lab-w01"}, true},
		{"/workshops/session/s1", Route{ID: SessionDashboard, Arg: "s1"}, true},
		{"/workshops/session/s1/", Route{ID: SessionDashboard, Arg: "s1", Tail: "/"}, true},
		{"/workshops/session/s1/a%2Fb/c?x", Route{ID: SessionDashboard, Arg: "s1", Tail: "/a%2Fb/c"}, true},
		{"//workshops/session/s1/delete/", Route{ID: SessionDashboard, Arg: "s1", Tail: "/delete/"}, true},
		{"/workshops/session/s1/activate/x", Route{ID: SessionDashboard, Arg: "s1", Tail: "/activate/x"}, true},
		{"/workshops/session/", Route{ID: APINotFound}, true},
		{"/workshops/session//x", Route{ID: APINotFound}, true},
		{"/workshops/", Route{ID: APINotFound}, true},
		{"/favicon.ico", Route{}, false},
	} {
		got, ok := Match(httptest.NewRequest("GET", "http://portal.test"+c.path, nil))
		if ok != c.ok || got != c.want {
			t.Errorf("Match(%q) = %+v, %v; want %+v, %v", c.path, got, ok, c.want, c.ok)
		}
	}
}

// TestFaces: each route goes to one part of the portal.
func TestFaces(t *testing.T) {
	for id, want := range map[ID]Face{None: NoFace, Token: API, UserSessions: API, SessionConfig: API,
		SessionEvent: API, APINotFound: API, Index: Pages,
		PageNotFound: Pages, TLSAsk: Gate, SessionDashboard: Gate} {
		if got := id.Face(); got != want {
			t.Errorf("%d.Face() = %d, want %d", id, got, want)
		}
	}
}

// TestMatchDashboardAllocatesNothing: every proxied dashboard request is
// matched, so matching it must not allocate.
func TestMatchDashboardAllocatesNothing(t *testing.T) {
	r := httptest.NewRequest("GET", "http://portal.test/workshops/session/lab-w01-s001/static/app.js", nil)
	if n := testing.AllocsPerRun(100, func() {
		if m, ok := Match(r); !ok || m.ID != SessionDashboard {
			t.Fatal("not a dashboard route")
		}
		if _, ok := MatchSession(r); !ok {
			t.Fatal("not a session path")
		}
	}); n != 0 {
		t.Errorf("matching a dashboard path allocates %v times", n)
	}
}

// TestPaths: the links the portal builds are the paths it matches.
func TestPaths(t *testing.T) {
	for path, want := range map[string]ID{ActivatePath("s1"): SessionActivate, DeletePath("s1"): SessionDashboard,
		SessionPath("s1"): SessionDashboard, CreatePath("e1"): EnvironmentCreate, CatalogPath: Catalog,
		LoginPath: Login, LogoutPath: Logout, SignupPath: Signup, AdminPath: AdminOverview,
		AdminSessionsPath: AdminSessions, AdminUsersPath: AdminUsers, AdminSessionPath("s1"): AdminSession,
		AdminReleasePath("r1.example.com"): AdminRelease, TLSAskPath: TLSAsk} {
		if m, ok := Match(httptest.NewRequest("GET", path, nil)); !ok || m.ID != want || m.Slash != "" {
			t.Errorf("%s matches %+v, %v; want %d", path, m, ok, want)
		}
	}
}

// TestConfigType: the session config files, and nothing else, are named.
func TestConfigType(t *testing.T) {
	for tail, want := range map[string]string{"/config/environment": "environment", "/config/variables/": "variables",
		"/config/kubeconfig": "kubeconfig", "/config/id_rsa": "id_rsa", "/config/id_rsa.pub": "id_rsa.pub",
		"/config/": "", "/config/other": "", "/config/environment/x": "", "/x/config/environment": "", "": ""} {
		got, ok := ConfigType(tail)
		if got != want || ok != (want != "") {
			t.Errorf("ConfigType(%q) = %q, %v; want %q", tail, got, ok, want)
		}
	}
}

// TestIsCatalogURL: an index is the portal's catalog when the route table
// would serve it the catalog, on the portal's host (any scheme or port).
func TestIsCatalogURL(t *testing.T) {
	portal := func(name string) bool { return strings.EqualFold(name, "portal.test") }
	for index, want := range map[string]bool{
		"/workshops/catalog/":                          true,
		"/workshops/catalog":                           true,
		"http://portal.test/workshops/catalog/":        true,
		"https://PORTAL.test:8443/workshops/catalog?x": true,
		"http://portal.test//workshops/catalog/":       true,
		"http://hub.test/workshops/catalog/":           false,
		"//hub.test/workshops/catalog/":                false,
		"http://portal.test/workshops/":                false,
		"http://portal.test/workshops/catalog/x/":      false,
		"http://portal.test/":                          false,
		"":                                             false,
		"http://portal.test/%zz":                       false,
	} {
		if got := IsCatalogURL(index, portal); got != want {
			t.Errorf("IsCatalogURL(%q) = %v, want %v", index, got, want)
		}
	}
}
