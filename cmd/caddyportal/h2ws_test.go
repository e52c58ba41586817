package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"golang.org/x/net/http2"
)

// wsEcho is a dashboard upstream that echoes WebSocket messages and
// remembers the session the gate named for each upgrade.
type wsEcho struct {
	mu       sync.Mutex
	sessions []string
}

func (e *wsEcho) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	e.mu.Lock()
	e.sessions = append(e.sessions, r.Header.Get("X-Portal-Session"))
	e.mu.Unlock()
	c, err := websocket.Accept(w, r, nil)
	if err != nil {
		return
	}
	defer c.CloseNow()
	for {
		typ, msg, err := c.Read(r.Context())
		if err != nil {
			return
		}
		if err := c.Write(r.Context(), typ, msg); err != nil {
			return
		}
	}
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// startBinary runs `bin run` on caddyfile until the test ends and returns
// once base answers over TLS.
func startBinary(t *testing.T, bin, caddyfile, base string) {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, "Caddyfile")
	if err := os.WriteFile(path, []byte(caddyfile), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "run", "--config", path, "--adapter", "caddyfile")
	cmd.Env = append(os.Environ(), "XDG_DATA_HOME="+dir, "XDG_CONFIG_HOME="+dir, "HOME="+dir)
	var logs bytes.Buffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("caddyportal output:\n%s", logs.String())
		}
	})
	client := &http.Client{Timeout: time.Second, Transport: insecureH2()}
	deadline := time.Now().Add(30 * time.Second)
	for {
		res, err := client.Get(base + "/workshops/catalog/environments/")
		if err == nil {
			res.Body.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("portal did not come up on %s: %v", base, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

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
	bin := filepath.Join(t.TempDir(), "caddyportal")
	if out, err := exec.Command(goTool(t), "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	echo := &wsEcho{}
	up := httptest.NewServer(echo)
	t.Cleanup(up.Close)

	port := freePort(t)
	base := fmt.Sprintf("https://127.0.0.1:%d", port)
	startBinary(t, bin, fmt.Sprintf(`{
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
`, freePort(t), port, base, filepath.Join(t.TempDir(), "badger"), base, strings.TrimPrefix(up.URL, "http://")), base)

	// A session, activated over HTTP/2 so the browser holds the gate cookie.
	jar, _ := cookiejar.New(nil)
	browser := &http.Client{Jar: jar, Transport: insecureH2(), Timeout: 10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	tok := token(t, browser, base)
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
	wsURL := base + "/workshops/session/" + session.Name + "/terminal"
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
		echo.mu.Lock()
		defer echo.mu.Unlock()
		if n := len(echo.sessions); n != 1 || echo.sessions[0] != session.Name {
			t.Fatalf("upstream saw upgrades for sessions %q, want exactly [%s]", echo.sessions, session.Name)
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

// token gets a robot access token with the password grant.
func token(t *testing.T, c *http.Client, base string) string {
	t.Helper()
	form := url.Values{"grant_type": {"password"}, "username": {"robot@portal"}, "password": {"robot-pass"}}
	req, _ := http.NewRequest(http.MethodPost, base+"/oauth2/token/", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth("test-client", "test-secret")
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	decode(t, c, req, &tok)
	return tok.AccessToken
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
