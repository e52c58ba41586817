package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/caddyportal/caddyportal/internal/e2etest"
	"github.com/caddyportal/caddyportal/internal/e2etest/chromium"
)

// jupyter is Debian's Jupyter Notebook entry point (its shebang is Debian's
// python3, whatever python3 comes first on PATH).
const jupyter = "/usr/bin/jupyter-notebook"

// jupyterMode is what differs between path and host mode for a spawned
// Jupyter: the portal's dashboards line, the server's arguments for it and
// its readiness probe.
type jupyterMode struct{ dashboards, args, ready string }

// jupyterPath keeps the session's prefix for the server, which is told it
// as its base_url and as its XSRF cookie's path, as JupyterHub does (the
// gate drops cookies a dashboard sets outside its session).
var jupyterPath = jupyterMode{
	dashboards: "path keep_prefix",
	args:       `--NotebookApp.base_url={prefix} "--NotebookApp.tornado_settings={\"xsrf_cookie_kwargs\":{\"path\":\"{prefix}\"}}"`,
	ready:      "{prefix}api",
}

// jupyterHost serves each session at <session>.localhost, which Chromium
// resolves to the loopback interface: the server runs at its root.
var jupyterHost = jupyterMode{dashboards: "host localhost", ready: "/api"}

// jupyterBody is a portal whose sessions each start their own Jupyter
// Notebook server in the sessions directory sessions. The portal is the
// login, so the server has no token of its own (its port is on the
// loopback interface, for the gate only).
func jupyterBody(m jupyterMode, sessions string) string {
	return fmt.Sprintf(`
		name demo
		storage badger {dir}
		index https://hub.example.com/
		redirects https://hub.example.com
		robot robot@portal robot-pass
		client test-client test-secret
		replica `+e2eReplica+`
		dashboards %s
		workshop lab-jupyter {
			capacity 2
			reserved 0
			spawner process {
				command %s --allow-root --no-browser --ip=127.0.0.1 --port={port} %s --NotebookApp.token= --NotebookApp.password= --NotebookApp.allow_remote_access=True --NotebookApp.quit_button=False
				dir %s
				ready %s 120s
				stop_timeout 5s
			}
		}
`, m.dashboards, jupyter, m.args, sessions, m.ready)
}

// notebook is a one-cell notebook that prints 42.
const notebook = `{"cells":[{"cell_type":"code","execution_count":null,"id":"c1","metadata":{},"outputs":[],"source":["print(6*7)"]}],
"metadata":{"kernelspec":{"display_name":"Python 3","language":"python","name":"python3"}},"nbformat":4,"nbformat_minor":5}`

// TestBrowserJupyterPathMode: a learner's session spawns a real Jupyter
// Notebook server of its own; in Chromium the activation link leads to
// the notebook UI under the session's path, a notebook opens, its kernel
// starts over the kernel WebSocket through the gate, and a cell runs.
func TestBrowserJupyterPathMode(t *testing.T) {
	runJupyter(t, jupyterPath, func(p *portal, name string) string {
		return p.Base + "/workshops/session/" + name + "/"
	}, "jupyter-path-mode.png")
}

// TestBrowserJupyterHostMode is the same with the session at a host of
// its own: the activation hands the browser over with a ticket.
func TestBrowserJupyterHostMode(t *testing.T) {
	runJupyter(t, jupyterHost, func(p *portal, name string) string {
		return fmt.Sprintf("http://%s.localhost:%d/", name, p.Port)
	}, "jupyter-host-mode.png")
}

// runJupyter starts a portal spawning Jupyter in mode on a site that
// answers any host, opens a session's activation link in Chromium, checks
// the notebook tree is at base(name) and runs a notebook cell there.
func runJupyter(t *testing.T, mode jupyterMode, base func(p *portal, name string) string, shot string) {
	if _, err := os.Stat(jupyter); err != nil {
		t.Fatalf("this test needs Debian's jupyter-notebook (.ci/run installs it): %v", err)
	}
	sessions := t.TempDir()
	p := startPortalSites(t, t.TempDir(), jupyterBody(mode, sessions), "http://:%d", "")
	tok := p.Token(e2etest.RobotUser, e2etest.RobotPass)
	m := p.Request(tok, "demo-w01", "user=learner&index_url=https://hub.example.com/").JSON(t)
	name := m["name"].(string)
	// A portal that stops leaves its environments running for the next
	// start to adopt: end the session, so Jupyter and its kernel go.
	t.Cleanup(func() { endSession(t, p, tok, name) })
	root := base(p, name)

	bctx := chromium.New(t, 1280, 800, 3*time.Minute)
	var location string
	err := chromedp.Run(bctx,
		chromedp.Navigate(p.Base+m["url"].(string)),
		// The starting page refreshes itself until the server answers;
		// then Jupyter's root sends the browser to its file tree.
		chromedp.WaitReady("#notebook_list", chromedp.ByQuery),
		chromedp.Location(&location),
	)
	if err != nil {
		t.Fatalf("browser: %v", err)
	}
	if !strings.HasPrefix(location, root+"tree") {
		t.Fatalf("the notebook tree is at %q, want under %s", location, root)
	}
	if err := os.WriteFile(filepath.Join(sessions, name, "answer.ipynb"), []byte(notebook), 0o600); err != nil {
		t.Fatal(err)
	}
	var out string
	var png []byte
	err = chromedp.Run(bctx,
		chromedp.Navigate(root+"notebooks/answer.ipynb"),
		chromedp.WaitReady(".code_cell", chromedp.ByQuery),
		chromedp.Poll(`window.Jupyter && Jupyter.notebook && Jupyter.notebook.kernel && Jupyter.notebook.kernel.is_connected()`,
			nil, chromedp.WithPollingTimeout(2*time.Minute)),
		chromedp.Evaluate(`Jupyter.notebook.execute_all_cells(); true`, nil),
		chromedp.WaitVisible(".output_area pre", chromedp.ByQuery),
		chromedp.Text(".output_area pre", &out, chromedp.ByQuery),
		chromedp.CaptureScreenshot(&png),
	)
	if err != nil {
		t.Fatalf("running a cell: %v", err)
	}
	if strings.TrimSpace(out) != "42" {
		t.Fatalf("the cell printed %q, want 42", out)
	}
	chromium.KeepScreenshot(t, png, shot)
}
