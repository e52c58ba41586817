package webhooks_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/caddyportal/caddyportal/caddyportal/sessions"
	"github.com/caddyportal/caddyportal/caddyportal/webhooks"
)

// hangGuard only stops a broken test from hanging the run; no assertion
// depends on how fast anything happens.
const hangGuard = 30 * time.Second

var t0 = time.Date(2026, 3, 4, 5, 6, 7, 123456000, time.UTC)

type delivery struct {
	path        string
	query       string
	method      string
	contentType string
	body        []byte
}

// receiver is a real HTTP server on 127.0.0.1 that records every request
// and answers with handle (default 200).
type receiver struct {
	*httptest.Server
	got    chan delivery
	hits   atomic.Int64
	handle func(w http.ResponseWriter, r *http.Request, n int64)
}

func newReceiver(t *testing.T, handle func(w http.ResponseWriter, r *http.Request, n int64)) *receiver {
	t.Helper()
	rc := &receiver{got: make(chan delivery, 1024), handle: handle}
	rc.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		n := rc.hits.Add(1)
		if rc.handle != nil {
			rc.handle(w, r, n)
		}
		rc.got <- delivery{path: r.URL.Path, query: r.URL.RawQuery, method: r.Method,
			contentType: r.Header.Get("Content-Type"), body: body}
	}))
	t.Cleanup(rc.Close)
	return rc
}

func recv[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(hangGuard):
		t.Fatalf("waiting for %s: nothing came (hang guard)", what)
		panic("unreachable")
	}
}

func newDispatcher(t *testing.T, opts webhooks.Options) *webhooks.Dispatcher {
	t.Helper()
	d, err := webhooks.New(opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithCancel(context.Background())
		cancel() // never wait in cleanup: abandon whatever is left
		_ = d.Close(ctx)
	})
	return d
}

// results collects OnResult and OnDrop calls.
type results struct {
	ch    chan bool
	drops atomic.Int64
}

func newResults() *results { return &results{ch: make(chan bool, 1024)} }

func (r *results) opts(o webhooks.Options) webhooks.Options {
	o.OnResult = func(ok bool) { r.ch <- ok }
	o.OnDrop = func() { r.drops.Add(1) }
	return o
}

var testPortal = webhooks.Portal{Name: "demo", UID: "8c1e0d2a-0000-4000-8000-000000000001", URL: "https://portal.example.com"}

func sessionEvent(name, session, user string, seq int) sessions.Event {
	return sessions.Event{Name: name, Time: t0, User: user, Session: session, Environment: "demo-w01",
		Workshop: "lab", Data: map[string]any{"seq": seq}}
}

func TestPayloadsMatchReference(t *testing.T) {
	rc := newReceiver(t, nil)
	res := newResults()
	d := newDispatcher(t, res.opts(webhooks.Options{URL: rc.URL + "/global", Portal: testPortal}))

	cases := []struct {
		ev   sessions.Event
		want string
	}{
		{sessions.Event{Name: "Session/Started", Time: t0, User: "alice", Session: "demo-w01-s001",
			Environment: "demo-w01", Workshop: "lab"},
			`{"portal":{"name":"demo","uid":"8c1e0d2a-0000-4000-8000-000000000001","generation":1,"url":"https://portal.example.com"},` +
				`"event":{"name":"Session/Started","timestamp":"2026-03-04T05:06:07.123456+00:00","user":"alice",` +
				`"session":"demo-w01-s001","environment":"demo-w01","workshop":"lab","data":{}}}`},
		// A reserve has no owner: user is null, as Educates sends it.
		{sessions.Event{Name: "Session/Created", Time: t0, Session: "demo-w01-s002", Environment: "demo-w01",
			Workshop: "lab"},
			`{"portal":{"name":"demo","uid":"8c1e0d2a-0000-4000-8000-000000000001","generation":1,"url":"https://portal.example.com"},` +
				`"event":{"name":"Session/Created","timestamp":"2026-03-04T05:06:07.123456+00:00","user":null,` +
				`"session":"demo-w01-s002","environment":"demo-w01","workshop":"lab","data":{}}}`},
		{sessions.Event{Name: "Session/Extended", Time: t0.In(time.FixedZone("X", 3600)), User: "alice",
			Session: "demo-w01-s001", Environment: "demo-w01", Workshop: "lab",
			Data: map[string]any{"expires": "2026-03-04T06:06:07.123Z"}},
			`{"portal":{"name":"demo","uid":"8c1e0d2a-0000-4000-8000-000000000001","generation":1,"url":"https://portal.example.com"},` +
				`"event":{"name":"Session/Extended","timestamp":"2026-03-04T05:06:07.123456+00:00","user":"alice",` +
				`"session":"demo-w01-s001","environment":"demo-w01","workshop":"lab","data":{"expires":"2026-03-04T06:06:07.123Z"}}}`},
		// User events: only the user, and a portal without uid/generation.
		{sessions.Event{Name: "User/Create", Time: t0, User: "alice"},
			`{"portal":{"name":"demo","url":"https://portal.example.com"},` +
				`"event":{"name":"User/Create","timestamp":"2026-03-04T05:06:07.123456+00:00","user":"alice","data":{}}}`},
		// Environment events: environment and workshop.
		{sessions.Event{Name: "Environment/Created", Time: t0, Environment: "demo-w01", Workshop: "lab"},
			`{"portal":{"name":"demo","uid":"8c1e0d2a-0000-4000-8000-000000000001","generation":1,"url":"https://portal.example.com"},` +
				`"event":{"name":"Environment/Created","timestamp":"2026-03-04T05:06:07.123456+00:00","environment":"demo-w01","workshop":"lab","data":{}}}`},
	}
	for _, c := range cases {
		d.Send(c.ev, "")
		got := recv(t, rc.got, c.ev.Name)
		if got.method != http.MethodPost || got.path != "/global" || got.contentType != "application/json" {
			t.Errorf("%s: %s %s (%s), want POST /global (application/json)", c.ev.Name, got.method, got.path, got.contentType)
		}
		if string(got.body) != c.want {
			t.Errorf("%s payload:\n got %s\nwant %s", c.ev.Name, got.body, c.want)
		}
		if ok := recv(t, res.ch, "result"); !ok {
			t.Errorf("%s: OnResult(false) for a delivered event", c.ev.Name)
		}
	}
}

func TestEventsArriveInOrderPerSession(t *testing.T) {
	rc := newReceiver(t, nil)
	res := newResults()
	// The receiver is on loopback, which session URLs reach only when
	// the operator allows it.
	d := newDispatcher(t, res.opts(webhooks.Options{URL: rc.URL + "/global", Portal: testPortal, Workers: 4,
		Guard: allowGuard(t, "127.0.0.0/8")}))

	const n = 40
	names := []string{"Session/Created", "Session/Pending", "Session/Started", "Session/Extended", "Session/Terminate"}
	for i := range n {
		// Two sessions interleaved; the first also has its own analytics_url.
		d.Send(sessionEvent(names[i%len(names)], "demo-w01-s001", "alice", i), rc.URL+"/alice?token=t1")
		d.Send(sessionEvent(names[i%len(names)], "demo-w01-s002", "bob", i), "")
	}
	next := map[string]int{} // path+session → next expected seq
	for range 3 * n {
		got := recv(t, rc.got, "a delivery")
		var m struct {
			Event struct {
				Name    string         `json:"name"`
				Session string         `json:"session"`
				Data    map[string]any `json:"data"`
			} `json:"event"`
		}
		if err := json.Unmarshal(got.body, &m); err != nil {
			t.Fatalf("payload is not JSON: %v: %s", err, got.body)
		}
		if got.path == "/alice" && (got.query != "token=t1" || m.Event.Session != "demo-w01-s001") {
			t.Fatalf("session URL got %s?%s for %s", got.path, got.query, m.Event.Session)
		}
		key := got.path + " " + m.Event.Session
		seq := int(m.Event.Data["seq"].(float64))
		if seq != next[key] {
			t.Fatalf("%s: got event #%d (%s), want #%d: out of order", key, seq, m.Event.Name, next[key])
		}
		if m.Event.Name != names[seq%len(names)] {
			t.Fatalf("%s: event #%d is %s, want %s", key, seq, m.Event.Name, names[seq%len(names)])
		}
		next[key]++
	}
	for _, key := range []string{"/global demo-w01-s001", "/global demo-w01-s002", "/alice demo-w01-s001"} {
		if next[key] != n {
			t.Errorf("%s received %d events, want %d", key, next[key], n)
		}
	}
	if len(next) != 3 {
		t.Errorf("deliveries went to %v, want exactly the three streams", next)
	}
}

func TestRetriesUntilDelivered(t *testing.T) {
	rc := newReceiver(t, func(w http.ResponseWriter, _ *http.Request, n int64) {
		if n <= 2 {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	})
	res := newResults()
	d := newDispatcher(t, res.opts(webhooks.Options{URL: rc.URL, Retries: 3, Backoff: time.Millisecond}))
	d.Send(sessionEvent("Session/Started", "demo-w01-s001", "alice", 0), "")
	if ok := recv(t, res.ch, "result"); !ok {
		t.Fatal("OnResult(false): the third attempt should have succeeded")
	}
	if got := rc.hits.Load(); got != 3 {
		t.Errorf("receiver saw %d attempts, want 3 (fail, fail, succeed)", got)
	}
	// Every attempt carried the same body.
	first := recv(t, rc.got, "attempt 1").body
	for i := 2; i <= 3; i++ {
		if b := recv(t, rc.got, fmt.Sprintf("attempt %d", i)).body; string(b) != string(first) {
			t.Errorf("attempt %d body differs: %s vs %s", i, b, first)
		}
	}
}

func TestGivesUpAfterBoundedRetries(t *testing.T) {
	var healthy atomic.Bool
	rc := newReceiver(t, func(w http.ResponseWriter, _ *http.Request, _ int64) {
		if !healthy.Load() {
			w.WriteHeader(http.StatusInternalServerError)
		}
	})
	res := newResults()
	d := newDispatcher(t, res.opts(webhooks.Options{URL: rc.URL, Retries: 2, Backoff: time.Millisecond}))
	d.Send(sessionEvent("Session/Started", "demo-w01-s001", "alice", 0), "")
	if ok := recv(t, res.ch, "result"); ok {
		t.Fatal("OnResult(true) from a receiver that always fails")
	}
	if got := rc.hits.Load(); got != 3 {
		t.Errorf("receiver saw %d attempts, want 3 (1 + 2 retries)", got)
	}
	// The session's later events are still delivered once the receiver
	// recovers: a failure does not wedge the queue.
	healthy.Store(true)
	d.Send(sessionEvent("Session/Extended", "demo-w01-s001", "alice", 1), "")
	if ok := recv(t, res.ch, "result"); !ok {
		t.Fatal("OnResult(false) after the receiver recovered")
	}
	if got := rc.hits.Load(); got != 4 {
		t.Errorf("receiver saw %d requests, want 4", got)
	}
}

func TestClientErrorsAreNotRetried(t *testing.T) {
	rc := newReceiver(t, func(w http.ResponseWriter, _ *http.Request, _ int64) {
		w.WriteHeader(http.StatusBadRequest)
	})
	res := newResults()
	d := newDispatcher(t, res.opts(webhooks.Options{URL: rc.URL, Retries: 3, Backoff: time.Millisecond}))
	d.Send(sessionEvent("Session/Started", "demo-w01-s001", "alice", 0), "")
	if ok := recv(t, res.ch, "result"); ok {
		t.Fatal("OnResult(true) for a 400")
	}
	if got := rc.hits.Load(); got != 1 {
		t.Errorf("receiver saw %d attempts, want 1: a 400 will not get better", got)
	}
}

// hanging returns a handler that reports each request on entered and then
// blocks until release is closed or the client goes away (reported on
// cutoff).
func hanging(entered, cutoff chan struct{}, release <-chan struct{}) func(http.ResponseWriter, *http.Request, int64) {
	return func(_ http.ResponseWriter, r *http.Request, _ int64) {
		entered <- struct{}{}
		select {
		case <-release:
		case <-r.Context().Done():
			cutoff <- struct{}{}
		}
	}
}

func TestHangingReceiverNeverBlocksSend(t *testing.T) {
	entered, cutoff, release := make(chan struct{}, 16), make(chan struct{}, 16), make(chan struct{})
	rc := newReceiver(t, hanging(entered, cutoff, release))
	res := newResults()
	// One worker and a queue of two, and a timeout far beyond the test:
	// only release can end the first delivery.
	d := newDispatcher(t, res.opts(webhooks.Options{URL: rc.URL, Workers: 1, QueueSize: 2, Timeout: time.Hour, Retries: -1}))

	d.Send(sessionEvent("Session/Created", "demo-w01-s001", "alice", 0), "")
	recv(t, entered, "the receiver to get the first event")
	// The receiver is now blocked on release, which this test holds: every
	// Send below returns while it is blocked.
	for i := 1; i <= 5; i++ {
		d.Send(sessionEvent("Session/Pending", fmt.Sprintf("demo-w01-s%03d", i+1), "bob", i), "")
	}
	if got := rc.hits.Load(); got != 1 {
		t.Fatalf("receiver hits = %d while blocked, want 1", got)
	}
	if got := len(res.ch); got != 0 {
		t.Fatalf("%d results before the receiver answered", got)
	}
	if got := res.drops.Load(); got != 3 {
		t.Errorf("drops = %d, want 3 (queue of 2 full)", got)
	}
	close(release)
	for i := range 3 {
		if ok := recv(t, res.ch, fmt.Sprintf("result %d", i)); !ok {
			t.Errorf("result %d = false after the receiver was released", i)
		}
	}
}

func TestTimeoutCutsOffHangingReceiver(t *testing.T) {
	entered, cutoff, never := make(chan struct{}, 16), make(chan struct{}, 16), make(chan struct{})
	rc := newReceiver(t, hanging(entered, cutoff, never))
	res := newResults()
	d := newDispatcher(t, res.opts(webhooks.Options{URL: rc.URL, Timeout: 50 * time.Millisecond, Retries: 1,
		Backoff: time.Millisecond}))
	d.Send(sessionEvent("Session/Started", "demo-w01-s001", "alice", 0), "")
	// Nothing but the timeout can end these requests.
	if ok := recv(t, res.ch, "result"); ok {
		t.Fatal("OnResult(true) from a receiver that never answers")
	}
	for i := range 2 {
		recv(t, entered, "an attempt")
		recv(t, cutoff, fmt.Sprintf("attempt %d to be cut off", i+1))
	}
}

func TestSlowSessionURLDoesNotDelayGlobal(t *testing.T) {
	entered, cutoff, release := make(chan struct{}, 16), make(chan struct{}, 16), make(chan struct{})
	slow := newReceiver(t, hanging(entered, cutoff, release))
	global := newReceiver(t, nil)
	res := newResults()
	d := newDispatcher(t, res.opts(webhooks.Options{URL: global.URL, Workers: 2, Timeout: time.Hour,
		Guard: allowGuard(t, "127.0.0.0/8")}))
	for i := range 5 {
		d.Send(sessionEvent("Session/Started", "demo-w01-s001", "alice", i), slow.URL)
	}
	recv(t, entered, "the slow receiver")
	for i := range 5 {
		recv(t, global.got, fmt.Sprintf("global delivery %d", i))
	}
	if got := slow.hits.Load(); got != 1 {
		t.Errorf("slow receiver hits = %d while blocked, want 1: its lane must wait", got)
	}
	close(release)
	for i := 1; i < 5; i++ {
		recv(t, entered, fmt.Sprintf("slow delivery %d", i))
	}
}

func TestCloseFlushesQueue(t *testing.T) {
	rc := newReceiver(t, nil)
	res := newResults()
	d, err := webhooks.New(res.opts(webhooks.Options{URL: rc.URL, Workers: 2}))
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	for i := range 10 {
		d.Send(sessionEvent("Session/Started", fmt.Sprintf("demo-w01-s%03d", i%3), "u", i), "")
	}
	if err := d.Close(context.Background()); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if got := rc.hits.Load(); got != 10 {
		t.Errorf("receiver got %d events by the time Close returned, want 10", got)
	}
	d.Send(sessionEvent("Session/Started", "demo-w01-s001", "u", 11), "")
	if got := res.drops.Load(); got != 1 {
		t.Errorf("drops after Close = %d, want 1", got)
	}
	if err := d.Close(context.Background()); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if got := rc.hits.Load(); got != 10 {
		t.Errorf("receiver got %d events, want 10: nothing is sent after Close", got)
	}
}

func TestCloseReturnsWithinContext(t *testing.T) {
	entered, cutoff, never := make(chan struct{}, 16), make(chan struct{}, 16), make(chan struct{})
	rc := newReceiver(t, hanging(entered, cutoff, never))
	res := newResults()
	d, err := webhooks.New(res.opts(webhooks.Options{URL: rc.URL, Workers: 1, Timeout: time.Hour}))
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	for i := range 3 {
		d.Send(sessionEvent("Session/Started", "demo-w01-s001", "u", i), "")
	}
	recv(t, entered, "the first delivery")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	// The in-flight request would last an hour; Close must not wait for it.
	if err := d.Close(ctx); err != context.Canceled {
		t.Fatalf("Close = %v, want context.Canceled", err)
	}
	recv(t, cutoff, "the in-flight request to be cancelled")
	if ok := recv(t, res.ch, "result of the in-flight event"); ok {
		t.Error("the cancelled delivery was reported as delivered")
	}
	if got := res.drops.Load(); got != 2 {
		t.Errorf("drops = %d, want the 2 events still queued", got)
	}
	if got := rc.hits.Load(); got != 1 {
		t.Errorf("receiver hits = %d, want 1", got)
	}
}

func TestURLValidation(t *testing.T) {
	for _, bad := range []string{"ftp://example.com/hook", "/relative/hook", "http://", "https:///path",
		"javascript:alert(1)", "://nope", "https://user:secret@example.com/hook", "example.com/hook"} {
		if _, err := webhooks.New(webhooks.Options{URL: bad}); err == nil {
			t.Errorf("New accepted %q", bad)
		} else if strings.Contains(err.Error(), "secret") {
			t.Errorf("error for %q leaks the credentials: %v", bad, err)
		}
	}
	for _, good := range []string{"", "http://127.0.0.1:9000/hook", "https://analytics.example.com/e?key=abc"} {
		d, err := webhooks.New(webhooks.Options{URL: good})
		if err != nil {
			t.Errorf("New(%q): %v", good, err)
			continue
		}
		if err := d.Close(context.Background()); err != nil {
			t.Errorf("Close: %v", err)
		}
	}

	// An invalid per-session URL is reported as a failure and skipped; the
	// global webhook still gets the event.
	rc := newReceiver(t, nil)
	res := newResults()
	d := newDispatcher(t, res.opts(webhooks.Options{URL: rc.URL}))
	d.Send(sessionEvent("Session/Started", "demo-w01-s001", "alice", 0), "file:///etc/passwd")
	if ok := recv(t, res.ch, "the invalid URL's result"); ok {
		t.Error("an invalid session URL was reported as delivered")
	}
	if ok := recv(t, res.ch, "the global result"); !ok {
		t.Error("the global delivery failed")
	}
	if got := recv(t, rc.got, "the global delivery"); got.path != "/" {
		t.Errorf("delivered to %q", got.path)
	}
}

func TestNoTargetsSendsNothing(t *testing.T) {
	res := newResults()
	d := newDispatcher(t, res.opts(webhooks.Options{}))
	d.Send(sessionEvent("Session/Started", "demo-w01-s001", "alice", 0), "")
	if err := d.Close(context.Background()); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if len(res.ch) != 0 || res.drops.Load() != 0 {
		t.Errorf("results %d, drops %d for an event with nowhere to go", len(res.ch), res.drops.Load())
	}
	var nilD *webhooks.Dispatcher
	nilD.Send(sessionEvent("Session/Started", "demo-w01-s001", "alice", 0), "http://127.0.0.1:1/")
	if err := nilD.Close(context.Background()); err != nil {
		t.Errorf("nil Close: %v", err)
	}
}

// TestConcurrentSenders checks, under -race, that Send from many
// goroutines (the sessions service emits from several) delivers each
// sender's events in its order.
func TestConcurrentSenders(t *testing.T) {
	rc := newReceiver(t, nil)
	d := newDispatcher(t, webhooks.Options{URL: rc.URL, Workers: 3})
	const senders, each = 8, 25
	var wg sync.WaitGroup
	for s := range senders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				d.Send(sessionEvent("Session/Started", fmt.Sprintf("demo-w01-s%03d", s), "u", i), "")
			}
		}()
	}
	wg.Wait()
	next := map[string]int{}
	for range senders * each {
		var m struct {
			Event struct {
				Session string         `json:"session"`
				Data    map[string]any `json:"data"`
			} `json:"event"`
		}
		if err := json.Unmarshal(recv(t, rc.got, "a delivery").body, &m); err != nil {
			t.Fatal(err)
		}
		seq := int(m.Event.Data["seq"].(float64))
		if seq != next[m.Event.Session] {
			t.Fatalf("%s: got #%d, want #%d", m.Event.Session, seq, next[m.Event.Session])
		}
		next[m.Event.Session]++
	}
}

func TestHoldUntilPortalKnown(t *testing.T) {
	rc := newReceiver(t, nil)
	res := newResults()
	d := newDispatcher(t, res.opts(webhooks.Options{URL: rc.URL, Hold: true, Portal: webhooks.Portal{Name: "demo"}}))
	// Events emitted while the service starts, before the uid is known.
	d.Send(sessions.Event{Name: "Session/Created", Time: t0, Session: "demo-w01-s001", Environment: "demo-w01", Workshop: "lab"}, "")
	d.Send(sessions.Event{Name: "Environment/Created", Time: t0, Environment: "demo-w01", Workshop: "lab"}, "")
	d.SetPortal(testPortal)
	for range 2 {
		var m struct {
			Portal map[string]any `json:"portal"`
		}
		if err := json.Unmarshal(recv(t, rc.got, "a held event").body, &m); err != nil {
			t.Fatal(err)
		}
		// Built after SetPortal: the uid is there.
		if m.Portal["uid"] != testPortal.UID || m.Portal["generation"] != float64(1) || m.Portal["url"] != testPortal.URL {
			t.Errorf("held event's portal = %v, want the one given to SetPortal", m.Portal)
		}
	}

	// Close delivers what a still-held dispatcher has queued.
	rc2 := newReceiver(t, nil)
	held, err := webhooks.New(webhooks.Options{URL: rc2.URL, Hold: true, Portal: testPortal})
	if err != nil {
		t.Fatal(err)
	}
	held.Send(sessionEvent("Session/Started", "demo-w01-s001", "alice", 0), "")
	if err := held.Close(context.Background()); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if got := rc2.hits.Load(); got != 1 {
		t.Errorf("held dispatcher delivered %d events on Close, want 1", got)
	}
}

func TestFailuresAreLoggedWithoutSecrets(t *testing.T) {
	rc := newReceiver(t, func(w http.ResponseWriter, _ *http.Request, _ int64) {
		w.WriteHeader(http.StatusBadGateway)
	})
	core, logs := observer.New(zap.DebugLevel)
	res := newResults()
	d := newDispatcher(t, res.opts(webhooks.Options{URL: rc.URL + "/hook?key=SECRET-KEY", Retries: 1,
		Backoff: time.Millisecond, Logger: zap.New(core)}))
	d.Send(sessionEvent("Session/Started", "demo-w01-s001", "alice", 0), "")
	if ok := recv(t, res.ch, "result"); ok {
		t.Fatal("OnResult(true) from a failing receiver")
	}
	entries := logs.FilterMessage("analytics webhook: delivery failed").All()
	if len(entries) != 1 {
		t.Fatalf("%d failure log entries, want 1", len(entries))
	}
	fields := entries[0].ContextMap()
	if fields["target"] != rc.URL+"/hook" || fields["session"] != "demo-w01-s001" || fields["attempts"] != int64(2) {
		t.Errorf("failure log fields = %v", fields)
	}
	// A receiver that cannot be reached: the transport's error quotes the
	// URL, query included, unless it is cut away.
	gone := httptest.NewServer(http.NotFoundHandler())
	gone.Close()
	d2 := newDispatcher(t, res.opts(webhooks.Options{URL: gone.URL + "/hook?key=SECRET-KEY", Retries: -1,
		Logger: zap.New(core)}))
	d2.Send(sessionEvent("Session/Started", "demo-w01-s001", "alice", 0), "")
	if ok := recv(t, res.ch, "result"); ok {
		t.Fatal("OnResult(true) from a closed server")
	}
	if n := len(logs.FilterMessage("analytics webhook: delivery failed").All()); n != 2 {
		t.Fatalf("%d failure log entries, want 2", n)
	}
	for _, e := range logs.All() {
		if strings.Contains(fmt.Sprint(e.ContextMap()), "SECRET") {
			t.Errorf("log entry %q leaks the webhook's query: %v", e.Message, e.ContextMap())
		}
	}
}
