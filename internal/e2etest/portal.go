// Package e2etest is the harness of the end-to-end tests: a real Caddy
// running a portal (in this process, in a child process of the test binary
// that can be killed, or as the built caddyportal binary), an HTTP client
// for it, and what the portal wrote to its store. The stand-in dashboard is
// package echo, Chromium package chromium and a full disk package tmpfs, all
// beside this one; a real etcd is caddyportal/store/etcdstore/etcdtest.
//
// It is the one package outside the Caddy glue and cmd/ that imports Caddy:
// its job is to run it. Only tests import it.
package e2etest

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	// The Caddyfile adapter and the standard modules, as in the binary.
	_ "github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	_ "github.com/caddyserver/caddy/v2/modules/standard"

	_ "github.com/caddyportal/caddyportal/caddyportal"
	"github.com/caddyportal/caddyportal/caddyportal/spawner/process"
	"github.com/caddyportal/caddyportal/internal/e2etest/engine"
	"github.com/caddyportal/caddyportal/internal/proctest"
)

// The credentials, client and hub of DefaultBody (and of most test portals).
const (
	RobotUser    = "robot@portal"
	RobotPass    = "robot-pass"
	ClientID     = "test-client"
	ClientSecret = "test-secret"
	AdminUser    = "admin"
	AdminPass    = "admin-pass"
	HubOrigin    = "https://hub.example.com"
)

// DefaultBody is a portal block body with two workshops whose dashboards
// nobody listens on (health checks off): one with a pool of three, one
// with an upstream template. {dir} stands for the Badger directory.
const DefaultBody = `
		name demo
		storage badger {dir}
		index https://hub.example.com/
		redirects https://hub.example.com
		sessions maximum 10 registered 1 anonymous 2
		robot robot@portal robot-pass
		client test-client test-secret
		admin admin admin-pass
		workshop lab-k8s {
			title "Kubernetes 101"
			alias k8s
			labels {
				level beginner
			}
			reserved 0
			expires 60m
			deadline 120m
			upstream 127.0.0.1:1 127.0.0.1:2 127.0.0.1:3
			health_check off
		}
		workshop lab-py {
			title "Python"
			reserved 1
			upstream {session}.py.invalid:80
			health_check off
			capacity 4
		}
`

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// Portal is a portal served by a real Caddy: in this process when started
// with Start, or elsewhere (a child process, a binary) when only T and
// Base are set, for the client methods.
type Portal struct {
	T testing.TB
	// Base is the portal's URL without a trailing slash.
	Base string
	// Port is the site's port (0: Start picks a free one).
	Port int
	// Dir is the data directory: Caddy's storage in Dir/caddy, Badger's
	// in Dir/badger.
	Dir string
	// Site is the portal's site address (a format with the port as %d);
	// empty means http://127.0.0.1:%d. Host-mode tests need a site that
	// matches any Host.
	Site string
	// Extra is appended to the Caddyfile after the portal's site: more
	// site blocks for the same server (for example a plain reverse_proxy
	// to compare with the gate).
	Extra string
	// Global is added to the Caddyfile's global options (for example a
	// `servers` block with trusted_proxies).
	Global string
	// Admin is Caddy's admin listener address; empty turns it off.
	Admin string
}

// StartPortal runs a portal whose block body is body ({dir} is replaced
// by the Badger directory under dir) in this process's Caddy, stopped at
// the end of the test.
func StartPortal(t testing.TB, dir, body string) *Portal {
	t.Helper()
	return (&Portal{T: t, Dir: dir}).Start(body)
}

// StartPortalSites is StartPortal with a custom site address (see
// Portal.Site; "" for the default) and extra Caddyfile site blocks.
func StartPortalSites(t testing.TB, dir, body, site, extra string) *Portal {
	t.Helper()
	return (&Portal{T: t, Dir: dir, Site: site, Extra: extra}).Start(body)
}

// Start loads p's Caddyfile with body in this process's Caddy and stops
// Caddy at the end of the test. Base is set from Port (picked if 0).
func (p *Portal) Start(body string) *Portal {
	p.T.Helper()
	picked := p.Port == 0
	for attempt := 1; ; attempt++ {
		if picked {
			p.Port = FreePort(p.T)
		}
		p.Base = fmt.Sprintf("http://127.0.0.1:%d", p.Port)
		err := LoadCaddyfile(p.Caddyfile(body))
		if err == nil {
			break
		}
		// A port that was free a moment ago can be taken before Caddy
		// binds it (dashboard processes and Jupyter kernels pick ports
		// too): pick another rather than fail the test.
		if !picked || attempt == 5 || !strings.Contains(err.Error(), "address already in use") {
			p.T.Fatalf("load: %v", err)
		}
	}
	NoRedirect.CloseIdleConnections()
	WaitOneListener(p.T, p.Port)
	p.T.Cleanup(func() { _ = caddy.Stop() })
	return p
}

// Caddyfile is the whole Caddyfile of a portal with block body body on
// 127.0.0.1:Port: quiet logs, a short grace period, nothing persisted.
func (p *Portal) Caddyfile(body string) string {
	site := p.Site
	if site == "" {
		site = "http://127.0.0.1:%d"
	}
	admin := "off"
	if p.Admin != "" {
		admin = p.Admin
	}
	return fmt.Sprintf(`{
	admin %s
	persist_config off
	storage file_system %s
	grace_period 1s
%s
	log default {
		output discard
	}
}
%s {
	bind 127.0.0.1
	portal {
%s
	}
	respond "not the portal" 404
}
%s
`, admin, filepath.Join(p.Dir, "caddy"), p.Global, fmt.Sprintf(site, p.Port), strings.ReplaceAll(body, "{dir}", filepath.Join(p.Dir, "badger")), p.Extra)
}

// Caddyfile is the default Portal's Caddyfile for a portal on
// 127.0.0.1:port with data under dir.
func Caddyfile(port int, dir, body string) string {
	return (&Portal{Port: port, Dir: dir}).Caddyfile(body)
}

// LoadCaddyfile adapts and loads a Caddyfile into this process's Caddy.
func LoadCaddyfile(cf string) error {
	cfg, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(cf), map[string]any{"filename": "Caddyfile"})
	if err != nil {
		return fmt.Errorf("adapt: %w", err)
	}
	return caddy.Load(cfg, true)
}

// Load (re)loads the config with body; on a running server this is a
// config reload.
func (p *Portal) Load(body string) {
	p.T.Helper()
	if err := LoadCaddyfile(p.Caddyfile(body)); err != nil {
		p.T.Fatalf("load: %v", err)
	}
	// The old server closes its idle keep-alive connections; a request
	// racing that close on a pooled connection fails with EOF, which
	// browsers retry and Go's client does not always. Start afresh.
	NoRedirect.CloseIdleConnections()
	WaitOneListener(p.T, p.Port)
}

// WaitOneListener waits until one socket listens on port. On Linux Caddy
// binds each config's listener anew with SO_REUSEPORT and closes the old
// one; Load returns once the old server's shutdown has been scheduled, not
// done, and a connection the kernel queues on the old socket before it
// closes is reset (browsers retry, a test would fail). The wait has no
// deadline of its own: the test's timeout bounds a hang.
func WaitOneListener(t testing.TB, port int) {
	t.Helper()
	local := fmt.Sprintf(":%04X ", port)
	for {
		n := 0
		for _, file := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
			b, err := os.ReadFile(file)
			if err != nil {
				continue
			}
			for _, line := range strings.Split(string(b), "\n") {
				// sl local_address rem_address st: st 0A is LISTEN.
				f := strings.Fields(line)
				if len(f) > 3 && strings.HasSuffix(f[1]+" ", local) && f[3] == "0A" {
					n++
				}
			}
		}
		if n <= 1 {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// cleanup removes what this test process built once for all its tests (the
// portal binary, about 90 MB, and the testdash binary) and stops the
// container engine service it started (engine.Cleanup): without it every
// test run left them in the temporary directory.
func cleanup() {
	if binPath != "" {
		os.RemoveAll(filepath.Dir(binPath))
	}
	engine.Cleanup()
}

// Main is the TestMain of a package that uses the harness: it runs a
// child portal when this process is one (see StartServeChild), keeps
// Caddy's own files (autosave, certificates) out of the home directory,
// removes what the tests built (cleanup), and fails the run if a test left
// dashboard processes of its portals running (see proctest.Exit).
func Main(m *testing.M) {
	runChildIfAsked()
	tmp, err := os.MkdirTemp("", "caddyportal-test-home")
	if err == nil {
		os.Setenv("XDG_DATA_HOME", tmp)
		os.Setenv("XDG_CONFIG_HOME", tmp)
	}
	code := m.Run()
	os.RemoveAll(tmp)
	cleanup()
	if left := engine.Leftovers(); len(left) > 0 {
		fmt.Fprintf(os.Stderr, "the tests left %v in the package directory\n", left)
		code = max(code, 1)
	}
	proctest.Exit(code, process.MarkerVar)
}
