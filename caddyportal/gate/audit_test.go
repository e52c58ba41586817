package gate

import (
	"context"
	"io"
	"time"

	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/coder/websocket"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/caddyportal/caddyportal/caddyportal/routes"
)

// TestAccessAudit: the access log records a session's first request from
// each client address (not every request), and every refusal with why.
func TestAccessAudit(t *testing.T) {
	dash := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "dashboard") }))
	t.Cleanup(dash.Close)
	core, logs := observer.New(zap.InfoLevel)
	client := "192.0.2.1"
	g, svc, name, srv := gateSetupWith(t, strings.TrimPrefix(dash.URL, "http://"), Options{Logger: zap.New(core),
		ClientIP: func(*http.Request) string { return client }})
	cookie, sess := activate(t, g, svc, name)
	get := func(withCookie bool) int {
		req, _ := http.NewRequest("GET", srv.URL+routes.SessionPath(name), nil)
		if withCookie {
			req.AddCookie(cookie)
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		return res.StatusCode
	}
	events := func(event string) []observer.LoggedEntry {
		return logs.FilterLoggerName("access").FilterField(zap.String("event", event)).All()
	}
	for range 3 {
		get(true)
	}
	client = "198.51.100.7"
	get(true)
	if got := events(auditNewAddress); len(got) != 2 || got[0].ContextMap()["client"] != "192.0.2.1" ||
		got[1].ContextMap()["client"] != "198.51.100.7" || got[0].ContextMap()["user"] != sess.Owner {
		t.Fatalf("new-address events %v, want one per address", got)
	}
	if status := get(false); status != http.StatusForbidden {
		t.Fatalf("without the cookie: %d", status)
	}
	refused := events(auditRefused)
	if len(refused) != 1 || refused[0].ContextMap()["reason"] != "no valid cookie for the session" ||
		refused[0].ContextMap()["session"] != name || refused[0].ContextMap()["status"] != int64(http.StatusForbidden) {
		t.Fatalf("refusal events %v", refused)
	}
	if _, err := svc.Terminate(context.Background(), name, "deleted"); err != nil {
		t.Fatal(err)
	}
	get(true)
	if refused := events(auditRefused); len(refused) != 2 || !strings.Contains(refused[1].ContextMap()["reason"].(string), "the session ended") {
		t.Fatalf("refusal of an ended session: %v", refused)
	}
}

// TestAccessAuditWebSocket: a WebSocket through the gate is logged when it
// opens and when it closes, with how long it was open.
func TestAccessAuditWebSocket(t *testing.T) {
	dash := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		defer c.CloseNow()
		_, msg, err := c.Read(r.Context())
		if err == nil {
			_ = c.Write(r.Context(), websocket.MessageText, msg)
		}
		_, _, _ = c.Read(r.Context())
	}))
	t.Cleanup(dash.Close)
	core, logs := observer.New(zap.InfoLevel)
	g, svc, name, srv := gateSetupWith(t, strings.TrimPrefix(dash.URL, "http://"), Options{Logger: zap.New(core)})
	cookie, _ := activate(t, g, svc, name)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ws, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(srv.URL, "http")+routes.SessionPath(name)+"ws",
		&websocket.DialOptions{HTTPHeader: http.Header{"Cookie": {cookie.Name + "=" + cookie.Value}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := ws.Write(ctx, websocket.MessageText, []byte("hi")); err != nil {
		t.Fatal(err)
	}
	if _, _, err := ws.Read(ctx); err != nil {
		t.Fatal(err)
	}
	// A filter is a snapshot of the logs so far: filter again each time.
	access := func() *observer.ObservedLogs { return logs.FilterLoggerName("access") }
	if got := access().FilterField(zap.String("event", auditWSOpened)).All(); len(got) != 1 || got[0].ContextMap()["session"] != name {
		t.Fatalf("opened events: %v", got)
	}
	ws.Close(websocket.StatusNormalClosure, "")
	for range 500 { // the gate logs the close once the proxy returns
		if len(access().FilterField(zap.String("event", auditWSClosed)).All()) == 1 {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("no closed event; access log: %v", access().All())
}
