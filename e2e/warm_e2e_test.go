package e2e

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/caddyportal/caddyportal/internal/e2etest"
)

// connDashboard is a dashboard that keeps connections open (HTTP/1.1) and
// says on each page how many requests its connection has carried, this
// one included; it also appends every request to requests.log in its
// working directory, the session's own.
const connDashboard = `import http.server, sys
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_GET(self):
        self.seen = getattr(self, "seen", 0) + 1
        with open("requests.log", "a") as f:
            f.write("%s %d\n" % (self.path, self.seen))
        body = ("<p>requests on this connection: %d</p>" % self.seen).encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
`

// TestReserveConnectionOpenedAhead: once a reserve's dashboard has passed
// its readiness probe, the portal opens its proxy's connection to it with
// a GET of the probe path, so the learner who takes the reserve is served
// over that connection instead of waiting for a new one: their first page
// is the second request the connection carries.
func TestReserveConnectionOpenedAhead(t *testing.T) {
	if _, err := os.Stat("/usr/bin/python3"); err != nil {
		t.Fatal("this test needs /usr/bin/python3 (Debian's python3)")
	}
	work := t.TempDir()
	script := filepath.Join(work, "conn.py")
	if err := os.WriteFile(script, []byte(connDashboard), 0o600); err != nil {
		t.Fatal(err)
	}
	sessions := filepath.Join(work, "sessions")
	body := spawnPortalHead(1) + fmt.Sprintf(`
		workshop lab-warm {
			capacity 2
			reserved 1
			expires 60m
			spawner process {
				command /usr/bin/python3 %s {port}
				dir %s
				ready /probe 60s
				stop_timeout 5s
			}
		}
`, script, sessions)
	p := startPortal(t, t.TempDir(), body)
	tok := p.Token(e2etest.RobotUser, e2etest.RobotPass)

	// The spawner's probe, then the portal's own GET of the same path.
	var log string
	waitFor(t, "the reserve's dashboard asked twice", func() bool {
		logs, _ := filepath.Glob(filepath.Join(sessions, "*", "requests.log"))
		if len(logs) != 1 {
			return false
		}
		log = logs[0]
		b, _ := os.ReadFile(log)
		return strings.Count(string(b), "/probe ") >= 2
	})
	name, ck, loc := p.Activate(tok, "demo-w01", "alice")
	// The portal leaves running environments to its next start: end the
	// session so its dashboard does not outlive the test.
	t.Cleanup(func() { endSession(t, p, tok, name) })
	if filepath.Base(filepath.Dir(log)) != name {
		t.Fatalf("the learner got %s, not the reserve of %s", name, log)
	}
	r := p.Do(http.MethodGet, loc, "", nil, map[string]string{"Cookie": ck.Name + "=" + ck.Value})
	b, _ := os.ReadFile(log)
	if r.Status != http.StatusOK || !strings.Contains(string(r.Body), "requests on this connection: 2") {
		t.Fatalf("the learner's first page: %d %q; the dashboard saw:\n%s", r.Status, r.Body, b)
	}
}
