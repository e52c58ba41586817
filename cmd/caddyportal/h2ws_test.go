package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/net/http2"

	"github.com/caddyportal/caddyportal/internal/e2etest"
	"github.com/caddyportal/caddyportal/internal/e2etest/echo"
)

// insecureH2 is an HTTP transport that speaks HTTP/2 to a server with a
// certificate from Caddy's internal CA.
func insecureH2() *http.Transport {
	return &http.Transport{ForceAttemptHTTP2: true,
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true}} //nolint:gosec // test CA
}

// TestWebSocketOverHTTP2 drives RFC 8441 through the built binary: over a
// TLS HTTP/2 connection the client opens a WebSocket with an extended
// CONNECT, the gate admits it with the session cookie and Caddy's proxy
// carries it to an HTTP/1.1 WebSocket dashboard. The Go HTTP/2 client
// refuses an extended CONNECT unless the server advertised
// SETTINGS_ENABLE_CONNECT_PROTOCOL, so this also proves the binary turned
// the feature on.
func TestWebSocketOverHTTP2(t *testing.T) {
	bin := e2etest.Binary(t)
	up := echo.Start(t, "h2")

	port := e2etest.FreePort(t)
	base := fmt.Sprintf("https://127.0.0.1:%d", port)
	ready := &http.Client{Timeout: time.Second, Transport: insecureH2()}
	e2etest.StartBinary(t, bin, t.TempDir(), fmt.Sprintf(`{
	admin off
	persist_config off
	local_certs
	skip_install_trust
	auto_https disable_redirects
	http_port %d
	https_port %d
}
%s {
	bind 127.0.0.1
	tls internal
	portal {
		name h2
		storage badger %s
		url %s
		index https://hub.example.com/
		redirects https://hub.example.com
		robot robot@portal robot-pass
		client test-client test-secret
		workshop lab {
			reserved 0
			upstream %s
		}
	}
}
`, e2etest.FreePort(t), port, base, filepath.Join(t.TempDir(), "badger"), base, up.Addr), base, ready)

	// A session, activated over HTTP/2 so the browser holds the gate cookie.
	jar, _ := cookiejar.New(nil)
	browser := &http.Client{Jar: jar, Transport: insecureH2(), Timeout: 10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	tok := e2etest.Token(t, browser, base, e2etest.RobotUser, e2etest.RobotPass)
	req, _ := http.NewRequest(http.MethodGet, base+"/workshops/environment/h2-w01/request/?index_url=https://hub.example.com/", nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	var session struct{ Name, URL string }
	decode(t, browser, req, &session)
	res, err := browser.Get(base + session.URL)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.ProtoMajor != 2 || res.StatusCode != http.StatusFound {
		t.Fatalf("activation answered %s %d, want HTTP/2 302", res.Proto, res.StatusCode)
	}
	wsURL := base + "/workshops/session/" + session.Name + "/ws"
	u, _ := url.Parse(wsURL)
	cookies := jar.Cookies(u)
	if len(cookies) == 0 {
		t.Fatal("activation set no cookie for the dashboard path")
	}

	h2 := &http2.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"h2"}}} //nolint:gosec // test CA
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	t.Run("without cookie refused", func(t *testing.T) {
		res, body := extendedConnect(ctx, t, h2, wsURL, nil)
		defer body.Close()
		if res.StatusCode == http.StatusOK {
			t.Fatalf("extended CONNECT without the gate cookie was let through")
		}
	})

	t.Run("echo", func(t *testing.T) {
		res, body := extendedConnect(ctx, t, h2, wsURL, cookies)
		defer body.Close()
		if res.StatusCode != http.StatusOK || res.ProtoMajor != 2 {
			t.Fatalf("extended CONNECT answered %s %d, want HTTP/2 200", res.Proto, res.StatusCode)
		}
		in := bufio.NewReader(res.Body)
		for _, msg := range []string{"hello over h2", "second message"} {
			if _, err := body.Write(clientFrame(msg)); err != nil {
				t.Fatal(err)
			}
			if got := readFrame(t, in); got != msg {
				t.Fatalf("echo %q, want %q", got, msg)
			}
		}
		if got := up.UpgradeSessions(); len(got) != 1 || got[0] != session.Name {
			t.Fatalf("upstream saw upgrades for sessions %q, want exactly [%s]", got, session.Name)
		}
	})
}

// extendedConnect opens a WebSocket stream with an RFC 8441 CONNECT and
// returns the response and the writer for client-to-server bytes.
func extendedConnect(ctx context.Context, t *testing.T, tr *http2.Transport, target string, cookies []*http.Cookie) (*http.Response, io.WriteCloser) {
	t.Helper()
	pr, pw := io.Pipe()
	req, err := http.NewRequestWithContext(ctx, http.MethodConnect, target, pr)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set(":protocol", "websocket")
	req.Header.Set("Sec-WebSocket-Version", "13")
	for _, c := range cookies {
		req.AddCookie(c)
	}
	res, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatalf("extended CONNECT: %v", err)
	}
	t.Cleanup(func() { res.Body.Close() })
	return res, pw
}

// clientFrame encodes msg as one masked WebSocket text frame (RFC 6455 5.2).
func clientFrame(msg string) []byte {
	var mask [4]byte
	_, _ = rand.Read(mask[:])
	f := []byte{0x81, 0x80 | byte(len(msg))}
	f = append(f, mask[:]...)
	for i := range len(msg) {
		f = append(f, msg[i]^mask[i%4])
	}
	return f
}

// readFrame reads one short unmasked text frame from the server.
func readFrame(t *testing.T, r *bufio.Reader) string {
	t.Helper()
	var hdr [2]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		t.Fatalf("reading frame header: %v", err)
	}
	if hdr[0] != 0x81 {
		t.Fatalf("frame opcode byte %#x, want a final text frame", hdr[0])
	}
	n := int(hdr[1] & 0x7f)
	if n == 126 {
		var ext [2]byte
		if _, err := io.ReadFull(r, ext[:]); err != nil {
			t.Fatal(err)
		}
		n = int(binary.BigEndian.Uint16(ext[:]))
	}
	payload := make([]byte, n)
	if _, err := io.ReadFull(r, payload); err != nil {
		t.Fatalf("reading frame payload: %v", err)
	}
	return string(payload)
}

// decode sends req and decodes a 200 JSON answer into v.
func decode(t *testing.T, c *http.Client, req *http.Request, v any) {
	t.Helper()
	res, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	if res.StatusCode != http.StatusOK {
		t.Fatalf("%s %s: %d %s", req.Method, req.URL.Path, res.StatusCode, body)
	}
	if err := json.Unmarshal(body, v); err != nil {
		t.Fatalf("%s %s: %v in %s", req.Method, req.URL.Path, err, body)
	}
}
