package e2e

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/caddyportal/caddyportal/internal/e2etest"
	"github.com/caddyportal/caddyportal/internal/e2etest/chromium"
	"github.com/caddyportal/caddyportal/internal/e2etest/echo"
)

// TestBrowserDashboard drives a real headless Chromium through the learner's
// path: the activation link on the portal, the redirect with the dashboard
// cookie, the dashboard page served by the upstream through the gate, and the
// page's own script talking over a WebSocket through the gate. It checks
// what the browser rendered and saves a screenshot.
func TestBrowserDashboard(t *testing.T) {
	up := echo.Start(t, "alpha")
	p := startPortal(t, t.TempDir(), gateBody("", up.Addr))
	tok := p.Token(e2etest.RobotUser, e2etest.RobotPass)
	m := p.Request(tok, "demo-w01", "user=browser&index_url=https://hub.example.com/").JSON(t)
	name := m["name"].(string)
	link := p.Base + m["url"].(string)

	bctx := browser(t)

	var location, heading, echoed, status, jsCookies string
	var png []byte
	err := chromedp.Run(bctx,
		chromedp.Navigate(link),
		// The page's script adds #echoed once the echo came back.
		chromedp.WaitReady("#echoed", chromedp.ByQuery),
		chromedp.Location(&location),
		chromedp.Text("h1", &heading, chromedp.ByQuery),
		chromedp.Text("#echo", &echoed, chromedp.ByQuery),
		chromedp.Text("#status", &status, chromedp.ByQuery),
		chromedp.Evaluate(`document.cookie`, &jsCookies),
		chromedp.CaptureScreenshot(&png),
	)
	if err != nil {
		t.Fatalf("browser: %v", err)
	}
	if want := p.Base + "/workshops/session/" + name + "/"; location != want {
		t.Fatalf("browser ended at %q, want %q", location, want)
	}
	if heading != "Workshop dashboard alpha" || echoed != "echo: hello through the gate" || status != "echoed" {
		t.Fatalf("rendered: h1 %q, echo %q, status %q", heading, echoed, status)
	}
	// HttpOnly: the dashboard's scripts cannot read the portal cookie.
	if strings.Contains(jsCookies, "portal-") {
		t.Fatalf("page script can read the portal cookie: %q", jsCookies)
	}
	if got := up.LastUpgrade().Get("X-Portal-User"); got != "browser" {
		t.Fatalf("upstream WebSocket saw X-Portal-User %q", got)
	}
	chromium.KeepScreenshot(t, png, "browser-dashboard.png")
}

// browser starts a headless Chromium for one test and returns its context.
func browser(t *testing.T) context.Context {
	t.Helper()
	return chromium.New(t, 1024, 640, 60*time.Second)
}
