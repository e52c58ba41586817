// Package browsertest starts the headless Chromium that the browser tests
// drive. Only tests import it.
package browsertest

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// ChromiumPath is where the browser tests expect Chromium: the Debian
// package, which .ci/run installs.
const ChromiumPath = "/usr/bin/chromium"

// New starts a headless Chromium with a window of width×height for one test
// and returns its browser context. Everything ends with the test; limit
// bounds a hung browser and is not a timed assertion. A missing Chromium
// fails the test with the command that installs it.
func New(t testing.TB, width, height int, limit time.Duration) context.Context {
	t.Helper()
	if _, err := os.Stat(ChromiumPath); err != nil {
		t.Fatalf("browser test needs Chromium at %s (%v): install it with `apt-get install -y chromium chromium-driver` (.ci/run does this)", ChromiumPath, err)
	}
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(ChromiumPath),
		chromedp.Flag("headless", true),
		chromedp.Flag("no-sandbox", true),
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(profileDir(t)),
		chromedp.WindowSize(width, height),
	}
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	t.Cleanup(cancel)
	actx, cancelAlloc := chromedp.NewExecAllocator(ctx, opts...)
	t.Cleanup(cancelAlloc)
	bctx, cancelBrowser := chromedp.NewContext(actx, chromedp.WithLogf(t.Logf))
	t.Cleanup(cancelBrowser)
	return bctx
}

// profileDir is a Chromium profile directory removed after the test. It is
// neither t.TempDir nor the allocator's own temporary profile: Chromium's
// helper processes can still write into it for a moment after the browser
// exits, which failed TempDir's cleanup and made the allocator's removal
// leave directories behind. Removal is retried for a few seconds instead.
func profileDir(t testing.TB) string {
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
