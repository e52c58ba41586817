package e2e

import (
	"fmt"
	"html"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/caddyportal/caddyportal/internal/e2etest"
	"github.com/caddyportal/caddyportal/internal/e2etest/chromium"
)

// framingDashboard is a dashboard like Educates' gateway: its page on the
// session host frames the session's editor host, whose page tells its
// parent who it served.
func framingDashboard(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		if r.URL.Path == "/editor" {
			msg := "editor of " + r.Host + " for " + r.Header.Get("X-Portal-User")
			fmt.Fprintf(w, `<!doctype html><p>editor</p><script>parent.postMessage(%q, "*")</script>`, msg)
			return
		}
		fmt.Fprintf(w, `<!doctype html><title>dashboard</title><div id="got">waiting</div>
<iframe id="editor" src="http://editor-%s/editor"></iframe>
<script>addEventListener("message", e => { document.getElementById("got").textContent = e.data })</script>`, html.EscapeString(r.Host))
	})}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return ln.Addr().String()
}

// TestBrowserIngressInFrame: in Chromium, a dashboard on the session host
// frames the session's editor host, as Educates' dashboard does. The frame
// goes through the hand-off on the session host and back with its ticket
// (the session host's cookie is sent in the frame, the editor host's is
// set in it), and the editor host's page reaches the learner's browser
// with the learner's identity.
func TestBrowserIngressInFrame(t *testing.T) {
	body := strings.Replace(gateBody("dashboards host demo.test", framingDashboard(t)),
		"health_check off", "health_check off\n\t\t\tingresses editor", 1)
	p := startPortalSites(t, t.TempDir(), body, "http://:%d", "")
	tok := p.Token(e2etest.RobotUser, e2etest.RobotPass)
	m := p.Request(tok, "demo-w01", "user=alice&index_url=https://hub.example.com/").JSON(t)
	name := m["name"].(string)

	// demo.test and its subdomains are this machine, for the browser.
	bctx := chromium.New(t, 1024, 700, 2*time.Minute, chromedp.Flag("host-resolver-rules", "MAP *.demo.test 127.0.0.1"))
	var got string
	err := chromedp.Run(bctx,
		chromedp.Navigate(p.Base+m["url"].(string)),
		chromedp.Poll(`document.getElementById("got") && document.getElementById("got").textContent.startsWith("editor of")`,
			nil, chromedp.WithPollingTimeout(time.Minute)),
		chromedp.Text("#got", &got, chromedp.ByQuery),
	)
	if err != nil {
		t.Fatalf("browser: %v", err)
	}
	if want := fmt.Sprintf("editor of editor-%s.demo.test:%d for alice", name, p.Port); got != want {
		t.Fatalf("the editor frame said %q, want %q", got, want)
	}
}
