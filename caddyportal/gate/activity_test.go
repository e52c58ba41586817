package gate

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/caddyportal/caddyportal/caddyportal/config"
	"github.com/caddyportal/caddyportal/caddyportal/lifecycle"
	"github.com/caddyportal/caddyportal/caddyportal/sessions"
	"github.com/caddyportal/caddyportal/caddyportal/store/badgerstore"
	"github.com/caddyportal/caddyportal/caddyportal/store/storetest"
)

// activitySetup runs a service on an in-memory store with a settable clock
// and returns an activated session of a workshop with a 5m orphaned timeout.
func activitySetup(t *testing.T) (*sessions.Service, *storetest.Clock, string) {
	t.Helper()
	clk := storetest.NewClock(time.Now().UTC().Truncate(time.Second))
	st, err := badgerstore.Open(badgerstore.Options{InMemory: true, Now: clk.Now, SweepInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	capacity := 2
	cfg := config.Portal{Name: "act", Robot: config.Credentials{Password: "pw"},
		Client: config.Client{ID: "c", Secret: "s"},
		Workshops: []config.Workshop{{Name: "lab", Capacity: &capacity,
			Orphaned: config.Duration(5 * time.Minute), Upstreams: []string{"127.0.0.1:1"}}}}
	svc, err := sessions.New(context.Background(), st, cfg, sessions.Options{Now: clk.Now, ReconcileInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(svc.Close)
	env := svc.Environments()[0].Name
	res, err := svc.RequestSession(context.Background(), sessions.Request{Environment: env, User: "learner"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Activate(context.Background(), res.Session.Name, res.Token); err != nil {
		t.Fatal(err)
	}
	return svc, clk, res.Session.Name
}

func lastActivity(t *testing.T, svc *sessions.Service, name string) time.Time {
	t.Helper()
	sess, err := svc.Get(context.Background(), name)
	if err != nil {
		t.Fatal(err)
	}
	return sess.LastActivity
}

// TestActivityCountsWebSocketMessages drives a real WebSocket through the
// marking writer: an open but silent socket does not keep a session alive,
// a message from the browser does, and a silent socket left open is ended
// as orphaned.
func TestActivityCountsWebSocketMessages(t *testing.T) {
	svc, clk, name := activitySetup(t)
	act := newActivity(svc)
	// The gate passes the record's last activity, as here: a zero time
	// would make the opening request touch the session from a goroutine
	// that a loaded machine can run after the clock below has moved on.
	activated := lastActivity(t, svc, name)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		use, done := act.stream(name, activated)
		defer done()
		c, err := websocket.Accept(observeStream(w, r, use), r, nil)
		if err != nil {
			return
		}
		defer c.CloseNow()
		for {
			typ, msg, err := c.Read(r.Context())
			if err != nil {
				return
			}
			if err := c.Write(r.Context(), typ, msg); err != nil {
				return
			}
		}
	}))
	t.Cleanup(srv.Close)

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ws, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(srv.URL, "http"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.CloseNow()

	clk.Advance(2 * time.Minute)
	act.pass(ctx)
	if got := lastActivity(t, svc, name); !got.Equal(activated) {
		t.Fatalf("a silent open WebSocket touched the session: last activity %v, want %v", got, activated)
	}

	if err := ws.Write(ctx, websocket.MessageText, []byte("ls -l")); err != nil {
		t.Fatal(err)
	}
	if _, msg, err := ws.Read(ctx); err != nil || string(msg) != "ls -l" {
		t.Fatalf("echo = %q, %v", msg, err)
	}
	act.pass(ctx)
	typed := clk.Now()
	if got := lastActivity(t, svc, name); !got.Equal(typed) {
		t.Fatalf("after a browser message last activity is %v, want %v", got, typed)
	}

	// Nothing typed for longer than the orphaned timeout, socket still open.
	clk.Advance(6 * time.Minute)
	act.pass(ctx)
	if err := svc.Reconcile(ctx); err != nil {
		t.Fatal(err)
	}
	sess, err := svc.Get(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	if st, reason := sess.Effective(clk.Now()); st == lifecycle.Running || reason != "orphaned" {
		t.Fatalf("idle session with a silent socket: state %s reason %q, want stopping/stopped as orphaned", st, reason)
	}
}

// TestActivityCountsStreamBody covers the HTTP/2 extended CONNECT direction,
// where browser messages arrive as the request body.
func TestActivityCountsStreamBody(t *testing.T) {
	svc, _, name := activitySetup(t)
	act := newActivity(svc)
	uses := make(chan bool, 2)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		use, done := act.stream(name, time.Time{})
		defer done()
		observeStream(w, r, use)
		before := use.traffic.Load()
		buf := make([]byte, 64)
		for {
			if _, err := r.Body.Read(buf); err != nil {
				break
			}
		}
		uses <- before
		uses <- use.traffic.Load()
	}))
	t.Cleanup(srv.Close)
	resp, err := http.Post(srv.URL, "application/octet-stream", strings.NewReader("keystrokes"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if before, after := <-uses, <-uses; before || !after {
		t.Fatalf("traffic flag before/after reading the body = %v/%v, want false/true", before, after)
	}
}

// TestActivityPlainRequests checks that a dashboard request touches the
// session, and that a burst of them makes one write, not one per request.
func TestActivityPlainRequests(t *testing.T) {
	svc, clk, name := activitySetup(t)
	act := newActivity(svc)
	clk.Advance(2 * time.Minute)
	want := clk.Now()
	for range 50 {
		act.request(name, time.Time{})
	}
	deadline := time.Now().Add(time.Minute)
	for !lastActivity(t, svc, name).Equal(want) {
		if time.Now().After(deadline) {
			t.Fatalf("a dashboard request did not touch the session: last activity %v, want %v", lastActivity(t, svc, name), want)
		}
		time.Sleep(10 * time.Millisecond)
	}
	act.mu.Lock()
	marks := len(act.last)
	act.mu.Unlock()
	if marks != 1 {
		t.Fatalf("%d touch marks for one session, want 1", marks)
	}
}

// TestActivitySkipsRecentlyRecorded: a request soon after the record last
// showed activity (the activation) writes nothing; once touchEvery has
// passed since (and the service's minute), it touches the session.
func TestActivitySkipsRecentlyRecorded(t *testing.T) {
	svc, clk, name := activitySetup(t)
	act := newActivity(svc)
	activated := lastActivity(t, svc, name)
	clk.Advance(touchEvery / 2)
	act.request(name, activated)
	act.mu.Lock()
	mark := act.last[name]
	act.mu.Unlock()
	if !mark.Equal(activated) {
		t.Fatalf("a request %s after the activation was marked as a touch at %v (activation %v)", touchEvery/2, mark, activated)
	}
	clk.Advance(time.Minute) // the service writes at most once a minute
	want := clk.Now()
	act.request(name, activated)
	deadline := time.Now().Add(time.Minute)
	for !lastActivity(t, svc, name).Equal(want) {
		if time.Now().After(deadline) {
			t.Fatalf("a request %s after the activation did not touch the session: last activity %v, want %v", want.Sub(activated), lastActivity(t, svc, name), want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
