package e2e

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/caddyportal/caddyportal/internal/e2etest"
	"github.com/caddyportal/caddyportal/internal/e2etest/echo"
)

// obsBody is a portal with one workshop on the given dashboard upstream
// (so capacity 1), public URL base, and extra options. Its expiry
// settings make a fresh session extendable at once.
func obsBody(base, upstream, extra string) string {
	return `
		name demo
		storage badger {dir}
		url ` + base + `
		index https://hub.example.com/
		redirects https://hub.example.com
		sessions maximum 10 registered 2 anonymous 2
		robot robot@portal robot-pass
		client test-client test-secret
		` + extra + `
		workshop lab {
			title "Observed lab"
			reserved 0
			expires 60m
			overtime 90m
			deadline 4h
			upstream ` + upstream + `
		}
`
}

// startObservedPortal starts a portal with Caddy's admin listener on, where
// Caddy serves the Prometheus metrics at /metrics, and returns the
// listener's address.
func startObservedPortal(t *testing.T, upstream, extra string) (*portal, string) {
	t.Helper()
	admin := fmt.Sprintf("127.0.0.1:%d", e2etest.FreePort(t))
	p := &portal{&e2etest.Portal{T: t, Port: e2etest.FreePort(t), Dir: t.TempDir(), Admin: admin}}
	p.Base = fmt.Sprintf("http://127.0.0.1:%d", p.Port) // the body names it
	p.Start(obsBody(p.Base, upstream, extra))
	return p, admin
}

// obsSample matches one sample line of the Prometheus text format.
var obsSample = regexp.MustCompile(`^([a-zA-Z_:][a-zA-Z0-9_:]*(?:\{.*\})?) (\S+)$`)

// obsScrape reads the admin endpoint's /metrics and returns every
// caddyportal sample by its name and labels as written, for example
// `caddyportal_allocations_total{environment="demo-w01",result="allocated"}`
// (Prometheus writes the labels sorted by name).
func obsScrape(t *testing.T, admin string) map[string]float64 {
	t.Helper()
	res, err := e2etest.NoRedirect.Get("http://" + admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if res.StatusCode != 200 {
		b, _ := io.ReadAll(res.Body)
		t.Fatalf("GET /metrics: %d %s", res.StatusCode, b)
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(res.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "caddyportal_") {
			continue
		}
		m := obsSample.FindStringSubmatch(line)
		if m == nil {
			t.Fatalf("unparsable metrics line %q", line)
		}
		v, err := strconv.ParseFloat(m[2], 64)
		if err != nil {
			t.Fatalf("metrics line %q: %v", line, err)
		}
		out[m[1]] = v
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// obsKey builds a sample key from a metric name and label pairs, which
// must be given in label-name order.
func obsKey(name string, labels ...string) string {
	var parts []string
	for i := 0; i+1 < len(labels); i += 2 {
		parts = append(parts, labels[i]+`="`+labels[i+1]+`"`)
	}
	return "caddyportal_" + name + "{" + strings.Join(parts, ",") + "}"
}

// obsWait polls cond until it holds. It bounds a wait for background work
// (a stream closing, an asynchronous delivery); it measures nothing.
func obsWait(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatalf("gave up waiting for %s", what)
}

// wantDeltas checks that each sample moved from before to after by exactly
// the given amount (absent samples count as 0).
func wantDeltas(t *testing.T, stage string, before, after map[string]float64, want map[string]float64) {
	t.Helper()
	for k, d := range want {
		if got := after[k] - before[k]; got != d {
			t.Errorf("%s: %s moved by %v (from %v to %v), want %v", stage, k, got, before[k], after[k], d)
		}
	}
}

// TestMetricsEndToEnd drives a session through request, activation, the
// gate (a page and a WebSocket), extension and termination, and checks
// that every counter and gauge on Caddy's /metrics moved by exactly the
// expected amount; then reloads the config and checks that the counters
// kept their values and keep counting.
func TestMetricsEndToEnd(t *testing.T) {
	up := echo.Start(t, "alpha")
	p, admin := startObservedPortal(t, up.Addr, "")
	env := "demo-w01"
	m0 := obsScrape(t, admin)
	if _, ok := m0[obsKey("sessions", "environment", env, "state", "pending")]; !ok {
		t.Fatalf("the sessions gauge is not exported: %v", m0)
	}

	// Tokens: one granted, one refused.
	tok := p.Token(e2etest.RobotUser, e2etest.RobotPass)
	form := url.Values{"grant_type": {"password"}, "username": {e2etest.RobotUser}, "password": {"wrong"}}
	bad := p.Do("POST", "/oauth2/token/", "", strings.NewReader(form.Encode()),
		map[string]string{"Content-Type": "application/x-www-form-urlencoded"})
	if bad.Status != 401 && bad.Status != 400 {
		t.Fatalf("bad token request: %d %s", bad.Status, bad.Body)
	}
	badResult := bad.JSON(t)["error"].(string)

	// Allocations: one session, then refusals for lack of capacity and
	// for an unknown environment.
	req := p.Request(tok, env, "user=alice&index_url=https://hub.example.com/")
	if req.Status != 200 {
		t.Fatalf("request: %d %s", req.Status, req.Body)
	}
	name := req.JSON(t)["name"].(string)
	if r := p.Request(tok, env, "user=bob&index_url=https://hub.example.com/"); r.Status != 503 {
		t.Fatalf("request beyond capacity: %d %s", r.Status, r.Body)
	}
	if r := p.Request(tok, "nope", "user=bob&index_url=https://hub.example.com/"); r.Status != 403 {
		t.Fatalf("request for an unknown environment: %d %s", r.Status, r.Body)
	}
	m1 := obsScrape(t, admin)
	wantDeltas(t, "after requests", m0, m1, map[string]float64{
		obsKey("token_requests_total", "grant", "password", "result", "ok"):        1,
		obsKey("token_requests_total", "grant", "password", "result", badResult):   1,
		obsKey("allocations_total", "environment", env, "result", "allocated"):     1,
		obsKey("allocations_total", "environment", env, "result", "no-session"):    1,
		obsKey("allocations_total", "environment", "", "result", "no-environment"): 1,
	})
	if k := obsKey("sessions", "environment", env, "state", "pending"); m1[k] != 1 {
		t.Errorf("after the request: %s = %v, want 1", k, m1[k])
	}

	// Activation by a browser with a cookie jar: it lands on the
	// dashboard page through the gate.
	jar, _ := cookiejar.New(nil)
	client := &http.Client{Jar: jar, Timeout: 10 * time.Second}
	res, err := client.Get(p.Base + req.JSON(t)["url"].(string))
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != 200 || !strings.Contains(string(page), "Workshop dashboard alpha") {
		t.Fatalf("activation landed on %d %s", res.StatusCode, page)
	}
	// One more page through the gate, and one refused (no cookie).
	if r, err := client.Get(p.Base + sessionPath(name) + "echo"); err != nil || r.StatusCode != 200 {
		t.Fatalf("dashboard request: %v %v", r, err)
	} else {
		r.Body.Close()
	}
	if r := p.Do("GET", sessionPath(name), "", nil, nil); r.Status != 403 {
		t.Fatalf("dashboard without a cookie: %d", r.Status)
	}

	// A WebSocket through the gate is counted open while it is open.
	wsURL := "ws" + strings.TrimPrefix(p.Base, "http") + sessionPath(name) + "ws"
	c, wres, err := dialWS(t, &http.Client{Jar: jar}, wsURL, nil)
	if err != nil {
		t.Fatalf("websocket through the gate: %v (%v)", err, wres)
	}
	wantEcho(t, c, "hello")
	openKey := obsKey("websockets_open", "environment", env)
	if m := obsScrape(t, admin); m[openKey] != 1 {
		t.Fatalf("with a WebSocket open: %s = %v, want 1", openKey, m[openKey])
	}
	c.Close(websocket.StatusNormalClosure, "")
	obsWait(t, "the WebSocket to be counted closed", func() bool { return obsScrape(t, admin)[openKey] == 0 })

	m2 := obsScrape(t, admin)
	wantDeltas(t, "after activation and the gate", m1, m2, map[string]float64{
		obsKey("activation_latency_seconds_count", "environment", env):   1,
		obsKey("gate_requests_total", "code", "2xx", "environment", env): 2,
		obsKey("gate_requests_total", "code", "1xx", "environment", env): 1, // 101 Switching Protocols
		obsKey("gate_requests_total", "code", "4xx", "environment", ""):  1,
	})
	for state, want := range map[string]float64{"pending": 0, "running": 1, "reserved": 0} {
		if k := obsKey("sessions", "environment", env, "state", state); m2[k] != want {
			t.Errorf("after activation: %s = %v, want %v", k, m2[k], want)
		}
	}

	// Extension and termination through the REST API.
	if r := p.Do("GET", "/workshops/session/"+name+"/extend/", tok, nil, nil); r.Status != 200 || r.JSON(t)["extended"] != true {
		t.Fatalf("extend: %d %s", r.Status, r.Body)
	}
	if r := p.Do("GET", "/workshops/session/"+name+"/terminate/", tok, nil, nil); r.Status != 200 {
		t.Fatalf("terminate: %d %s", r.Status, r.Body)
	}
	m3 := obsScrape(t, admin)
	wantDeltas(t, "after extend and terminate", m2, m3, map[string]float64{
		obsKey("extensions_total", "environment", env):                           1,
		obsKey("terminations_total", "environment", env, "reason", "terminated"): 1,
	})
	if k := obsKey("sessions", "environment", env, "state", "running"); m3[k] != 0 {
		t.Errorf("after termination: %s = %v, want 0", k, m3[k])
	}

	// A reload: the new config exposes the same collectors, values kept.
	p.Load(strings.Replace(obsBody(p.Base, up.Addr, ""), "Observed lab", "Observed lab, reloaded", 1))
	m4 := obsScrape(t, admin)
	for k, v := range m3 {
		if strings.Contains(k, "_total") || strings.Contains(k, "_count") || strings.Contains(k, "_sum") {
			if m4[k] != v {
				t.Errorf("after the reload: %s = %v, was %v", k, m4[k], v)
			}
		}
	}
	if _, ok := m4[obsKey("sessions", "environment", env, "state", "running")]; !ok {
		t.Errorf("after the reload the sessions gauge is gone")
	}
	// …and keep counting.
	tok = p.Token(e2etest.RobotUser, e2etest.RobotPass)
	if r := p.Request(tok, "nope", "user=carol&index_url=https://hub.example.com/"); r.Status != 403 {
		t.Fatalf("request for an unknown environment after the reload: %d %s", r.Status, r.Body)
	}
	wantDeltas(t, "after the reload", m4, obsScrape(t, admin), map[string]float64{
		obsKey("token_requests_total", "grant", "password", "result", "ok"):        1,
		obsKey("allocations_total", "environment", "", "result", "no-environment"): 1,
	})
}

// hookEvent is one analytics POST as a receiver got it.
type hookEvent struct {
	Portal map[string]any `json:"portal"`
	Event  map[string]any `json:"event"`
	raw    []byte
}

// obsReceiver is a real analytics webhook receiver on 127.0.0.1.
type obsReceiver struct {
	srv      *httptest.Server
	mu       sync.Mutex
	events   []hookEvent
	attempts atomic.Int64
	entered  chan struct{} // one value per request, if not nil
	finished atomic.Int64  // requests whose handler has returned
}

// startReceiver starts a receiver that answers status after waiting for
// release (nil: at once).
func startReceiver(t *testing.T, status int, release <-chan struct{}) *obsReceiver {
	t.Helper()
	rc := &obsReceiver{entered: make(chan struct{}, 1024)}
	rc.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer rc.finished.Add(1)
		rc.attempts.Add(1)
		body, _ := io.ReadAll(r.Body)
		var ev hookEvent
		if r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/json" || json.Unmarshal(body, &ev) != nil {
			t.Errorf("receiver got %s %s %q: %s", r.Method, r.URL, r.Header.Get("Content-Type"), body)
		}
		ev.raw = body
		rc.mu.Lock()
		rc.events = append(rc.events, ev)
		rc.mu.Unlock()
		rc.entered <- struct{}{}
		if release != nil {
			select {
			case <-release:
			case <-r.Context().Done():
			}
		}
		w.WriteHeader(status)
	}))
	t.Cleanup(rc.srv.Close)
	return rc
}

// names returns the event names received for session (all events when
// session is ""), with repeats of the same event (a retried delivery)
// collapsed.
func (rc *obsReceiver) names(session string) []string {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	var out []string
	var last string
	for _, ev := range rc.events {
		if session != "" && ev.Event["session"] != session {
			continue
		}
		id := fmt.Sprint(ev.Event["name"], ev.Event["timestamp"])
		if id == last {
			continue
		}
		last = id
		out = append(out, ev.Event["name"].(string))
	}
	return out
}

func (rc *obsReceiver) find(name, session string) (hookEvent, bool) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	for _, ev := range rc.events {
		if ev.Event["name"] == name && (session == "" || ev.Event["session"] == session) {
			return ev, true
		}
	}
	return hookEvent{}, false
}

// jsonKeys returns the keys of the JSON object at path (e.g. "event") in
// raw, in document order.
func jsonKeys(t *testing.T, raw []byte, path string) []string {
	t.Helper()
	var top map[string]json.RawMessage
	if err := json.Unmarshal(raw, &top); err != nil {
		t.Fatal(err)
	}
	dec := json.NewDecoder(strings.NewReader(string(top[path])))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		t.Fatalf("%s is not an object in %s", path, raw)
	}
	var keys []string
	for dec.More() {
		k, _ := dec.Token()
		keys = append(keys, k.(string))
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			t.Fatal(err)
		}
	}
	return keys
}

var isoUTC = regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}\+00:00$`)

// TestWebhooksEndToEnd: the global analytics webhook and a session's own
// analytics_url receive the session's events in order with the reference
// §5.5 payload; a failing receiver's failures are counted.
func TestWebhooksEndToEnd(t *testing.T) {
	up := echo.Start(t, "alpha")
	global := startReceiver(t, http.StatusOK, nil)
	own := startReceiver(t, http.StatusNoContent, nil)
	failing := startReceiver(t, http.StatusInternalServerError, nil)
	// Session URLs on loopback need the operator's leave.
	p, admin := startObservedPortal(t, up.Addr+" "+echo.Start(t, "beta").Addr,
		"analytics "+global.srv.URL+"/hook?key=s3cret\n\t\tanalytics_allow 127.0.0.0/8")
	tok := p.Token(e2etest.RobotUser, e2etest.RobotPass)
	m0 := obsScrape(t, admin)

	q := url.Values{"user": {"alice"}, "index_url": {"https://hub.example.com/"}, "analytics_url": {own.srv.URL + "/alice"}}
	req := p.Request(tok, "demo-w01", q.Encode())
	if req.Status != 200 {
		t.Fatalf("request: %d %s", req.Status, req.Body)
	}
	name := req.JSON(t)["name"].(string)
	if act := p.Do("GET", req.JSON(t)["url"].(string), "", nil, nil); act.Status != http.StatusFound {
		t.Fatalf("activation: %d %s", act.Status, act.Body)
	}
	if r := p.Do("GET", "/workshops/session/"+name+"/extend/", tok, nil, nil); r.Status != 200 {
		t.Fatalf("extend: %d %s", r.Status, r.Body)
	}
	if r := p.Do("GET", "/workshops/session/"+name+"/terminate/", tok, nil, nil); r.Status != 200 {
		t.Fatalf("terminate: %d %s", r.Status, r.Body)
	}

	// The session's own webhook gets the events from the hand-out on;
	// the global one also gets its creation. Deleted follows when the
	// stopping grace is over and the portal's background pass runs.
	ownWant := []string{"Session/Pending", "Session/Started", "Session/Extended", "Session/Terminate", "Session/Stopping", "Session/Deleted"}
	globalWant := append([]string{"Session/Created"}, ownWant...)
	obsWait(t, "the session's events", func() bool {
		return len(own.names(name)) >= len(ownWant) && len(global.names(name)) >= len(globalWant)
	})
	if got := own.names(name); !slices.Equal(got, ownWant) {
		t.Errorf("session webhook got %q, want %q", got, ownWant)
	}
	if got := global.names(name); !slices.Equal(got, globalWant) {
		t.Errorf("global webhook got %q for %s, want %q", got, name, globalWant)
	}
	if got := own.names(""); len(got) != len(ownWant) {
		t.Errorf("session webhook got events of others: %q", got)
	}

	// The payload (§5.5): portal identity as in the catalog, event fields
	// in Educates' order, ISO timestamps in UTC.
	cat := p.Do("GET", "/workshops/catalog/environments/", tok, nil, nil).JSON(t)["portal"].(map[string]any)
	for _, rc := range []*obsReceiver{global, own} {
		ev, _ := rc.find("Session/Started", name)
		if got := jsonKeys(t, ev.raw, "portal"); !slices.Equal(got, []string{"name", "uid", "generation", "url"}) {
			t.Errorf("portal keys %q", got)
		}
		if got := jsonKeys(t, ev.raw, "event"); !slices.Equal(got, []string{"name", "timestamp", "user", "session", "environment", "workshop", "data"}) {
			t.Errorf("event keys %q", got)
		}
		if ev.Portal["name"] != "demo" || ev.Portal["uid"] != cat["uid"] || ev.Portal["generation"] != 1.0 || ev.Portal["url"] != p.Base {
			t.Errorf("portal object %v, catalog says %v", ev.Portal, cat)
		}
		e := ev.Event
		if e["user"] != "alice" || e["environment"] != "demo-w01" || e["workshop"] != "lab" || fmt.Sprint(e["data"]) != "map[]" {
			t.Errorf("event %v", e)
		}
		if ts, _ := e["timestamp"].(string); !isoUTC.MatchString(ts) {
			t.Errorf("timestamp %q", e["timestamp"])
		}
	}
	if ev, _ := own.find("Session/Extended", name); ev.Event["data"].(map[string]any)["expires"] == nil {
		t.Errorf("Session/Extended without data.expires: %s", ev.raw)
	}
	if ev, _ := own.find("Session/Deleted", name); ev.Event["data"].(map[string]any)["reason"] != "terminated" {
		t.Errorf("Session/Deleted without data.reason terminated: %s", ev.raw)
	}
	// A user event has only the user, and a portal without uid and
	// generation, as Educates sends it.
	if ev, ok := global.find("User/Create", ""); !ok {
		t.Error("the global webhook got no User/Create")
	} else {
		if got := jsonKeys(t, ev.raw, "event"); !slices.Equal(got, []string{"name", "timestamp", "user", "data"}) || ev.Event["user"] != "alice" {
			t.Errorf("User/Create event %s", ev.raw)
		}
		if got := jsonKeys(t, ev.raw, "portal"); !slices.Equal(got, []string{"name", "url"}) {
			t.Errorf("User/Create portal keys %q", got)
		}
	}

	// A session whose own webhook fails: its delivery is tried 1+3 times
	// and counted as failed once; the global webhook still gets it.
	q = url.Values{"user": {"bob"}, "index_url": {"https://hub.example.com/"}, "analytics_url": {failing.srv.URL}}
	r2 := p.Request(tok, "demo-w01", q.Encode())
	if r2.Status != 200 {
		t.Fatalf("request for bob: %d %s", r2.Status, r2.Body)
	}
	bobs := r2.JSON(t)["name"].(string)
	failedKey := obsKey("webhook_deliveries_total", "result", "failed")
	obsWait(t, "the failed delivery to be counted", func() bool { return obsScrape(t, admin)[failedKey]-m0[failedKey] >= 1 })
	obsWait(t, "bob's Pending at the global webhook", func() bool { _, ok := global.find("Session/Pending", bobs); return ok })
	if n := failing.attempts.Load(); n != 4 {
		t.Errorf("failing receiver got %d attempts, want 4 (one and three retries)", n)
	}
	if got := failing.names(""); !slices.Equal(got, []string{"Session/Pending"}) {
		t.Errorf("failing receiver got %q", got)
	}
	m1 := obsScrape(t, admin)
	wantDeltas(t, "webhook deliveries", m0, m1, map[string]float64{failedKey: 1,
		obsKey("webhook_deliveries_total", "result", "dropped"): 0})
	if ok := m1[obsKey("webhook_deliveries_total", "result", "ok")] - m0[obsKey("webhook_deliveries_total", "result", "ok")]; ok < float64(len(ownWant)+len(globalWant)) {
		t.Errorf("%v deliveries counted ok, want at least %d", ok, len(ownWant)+len(globalWant))
	}
}

// TestWebhookReceiverNeverDelaysAPI: with a receiver that holds every
// delivery until the test lets it go, the REST calls that emit events
// (request, activation, extension, termination, another user's request)
// all complete while the receiver is still holding the first delivery:
// the API never waits for a webhook.
func TestWebhookReceiverNeverDelaysAPI(t *testing.T) {
	up := echo.Start(t, "alpha")
	release := make(chan struct{})
	var once sync.Once
	free := func() { once.Do(func() { close(release) }) }
	hold := startReceiver(t, http.StatusOK, release)
	t.Cleanup(free) // runs before the receiver closes
	p, _ := startObservedPortal(t, up.Addr+" "+echo.Start(t, "beta").Addr, "analytics "+hold.srv.URL)
	tok := p.Token(e2etest.RobotUser, e2etest.RobotPass)

	req := p.Request(tok, "demo-w01", "user=alice&index_url=https://hub.example.com/")
	if req.Status != 200 {
		t.Fatalf("request: %d %s", req.Status, req.Body)
	}
	name := req.JSON(t)["name"].(string)
	<-hold.entered // a delivery has reached the receiver, which holds it

	if act := p.Do("GET", req.JSON(t)["url"].(string), "", nil, nil); act.Status != http.StatusFound {
		t.Fatalf("activation: %d %s", act.Status, act.Body)
	}
	if r := p.Do("GET", "/workshops/session/"+name+"/extend/", tok, nil, nil); r.Status != 200 {
		t.Fatalf("extend: %d %s", r.Status, r.Body)
	}
	if r := p.Do("GET", "/workshops/session/"+name+"/terminate/", tok, nil, nil); r.Status != 200 {
		t.Fatalf("terminate: %d %s", r.Status, r.Body)
	}
	if r := p.Request(tok, "demo-w01", "user=bob&index_url=https://hub.example.com/"); r.Status != 200 {
		t.Fatalf("request for bob: %d %s", r.Status, r.Body)
	}
	if n := hold.finished.Load(); n != 0 {
		t.Fatalf("the receiver finished %d deliveries before it was released; the test proves nothing", n)
	}

	// Released, the receiver gets the held events, alice's in order.
	free()
	want := []string{"Session/Created", "Session/Pending", "Session/Started", "Session/Extended", "Session/Terminate", "Session/Stopping"}
	obsWait(t, "the held events", func() bool { return len(hold.names(name)) >= len(want) })
	if got := hold.names(name)[:len(want)]; !slices.Equal(got, want) {
		t.Errorf("events after the release %q, want %q", got, want)
	}
}

// TestAnonymousStartRefusalsCounted: the session service reports every
// refused request itself, so the anonymous start link's refusals are in
// caddyportal_allocations_total like the REST API's (they were missed when
// each face reported its own).
func TestAnonymousStartRefusalsCounted(t *testing.T) {
	up := echo.Start(t, "alpha")
	admin := fmt.Sprintf("127.0.0.1:%d", e2etest.FreePort(t))
	p := &portal{&e2etest.Portal{T: t, Dir: t.TempDir(), Admin: admin}}
	p.Start(gateBody("registration anonymous", up.Addr)) // a pool of one
	key := func(env, result string) string {
		return obsKey("allocations_total", "environment", env, "result", result)
	}
	before := obsScrape(t, admin)
	create := func(env string) resp {
		t.Helper()
		return p.Do("GET", "/workshops/environment/"+env+"/create/", "", nil, map[string]string{"Sec-Fetch-Site": "none"})
	}
	if r := create("demo-w01"); r.Status != http.StatusFound {
		t.Fatalf("first start: %d %s", r.Status, r.Body)
	}
	create("demo-w01") // the pool of one is taken
	create("demo-w99") // no such environment
	after := obsScrape(t, admin)
	for _, c := range []struct{ env, result string }{
		{"demo-w01", "allocated"}, {"demo-w01", "no-session"}, {"", "no-environment"},
	} {
		if got := after[key(c.env, c.result)] - before[key(c.env, c.result)]; got != 1 {
			t.Errorf("allocations_total{environment=%q,result=%q} grew by %v, want 1", c.env, c.result, got)
		}
	}
}
