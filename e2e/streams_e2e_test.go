package e2e

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/caddyportal/caddyportal/caddyportal/store/etcdstore/etcdtest"
	"github.com/caddyportal/caddyportal/internal/e2etest"
	"github.com/caddyportal/caddyportal/internal/e2etest/echo"
)

// closeBound is how long after a session ends its streams may still be
// open. It is a correctness bound (the stream must be gone, not merely
// refused on its next upgrade), not a speed target.
const closeBound = time.Second

// wsURL is the WebSocket URL of a path-mode dashboard path on base.
func wsURL(base, name, path string) string {
	return "ws" + strings.TrimPrefix(base, "http") + sessionPath(name) + path
}

// openSocket opens the terminal's WebSocket of session name through the
// gate at base and checks it echoes.
func openSocket(t *testing.T, base, name string, ck *http.Cookie) *websocket.Conn {
	t.Helper()
	c, res, err := dialWS(t, nil, wsURL(base, name, "ws"), cookieHdr(ck))
	if err != nil {
		t.Fatalf("websocket of %s: %v %v", name, err, res)
	}
	wantEcho(t, c, "hello from "+name)
	return c
}

// wantClosed asserts that c is closed within closeBound: a read fails
// with something other than running out of time.
func wantClosed(t *testing.T, c *websocket.Conn, what string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), closeBound)
	defer cancel()
	typ, msg, err := c.Read(ctx)
	if err == nil {
		t.Fatalf("%s: the socket still works: read %v %q", what, typ, msg)
	}
	if errors.Is(err, context.DeadlineExceeded) || ctx.Err() != nil {
		t.Fatalf("%s: the socket is still open %v later (%v)", what, closeBound, err)
	}
}

// wantCutOff types into alice's socket c after her dashboard slot was
// handed to the next learner: c must already be closed (the read fails at
// once or within closeBound), and what she typed must not reach the
// terminal.
func wantCutOff(t *testing.T, c *websocket.Conn, term *echo.Server, what string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), closeBound)
	defer cancel()
	_ = c.Write(ctx, websocket.MessageText, []byte("rm -rf ~ # typed by alice after her session ended"))
	wantClosed(t, c, what)
	for _, got := range term.Received() {
		if strings.Contains(got, "typed by alice") {
			t.Fatalf("%s: the old session's socket reached the dashboard after its slot was handed on: %q", what, got)
		}
	}
}

// openEvents opens the terminal's event stream of session name through the
// gate and reads its first event.
func openEvents(t *testing.T, p *portal, name string, ck *http.Cookie) *bufio.Reader {
	t.Helper()
	req, _ := http.NewRequest("GET", p.Base+sessionPath(name)+"events", nil)
	req.AddCookie(ck)
	res, err := (&http.Client{}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { res.Body.Close() })
	br := bufio.NewReader(res.Body)
	if line, err := br.ReadString('\n'); res.StatusCode != 200 || err != nil || strings.TrimSpace(line) != "data: first" {
		t.Fatalf("event stream of %s: %d %q %v", name, res.StatusCode, line, err)
	}
	_, _ = br.ReadString('\n') // the event's blank line
	return br
}

// wantStreamEnded asserts that an event stream ends within closeBound.
func wantStreamEnded(t *testing.T, br *bufio.Reader, what string) {
	t.Helper()
	got := make(chan error, 1)
	go func() {
		_, err := br.ReadString('\n')
		got <- err
	}()
	select {
	case err := <-got:
		if err == nil {
			t.Fatalf("%s: the event stream still sends", what)
		}
	case <-time.After(closeBound):
		t.Fatalf("%s: the event stream is still open %v later", what, closeBound)
	}
}

// TestStreamsEndWithSession: a WebSocket (and a long event stream) opened
// through the gate is closed when its session ends, whichever way it ends:
// the REST API's terminate, the learner's delete link, the admin API,
// expiry and orphaning. Before, the gate checked a stream only at the
// upgrade and the socket kept working after the session was over.
func TestStreamsEndWithSession(t *testing.T) {
	term := echo.Start(t, "terminal", echo.Listeners(3))
	body := gateBody("", term.Addrs...) + `
		workshop lab-expiring {
			reserved 0
			expires 2s
			upstream ` + term.Addr + `
		}
		workshop lab-idle {
			reserved 0
			expires 60m
			orphaned 1s
			upstream ` + term.Addr + `
		}
`
	admin := fmt.Sprintf("127.0.0.1:%d", e2etest.FreePort(t))
	p := &portal{&e2etest.Portal{T: t, Dir: t.TempDir(), Admin: admin}}
	p.Start(body)
	tok := p.Token(e2etest.RobotUser, e2etest.RobotPass)

	t.Run("terminate", func(t *testing.T) {
		name, ck, _ := p.Activate(tok, "demo-w01", "terry")
		c := openSocket(t, p.Base, name, ck)
		events := openEvents(t, p, name, ck)
		if r := p.Do("GET", "/workshops/session/"+name+"/terminate/", tok, nil, nil); r.Status != 200 {
			t.Fatalf("terminate: %d %s", r.Status, r.Body)
		}
		wantClosed(t, c, "REST terminate")
		wantStreamEnded(t, events, "REST terminate")
	})
	t.Run("delete link", func(t *testing.T) {
		name, ck, _ := p.Activate(tok, "demo-w01", "dora")
		c := openSocket(t, p.Base, name, ck)
		wantRedirect(t, p.Do("GET", sessionPath(name)+"delete/", "", nil, cookieHdr(ck)), e2etest.HubOrigin+"/dora?notification=session-deleted")
		wantClosed(t, c, "delete link")
	})
	t.Run("admin terminate", func(t *testing.T) {
		name, ck, _ := p.Activate(tok, "demo-w01", "adam")
		c := openSocket(t, p.Base, name, ck)
		var term map[string]any
		adminCall(t, admin, "POST", "/portal/demo/sessions/"+name+"/terminate/", 200, &term)
		wantClosed(t, c, "admin API terminate")
	})
	t.Run("expiry", func(t *testing.T) {
		name, ck, _ := p.Activate(tok, "demo-w02", "eve")
		c := openSocket(t, p.Base, name, ck)
		// Nothing writes at the expiry instant. Wait (bounded) until the
		// gate refuses the session; from then on the socket has
		// closeBound to be gone.
		for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
			if r := p.Do("GET", sessionPath(name), "", nil, cookieHdr(ck)); r.Status != 200 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("the session never expired")
			}
		}
		wantClosed(t, c, "expiry")
	})
	t.Run("orphaned", func(t *testing.T) {
		name, ck, _ := p.Activate(tok, "demo-w03", "olga")
		c := openSocket(t, p.Base, name, ck)
		// A silent socket does not keep a session alive: the background
		// pass orphans it. Wait (bounded) for the stop to be stored.
		for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(50 * time.Millisecond) {
			if r := p.Do("GET", "/workshops/session/"+name+"/schedule/", tok, nil, nil); r.Status == 404 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("the session was never orphaned")
			}
		}
		wantClosed(t, c, "orphaning")
	})
	for _, got := range term.Received() {
		if !strings.HasPrefix(got, "demo-") {
			t.Fatalf("the terminal received %q from a connection without a session", got)
		}
	}
}

// TestStreamsNotHandedOn: with one dashboard slot, a socket held open
// across the session's expiry and the slot's reuse never reaches the next
// session's dashboard: it is closed before the slot is handed on, and what
// its owner types afterwards is never received.
func TestStreamsNotHandedOn(t *testing.T) {
	term := echo.Start(t, "terminal")
	body := strings.Replace(gateBody("", term.Addr), "expires 60m", "expires 2s", 1)
	p := startPortal(t, t.TempDir(), body)
	tok := p.Token(e2etest.RobotUser, e2etest.RobotPass)

	old, ckOld, _ := p.Activate(tok, "demo-w01", "alice")
	c := openSocket(t, p.Base, old, ckOld)
	// The next learner asks until the slot is free: that is at the old
	// session's expiry, and no later than the request that reuses it.
	var next string
	for deadline := time.Now().Add(30 * time.Second); next == ""; time.Sleep(20 * time.Millisecond) {
		r := p.Request(tok, "demo-w01", "user=bob&index_url=https://hub.example.com/bob")
		if r.Status == 200 {
			next = r.JSON(t)["name"].(string)
			if r.JSON(t)["url"] == nil {
				t.Fatalf("no activation link: %s", r.Body)
			}
			act := p.Do("GET", r.JSON(t)["url"].(string), "", nil, nil)
			if act.Status != http.StatusFound {
				t.Fatalf("activation of %s: %d %s", next, act.Status, act.Body)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the slot never came free: %d %s", r.Status, r.Body)
		}
	}
	if next == old {
		t.Fatalf("session name reused: %s", next)
	}
	// The slot is now the next session's.
	wantCutOff(t, c, term, "slot reuse")
	if got := term.Received(); len(got) != 1 || got[0] != old+": hello from "+old {
		t.Fatalf("the terminal received %q, want only the old session's greeting", got)
	}
}

// TestStreamsEndOnEveryReplica: two portal processes on one etcd. A
// WebSocket is open through replica B; the session is terminated through
// replica A; B closes the socket (it learns of the change from the etcd
// watch, not from its own requests).
func TestStreamsEndOnEveryReplica(t *testing.T) {
	srv := etcdtest.Start(t)
	term := echo.Start(t, "terminal")
	body := replicaBody(srv.Endpoints()[0], "/streams/", 1, term.Addr) + `
		workshop short {
			reserved 0
			expires 2s
			upstream ` + term.Addr + `
		}
`
	reps := replicas(t, 2, body)
	a, b := remote(t, reps[0].Base, 0, ""), remote(t, reps[1].Base, 0, "")
	tok := a.Token(e2etest.RobotUser, e2etest.RobotPass)

	name, ck, _ := a.Activate(tok, "demo-w02", "rita")
	c := openSocket(t, b.Base, name, ck)
	if r := a.Do("GET", "/workshops/session/"+name+"/terminate/", tok, nil, nil); r.Status != 200 {
		t.Fatalf("terminate on replica A: %d %s", r.Status, r.Body)
	}
	wantClosed(t, c, "terminate on the other replica")

	// An expiry needs no write at all: replica B ends its socket at the
	// instant by itself.
	name, ck, _ = a.Activate(tok, "demo-w03", "rex")
	c = openSocket(t, b.Base, name, ck)
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if r := b.Do("GET", sessionPath(name), "", nil, cookieHdr(ck)); r.Status != 200 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the session never expired")
		}
	}
	wantClosed(t, c, "expiry on a replica that made no write")
}

// TestStreamsEndOnAPartitionedReplica: replica B reaches etcd through a
// relay that the test cuts, as a network partition would. A learner's
// WebSocket to a pooled dashboard is open through B; the session is
// terminated through replica A, and once its slot is free A hands it to the
// next learner. B never hears of the end, yet it must not keep the old
// learner's socket open into the next learner's dashboard: it closes
// requests to shared dashboards as soon as it cannot prove it is current,
// and serves them again once the link is mended.
func TestStreamsEndOnAPartitionedReplica(t *testing.T) {
	srv := etcdtest.Start(t)
	relay := etcdtest.NewRelay(t, srv.Endpoints()[0])
	term := echo.Start(t, "terminal")
	const prefix = "/partition/"
	start := func(endpoint, admin string) *portal {
		dir, port := t.TempDir(), e2etest.FreePort(t)
		p := e2etest.StartProcess(t, dir, port, e2etest.ProcessCaddyfile(port, admin, dir, replicaBody(endpoint, prefix, 1, term.Addr)))
		return remote(t, p.Base, 0, "")
	}
	// Replica B's metrics tell whether it can vouch for its streams.
	adminB := fmt.Sprintf("127.0.0.1:%d", e2etest.FreePort(t))
	current := obsKey("replica_current", "portal", "demo")
	a, b := start(srv.Endpoints()[0], "off"), start(relay.Endpoint(), adminB)
	obsWait(t, "replica B reports itself current", func() bool { return obsScrape(t, adminB)[current] == 1 })
	tok := a.Token(e2etest.RobotUser, e2etest.RobotPass)

	old, ckOld, _ := a.Activate(tok, "demo-w02", "alice")
	c := openSocket(t, b.Base, old, ckOld)
	relay.Cut()
	if r := a.Do("GET", "/workshops/session/"+old+"/terminate/", tok, nil, nil); r.Status != 200 {
		t.Fatalf("terminate on replica A: %d %s", r.Status, r.Body)
	}
	// The next learner asks replica A until the slot is free (after the
	// stopping grace) and activates the session that gets it.
	var next string
	var ckNext *http.Cookie
	for deadline := time.Now().Add(30 * time.Second); next == ""; time.Sleep(50 * time.Millisecond) {
		r := a.Request(tok, "demo-w02", "user=bob&index_url=https://hub.example.com/bob")
		if r.Status == 200 {
			// Asked again, the REST API returns the learner's session.
			next, ckNext, _ = a.Activate(tok, "demo-w02", "bob")
			if want := r.JSON(t)["name"]; next != want {
				t.Fatalf("bob's second request got %s, want his session %v", next, want)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the slot never came free: %d %s", r.Status, r.Body)
		}
	}
	wantCutOff(t, c, term, "a socket on a partitioned replica")
	if v, ok := obsScrape(t, adminB)[current]; !ok || v != 0 {
		t.Fatalf("partitioned replica B: %s = %v (present %v), want 0", current, v, ok)
	}

	// Mended, replica B serves the pooled dashboard again: the next
	// learner's socket through it opens and echoes.
	relay.Mend()
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		c, _, err := dialWS(t, nil, wsURL(b.Base, next, "ws"), cookieHdr(ckNext))
		if err == nil {
			wctx, wcancel := context.WithTimeout(context.Background(), 10*time.Second)
			err = c.Write(wctx, websocket.MessageText, []byte("bob is back"))
			if err == nil {
				_, _, err = c.Read(wctx)
			}
			wcancel()
			if err == nil {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("replica B did not serve the pooled dashboard again after the partition: %v", err)
		}
	}
	if v := obsScrape(t, adminB)[current]; v != 1 {
		t.Fatalf("mended replica B: %s = %v, want 1", current, v)
	}
}

// TestStreamsEndAfterReload: a config reload keeps open WebSockets (see
// TestGateReloadKeepsWebSocket), so a socket admitted by the old config
// must still end with its session when the new config ends it.
func TestStreamsEndAfterReload(t *testing.T) {
	term := echo.Start(t, "terminal")
	body := gateBody("", term.Addr)
	p := startPortal(t, t.TempDir(), body)
	tok := p.Token(e2etest.RobotUser, e2etest.RobotPass)
	name, ck, _ := p.Activate(tok, "demo-w01", "rhea")
	c := openSocket(t, p.Base, name, ck)
	p.Load(strings.Replace(body, `"Gate lab"`, `"Gate lab, reloaded"`, 1))
	wantEcho(t, c, "still open after the reload")
	if r := p.Do("GET", "/workshops/session/"+name+"/terminate/", tok, nil, nil); r.Status != 200 {
		t.Fatalf("terminate: %d %s", r.Status, r.Body)
	}
	wantClosed(t, c, "terminate after a reload")
}
