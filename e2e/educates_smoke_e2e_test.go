package e2e

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/caddyportal/caddyportal/internal/e2etest"
	"github.com/caddyportal/caddyportal/internal/e2etest/echo"
)

// smokeBody translates the settings of Educates' REST smoke test
// (training-portal/testing/trainingportal.yaml and workshop.yaml) to a
// portal block: the portal and environment names the .http file uses
// (educates-cli-w01), its robot and client credentials, anonymous
// registration, one workshop of capacity 1 with no reserve, expiring after
// 60m and orphaned after 5m. The workshop's dashboard is the harness's echo
// server. Educates accepts any index_url; `redirects any` is that
// behaviour made explicit (README: Migrating from Educates).
func smokeBody(upstream string) string {
	return `
		name educates-cli
		storage badger {dir}
		registration anonymous
		redirects any
		robot robot@educates my-pasword
		client my-client-id my-client-secret
		workshop portal-testing {
			title "Portal Testing"
			description "A workshop configuration for testing the portal"
			capacity 1
			reserved 0
			expires 60m
			orphaned 5m
			upstream ` + upstream + `
			health_check off
		}
`
}

// TestEducatesRESTSmoke runs the Educates maintainers' smoke sequence,
// training-portal/testing/test-rest-api.http, request by request in its
// order, with the same methods, paths, headers and bodies. The file has no
// asserts of its own, so each step checks Educates' documented status and
// JSON keys, and what the following steps take from its response.
func TestEducatesRESTSmoke(t *testing.T) {
	up := echo.Start(t, "portal-testing")
	p := startPortal(t, t.TempDir(), smokeBody(up.Addr))
	const env = "educates-cli-w01"
	const indexURL = "https://www.example.com/"

	// hasKeys fails the step unless m has every key.
	hasKeys := func(step string, m map[string]any, keys ...string) {
		t.Helper()
		for _, k := range keys {
			if _, ok := m[k]; !ok {
				t.Fatalf("%s: no %q key in %v", step, k, m)
			}
		}
	}
	okJSON := func(step string, r resp) map[string]any {
		t.Helper()
		if r.Status != http.StatusOK {
			t.Fatalf("%s: %d %s", step, r.Status, r.Body)
		}
		return r.JSON(t)
	}
	environments := func(step string, m map[string]any) []any {
		t.Helper()
		hasKeys(step, m, "portal", "environments")
		envs := m["environments"].([]any)
		if len(envs) != 1 || envs[0].(map[string]any)["name"] != env {
			t.Fatalf("%s: want the one environment %s: %v", step, env, m)
		}
		return envs
	}

	// catalog1: no token. Educates' protected_resource answers 403 (not
	// 401); so does caddyportal, with a JSON error body.
	if r := p.Do("GET", "/workshops/catalog/environments", "", nil, nil); r.Status != http.StatusForbidden {
		t.Fatalf("catalog1: %d %s", r.Status, r.Body)
	} else {
		hasKeys("catalog1", r.JSON(t), "error")
	}

	// login: the password grant. The .http file writes the client as
	// `Basic id:secret`, which the REST Client extension encodes as
	// Base64, so this sends it as HTTP Basic does; the form is its three
	// lines joined.
	req, err := http.NewRequest("POST", p.Base+"/oauth2/token/",
		strings.NewReader("grant_type=password&username=robot@educates&password=my-pasword"))
	if err != nil {
		t.Fatal(err)
	}
	req.SetBasicAuth("my-client-id", "my-client-secret")
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	res, err := e2etest.NoRedirect.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var login map[string]any
	if err := json.NewDecoder(res.Body).Decode(&login); err != nil || res.StatusCode != http.StatusOK {
		t.Fatalf("login: %d %v %v", res.StatusCode, login, err)
	}
	res.Body.Close()
	hasKeys("login", login, "access_token", "expires_in", "token_type", "scope", "refresh_token")
	tok, _ := login["access_token"].(string)
	if tok == "" || login["token_type"] != "Bearer" {
		t.Fatalf("login: %v", login)
	}

	// catalog2: the environments, without sessions.
	envs := environments("catalog2", okJSON("catalog2", p.Do("GET", "/workshops/catalog/environments", tok, nil, nil)))
	e := envs[0].(map[string]any)
	hasKeys("catalog2", e, "name", "state", "workshop", "duration", "capacity", "reserved", "allocated", "available")
	if e["state"] != "RUNNING" || e["capacity"].(float64) != 1 || e["reserved"].(float64) != 0 || e["duration"].(float64) != 3600 {
		t.Fatalf("catalog2: %v", e)
	}
	if w := e["workshop"].(map[string]any); w["name"] != "portal-testing" || w["title"] != "Portal Testing" {
		t.Fatalf("catalog2 workshop: %v", w)
	}
	if _, has := e["sessions"]; has {
		t.Fatalf("catalog2: sessions listed without sessions=true: %v", e)
	}

	// catalog3: sessions=true adds each environment's (still empty) list.
	e = environments("catalog3", okJSON("catalog3", p.Do("GET", "/workshops/catalog/environments?sessions=true", tok, nil, nil)))[0].(map[string]any)
	if s, ok := e["sessions"].([]any); !ok || len(s) != 0 {
		t.Fatalf("catalog3: want an empty sessions list: %v", e)
	}

	// workshops1: the workshops with their environment.
	ws := okJSON("workshops1", p.Do("GET", "/workshops/catalog/workshops", tok, nil, nil))
	hasKeys("workshops1", ws, "portal", "workshops")
	if list := ws["workshops"].([]any); len(list) != 1 || list[0].(map[string]any)["name"] != "portal-testing" {
		t.Fatalf("workshops1: %v", ws)
	}

	// status1: one environment.
	st := okJSON("status1", p.Do("GET", "/workshops/environment/"+env+"/status/", tok, nil, nil))
	hasKeys("status1", st, "name", "state", "workshop", "duration", "capacity", "reserved", "allocated", "available")
	if st["name"] != env || st["allocated"].(float64) != 0 {
		t.Fatalf("status1: %v", st)
	}

	// status2: with its sessions.
	st = okJSON("status2", p.Do("GET", "/workshops/environment/"+env+"/status/?sessions=true", tok, nil, nil))
	if s, ok := st["sessions"].([]any); !ok || len(s) != 0 {
		t.Fatalf("status2: %v", st)
	}

	// request1: a session for a new user, with user details, a timeout and
	// a parameter in a JSON body. The .http file's query spans lines; the
	// REST Client joins them and encodes the space in "Old Man".
	q := "index_url=" + url.QueryEscape(indexURL) + "&email=grumpy@me.com&first_name=Grumpy&last_name=Old%20Man&timeout=300"
	body := `{
    "parameters": [
        {
            "name": "WORKSHOP_USERNAME",
            "value": "VALUE1"
        }
    ]
}`
	r1 := okJSON("request1", p.Do("POST", "/workshops/environment/"+env+"/request/?"+q, tok, strings.NewReader(body),
		map[string]string{"Content-Type": "application/json"}))
	hasKeys("request1", r1, "name", "session", "user", "url", "namespace", "workshop", "environment")
	name, user, link := r1["name"].(string), r1["user"].(string), r1["url"].(string)
	if name != env+"-s001" || user == "" || r1["workshop"] != "portal-testing" || r1["environment"] != env ||
		!strings.HasPrefix(link, "/workshops/session/"+name+"/activate/?token=") ||
		!strings.Contains(link, "index_url="+url.QueryEscape(indexURL)) {
		t.Fatalf("request1: %v", r1)
	}

	// request2: GET reacquires the same session for request1's user, and
	// the link is the same one (as in Educates).
	r2 := okJSON("request2", p.Do("GET", "/workshops/environment/"+env+"/request/?index_url="+url.QueryEscape(indexURL)+
		"&user="+url.QueryEscape(user), tok, nil, nil))
	if r2["name"] != name || r2["user"] != user || r2["url"] != link {
		t.Fatalf("request2: %v, want %s with the link %s", r2, name, link)
	}

	// session: the activation link, with no cookies (the file sets
	// rememberCookiesForSubsequentRequests false). It answers 302 to the
	// dashboard with the session's cookie; followed with that cookie, the
	// dashboard answers through the gate. (Educates sends it to its own
	// session page, which frames the dashboard; caddyportal's dashboard is
	// behind the gate at the session's path.)
	act := p.Do("GET", r2["url"].(string), "", nil, nil)
	wantRedirect(t, act, sessionPath(name))
	var ck *http.Cookie
	for _, c := range (&http.Response{Header: act.Header}).Cookies() {
		if c.Name == "portal-educates-cli-"+name {
			ck = c
		}
	}
	if ck == nil {
		t.Fatalf("session: no dashboard cookie in %v", act.Header)
	}
	if d := p.Do("GET", sessionPath(name), "", nil, cookieHdr(ck)); d.Status != http.StatusOK || !echo.IsPage(d.Body) {
		t.Fatalf("session: the dashboard answered %d %s", d.Status, d.Body)
	}

	// config: the session's URL and config password.
	cfg := okJSON("config", p.Do("GET", "/workshops/session/"+name+"/config/", tok, nil, nil))
	hasKeys("config", cfg, "url", "password")
	cfgURL, pw := cfg["url"].(string), cfg["password"].(string)
	if cfgURL != p.Base+"/workshops/session/"+name || pw == "" {
		t.Fatalf("config: %v", cfg)
	}

	// getConfig asks the session's URL for a config file with the
	// password, and the robot's bearer token as the .http file sends it
	// (the gate needs only the password).
	getConfig := func(step, typ string) map[string]any {
		t.Helper()
		r, err := e2etest.DoWith(e2etest.NoRedirect, "GET", cfgURL+"/config/"+typ+"?token="+url.QueryEscape(pw), tok, nil, nil)
		if err != nil {
			t.Fatalf("%s: %v", step, err)
		}
		if r.Status != http.StatusOK || !strings.HasPrefix(r.Header.Get("Content-Type"), "application/json") {
			t.Fatalf("%s: %d %q %s", step, r.Status, r.Header.Get("Content-Type"), r.Body)
		}
		return r.JSON(t)
	}

	// environment: the variables the portal gives the session's
	// environment, request1's parameter among them. (Educates' gateway
	// returns the image's whole process environment; caddyportal returns
	// what the portal gives it, see Migrating from Educates.)
	ev := getConfig("environment", "environment")
	if ev["SESSION_NAME"] != name || ev["ENVIRONMENT_NAME"] != env || ev["WORKSHOP_NAME"] != "portal-testing" ||
		ev["TRAINING_PORTAL"] != "educates-cli" || ev["WORKSHOP_USERNAME"] != "VALUE1" {
		t.Fatalf("environment: %v", ev)
	}

	// variables: Educates' workshop-variables.json keys.
	vars := getConfig("variables", "variables")
	hasKeys("variables", vars, "session_name", "session_url", "environment_name", "workshop_name", "training_portal",
		"workshop_title", "workshop_description", "config_password", "ssh_private_key", "kubernetes_token")
	if vars["session_name"] != name || vars["workshop_title"] != "Portal Testing" || vars["environment_name"] != env {
		t.Fatalf("variables: %v", vars)
	}

	// sessions: request1's user has the one session.
	us := okJSON("sessions", p.Do("GET", "/workshops/user/"+url.PathEscape(user)+"/sessions/", tok, nil, nil))
	hasKeys("sessions", us, "user", "sessions")
	list := us["sessions"].([]any)
	if us["user"] != user || len(list) != 1 {
		t.Fatalf("sessions: %v", us)
	}
	hasKeys("sessions", list[0].(map[string]any), "name", "workshop", "environment", "namespace", "started", "expires", "countdown", "extendable")
	if list[0].(map[string]any)["name"] != name {
		t.Fatalf("sessions: %v", us)
	}

	// catalogSessions is the sessions listed for env by a catalog query.
	catalogSessions := func(step, query string) []any {
		t.Helper()
		e := environments(step, okJSON(step, p.Do("GET", "/workshops/catalog/environments?"+query, tok, nil, nil)))[0].(map[string]any)
		s, ok := e["sessions"].([]any)
		if !ok {
			t.Fatalf("%s: no sessions list: %v", step, e)
		}
		return s
	}
	wantSession := func(step string, s []any) {
		t.Helper()
		if len(s) != 1 || s[0].(map[string]any)["name"] != name || s[0].(map[string]any)["user"] != user {
			t.Fatalf("%s: want %s of %s: %v", step, name, user, s)
		}
		hasKeys(step, s[0].(map[string]any), "name", "state", "namespace", "user", "started", "expires", "countdown", "extendable")
	}

	// catalog4: the environment now lists the session.
	s := catalogSessions("catalog4", "sessions=true")
	wantSession("catalog4", s)
	if s[0].(map[string]any)["state"] != "RUNNING" {
		t.Fatalf("catalog4: the activated session is not RUNNING: %v", s)
	}

	// catalog5: state=running keeps it.
	wantSession("catalog5", catalogSessions("catalog5", "sessions=true&state=running"))

	// catalog6: state is repeatable; running or stopping keeps it.
	wantSession("catalog6", catalogSessions("catalog6", "sessions=true&state=running&state=stopping"))
}
