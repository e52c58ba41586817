package e2e

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/caddyportal/caddyportal/internal/e2etest"
	"github.com/caddyportal/caddyportal/internal/e2etest/chromium"
)

// shellinabox is Debian's Shell In A Box daemon, a web terminal (a bash in
// the browser, over HTTP requests rather than a WebSocket). Debian's
// Jupyter Notebook terminals would use a WebSocket, but bookworm's
// libjs-xterm ships a stub that does not load in a browser, so Jupyter's
// terminal page stays blank.
const shellinabox = "/usr/bin/shellinaboxd"

// terminalBody is a portal whose sessions each start their own web
// terminal in the sessions directory sessions. Shell In A Box starts the
// shell with an environment of its own (HOME from the password file), so
// the service line sets HOME to the session's directory through env(1):
// the shell's history and dot files stay in the session's directory and
// go with it. The service runs the shell as uid:gid (root in CI; Shell In
// A Box can only switch users when it runs as root). The session's
// directory is spelled <sessions>/{session}, which is what {dir} expands to:
// the test harness replaces {dir} in the whole body with the storage's.
func terminalBody(sessions, replica string, uid, gid int) string {
	return fmt.Sprintf(`
		name demo
		storage badger {dir}
		index https://hub.example.com/
		redirects https://hub.example.com
		robot robot@portal robot-pass
		client test-client test-secret
		replica %[5]s
		workshop lab-terminal {
			capacity 2
			reserved 0
			spawner process {
				command %[1]s --disable-ssl --localhost-only --port={port} --no-beep "--service=/:%[2]d:%[3]d:%[4]s/{session}:/usr/bin/env HOME=%[4]s/{session} /bin/bash"
				dir %[4]s
				ready / 60s
				stop_timeout 5s
			}
		}
`, shellinabox, uid, gid, sessions, replica)
}

// processesIn maps the processes whose working directory is dir or below
// to their command names. The marker finds what the spawner started; this
// also finds what a learner's shell started, which Shell In A Box runs
// with an environment of its own, without the marker.
func processesIn(dir string) map[string]string {
	entries, _ := os.ReadDir("/proc")
	procs := map[string]string{}
	for _, e := range entries {
		cwd, err := os.Readlink(filepath.Join("/proc", e.Name(), "cwd"))
		if err != nil {
			continue // not a process, gone, or a zombie
		}
		// A removed directory reads as "<dir> (deleted)".
		cwd = strings.TrimSuffix(cwd, " (deleted)")
		if cwd == dir || strings.HasPrefix(cwd, dir+"/") {
			comm, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "comm"))
			procs[e.Name()] = strings.TrimSpace(string(comm))
		}
	}
	return procs
}

// running reports whether procs has a process named comm.
func running(procs map[string]string, comm string) bool {
	for _, c := range procs {
		if c == comm {
			return true
		}
	}
	return false
}

// TestBrowserWebTerminal: each learner's session spawns a real web
// terminal of its own; in Chromium the activation link leads to it through
// the gate, the learner types a command and it runs in the session's own
// directory. Ending the session ends the terminal, the shell and the
// learner's background job included, and removes the directory; the next
// learner's shell sees nothing of it. A screenshot of the terminal is kept
// (docs/screenshots/web-terminal.png is one).
func TestBrowserWebTerminal(t *testing.T) {
	if _, err := os.Stat(shellinabox); err != nil {
		t.Fatalf("this test needs Debian's shellinabox (.ci/run installs it): %v", err)
	}
	sessions := t.TempDir()
	// A replica name of its own: a portal reconciles every process that
	// carries its <portal>/<replica>/ marker on the machine, so another
	// test's portal named demo/test starting meanwhile would stop this
	// test's terminals as orphans of its own.
	replica := fmt.Sprintf("term%d", os.Getpid())
	p := startPortal(t, t.TempDir(), terminalBody(sessions, replica, os.Getuid(), os.Getgid()))
	tok := p.Token(e2etest.RobotUser, e2etest.RobotPass)

	first := openTerminal(t, p, tok, "alice")
	dir := filepath.Join(sessions, first.name)
	want := "hello-from-" + first.name
	first.typeLine(t, "echo "+want+" > ~/marker.txt; pwd; cat marker.txt")
	first.waitFile(t, filepath.Join(dir, "marker.txt"), func(s string) bool { return s == want+"\n" })
	// The command's output on the terminal page, for the screenshot.
	var png []byte
	err := chromedp.Run(first.ctx,
		chromedp.Poll(fmt.Sprintf(`document.getElementById('console').innerText.split('\n').some(l => l.trim() === %q)`, want),
			nil, chromedp.WithPollingTimeout(2*time.Minute)),
		chromedp.CaptureScreenshot(&png),
	)
	if err != nil {
		t.Fatalf("the command's output on the terminal: %v", err)
	}
	chromium.KeepScreenshot(t, png, "web-terminal.png")

	// A background job that ignores the terminal's hangup, as a learner
	// might leave behind.
	first.typeLine(t, "nohup sleep 9999 > /dev/null 2>&1 &")
	waitFor(t, "the learner's background job", func() bool { return running(processesIn(dir), "sleep") })
	if pids := markedProcesses(t, "demo/"+replica+"/"+first.name); len(pids) == 0 {
		t.Fatal("no terminal process carries the session's marker")
	}
	if procs := processesIn(dir); !running(procs, "bash") {
		t.Fatalf("no shell runs in the session's directory %s: %v", dir, procs)
	}

	endSession(t, p, tok, first.name)
	// Nothing of the terminal is left once the session is STOPPED, the
	// shell and its background job included.
	if pids := markedProcesses(t, "demo/"+replica+"/"+first.name); len(pids) != 0 {
		t.Fatalf("terminal processes of the ended session still run: %v", pids)
	}
	if procs := processesIn(dir); len(procs) != 0 {
		t.Fatalf("processes of the ended session's shell still run: %v", procs)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Fatalf("the ended session's directory is still there: %v", err)
	}

	second := openTerminal(t, p, tok, "bob")
	dir2 := filepath.Join(sessions, second.name)
	second.typeLine(t, "{ pwd; ls -a ~ .; cat ~/.bash_history; echo end-of-listing; } > listing.txt 2>&1")
	listing := second.waitFile(t, filepath.Join(dir2, "listing.txt"), func(s string) bool {
		return strings.Contains(s, "end-of-listing")
	})
	if !strings.HasPrefix(listing, dir2+"\n") {
		t.Fatalf("the next learner's shell does not start in its session's directory %s:\n%s", dir2, listing)
	}
	if strings.Contains(listing, "marker.txt") || strings.Contains(listing, want) {
		t.Fatalf("the next learner (%s) sees the previous learner's files or history:\n%s", second.name, listing)
	}
}

// terminal is a learner's web terminal open in Chromium.
type terminal struct {
	name string          // the session
	ctx  context.Context // its browser
}

// openTerminal requests a session for user, opens its activation link in
// a Chromium of its own and waits for the shell's prompt: the terminal is
// connected through the gate and the shell reads what is typed.
func openTerminal(t *testing.T, p *portal, tok, user string) terminal {
	t.Helper()
	m := p.Request(tok, "demo-w01", "user="+user+"&index_url=https://hub.example.com/").JSON(t)
	term := terminal{name: m["name"].(string), ctx: chromium.New(t, 1024, 640, 3*time.Minute)}
	// A portal that stops keeps its environments running (a restart adopts
	// them): end the session with the test, whatever happened, so that its
	// terminal does not outlive the test. Cleanups run before the portal's.
	t.Cleanup(func() { endSession(t, p, tok, term.name) })
	var location string
	err := chromedp.Run(term.ctx,
		chromedp.Navigate(p.Base+m["url"].(string)),
		// The starting page refreshes itself until the terminal answers.
		chromedp.WaitReady("#console", chromedp.ByQuery),
		chromedp.Location(&location),
		// bash's prompt ends in "$ " or "# ".
		chromedp.Poll(`/[#$]\s*$/.test(document.getElementById('console').innerText.trimEnd() + ' ')`,
			nil, chromedp.WithPollingTimeout(2*time.Minute)),
	)
	if err != nil {
		t.Fatalf("opening %s's terminal: %v", user, err)
	}
	if want := p.Base + "/workshops/session/" + term.name + "/"; location != want {
		t.Fatalf("%s's terminal is at %q, want %q", user, location, want)
	}
	return term
}

// typeLine types line and Enter into the terminal, as key events.
func (term terminal) typeLine(t *testing.T, line string) {
	t.Helper()
	if err := chromedp.Run(term.ctx, chromedp.KeyEvent(line+"\r")); err != nil {
		t.Fatalf("typing into %s's terminal: %v", term.name, err)
	}
}

// screen is the text the terminal shows, for failure messages.
func (term terminal) screen() string {
	var text string
	if err := chromedp.Run(term.ctx, chromedp.Evaluate(`document.getElementById('console').innerText`, &text)); err != nil {
		return "(cannot read the terminal: " + err.Error() + ")"
	}
	return text
}

// waitFile waits until the file at path holds content that done accepts
// and returns that content; on timeout it shows what the terminal shows.
func (term terminal) waitFile(t *testing.T, path string, done func(string) bool) string {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		b, err := os.ReadFile(path)
		if err == nil && done(string(b)) {
			return string(b)
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s (read: %q, %v); the terminal shows:\n%s", path, b, err, term.screen())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// endSession terminates session, unless it is over already, and waits
// until it is STOPPED: its environment is stopped and removed by then.
func endSession(t *testing.T, p *portal, tok, session string) {
	t.Helper()
	r := p.Do(http.MethodPost, "/workshops/session/"+session+"/terminate/", tok, nil, nil)
	if r.Status == http.StatusNotFound {
		return
	}
	if r.Status != http.StatusOK {
		t.Fatalf("terminate %s: %d %s", session, r.Status, r.Body)
	}
	waitFor(t, session+" to be STOPPED", func() bool {
		return p.Do(http.MethodGet, "/workshops/session/"+session+"/schedule/", tok, nil, nil).Status == http.StatusNotFound
	})
}
