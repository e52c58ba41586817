package caddyportal_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// chromiumPath is where the browser tests expect Chromium (.ci/run
// installs the Debian package).
const chromiumPath = "/usr/bin/chromium"

// artifactDir collects files for a human to look at after a run: the
// repository's testdata/artifacts (gitignored).
const artifactDir = "../testdata/artifacts"

// TestBrowserDashboard drives a real headless Chromium through the learner's
// path: the activation link on the portal, the redirect with the dashboard
// cookie, the dashboard page served by the upstream through the gate, and the
// page's own script talking over a WebSocket through the gate. It checks
// what the browser rendered and saves a screenshot.
func TestBrowserDashboard(t *testing.T) {
	if _, err := os.Stat(chromiumPath); err != nil {
		t.Fatalf("browser test needs Chromium at %s (%v): install it with `apt-get install -y chromium chromium-driver` (.ci/run does this)", chromiumPath, err)
	}
	up := startUpstream(t, "alpha")
	p := startPortal(t, t.TempDir(), gateBody("", up.addr))
	tok := p.token(robotUser, robotPass)
	m := p.request(tok, "demo-w01", "user=browser&index_url=https://hub.example.com/").json(t)
	name := m["name"].(string)
	link := p.base + m["url"].(string)

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
	if want := p.base + "/workshops/session/" + name + "/"; location != want {
		t.Fatalf("browser ended at %q, want %q", location, want)
	}
	if heading != "Workshop dashboard alpha" || echoed != "echo: hello through the gate" || status != "echoed" {
		t.Fatalf("rendered: h1 %q, echo %q, status %q", heading, echoed, status)
	}
	// HttpOnly: the dashboard's scripts cannot read the portal cookie.
	if strings.Contains(jsCookies, "portal-") {
		t.Fatalf("page script can read the portal cookie: %q", jsCookies)
	}
	if got := up.lastWSHeader().Get("X-Portal-User"); got != "browser" {
		t.Fatalf("upstream WebSocket saw X-Portal-User %q", got)
	}
	keepScreenshot(t, png, "browser-dashboard.png")
}

// browser starts a headless Chromium for one test and returns its context.
func browser(t *testing.T) context.Context {
	t.Helper()
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromiumPath),
		chromedp.Flag("headless", true),
		chromedp.Flag("no-sandbox", true),
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(profileDir(t)),
		chromedp.WindowSize(1024, 640),
	}
	// A bound on a hung browser, not a timed assertion.
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	actx, cancelAlloc := chromedp.NewExecAllocator(ctx, opts...)
	t.Cleanup(cancelAlloc)
	bctx, cancelBrowser := chromedp.NewContext(actx, chromedp.WithLogf(t.Logf))
	t.Cleanup(cancelBrowser)
	return bctx
}

// profileDir is a Chromium profile directory removed after the test. It is
// not t.TempDir: Chromium's helper processes can still write into it for a
// moment after the browser exits, and a directory that is not empty at
// that instant fails TempDir's cleanup, not anything under test.
func profileDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "portal-chromium-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for range 50 {
			if os.RemoveAll(dir) == nil {
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
		t.Logf("leaving Chromium profile %s behind", dir)
	})
	return dir
}

// keepScreenshot writes png into the artefact directory.
func keepScreenshot(t *testing.T, png []byte, name string) {
	t.Helper()
	if len(png) < 8 || string(png[1:4]) != "PNG" {
		t.Fatalf("screenshot %s is not a PNG (%d bytes)", name, len(png))
	}
	if err := os.MkdirAll(artifactDir, 0o755); err != nil {
		t.Fatal(err)
	}
	shot := filepath.Join(artifactDir, name)
	if err := os.WriteFile(shot, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s", shot)
}
