package api_test

import (
	"context"
	"encoding/json"
	"net/url"
	"strings"
	"testing"
	"time"
)

func TestRequestResponse(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	r := h.get("/workshops/environment/demo-w01/request/?user=alice&index_url="+url.QueryEscape(hubIndex+"list?a=1"), h.robot)
	if r.status != 200 {
		t.Fatalf("%d %s", r.status, r.body)
	}
	wantKeys(t, "request response", r.body, "name", "session", "user", "url", "namespace", "workshop", "environment")
	m := r.json(t)
	if m["name"] != "demo-w01-s001" || m["session"] != "demo-w01-s001" || m["namespace"] != "demo-w01-s001" ||
		m["user"] != "alice" || m["workshop"] != "lab-k8s" || m["environment"] != "demo-w01" {
		t.Errorf("response %v", m)
	}
	u, err := url.Parse(m["url"].(string))
	if err != nil || u.IsAbs() || u.Host != "" || u.Path != "/workshops/session/demo-w01-s001/activate/" {
		t.Fatalf("url %q", m["url"])
	}
	if tok := u.Query().Get("token"); len(tok) != 32 {
		t.Errorf("token %q", tok)
	}
	if got := u.Query().Get("index_url"); got != hubIndex+"list?a=1" {
		t.Errorf("index_url %q", got)
	}
	if r.header.Get("Content-Type") != "application/json" {
		t.Errorf("content type %q", r.header.Get("Content-Type"))
	}
}

func TestRequestParameters(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	ctx := context.Background()
	body := `{"parameters":[{"name":"A","value":"1"},{"name":"B"}]}`
	for i, c := range []struct {
		method string
		body   string
	}{
		{"GET", ""}, {"POST", ""}, {"GET", body}, {"POST", body}, {"POST", "  \n"}, {"GET", "{}"}, {"POST", `{"parameters":null}`},
	} {
		user := "u" + string(rune('a'+i))
		q := url.Values{"user": {user}, "email": {user + "@example.com"}, "firstname": {"First"}, "lastname": {"Last"}}
		var rd *strings.Reader
		if c.body != "" {
			rd = strings.NewReader(c.body)
		}
		var r response
		if rd != nil {
			r = h.do(c.method, "/workshops/environment/demo-w02/request/?"+q.Encode(), h.robot, rd, "Content-Type", "application/json")
		} else {
			r = h.do(c.method, "/workshops/environment/demo-w02/request/?"+q.Encode(), h.robot, nil)
		}
		if r.status != 200 {
			t.Fatalf("%s with body %q: %d %s", c.method, c.body, r.status, r.body)
		}
		name := r.json(t)["name"].(string)
		s, err := h.svc.Get(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		if c.body == body && (len(s.Params) != 2 || s.Params[0].Name != "A" || s.Params[0].Value != "1" || s.Params[1].Name != "B" || s.Params[1].Value != "") {
			t.Errorf("%s params %+v", c.method, s.Params)
		}
		if s.IndexURL != hubIndex {
			t.Errorf("index fallback: %q", s.IndexURL)
		}
		u, err := h.svc.GetUser(ctx, user)
		if err != nil || u.Email != user+"@example.com" || u.FirstName != "First" || u.LastName != "Last" {
			t.Errorf("user %+v %v", u, err)
		}
		h.svc.Terminate(ctx, name, "")
		h.clk.Advance(stopGrace)
	}
	// first_name/last_name win over the legacy aliases and update the user.
	h.request("demo-w02", url.Values{"user": {"ua"}, "first_name": {"New"}, "firstname": {"Old"}, "last_name": {"Name"}})
	if u, _ := h.svc.GetUser(ctx, "ua"); u.FirstName != "New" || u.LastName != "Name" {
		t.Errorf("updated user %+v", u)
	}
}

func TestRequestOversizedBody(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	big := `{"parameters":[{"name":"A","value":"` + strings.Repeat("x", 1<<20) + `"}]}`
	r := h.do("POST", "/workshops/environment/demo-w01/request/", h.robot, strings.NewReader(big), "Content-Type", "application/json")
	if r.status != 413 {
		t.Fatalf("oversized body: %d %s", r.status, r.body)
	}
	r.errorText(t)
	if l := len(mustSessions(t, h, "demo-w01")); l != 1 { // just the reserve
		t.Errorf("%d live sessions after a refused request", l)
	}
}

// TestRequestLargestParameters: a body just under the limit is stored as
// it came, so the limit, not the store, decides what is refused.
func TestRequestLargestParameters(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	value := strings.Repeat("x", 120<<10)
	body := `{"parameters":[{"name":"A","value":"` + value + `"}]}`
	r := h.do("POST", "/workshops/environment/demo-w01/request/?user=big", h.robot, strings.NewReader(body), "Content-Type", "application/json")
	if r.status != 200 {
		t.Fatalf("request with %d bytes of parameters: %d %s", len(body), r.status, r.body)
	}
	all, err := h.svc.EnvironmentSessions(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, s := range all["demo-w01"] {
		if s.Owner == "big" {
			found = len(s.Params) == 1 && s.Params[0].Value == value
		}
	}
	if !found {
		t.Error("the session with the large parameter is not stored with it")
	}
	long := "https://hooks.example.com/" + strings.Repeat("a", 5000)
	r = h.get("/workshops/environment/demo-w01/request/?user=u2&analytics_url="+url.QueryEscape(long), h.robot)
	if r.status != 400 {
		t.Errorf("analytics_url of %d bytes: %d %s", len(long), r.status, r.body)
	}
	r.errorText(t)
}

func mustSessions(t *testing.T, h *harness, env string) []string {
	t.Helper()
	all, err := h.svc.EnvironmentSessions(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, s := range all[env] {
		out = append(out, s.Name)
	}
	return out
}

func TestRequestIndexURL(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	for _, ok := range []string{hubIndex + "x", "https://hub.example.com:443/", lmsOrigin + "/c?x=1", h.srv.URL + "/back", "/relative/page"} {
		res := h.request("demo-w02", url.Values{"index_url": {ok}})
		if res.index != ok {
			t.Errorf("index_url %q echoed as %q", ok, res.index)
		}
		h.svc.Terminate(context.Background(), res.Name, "")
		h.clk.Advance(stopGrace)
	}
	res := h.request("demo-w02", url.Values{"redirect_url": {lmsOrigin + "/legacy"}})
	if res.index != lmsOrigin+"/legacy" {
		t.Errorf("redirect_url echoed as %q", res.index)
	}
	for _, bad := range []string{"https://evil.com/", "//evil.com", "https://hub.example.com@evil.com/", "javascript:alert(1)", "http://hub.example.com/"} {
		r := h.get("/workshops/environment/demo-w02/request/?index_url="+url.QueryEscape(bad), h.robot)
		if r.status != 400 {
			t.Errorf("index_url %q: %d", bad, r.status)
		}
		r.errorText(t)
	}

	// Without portal.index the parameter is required.
	cfg := testPortal()
	cfg.Index = ""
	h = newHarness(t, harnessOpts{cfg: cfg})
	r := h.get("/workshops/environment/demo-w02/request/?user=x", h.robot)
	if r.status != 400 || r.errorText(t) != "Need redirect URL for workshop index" {
		t.Errorf("no index: %d %s", r.status, r.body)
	}
	h.request("demo-w02", url.Values{"index_url": {lmsOrigin}})
}

func TestRequestValidation(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	ok := []url.Values{
		{"user": {"a"}, "email": {"a@example.com"}},
		{"user": {"b"}, "timeout": {"0"}},
		{"user": {"c"}, "timeout": {"30"}, "analytics_url": {"https://a.example.com/hook"}},
	}
	for _, q := range ok {
		h.request("demo-w01", q)
	}
	if s, _ := h.svc.Get(context.Background(), "demo-w01-s002"); s == nil || !s.Expires.Equal(h.t0.Add(60*time.Minute)) {
		t.Errorf("timeout=0 uses the workshop duration: %+v", s)
	}
	if s, _ := h.svc.Get(context.Background(), "demo-w01-s003"); s == nil || !s.Expires.Equal(h.t0.Add(30*time.Second)) {
		t.Errorf("timeout=30: %+v", s)
	}
	for _, q := range []url.Values{
		{"email": {"Alice <a@example.com>"}},
		{"email": {"a@"}},
		{"timeout": {"1e3"}},
		{"timeout": {"99999999999999999999"}},
		{"timeout": {" 5"}},
		{"analytics_url": {"ftp://x"}},
		{"analytics_url": {"not a url"}},
		{"analytics_url": {"https://user:pass@a.example.com/hook"}},
		{"user": {strings.Repeat("u", 300)}},
	} {
		r := h.get("/workshops/environment/demo-w02/request/?"+q.Encode(), h.robot)
		if r.status != 400 {
			t.Errorf("%v: %d %s", q, r.status, r.body)
		}
		r.errorText(t)
	}
}

func TestRequestByWorkshopName(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	a := h.request("lab-k8s", url.Values{"user": {"alice"}})
	b := h.request("k8s", url.Values{"user": {"alice"}})
	if a.Environment != "demo-w01" || b.Name != a.Name || b.Workshop != "lab-k8s" {
		t.Errorf("by workshop: %+v / %+v", a, b)
	}
	if b.URL != a.URL {
		t.Errorf("reacquire returned another link: %s, first %s", b.URL, a.URL)
	}
	// The link works, again and again.
	for _, u := range []string{a.URL, b.URL} {
		if r := h.get(u, ""); r.status != 302 {
			t.Errorf("activation %s: %d", u, r.status)
		}
	}
}

func TestRequestEmailUser(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	res := h.request("demo-w01", url.Values{"user": {"a@b.com"}})
	r := h.get("/workshops/user/a%40b.com/sessions/", h.robot)
	if r.status != 200 {
		t.Fatal(r.status)
	}
	wantKeys(t, "user sessions", r.body, "user", "sessions")
	item := field(t, r.body, "sessions", 0)
	wantKeys(t, "user session entry", item, "name", "namespace", "workshop", "environment", "started", "expires", "countdown", "extendable")
	var m map[string]any
	_ = json.Unmarshal(r.body, &m)
	if m["user"] != "a@b.com" {
		t.Errorf("user %v", m["user"])
	}
	var e map[string]any
	_ = json.Unmarshal(item, &e)
	if e["name"] != res.Name || e["workshop"] != "lab-k8s" || e["environment"] != "demo-w01" {
		t.Errorf("entry %v", e)
	}
	// The raw @ form works too; unknown users get an empty list.
	if r := h.get("/workshops/user/a@b.com/sessions/", h.robot); r.status != 200 || !strings.Contains(string(r.body), res.Name) {
		t.Errorf("raw @: %d %s", r.status, r.body)
	}
	r = h.get("/workshops/user/nobody/sessions/", h.robot)
	if r.status != 200 || strings.TrimSpace(string(r.body)) != `{"user":"nobody","sessions":[]}` {
		t.Errorf("unknown user: %d %s", r.status, r.body)
	}
	// Terminated sessions leave the list at once.
	h.get("/workshops/session/"+res.Name+"/terminate/", h.robot)
	r = h.get("/workshops/user/a%40b.com/sessions/", h.robot)
	if strings.Contains(string(r.body), res.Name) {
		t.Errorf("stopping session listed: %s", r.body)
	}
}

func TestActivation(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	res := h.request("demo-w01", url.Values{"user": {"alice"}})
	for i := 0; i < 2; i++ {
		r := h.get(res.URL, "")
		if r.status != 302 || r.header.Get("Location") != "/workshops/session/"+res.Name+"/" {
			t.Fatalf("activation %d: %d Location %q", i+1, r.status, r.header.Get("Location"))
		}
	}
	r := h.get("/workshops/session/"+res.Name+"/schedule/", h.robot)
	m := r.json(t)
	if m["status"] != "RUNNING" || m["started"] != h.t0.Format("2006-01-02T15:04:05.000Z") {
		t.Errorf("after activation %v", m)
	}
	// The activation deadline passes for a second, never-activated session.
	other := h.request("demo-w01", url.Values{"user": {"bob"}})
	h.clk.Advance(defaultWait)
	r = h.get(other.URL, "")
	if r.status != 302 || !strings.HasPrefix(r.header.Get("Location"), hubIndex+"?notification=session-deleted") {
		t.Errorf("expired activation: %d %q", r.status, r.header.Get("Location"))
	}
	// Alice's running session still activates.
	if r := h.get(res.URL, ""); r.status != 302 || r.header.Get("Location") != "/workshops/session/"+res.Name+"/" {
		t.Errorf("repeat activation later: %d", r.status)
	}
}

func TestActivationEndedWithoutIndex(t *testing.T) {
	cfg := testPortal()
	cfg.Index = ""
	h := newHarness(t, harnessOpts{cfg: cfg})
	res := h.request("demo-w02", url.Values{"user": {"alice"}, "index_url": {"/back"}})
	h.get("/workshops/session/"+res.Name+"/terminate/", h.robot)
	r := h.get(res.URL, "")
	if r.status != 302 || r.header.Get("Location") != "/back?notification=session-deleted" {
		t.Errorf("ended with relative index: %d %q", r.status, r.header.Get("Location"))
	}
}

func TestScheduleExtendTerminate(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	res := h.request("demo-w01", url.Values{"user": {"alice"}})
	owner := h.userToken("alice")
	base := "/workshops/session/" + res.Name

	// Pending: the schedule shows the activation countdown.
	r := h.get(base+"/schedule/", owner)
	wantKeys(t, "pending schedule", r.body, "status", "started", "expires", "expiring", "countdown", "extendable")
	if m := r.json(t); m["status"] != "WAITING" || m["started"] != h.t0.Format("2006-01-02T15:04:05.000Z") || m["countdown"] != float64(60) {
		t.Errorf("pending schedule %v", m)
	}
	h.get(res.URL, "")
	start := h.t0

	r = h.get(base+"/extend/", owner)
	wantKeys(t, "extend", r.body, "status", "started", "expires", "extended", "expiring", "countdown", "extendable")
	if m := r.json(t); m["extended"] != false || m["countdown"] != float64(3600) || m["expiring"] != false {
		t.Errorf("early extend %v", m)
	}
	// §4.4: extendable in the last 15 minutes, +15m each, capped at 120m.
	for _, want := range []time.Duration{75, 90, 105, 120} {
		s, _ := h.svc.Get(context.Background(), res.Name)
		h.clk.Advance(s.Expires.Add(-time.Minute).Sub(h.clk.Now()))
		m := h.get(base+"/schedule/", h.robot).json(t)
		if m["extendable"] != true || m["expiring"] != true || m["countdown"] != float64(60) {
			t.Fatalf("before extension to %vm: %v", want, m)
		}
		m = h.get(base+"/extend/", owner).json(t)
		wantExp := start.Add(want * time.Minute).Format("2006-01-02T15:04:05.000Z")
		if m["extended"] != true || m["expires"] != wantExp {
			t.Fatalf("extension to %vm: %v", want, m)
		}
	}
	h.clk.Advance(14 * time.Minute)
	if m := h.get(base+"/extend/", h.robot).json(t); m["extended"] != false || m["extendable"] != false {
		t.Errorf("at the deadline cap: %v", m)
	}

	// Terminate: started/expires, then repeatable while stopping.
	at := h.clk.Now()
	r = h.get(base+"/terminate/", owner)
	wantKeys(t, "terminate", r.body, "started", "expires")
	if m := r.json(t); m["expires"] != at.Format("2006-01-02T15:04:05.000Z") || m["started"] != start.Format("2006-01-02T15:04:05.000Z") {
		t.Errorf("terminate %v", m)
	}
	if m := h.get(base+"/schedule/", h.robot).json(t); m["status"] != "STOPPING" {
		t.Errorf("schedule while stopping %v", m)
	}
	if r := h.get(base+"/terminate/", h.robot); r.status != 200 {
		t.Errorf("repeat terminate: %d", r.status)
	}
	h.clk.Advance(stopGrace)
	for _, a := range []string{"schedule", "extend", "terminate", "authorize"} {
		if r := h.get(base+"/"+a+"/", h.robot); r.status != 404 {
			t.Errorf("%s after stop: %d", a, r.status)
		}
	}
}

func TestAuthorize(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	res := h.request("demo-w01", url.Values{"user": {"alice"}})
	r := h.get("/workshops/session/"+res.Name+"/authorize/", h.userToken("alice"))
	if r.status != 200 {
		t.Fatalf("%d %s", r.status, r.body)
	}
	if m := r.json(t); m["owner"] != "alice" || m["user"] != "alice" {
		t.Errorf("authorize %v", m)
	}
}

func TestUnlimitedSchedule(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	res := h.request("demo-w02", url.Values{"user": {"alice"}})
	h.get(res.URL, "")
	r := h.get("/workshops/session/"+res.Name+"/schedule/", h.robot)
	wantKeys(t, "unlimited schedule", r.body, "status", "started", "expires", "expiring")
	if m := r.json(t); m["expires"] != nil || m["expiring"] != false {
		t.Errorf("unlimited %v", m)
	}
	r = h.get("/workshops/user/alice/sessions/", h.robot)
	wantKeys(t, "unlimited user session", field(t, r.body, "sessions", 0), "name", "namespace", "workshop", "environment", "started")
}

func TestPortalWithURL(t *testing.T) {
	cfg := testPortal()
	cfg.URL = "https://portal.example.com"
	h := newHarness(t, harnessOpts{cfg: cfg})
	c, _ := h.catalog(t, "", h.robot)
	if c.Portal.URL != "https://portal.example.com" {
		t.Errorf("portal url %q", c.Portal.URL)
	}
	// The configured URL's origin is an allowed index.
	h.request("demo-w02", url.Values{"index_url": {"https://portal.example.com/catalog"}})
}

// saysInvalidUserID reports whether an error body's message names both rules
// a user id must keep: a client sending "%ff" learns it is not UTF-8.
func saysInvalidUserID(msg any) bool {
	s, _ := msg.(string)
	return strings.HasPrefix(s, "Invalid user id") && strings.Contains(s, "UTF-8") && strings.Contains(s, "control characters")
}

// TestNameControlCharacters: a first or last name with a control
// character or invalid UTF-8 is refused with a 400 naming the rule, under
// either spelling of the parameter, and no user is created or changed;
// names in any script are stored as sent.
func TestNameControlCharacters(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	request := func(q url.Values) response {
		return h.get("/workshops/environment/demo-w01/request/?"+q.Encode(), h.robot)
	}
	for _, name := range []string{"Ann\nMarie", "tab\tname", "nul\x00", "c1\u0085", "line\u2028sep", "Lee\xff"} {
		for _, param := range []string{"first_name", "firstname", "last_name", "lastname"} {
			r := request(url.Values{"user": {"ann"}, param: {name}})
			msg, _ := r.json(t)["error"].(string)
			if r.status != 400 || !strings.HasPrefix(msg, "Invalid name") || !strings.Contains(msg, "control characters") {
				t.Errorf("%s=%q: %d %s", param, name, r.status, r.body)
			}
		}
	}
	if _, err := h.svc.GetUser(context.Background(), "ann"); err == nil {
		t.Fatal("a refused request created its user")
	}
	if r := request(url.Values{"user": {"ann"}, "first_name": {"Zoë"}, "last_name": {"Ångström 李"}}); r.status != 200 {
		t.Fatalf("names in other scripts: %d %s", r.status, r.body)
	}
	// A bad name later must not change the stored one either.
	if r := request(url.Values{"user": {"ann"}, "first_name": {"Zoë\r"}}); r.status != 400 {
		t.Fatalf("bad name for an existing user: %d %s", r.status, r.body)
	}
	u, err := h.svc.GetUser(context.Background(), "ann")
	if err != nil || u.FirstName != "Zoë" || u.LastName != "Ångström 李" {
		t.Fatalf("stored names: %+v %v", u, err)
	}
}

// TestUserIDControlCharacters: a user id with control characters could
// never reach its dashboard (it is carried in newline-separated signed
// payloads and headers), so it is refused with a 400 and a JSON error when
// it enters, and nothing is created.
func TestUserIDControlCharacters(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	for _, user := range []string{"bad\nuser", "cr\ruser", "tab\tuser", "nul\x00", "del\x7f", "c1\u0085", "line\u2028sep", "\xff\xfe"} {
		r := h.get("/workshops/environment/demo-w01/request/?"+url.Values{"user": {user}}.Encode(), h.robot)
		if r.status != 400 || !saysInvalidUserID(r.json(t)["error"]) {
			t.Errorf("request for user %q: %d %s", user, r.status, r.body)
		}
		if _, err := h.svc.GetUser(context.Background(), user); err == nil {
			t.Errorf("user %q was created", user)
		}
		r = h.get("/workshops/user/"+url.PathEscape(user)+"/sessions/", h.robot)
		if r.status != 400 || !saysInvalidUserID(r.json(t)["error"]) {
			t.Errorf("sessions of user %q: %d %s", user, r.status, r.body)
		}
	}
	// Letters of any script and spaces stay valid user ids.
	if r := h.get("/workshops/environment/demo-w01/request/?"+url.Values{"user": {"Zoë Ångström 李"}}.Encode(), h.robot); r.status != 200 {
		t.Fatalf("ordinary unicode user id: %d %s", r.status, r.body)
	}
}
