// Package chromium starts the headless Chromium that the browser tests
// drive. Only tests import it.
package chromium

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/caddyportal/caddyportal/internal/procfs"
)

// ChromiumPath is where the browser tests expect Chromium: the Debian
// package, which .ci/run installs.
const ChromiumPath = "/usr/bin/chromium"

// startAttempts is how many times New tries to start Chromium. On a loaded
// machine a start can fail ("chrome failed to start") although nothing is
// wrong; a fresh process with a fresh profile then starts fine.
const startAttempts = 3

// startTimeout is how long one start may wait for Chromium's DevTools
// address. chromedp's default of 20 s was missed on busy CI machines.
const startTimeout = 2 * time.Minute

// New starts a headless Chromium with a window of width×height for one test
// and returns its browser context. Everything ends with the test; limit
// bounds a hung browser once it runs and is not a timed assertion (the
// start-up has its own, longer bound and retries). A missing Chromium
// fails the test with the command that installs it. extra adds options,
// such as flags, to the defaults.
func New(t testing.TB, width, height int, limit time.Duration, extra ...chromedp.ExecAllocatorOption) context.Context {
	t.Helper()
	if _, err := os.Stat(ChromiumPath); err != nil {
		t.Fatalf("browser test needs Chromium at %s (%v): install it with `apt-get install -y chromium chromium-driver` (.ci/run does this)", ChromiumPath, err)
	}
	var errs []error
	for attempt := 1; attempt <= startAttempts; attempt++ {
		bctx, stop, err := start(t, width, height, limit, extra)
		if err == nil {
			t.Cleanup(stop)
			return bctx
		}
		stop()
		errs = append(errs, err)
		t.Logf("Chromium start %d of %d failed: %v", attempt, startAttempts, err)
		time.Sleep(time.Duration(attempt) * time.Second)
	}
	t.Fatalf("Chromium did not start in %d attempts: %v", startAttempts, errors.Join(errs...))
	return nil
}

// start launches one Chromium and waits until it answers. stop ends it and
// must be called either way.
func start(t testing.TB, width, height int, limit time.Duration, extra []chromedp.ExecAllocatorOption) (context.Context, func(), error) {
	profile, tmp := profileDir(t)
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
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.UserDataDir(profile),
		// Chromium makes a directory for its singleton socket in TMPDIR
		// and removes it only on a clean exit; the allocator kills it,
		// so in /tmp one was left behind per browser test.
		chromedp.Env("TMPDIR=" + tmp),
		chromedp.WindowSize(width, height),
		chromedp.WSURLReadTimeout(startTimeout),
	}
	opts = append(opts, extra...)
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout+limit)
	actx, cancelAlloc := chromedp.NewExecAllocator(ctx, opts...)
	bctx, cancelBrowser := chromedp.NewContext(actx, chromedp.WithLogf(t.Logf))
	stop := func() { cancelBrowser(); cancelAlloc(); cancel() }
	// Run with no actions starts the browser and opens its first tab.
	if err := chromedp.Run(bctx); err != nil {
		return nil, stop, err
	}
	return bctx, stop, nil
}

// profileDir is a Chromium profile directory removed after the test, with
// the TMPDIR its processes get inside it. It is neither t.TempDir nor the
// allocator's own temporary profile: Chromium's helper processes can still
// write into it for a moment after the browser exits, which failed
// TempDir's cleanup, made the allocator's removal leave directories behind,
// and on a loaded machine recreated the profile after a removal that had
// succeeded. So the cleanup first kills every process that still carries
// this TMPDIR (each of Chromium's processes inherits it), and removes the
// directory once none is left.
func profileDir(t testing.TB) (dir, tmp string) {
	t.Helper()
	dir, err := os.MkdirTemp("", "portal-chromium-")
	if err != nil {
		t.Fatal(err)
	}
	tmp = filepath.Join(dir, "tmp")
	t.Cleanup(func() {
		for range 50 {
			if killHolders(tmp) == 0 && os.RemoveAll(dir) == nil {
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
		t.Logf("leaving Chromium profile %s behind", dir)
	})
	if err := os.Mkdir(tmp, 0o700); err != nil {
		t.Fatal(err)
	}
	return dir, tmp
}

// killHolders sends SIGKILL to every process whose TMPDIR is tmp and says
// how many there were (a zombie has no environment left and is not one).
func killHolders(tmp string) int {
	pids, err := procfs.PIDs()
	if err != nil {
		return 0
	}
	n := 0
	var buf []byte
	for _, pid := range pids {
		var v string
		if v, buf = procfs.Env(pid, "TMPDIR", buf); v == tmp {
			_ = syscall.Kill(pid, syscall.SIGKILL)
			n++
		}
	}
	return n
}

// ArtifactDir is where screenshots go, for a human to look at after a run:
// $ARTIFACTS_DIR if set, else the repository's testdata/artifacts
// (gitignored), wherever the test runs from.
func ArtifactDir(t testing.TB) string {
	t.Helper()
	dir := os.Getenv("ARTIFACTS_DIR")
	if dir == "" {
		// This file is internal/e2etest/chromium/chromium.go in the
		// repository; tests are always built from source.
		_, file, _, ok := runtime.Caller(0)
		if !ok {
			t.Fatal("chromium: cannot locate the repository for the artefact directory")
		}
		dir = filepath.Join(filepath.Dir(file), "..", "..", "..", "testdata", "artifacts")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// KeepScreenshot checks that png is a PNG image and writes it into
// ArtifactDir as file.
func KeepScreenshot(t testing.TB, png []byte, file string) {
	t.Helper()
	if len(png) < 8 || string(png[1:4]) != "PNG" {
		t.Fatalf("screenshot %s is not a PNG (%d bytes)", file, len(png))
	}
	path := filepath.Join(ArtifactDir(t), file)
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s", path)
}
