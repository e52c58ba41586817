package e2e

import (
	"bufio"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/caddyportal/caddyportal/internal/e2etest"
	"github.com/caddyportal/caddyportal/internal/e2etest/echo"
)

// TestGateStreamsResponses: a streaming response (server-sent events, a
// terminal's long poll) reaches the browser chunk by chunk through the
// gate: the first event arrives while the upstream still holds the
// response open, not when it ends.
func TestGateStreamsResponses(t *testing.T) {
	// The dashboard's /events sends one event and holds the response open
	// until the client goes away.
	up := echo.Start(t, "streams")
	p := startPortal(t, t.TempDir(), gateBody("", up.Addr))
	tok := p.Token(e2etest.RobotUser, e2etest.RobotPass)
	name, ck, _ := p.Activate(tok, "demo-w01", "streamer")

	req, _ := http.NewRequest("GET", p.Base+sessionPath(name)+"events", nil)
	req.AddCookie(ck)
	res, err := (&http.Client{Timeout: 30 * time.Second}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if res.StatusCode != 200 {
		t.Fatalf("status %d", res.StatusCode)
	}
	// Reading the first event must succeed while the upstream still holds
	// the response open; if the gate buffered the response, this read
	// would only return after the client timeout.
	line, err := bufio.NewReader(res.Body).ReadString('\n')
	if err != nil || strings.TrimSpace(line) != "data: first" {
		t.Fatalf("first event: %q %v", line, err)
	}
}
