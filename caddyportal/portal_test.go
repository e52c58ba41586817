package caddyportal_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	_ "github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	_ "github.com/caddyserver/caddy/v2/modules/standard"

	_ "github.com/caddyportal/caddyportal/caddyportal"
	"github.com/caddyportal/caddyportal/caddyportal/store"
	"github.com/caddyportal/caddyportal/caddyportal/store/badgerstore"
)

// portal is a real Caddy server running a portal, for end-to-end tests.
type portal struct {
	t    testing.TB
	base string
	port int
	dir  string
	// site is the portal's site address (a format with the port as %d);
	// empty means http://127.0.0.1:%d. Host-mode tests need a site that
	// matches any Host.
	site string
	// extra is appended to the Caddyfile after the portal's site: more
	// site blocks for the same server (for example a plain reverse_proxy
	// to compare with the gate).
	extra string
	// global is added to the Caddyfile's global options (for example a
	// `servers` block with trusted_proxies).
	global string
	// admin is Caddy's admin listener address; empty turns it off.
	admin string
}

const (
	robotUser   = "robot@portal"
	robotPass   = "robot-pass"
	clientID    = "test-client"
	clientSec   = "test-secret"
	adminUser   = "admin"
	adminPass   = "admin-pass"
	hubOrigin   = "https://hub.example.com"
	defaultBody = `
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
)

func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// startPortal loads a Caddy config with a portal whose block body is body
// ({dir} is replaced by the data directory). The server is stopped at the
// end of the test.
func startPortal(t *testing.T, dir, body string) *portal { return startPortalB(t, dir, body) }

// startPortalB is startPortal for tests and benchmarks alike.
func startPortalB(t testing.TB, dir, body string) *portal {
	t.Helper()
	p := &portal{t: t, port: freePort(t), dir: dir}
	p.base = fmt.Sprintf("http://127.0.0.1:%d", p.port)
	p.load(body)
	t.Cleanup(func() { _ = caddy.Stop() })
	return p
}

// startPortalSites is startPortal with a custom site address (see
// portal.site; "" for the default) and extra Caddyfile site blocks.
func startPortalSites(t testing.TB, dir, body, site, extra string) *portal {
	t.Helper()
	p := &portal{t: t, port: freePort(t), dir: dir, site: site, extra: extra}
	p.base = fmt.Sprintf("http://127.0.0.1:%d", p.port)
	p.load(body)
	t.Cleanup(func() { _ = caddy.Stop() })
	return p
}

// load (re)loads the config; on a running server this is a config reload.
func (p *portal) load(body string) {
	p.t.Helper()
	site := p.site
	if site == "" {
		site = "http://127.0.0.1:%d"
	}
	admin := "off"
	if p.admin != "" {
		admin = p.admin
	}
	cf := fmt.Sprintf(`{
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
`, admin, filepath.Join(p.dir, "caddy"), p.global, fmt.Sprintf(site, p.port), strings.ReplaceAll(body, "{dir}", filepath.Join(p.dir, "badger")), p.extra)
	adapter := caddyconfig.GetAdapter("caddyfile")
	cfg, warns, err := adapter.Adapt([]byte(cf), map[string]any{"filename": "Caddyfile"})
	if err != nil {
		p.t.Fatalf("adapt: %v", err)
	}
	_ = warns
	if err := caddy.Load(cfg, true); err != nil {
		p.t.Fatalf("load: %v", err)
	}
	// The old server closes its idle keep-alive connections; a request
	// racing that close on a pooled connection fails with EOF, which
	// browsers retry and Go's client does not always. Start afresh.
	noRedirect.CloseIdleConnections()
	waitOneListener(p.t, p.port)
}

// waitOneListener waits until one socket listens on port. On Linux Caddy
// binds each config's listener anew with SO_REUSEPORT and closes the old
// one; Load returns once the old server's shutdown has been scheduled, not
// done, and a connection the kernel queues on the old socket before it
// closes is reset (browsers retry, a test would fail). The wait has no
// deadline of its own: the test's timeout bounds a hang.
func waitOneListener(t testing.TB, port int) {
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

type resp struct {
	status int
	header http.Header
	body   []byte
}

func (r resp) json(t testing.TB) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.body, &m); err != nil {
		t.Fatalf("body is not a JSON object: %v: %s", err, r.body)
	}
	return m
}

var noRedirect = &http.Client{
	Timeout:       10 * time.Second,
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
}

func (p *portal) do(method, path, token string, body io.Reader, hdr map[string]string) resp {
	p.t.Helper()
	req, err := http.NewRequest(method, p.base+path, body)
	if err != nil {
		p.t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	res, err := noRedirect.Do(req)
	if err != nil {
		p.t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return resp{res.StatusCode, res.Header, b}
}

func (p *portal) token(user, pass string) string {
	p.t.Helper()
	form := url.Values{"grant_type": {"password"}, "username": {user}, "password": {pass}}
	req, _ := http.NewRequest("POST", p.base+"/oauth2/token/", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(clientID, clientSec)
	res, err := noRedirect.Do(req)
	if err != nil {
		p.t.Fatal(err)
	}
	defer res.Body.Close()
	var out map[string]any
	_ = json.NewDecoder(res.Body).Decode(&out)
	if res.StatusCode != 200 {
		p.t.Fatalf("token: %d %v", res.StatusCode, out)
	}
	return out["access_token"].(string)
}

func (p *portal) request(token, env, query string) resp {
	p.t.Helper()
	return p.do("GET", "/workshops/environment/"+env+"/request/?"+query, token, nil, nil)
}

// openStore opens the portal's Badger directory after the server stopped,
// to check what was really written.
func openStore(t *testing.T, dir string) *badgerstore.Store {
	t.Helper()
	st, err := badgerstore.Open(badgerstore.DefaultOptions(filepath.Join(dir, "badger")))
	if err != nil {
		t.Fatalf("reopening the store after stop: %v", err)
	}
	t.Cleanup(func() { _ = st.Close() })
	return st
}

type storedSession struct {
	Name        string `json:"name"`
	Environment string `json:"environment"`
	State       string `json:"state"`
	Owner       string `json:"owner"`
	Slot        int    `json:"slot"`
	Upstream    string `json:"upstream"`
}

func storedSessions(t *testing.T, st store.Store) map[string]storedSession {
	t.Helper()
	out := map[string]storedSession{}
	err := st.View(context.Background(), func(tx store.Txn) error {
		return tx.Scan("s/", func(_ string, v []byte) error {
			var s storedSession
			if err := json.Unmarshal(v, &s); err != nil {
				return err
			}
			out[s.Name] = s
			return nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestMain(m *testing.M) {
	// Keep Caddy's own files (autosave, certificates) out of the home dir.
	tmp, err := os.MkdirTemp("", "caddyportal-test-home")
	if err == nil {
		os.Setenv("XDG_DATA_HOME", tmp)
		os.Setenv("XDG_CONFIG_HOME", tmp)
	}
	code := m.Run()
	os.RemoveAll(tmp)
	os.Exit(code)
}
