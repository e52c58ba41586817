package e2e

import (
	"bufio"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/caddyportal/caddyportal/internal/e2etest"
)

// TestGateStreamsResponses: a streaming response (server-sent events, a
// terminal's long poll) reaches the browser chunk by chunk through the
// gate: the first event arrives while the upstream still holds the
// response open, not when it ends.
func TestGateStreamsResponses(t *testing.T) {
	release := make(chan struct{})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		_, _ = w.Write([]byte("data: first\n\n"))
		w.(http.Flusher).Flush()
		select {
		case <-release:
		case <-r.Context().Done():
		}
		_, _ = w.Write([]byte("data: last\n\n"))
	})}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { close(release); _ = srv.Close() })

	p := startPortal(t, t.TempDir(), gateBody("", l.Addr().String()))
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
	// Reading the first event must succeed while the upstream is still
	// blocked on `release`; if the gate buffered the response, this read
	// would only return after the client timeout.
	line, err := bufio.NewReader(res.Body).ReadString('\n')
	if err != nil || strings.TrimSpace(line) != "data: first" {
		t.Fatalf("first event: %q %v", line, err)
	}
}
