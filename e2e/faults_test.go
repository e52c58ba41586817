package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/coder/websocket"

	"github.com/caddyportal/caddyportal/internal/e2etest"
	"github.com/caddyportal/caddyportal/internal/e2etest/echo"
	"github.com/caddyportal/caddyportal/internal/e2etest/tmpfs"
)

// seedStore runs a portal on dir, requests a session for each user and
// stops it again; it returns the session names.
func seedStore(t *testing.T, dir string, users ...string) []string {
	t.Helper()
	p := startPortal(t, dir, e2etest.DefaultBody)
	tok := p.Token(e2etest.RobotUser, e2etest.RobotPass)
	var names []string
	for _, u := range users {
		r := p.Request(tok, "demo-w01", "user="+u+"&index_url=https://hub.example.com/")
		if r.Status != 200 {
			t.Fatalf("seeding %s: %d %s", u, r.Status, r.Body)
		}
		names = append(names, r.JSON(t)["name"].(string))
	}
	if err := caddy.Stop(); err != nil {
		t.Fatal(err)
	}
	return names
}

// checkSeeded reopens dir's store with write access and checks that every
// seeded session is there and that the store takes writes.
func checkSeeded(t *testing.T, dir string, names []string) {
	t.Helper()
	st := e2etest.OpenStore(t, dir)
	got := e2etest.StoredSessions(t, st)
	for _, n := range names {
		if s, ok := got[n]; !ok || s.Owner == "" {
			t.Fatalf("session %s lost or changed after the failed start: %+v (have %d)", n, s, len(got))
		}
	}
	if err := st.Close(); err != nil {
		t.Fatalf("closing the reopened store: %v", err)
	}
	// And a portal starts on it again and still knows the sessions.
	p := startPortal(t, dir, e2etest.DefaultBody)
	tok := p.Token(e2etest.RobotUser, e2etest.RobotPass)
	for _, n := range names {
		if r := p.Do("GET", "/workshops/session/"+n+"/schedule/", tok, nil, nil); r.Status != 200 {
			t.Fatalf("session %s after restart: %d %s", n, r.Status, r.Body)
		}
	}
	if err := caddy.Stop(); err != nil {
		t.Fatal(err)
	}
}

// wantStartError checks that a portal start failed with an error that names
// the data directory.
func wantStartError(t *testing.T, err error, dataDir string) {
	t.Helper()
	if err == nil {
		t.Fatal("the portal started on an unusable data directory")
	}
	if !strings.Contains(err.Error(), dataDir) {
		t.Fatalf("start error does not name the data directory %s: %v", dataDir, err)
	}
}

// TestFaultReadOnlyDataDir: a data directory that cannot be written (a
// read-only bind mount, which stops root as well) makes the start fail with
// an error naming it, and the store in it is intact afterwards.
func TestFaultReadOnlyDataDir(t *testing.T) {
	dir := t.TempDir()
	names := seedStore(t, dir, "ro-1", "ro-2")
	data := filepath.Join(dir, "badger")

	err := syscall.Mount(data, data, "", syscall.MS_BIND, "")
	if tmpfs.NotPermitted(err) {
		// No mount here (unprivileged CI): a data directory under a regular
		// file is refused by the kernel for root too.
		t.Logf("mount not permitted (%v): using a data directory under a regular file", err)
		file := filepath.Join(dir, "file")
		if err := os.WriteFile(file, []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
		bad := filepath.Join(file, "badger")
		wantStartError(t, e2etest.LoadCaddyfile(e2etest.Caddyfile(e2etest.FreePort(t), dir, strings.Replace(e2etest.DefaultBody, "{dir}", bad, 1))), bad)
		checkSeeded(t, dir, names)
		return
	}
	if err != nil {
		t.Fatalf("bind mount: %v", err)
	}
	mounted := true
	unmount := func() {
		if mounted {
			if err := syscall.Unmount(data, syscall.MNT_DETACH); err != nil {
				t.Errorf("unmount %s: %v", data, err)
			}
			mounted = false
		}
	}
	t.Cleanup(unmount)
	if err := syscall.Mount("", data, "", syscall.MS_REMOUNT|syscall.MS_BIND|syscall.MS_RDONLY, ""); err != nil {
		t.Fatalf("remount read-only: %v", err)
	}
	if err := os.WriteFile(filepath.Join(data, "probe"), nil, 0o600); !errors.Is(err, syscall.EROFS) {
		t.Fatalf("the data directory is not read-only: %v", err)
	}
	before := dirListing(t, data)

	wantStartError(t, e2etest.LoadCaddyfile(e2etest.Caddyfile(e2etest.FreePort(t), dir, e2etest.DefaultBody)), data)
	if after := dirListing(t, data); after != before {
		t.Fatalf("the failed start changed the data directory:\n%s\n%s", before, after)
	}
	unmount()
	checkSeeded(t, dir, names)
}

// dirListing names and sizes the files of dir.
func dirListing(t *testing.T, dir string) string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, e := range ents {
		info, err := e.Info()
		if err != nil {
			t.Fatal(err)
		}
		b.WriteString(e.Name() + " " + info.Mode().String() + " " + itoa(int(info.Size())) + "\n")
	}
	return b.String()
}

// TestFaultDiskFullAtStart: a portal that cannot grow its files (a file-size
// limit, which fails writes with EFBIG exactly like a full disk does with
// ENOSPC) fails to start with an error naming the data directory, does not
// crash, and leaves the store intact. It runs in a child process, so that
// neither the limit nor a crash can touch the test binary.
func TestFaultDiskFullAtStart(t *testing.T) {
	dir := t.TempDir()
	names := seedStore(t, dir, "full-1", "full-2")
	data := filepath.Join(dir, "badger")
	verdict, out, err := e2etest.StartOnce(t, dir, e2etest.DefaultBody, e2etest.FaultFsizeEnv+"="+itoa(64<<10))
	if err != nil || !strings.HasPrefix(verdict, e2etest.ChildLoadFail) {
		t.Fatalf("start under a 64 KiB file-size limit: verdict %q, exit %v; output:\n%s", verdict, err, tail(out))
	}
	if !strings.Contains(verdict, data) {
		t.Fatalf("start error does not name the data directory %s: %s", data, verdict)
	}
	checkSeeded(t, dir, names)
}

// TestFaultFullFilesystemAtStart: the same on a really full file system (a
// small tmpfs filled to the last byte), where mounting is permitted. The
// tmpfs is larger than the store's free-space reserve, so that the portal
// runs on it before it is filled.
func TestFaultFullFilesystemAtStart(t *testing.T) {
	dir := t.TempDir()
	data, err := mountDataTmpfs(t, dir)
	if tmpfs.NotPermitted(err) {
		// TestFaultDiskFullAtStart covers the same failure without mount.
		t.Logf("mount not permitted (%v): checking the file-size limit path only", err)
		verdict, out, err := e2etest.StartOnce(t, dir, e2etest.DefaultBody, e2etest.FaultFsizeEnv+"="+itoa(64<<10))
		if err != nil || !strings.HasPrefix(verdict, e2etest.ChildLoadFail) || !strings.Contains(verdict, data) {
			t.Fatalf("start under a file-size limit: verdict %q, exit %v; output:\n%s", verdict, err, tail(out))
		}
		return
	}
	if err != nil {
		t.Fatalf("mount tmpfs: %v", err)
	}
	names := seedStore(t, dir, "tmpfs-1", "tmpfs-2")

	filler := tmpfs.Fill(t, data)

	verdict, out, err := e2etest.StartOnce(t, dir, e2etest.DefaultBody)
	if err != nil || !strings.HasPrefix(verdict, e2etest.ChildLoadFail) {
		t.Fatalf("start on a full file system: verdict %q, exit %v; output:\n%s", verdict, err, tail(out))
	}
	if !strings.Contains(verdict, data) {
		t.Fatalf("start error does not name the data directory %s: %s", data, verdict)
	}
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	checkSeeded(t, dir, names)
}

// tail is the end of a long output, for failure messages.
func tail(s string) string {
	const n = 4000
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}

// TestFaultReloadUnderLoad: config reloads during steady API, dashboard
// and WebSocket traffic fail no request and do not interrupt the open
// WebSocket.
func TestFaultReloadUnderLoad(t *testing.T) {
	up := echo.Start(t, "alpha")
	body := gateBody("", up.Addr, "127.0.0.1:1")
	// The real binary, reloaded with `caddyportal reload` through its admin
	// API as an operator would. (Not the in-process harness: under the race
	// detector Caddy 2.11's reverse proxy reports a benign race between a
	// handler's cleanup and the struct copies of a WebSocket still open
	// through it; the binary is built without -race.)
	dir, port, admin := t.TempDir(), e2etest.FreePort(t), fmt.Sprintf("127.0.0.1:%d", e2etest.FreePort(t))
	proc := e2etest.StartProcess(t, dir, port, e2etest.ProcessCaddyfile(port, admin, dir, body))
	p := remote(t, proc.Base, port, dir)
	reload := func(body string) {
		t.Helper()
		cf := filepath.Join(dir, "Caddyfile")
		if err := os.WriteFile(cf, []byte(e2etest.ProcessCaddyfile(port, admin, dir, body)), 0o600); err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command(e2etest.Binary(t), "reload", "--config", cf, "--adapter", "caddyfile", "--address", admin).CombinedOutput()
		if err != nil {
			t.Fatalf("caddyportal reload: %v\n%s", err, out)
		}
	}
	tok := p.Token(e2etest.RobotUser, e2etest.RobotPass)
	name, ck, _ := p.Activate(tok, "demo-w01", "alice")
	ws, res, err := dialWS(t, nil, "ws"+strings.TrimPrefix(p.Base, "http")+sessionPath(name)+"ws", cookieHdr(ck))
	if err != nil {
		t.Fatalf("websocket: %v %v", err, res)
	}

	type check struct {
		method, path, token string
		hdr                 map[string]string
	}
	checks := []check{
		{"GET", "/workshops/catalog/environments/", tok, nil},
		{"GET", "/workshops/session/" + name + "/schedule/", tok, nil},
		{"GET", "/workshops/user/alice/sessions/", tok, nil},
		{"GET", sessionPath(name) + "load", "", cookieHdr(ck)},
		{"GET", sessionPath(name), "", cookieHdr(ck)},
	}
	var (
		stop     = make(chan struct{})
		wg       sync.WaitGroup
		mu       sync.Mutex
		failures []string
		done     = make([]atomic.Int64, len(checks)+1) // the last is the WebSocket
		retried  atomic.Int64
	)
	fail := func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		if len(failures) < 20 {
			failures = append(failures, fmt.Sprintf(format, args...))
		}
	}
	client := e2etest.HTTPClient(10 * time.Second)
	defer client.CloseIdleConnections()
	for i, c := range checks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				r, err := e2etest.DoWith(client, c.method, p.Base+c.path, c.token, nil, c.hdr)
				if err != nil {
					// A reload closes the old server's idle keep-alive
					// connections; a GET racing that close fails at the
					// transport. Go's client retries such a GET once,
					// browsers likewise; give it the one more try a
					// browser's next pooled connection would. A portal
					// that refused or dropped requests fails both.
					retried.Add(1)
					r, err = e2etest.DoWith(client, c.method, p.Base+c.path, c.token, nil, c.hdr)
				}
				if err != nil {
					fail("%s %s: %v", c.method, c.path, err)
				} else if r.Status != 200 {
					fail("%s %s: %d %s", c.method, c.path, r.Status, r.Body)
				}
				done[i].Add(1)
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for n := 0; ; n++ {
			select {
			case <-stop:
				return
			default:
			}
			msg := fmt.Sprintf("message %d", n)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			err := ws.Write(ctx, websocket.MessageText, []byte(msg))
			var got []byte
			if err == nil {
				_, got, err = ws.Read(ctx)
			}
			cancel()
			if err != nil || string(got) != msg {
				fail("websocket echo %q: %q %v", msg, got, err)
				return
			}
			done[len(checks)].Add(1)
		}
	}()

	// progressed waits (bounded) until every kind of traffic has completed
	// more requests than it had at mark.
	progressed := func(mark []int64) {
		for i := 0; i < 1000; i++ {
			ok := true
			for k := range done {
				ok = ok && done[k].Load() > mark[k]
			}
			if ok {
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
		t.Errorf("traffic stalled around a reload: %v", mark)
	}
	snapshot := func() []int64 {
		m := make([]int64, len(done))
		for k := range done {
			m[k] = done[k].Load()
		}
		return m
	}
	const reloads = 3
	for i := 1; i <= reloads; i++ {
		progressed(snapshot())
		reload(strings.Replace(body, `"Gate lab"`, fmt.Sprintf(`"Gate lab %d"`, i), 1))
		progressed(snapshot())
	}
	close(stop)
	wg.Wait()
	if len(failures) > 0 {
		t.Fatalf("%d+ requests failed across %d reloads:\n%s", len(failures), reloads, strings.Join(failures, "\n"))
	}
	cat := p.Do("GET", "/workshops/catalog/environments/", tok, nil, nil).JSON(t)
	if title := cat["environments"].([]any)[0].(map[string]any)["workshop"].(map[string]any)["title"]; title != fmt.Sprintf("Gate lab %d", reloads) {
		t.Fatalf("the last reload did not apply: %v", title)
	}
	wantEcho(t, ws, "after all reloads")
	t.Logf("requests per kind: %v; transport errors retried once: %d", snapshot(), retried.Load())
}

// faultyUpstream is a dashboard address whose connections misbehave: hang
// accepts and never answers; reset answers every request with a TCP RST.
func faultyUpstream(t *testing.T, mode string) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			switch mode {
			case "hang":
				mu.Lock()
				conns = append(conns, c)
				mu.Unlock()
				go func() { _, _ = io.Copy(io.Discard, c) }()
			case "reset":
				go func() {
					// Read the request head, then abort: SO_LINGER 0 makes
					// Close send RST instead of FIN.
					buf := make([]byte, 4096)
					_, _ = c.Read(buf)
					_ = c.(*net.TCPConn).SetLinger(0)
					_ = c.Close()
				}()
			}
		}
	}()
	t.Cleanup(func() {
		l.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	return l.Addr().String()
}

// faultBody is a portal with a workshop on a faulty dashboard (demo-w01)
// and one on a healthy one (demo-w02).
func faultBody(extra, faulty, healthy string) string {
	return gateBody(extra, faulty) + `
		workshop lab-healthy {
			reserved 0
			upstream ` + healthy + `
		}
`
}

// checkFaultyDashboard checks what a browser gets from a faulty dashboard
// (a clear HTML page, 502 or 504, for pages and WebSockets), that the
// healthy session works meanwhile, and that the faulty session is
// terminated normally.
func checkFaultyDashboard(t *testing.T, p *portal, tok string, client *http.Client) {
	t.Helper()
	bad, ckBad, _ := p.Activate(tok, "demo-w01", "alice")
	good, ckGood, _ := p.Activate(tok, "demo-w02", "bob")

	type answer struct {
		r   resp
		err error
	}
	pending := make(chan answer, 1)
	go func() {
		r, err := e2etest.DoWith(client, "GET", p.Base+sessionPath(bad)+"page", "", nil, cookieHdr(ckBad))
		pending <- answer{r, err}
	}()
	// The healthy dashboard answers while the faulty one is in trouble.
	for i := 0; i < 3; i++ {
		r := p.Do("GET", sessionPath(good)+"ok", "", nil, cookieHdr(ckGood))
		var s echo.Seen
		if r.Status != 200 || json.Unmarshal(r.Body, &s) != nil || s.Upstream != "healthy" {
			t.Fatalf("healthy session during the fault: %d %s", r.Status, r.Body)
		}
	}
	a := <-pending
	if a.err != nil {
		t.Fatalf("the browser got no answer from the faulty dashboard: %v", a.err)
	}
	if a.r.Status != http.StatusBadGateway && a.r.Status != http.StatusGatewayTimeout {
		t.Fatalf("faulty dashboard: status %d, want 502 or 504: %s", a.r.Status, a.r.Body)
	}
	wantPage(t, a.r, a.r.Status, "Dashboard not reachable")

	wsURL := "ws" + strings.TrimPrefix(p.Base, "http") + sessionPath(bad) + "ws"
	if _, res, err := dialWS(t, client, wsURL, cookieHdr(ckBad)); err == nil || res == nil ||
		res.StatusCode != http.StatusBadGateway && res.StatusCode != http.StatusGatewayTimeout {
		t.Fatalf("websocket to the faulty dashboard: %v %v", err, res)
	}
	if r := p.Do("GET", "/workshops/session/"+bad+"/terminate/", tok, nil, nil); r.Status != 200 {
		t.Fatalf("terminating the faulty session: %d %s", r.Status, r.Body)
	}
	if s := p.Do("GET", "/workshops/session/"+bad+"/schedule/", tok, nil, nil); s.Status == 200 && s.JSON(t)["status"] == "RUNNING" {
		t.Fatalf("faulty session still running after terminate: %s", s.Body)
	}
	wantRedirect(t, p.Do("GET", sessionPath(bad), "", nil, cookieHdr(ckBad)), e2etest.HubOrigin+"/alice?notification=session-deleted")
	if r := p.Do("GET", sessionPath(good), "", nil, cookieHdr(ckGood)); r.Status != 200 {
		t.Fatalf("healthy session after the fault: %d %s", r.Status, r.Body)
	}
}

// TestFaultUpstreamResets: a dashboard that resets every connection gives
// the browser the 502 page; nothing else is affected.
func TestFaultUpstreamResets(t *testing.T) {
	healthy := echo.Start(t, "healthy")
	p := startPortal(t, t.TempDir(), faultBody("", faultyUpstream(t, "reset"), healthy.Addr))
	checkFaultyDashboard(t, p, p.Token(e2etest.RobotUser, e2etest.RobotPass), e2etest.HTTPClient(30*time.Second))
}

// TestFaultUpstreamHangs: a dashboard that accepts connections and never
// answers gives the browser a 504/502 page after the portal's dashboard
// timeout instead of hanging; nothing else is affected.
//
// It needs the portal option `dashboard_timeout` (the reverse proxy's
// response header timeout for dashboard upstreams).
func TestFaultUpstreamHangs(t *testing.T) {
	healthy := echo.Start(t, "healthy")
	p := startPortal(t, t.TempDir(), faultBody("dashboard_timeout 1s", faultyUpstream(t, "hang"), healthy.Addr))
	// The client waits far longer than the portal's timeout: if the portal
	// has none, the request fails here instead of hanging the test.
	checkFaultyDashboard(t, p, p.Token(e2etest.RobotUser, e2etest.RobotPass), e2etest.HTTPClient(30*time.Second))
}
