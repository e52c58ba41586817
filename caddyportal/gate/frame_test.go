package gate

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/caddyportal/caddyportal/caddyportal/routes"
)

// TestFrame: a framed workshop's entry page, loaded as a document, is the
// frame; loaded as a frame it is the dashboard; the bar answers only a
// browser that holds the session; Extend takes a same-origin POST only;
// a workshop without the frame is never framed.
func TestFrame(t *testing.T) {
	dash := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "dashboard") }))
	t.Cleanup(dash.Close)
	framed := true
	g, svc, name, srv := gateSetupWith(t, strings.TrimPrefix(dash.URL, "http://"), Options{Framed: func(string) bool { return framed }})
	cookie, _ := activate(t, g, svc, name)
	do := func(method, path string, withCookie bool, hdr ...string) (int, string) {
		req, _ := http.NewRequest(method, srv.URL+path, nil)
		if withCookie {
			req.AddCookie(cookie)
		}
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Set(hdr[i], hdr[i+1])
		}
		res, err := (&http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res.StatusCode, string(b)
	}
	entry := routes.SessionPath(name)
	if st, body := do("GET", entry, true, "Sec-Fetch-Dest", "document"); st != 200 || !strings.Contains(body, `<iframe id="dashboard" src="`+entry+`"`) {
		t.Fatalf("entry as a document: %d %.300s", st, body)
	}
	if st, body := do("GET", entry, true, "Sec-Fetch-Dest", "iframe"); st != 200 || body != "dashboard" {
		t.Fatalf("entry as a frame: %d %.300s", st, body)
	}
	if st, body := do("GET", entry+"portal-frame/bar", true); st != 200 || !strings.Contains(body, `id="end"`) {
		t.Fatalf("bar: %d %.300s", st, body)
	}
	if st, body := do("GET", entry+"portal-frame/bar", false); st != http.StatusForbidden || strings.Contains(body, `id="end"`) {
		t.Fatalf("bar without the cookie: %d %.300s", st, body)
	}
	if st, _ := do("POST", entry+"portal-frame/extend", true, "Sec-Fetch-Site", "cross-site", "Sec-Fetch-Mode", "navigate"); st != http.StatusForbidden {
		t.Errorf("a cross-site Extend: %d", st)
	}
	if st, _ := do("GET", entry+"portal-frame/extend", true); st != http.StatusForbidden {
		t.Errorf("a GET Extend: %d", st)
	}
	if st, _ := do("POST", entry+"portal-frame/end", true, "Sec-Fetch-Site", "same-origin", "Sec-Fetch-Mode", "navigate"); st != http.StatusForbidden {
		t.Errorf("an End without the form token: %d", st)
	}
	if s, _ := svc.Get(context.Background(), name); s.State.Ending() {
		t.Fatal("an End without the form token ended the session")
	}
	// The learner's bar shows a staff member connected while the grant
	// lasts.
	if _, _, err := svc.GrantStaff(context.Background(), name, "admin", "192.0.2.1", time.Hour); err != nil {
		t.Fatal(err)
	}
	if st, body := do("GET", entry+"portal-frame/bar", true); st != 200 || !strings.Contains(body, "Staff connected: admin") {
		t.Fatalf("bar with staff connected: %d %.600s", st, body)
	}
	framed = false
	if st, body := do("GET", entry, true, "Sec-Fetch-Dest", "document"); st != 200 || body != "dashboard" {
		t.Fatalf("an unframed workshop's entry: %d %.300s", st, body)
	}
	framed = true
	if _, err := svc.Terminate(context.Background(), name, "deleted"); err != nil {
		t.Fatal(err)
	}
	if st, body := do("GET", entry+"portal-frame/bar", true); st != 200 || !strings.Contains(body, "This session has ended") {
		t.Fatalf("bar of an ended session: %d %.300s", st, body)
	}
}

func TestHumanLeft(t *testing.T) {
	for d, want := range map[time.Duration]string{-time.Second: "0:00", 59 * time.Second: "0:59", 52*time.Minute + 7*time.Second: "52:07",
		time.Hour + 5*time.Minute: "1:05:00"} {
		if got := humanLeft(d); got != want {
			t.Errorf("humanLeft(%v) = %q, want %q", d, got, want)
		}
	}
}

// TestFrameSaysAnIdleSessionEnded: a session that ended by itself (here
// idle past its orphaned timeout) has a bar that says so and leads back.
func TestFrameSaysAnIdleSessionEnded(t *testing.T) {
	g, svc, clk, name, srv := gateSetupClock(t, "127.0.0.1:1", Options{Framed: func(string) bool { return true }})
	cookie, _ := activate(t, g, svc, name)
	clk.Advance(6 * time.Minute)
	// The idle timeout is applied by the service's reconcile pass (every
	// few seconds in a running portal).
	if err := svc.Reconcile(context.Background()); err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest("GET", srv.URL+routes.SessionPath(name)+"portal-frame/bar", nil)
	req.AddCookie(cookie)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	if res.StatusCode != 200 || !strings.Contains(string(body), "This session has ended: it was left unused for too long.") || !strings.Contains(string(body), `id="back"`) {
		t.Fatalf("bar of an idle session: %d %.600s", res.StatusCode, body)
	}
}
