package api_test

import (
	"net/url"
	"strings"
	"testing"
)

// TestRouteForms checks every route with and without the trailing slash and
// with a doubled leading slash.
func TestRouteForms(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	res := h.request("demo-w01", url.Values{"user": {"alice"}})
	s := res.Name
	routes := []struct {
		method, path string
		status       int
	}{
		{"GET", "/workshops/catalog/environments", 200},
		{"GET", "/workshops/catalog/workshops", 200},
		{"GET", "/workshops/environment/demo-w01/status", 200},
		{"GET", "/workshops/environment/demo-w01/request?user=alice", 200},
		{"POST", "/workshops/environment/demo-w01/request?user=alice", 200},
		{"GET", "/workshops/session/" + s + "/activate", 400}, // no token
		{"GET", "/workshops/session/" + s + "/schedule", 200},
		{"GET", "/workshops/session/" + s + "/extend", 200},
		{"GET", "/workshops/session/" + s + "/authorize", 200},
		{"GET", "/workshops/user/alice/sessions", 200},
		{"POST", "/oauth2/token", 400},        // unsupported grant
		{"POST", "/oauth2/revoke-token", 200}, // any token
		// The documented /session/<s>/... alias.
		{"GET", "/session/" + s + "/schedule", 200},
	}
	for _, rt := range routes {
		path, q, _ := strings.Cut(rt.path, "?")
		if q != "" {
			q = "?" + q
		}
		for _, form := range []string{path + q, path + "/" + q, "/" + path + "/" + q, "/" + path + q, "///" + path[1:] + "//" + q} {
			r := h.do(rt.method, form, h.robot, nil)
			if r.status != rt.status {
				t.Errorf("%s %s: %d, want %d: %s", rt.method, form, r.status, rt.status, r.body)
			}
		}
	}
	// Terminate last, in every form (repeat terminate is fine).
	for _, form := range []string{"/workshops/session/" + s + "/terminate", "/workshops/session/" + s + "/terminate/", "//workshops/session/" + s + "/terminate/"} {
		if r := h.get(form, h.robot); r.status != 200 {
			t.Errorf("GET %s: %d %s", form, r.status, r.body)
		}
	}
	// Not API routes.
	for _, p := range []string{"/", "/workshops/", "/workshops/catalog/", "/workshops/catalog/other/", "/oauth2/authorize/",
		"/workshops/environment/demo-w01/", "/workshops/environment/demo-w01/request/extra/", "/workshops/session/" + s + "/",
		"/workshops/session/" + s + "/unknown/", "/session/" + s + "/"} {
		if r := h.get(p, h.robot); r.status != 404 {
			t.Errorf("GET %s: %d, want 404 (not an API route)", p, r.status)
		}
	}
}

// TestProtectedRoutesNeedToken checks the 403 JSON for missing, malformed,
// unknown and expired tokens, and that it comes before the 405.
func TestProtectedRoutesNeedToken(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	s := h.request("demo-w01", url.Values{"user": {"alice"}}).Name
	protected := []string{
		"/workshops/catalog/environments/",
		"/workshops/catalog/workshops/",
		"/workshops/environment/demo-w01/status/",
		"/workshops/environment/demo-w01/request/",
		"/workshops/session/" + s + "/schedule/",
		"/workshops/session/" + s + "/extend/",
		"/workshops/session/" + s + "/terminate/",
		"/workshops/session/" + s + "/authorize/",
		"/workshops/user/alice/sessions/",
	}
	revoked := h.passwordToken(robotUser, robotPass)
	h.form("/oauth2/revoke-token/", url.Values{"token": {revoked}}, false, "", "")
	badAuth := []struct {
		name   string
		header []string
	}{
		{"none", nil},
		{"empty bearer", []string{"Authorization", "Bearer "}},
		{"unknown", []string{"Authorization", "Bearer nope"}},
		{"basic", []string{"Authorization", "Basic cm9ib3Q6cGFzcw=="}},
		{"token without scheme", []string{"Authorization", h.robot}},
		{"revoked", []string{"Authorization", "Bearer " + revoked}},
	}
	for _, p := range protected {
		for _, ba := range badAuth {
			for _, method := range []string{"GET", "DELETE"} {
				r := h.do(method, p, "", nil, ba.header...)
				if r.status != 403 {
					t.Errorf("%s %s (%s): %d, want 403", method, p, ba.name, r.status)
					continue
				}
				if r.errorText(t) == "" {
					t.Errorf("%s %s (%s): no error text", method, p, ba.name)
				}
				if r.header.Get("WWW-Authenticate") != "" {
					t.Errorf("%s %s: WWW-Authenticate set", method, p)
				}
			}
		}
		// With a valid token the wrong method is a 405 with Allow.
		r := h.do("DELETE", p, h.robot, nil)
		if r.status != 405 || r.header.Get("Allow") == "" {
			t.Errorf("DELETE %s with token: %d Allow %q", p, r.status, r.header.Get("Allow"))
		}
		r.errorText(t)
	}
	// The bearer scheme is case-insensitive.
	if r := h.do("GET", protected[0], "", nil, "Authorization", "bearer "+h.robot); r.status != 200 {
		t.Errorf("lowercase bearer: %d", r.status)
	}
	// Expired: tokens live exactly 10 hours.
	h.clk.Advance(10 * 60 * 60 * 1e9)
	if r := h.get(protected[0], h.robot); r.status != 403 {
		t.Errorf("expired token: %d", r.status)
	}
	// Unprotected activation answers 405 for a wrong method.
	if r := h.do("POST", "/workshops/session/"+s+"/activate/?token=x", "", nil); r.status != 405 {
		t.Errorf("POST activate: %d", r.status)
	}
}

func TestCORS(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	r := h.do("OPTIONS", "/workshops/catalog/environments/", "", nil, "Origin", "https://x.example", "Access-Control-Request-Method", "GET")
	if r.status != 200 || r.header.Get("Access-Control-Allow-Origin") != "*" || !strings.Contains(r.header.Get("Access-Control-Allow-Headers"), "Authorization") {
		t.Errorf("preflight: %d %v", r.status, r.header)
	}
	if r := h.get("/workshops/catalog/environments/", h.robot); r.header.Get("Access-Control-Allow-Origin") != "*" {
		t.Errorf("no CORS header on a response")
	}
}

// matrixCase is one row of the error matrix; err "" skips the text check.
type matrixCase struct {
	name, method, path, token, body string
	status                          int
	err                             string
}

// TestErrorMatrix walks reference §2.12 with this project's codes: the
// original's 500s for bad input are 400s and every body is JSON.
func TestErrorMatrix(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	user := h.userToken("alice")
	bob := h.userToken("bob")
	staff := h.passwordToken(adminUser, adminPass)
	alice := h.request("demo-w01", url.Values{"user": {"alice"}}) // takes the reserve s001, s002 tops up
	reserve := "demo-w01-s002"
	ended := h.request("demo-w02", url.Values{"user": {"carol"}, "index_url": {lmsOrigin + "/course?x=1"}})
	if r := h.get("/workshops/session/"+ended.Name+"/terminate/", h.robot); r.status != 200 {
		t.Fatalf("terminate: %d", r.status)
	}
	h.clk.Advance(stopGrace)
	req := "/workshops/environment/demo-w01/request/"

	tests := []matrixCase{
		{"request not robot", "GET", req, user, "", 403, "Session requests not permitted"},
		{"user sessions not robot", "GET", "/workshops/user/alice/sessions/", user, "", 403, "Session requests not permitted"},
		{"status not robot", "GET", "/workshops/environment/demo-w01/status/", user, "", 403, "Status requests not permitted"},
		{"request unknown env", "GET", "/workshops/environment/demo-w99/request/", h.robot, "", 403, "Environment does not exist"},
		{"status unknown env", "GET", "/workshops/environment/demo-w99/status/", h.robot, "", 403, "Environment does not exist"},
		{"status by workshop name", "GET", "/workshops/environment/lab-k8s/status/", h.robot, "", 403, "Environment does not exist"},
		{"bad email", "GET", req + "?email=not-an-email", h.robot, "", 400, "Invalid email address provided"},
		{"bad JSON", "POST", req, h.robot, "{", 400, "Invalid JSON request payload"},
		{"form body", "POST", req, h.robot, "a=b", 400, "Invalid JSON request payload"},
		{"trailing garbage", "POST", req, h.robot, `{"parameters":[]}}`, 400, "Invalid JSON request payload"},
		{"two documents", "POST", req, h.robot, `{} {}`, 400, "Invalid JSON request payload"},
		{"shape: array", "POST", req, h.robot, `[]`, 400, "Malformed JSON request payload"},
		{"shape: parameters object", "POST", req, h.robot, `{"parameters":{}}`, 400, "Malformed JSON request payload"},
		{"shape: item without name", "POST", req, h.robot, `{"parameters":[{"value":"x"}]}`, 400, "Malformed JSON request payload"},
		{"shape: non-string name", "POST", req, h.robot, `{"parameters":[{"name":1}]}`, 400, "Malformed JSON request payload"},
		{"shape: non-string value", "POST", req, h.robot, `{"parameters":[{"name":"a","value":1}]}`, 400, "Malformed JSON request payload"},
		{"non-object item", "POST", req, h.robot, `{"parameters":[1]}`, 400, "Malformed JSON request payload"},
		{"staff user", "GET", req + "?user=" + adminUser, h.robot, "", 400, "Session requests not permitted for user"},
		{"robot user", "GET", req + "?user=" + url.QueryEscape(robotUser), h.robot, "", 400, "Session requests not permitted for user"},
		{"timeout not integer", "GET", req + "?timeout=abc", h.robot, "", 400, ""},
		{"timeout fraction", "GET", req + "?timeout=1.5", h.robot, "", 400, ""},
		{"timeout negative", "GET", req + "?timeout=-1", h.robot, "", 400, ""},
		{"index_url not allowed", "GET", req + "?index_url=https://evil.com/", h.robot, "", 400, ""},
		{"index_url protocol-relative", "GET", req + "?index_url=//evil.com/", h.robot, "", 400, ""},
		{"redirect_url not allowed", "GET", req + "?redirect_url=javascript:alert(1)", h.robot, "", 400, ""},
		{"malformed query", "GET", req + "?user=%zz", h.robot, "", 400, ""},
		{"session mismatch", "GET", req + "?user=alice&session=demo-w01-s009", h.robot, "", 503, "No session available"},
		{"session for new user", "GET", req + "?user=dave&session=demo-w01-s001", h.robot, "", 503, "No session available"},
		{"activate no token", "GET", "/workshops/session/" + alice.Name + "/activate/", "", "", 400, "No access token supplied"},
		{"activate unknown session", "GET", "/workshops/session/demo-w01-s999/activate/?token=x", "", "", 400, "Invalid session name supplied"},
		{"activate wrong token", "GET", "/workshops/session/" + alice.Name + "/activate/?token=x", "", "", 400, "Invalid access token for session"},
		{"activate reserve", "GET", "/workshops/session/" + reserve + "/activate/?token=x", "", "", 400, "Invalid access token for session"},
		{"activate ended", "GET", "/workshops/session/" + ended.Name + "/activate/?token=" + ended.token, "", "", 302, ""},
	}
	for _, action := range []string{"schedule", "extend", "terminate", "authorize"} {
		p := "/workshops/session/%s/" + action + "/"
		tests = append(tests,
			matrixCase{action + " unknown session", "GET", strings.Replace(p, "%s", "demo-w01-s999", 1), h.robot, "", 404, "Session not found"},
			matrixCase{action + " ended session", "GET", strings.Replace(p, "%s", ended.Name, 1), h.robot, "", 404, "Session not found"},
			matrixCase{action + " not owner", "GET", strings.Replace(p, "%s", alice.Name, 1), bob, "", 403, "Access to session not permitted"},
			matrixCase{action + " reserve by user", "GET", strings.Replace(p, "%s", reserve, 1), user, "", 403, "Access to session not permitted"},
		)
		want, text := 400, "Session is not currently in use"
		if action == "schedule" {
			want, text = 200, ""
		}
		tests = append(tests, matrixCase{action + " reserve by robot", "GET", strings.Replace(p, "%s", reserve, 1), h.robot, "", want, text})
		// Staff may act on a session, as may the owner (terminate last).
		if action != "terminate" {
			tests = append(tests, matrixCase{action + " by staff", "GET", strings.Replace(p, "%s", alice.Name, 1), staff, "", 200, ""},
				matrixCase{action + " by owner", "GET", strings.Replace(p, "%s", alice.Name, 1), user, "", 200, ""})
		}
	}
	tests = append(tests, matrixCase{"user sessions unknown user", "GET", "/workshops/user/nobody/sessions/", h.robot, "", 200, ""})

	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var body *strings.Reader
			if tt.body != "" {
				body = strings.NewReader(tt.body)
			}
			var r response
			if body != nil {
				r = h.do(tt.method, tt.path, tt.token, body, "Content-Type", "application/json")
			} else {
				r = h.do(tt.method, tt.path, tt.token, nil)
			}
			if r.status != tt.status {
				t.Fatalf("status %d, want %d: %s", r.status, tt.status, r.body)
			}
			if tt.status == 302 {
				return
			}
			if tt.status >= 400 {
				if got := r.errorText(t); tt.err != "" && got != tt.err {
					t.Errorf("error %q, want %q", got, tt.err)
				}
				return
			}
			r.json(t)
		})
	}

	// The ended-session redirect keeps the index URL's query.
	r := h.get("/workshops/session/"+ended.Name+"/activate/?token="+ended.token, "")
	loc, _ := url.Parse(r.header.Get("Location"))
	if r.status != 302 || loc == nil || loc.Host != "lms.example.org" || loc.Query().Get("notification") != "session-deleted" || loc.Query().Get("x") != "1" {
		t.Errorf("ended activation: %d Location %q", r.status, r.header.Get("Location"))
	}
	// Owner may terminate.
	if r := h.get("/workshops/session/"+alice.Name+"/terminate/", user); r.status != 200 {
		t.Errorf("owner terminate: %d %s", r.status, r.body)
	}
	// Capacity: demo-w02 has 2 slots; carol's ended, so two new users fit.
	h.request("demo-w02", url.Values{"user": {"u1"}})
	h.request("demo-w02", url.Values{"user": {"u2"}})
	r = h.get("/workshops/environment/demo-w02/request/?user=u3", h.robot)
	if r.status != 503 || r.errorText(t) != "No session available" {
		t.Errorf("at capacity: %d %s", r.status, r.body)
	}
}

// TestBrowsersGetPages: an activation link that does not work, and an
// address under the REST API's prefix that is nothing, followed by a
// browser (fetch metadata of a top-level navigation), answer a page that
// says what happened and leads back to the portal's index, with the
// status clients get; without that metadata the answer is the JSON error.
func TestBrowsersGetPages(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	alice := h.request("demo-w01", url.Values{"user": {"alice"}})
	browser := []string{"Sec-Fetch-Mode", "navigate", "Sec-Fetch-Dest", "document"}
	for _, tc := range []struct {
		path, title string
		status      int
	}{
		{"/workshops/session/" + alice.Name + "/activate/?token=wrong", "This workshop link does not work", 400},
		{"/workshops/session/" + alice.Name + "/activate/", "This workshop link does not work", 400},
		{"/workshops/session/demo-w01-s999/activate/?token=x", "This workshop session has ended", 400},
		{"/workshops/nothing-here/", "Page not found", 404},
	} {
		page := h.do("GET", tc.path, "", nil, browser...)
		if page.status != tc.status || !strings.HasPrefix(page.header.Get("Content-Type"), "text/html") ||
			!strings.Contains(string(page.body), "<h1>"+tc.title+"</h1>") || !strings.Contains(string(page.body), `href="`+hubIndex+`"`) {
			t.Errorf("%s in a browser: %d %s %s", tc.path, page.status, page.header.Get("Content-Type"), page.body)
		}
		client := h.do("GET", tc.path, "", nil)
		if client.status != tc.status || client.json(t)["error"] == "" {
			t.Errorf("%s for a client: %d %s", tc.path, client.status, client.body)
		}
	}
	// The link still works.
	if r := h.do("GET", alice.URL, "", nil, browser...); r.status != 302 {
		t.Errorf("alice's link: %d %s", r.status, r.body)
	}
}
