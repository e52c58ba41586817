package webhooks_test

import (
	"errors"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/caddyportal/caddyportal/caddyportal/webhooks"
)

// allowGuard is a guard allowing the given analytics_allow entries.
func allowGuard(t *testing.T, allow ...string) *webhooks.Guard {
	t.Helper()
	g, err := webhooks.NewGuard(allow, nil)
	if err != nil {
		t.Fatalf("NewGuard(%q): %v", allow, err)
	}
	return g
}

// port is the port of a receiver's URL.
func port(t *testing.T, raw string) string {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	return u.Port()
}

// TestSessionURLCannotReachLoopback points session URLs at a real
// receiver on 127.0.0.1, by name (localhost, resolved by the dialer, the
// path DNS rebinding would take) and by literal addresses: nothing arrives,
// each delivery is reported failed once (no retries against a refused
// address), and the log says why.
func TestSessionURLCannotReachLoopback(t *testing.T) {
	rc := newReceiver(t, nil)
	p := port(t, rc.URL)
	core, logs := observer.New(zap.DebugLevel)
	res := newResults()
	d := newDispatcher(t, res.opts(webhooks.Options{Logger: zap.New(core), Retries: 3}))
	targets := []string{
		"http://localhost:" + p + "/stop",
		"http://127.0.0.1:" + p + "/stop",
		"http://[::ffff:127.0.0.1]:" + p + "/stop",
	}
	for i, target := range targets {
		d.Send(sessionEvent("Session/Started", "demo-w01-s001", "alice", i), target)
	}
	for range targets {
		if ok := recv(t, res.ch, "a result"); ok {
			t.Error("a delivery to loopback was reported as delivered")
		}
	}
	if got := rc.hits.Load(); got != 0 {
		t.Fatalf("the loopback receiver got %d requests, want none", got)
	}
	failed := logs.FilterMessage("analytics webhook: delivery failed").All()
	if len(failed) != len(targets) {
		t.Fatalf("%d failure log entries, want %d", len(failed), len(targets))
	}
	for _, e := range failed {
		f := e.ContextMap()
		if f["attempts"] != int64(1) || !strings.Contains(f["error"].(string), "loopback") {
			t.Errorf("failure logged as %v, want one attempt refused as loopback", f)
		}
	}
}

// TestAllowedNetworkReachesLoopback: the operator lists 127.0.0.0/8 and
// the same session URLs arrive.
func TestAllowedNetworkReachesLoopback(t *testing.T) {
	rc := newReceiver(t, nil)
	res := newResults()
	d := newDispatcher(t, res.opts(webhooks.Options{Guard: allowGuard(t, "127.0.0.0/8")}))
	d.Send(sessionEvent("Session/Started", "demo-w01-s001", "alice", 0), "http://localhost:"+port(t, rc.URL)+"/by-name")
	d.Send(sessionEvent("Session/Started", "demo-w01-s002", "bob", 0), rc.URL+"/by-address")
	got := map[string]bool{}
	for range 2 {
		if ok := recv(t, res.ch, "a result"); !ok {
			t.Error("a delivery inside the allowed network failed")
		}
		got[recv(t, rc.got, "a delivery").path] = true
	}
	if !got["/by-name"] || !got["/by-address"] {
		t.Errorf("deliveries = %v, want /by-name and /by-address", got)
	}
}

// TestAllowedOriginReachesLoopback: an origin in the allow list is reached
// whatever it resolves to, and only that origin (another port is refused).
func TestAllowedOriginReachesLoopback(t *testing.T) {
	rc := newReceiver(t, nil)
	other := newReceiver(t, nil)
	res := newResults()
	d := newDispatcher(t, res.opts(webhooks.Options{Guard: allowGuard(t, "http://localhost:"+port(t, rc.URL))}))
	d.Send(sessionEvent("Session/Started", "demo-w01-s001", "alice", 0), "http://localhost:"+port(t, rc.URL)+"/hook")
	if ok := recv(t, res.ch, "the allowed origin's result"); !ok {
		t.Error("delivery to the allowed origin failed")
	}
	if got := recv(t, rc.got, "the delivery"); got.path != "/hook" {
		t.Errorf("delivered to %q", got.path)
	}
	d.Send(sessionEvent("Session/Started", "demo-w01-s001", "alice", 1), "http://localhost:"+port(t, other.URL)+"/hook")
	if ok := recv(t, res.ch, "the other origin's result"); ok {
		t.Error("delivery to an origin not listed succeeded")
	}
	if got := other.hits.Load(); got != 0 {
		t.Errorf("the unlisted origin got %d requests", got)
	}
}

// TestRedirectingReceiverIsNotFollowed: a receiver (allowed) answering
// with a redirect to another one does not get the event posted onward.
func TestRedirectingReceiverIsNotFollowed(t *testing.T) {
	target := newReceiver(t, nil)
	for _, global := range []bool{false, true} {
		redirector := newReceiver(t, func(w http.ResponseWriter, r *http.Request, _ int64) {
			http.Redirect(w, r, target.URL+"/stolen", http.StatusTemporaryRedirect)
		})
		res := newResults()
		opts := webhooks.Options{Guard: allowGuard(t, "127.0.0.0/8"), Retries: -1}
		if global {
			opts.URL = redirector.URL
		}
		d := newDispatcher(t, res.opts(opts))
		session := redirector.URL
		if global {
			session = ""
		}
		d.Send(sessionEvent("Session/Started", "demo-w01-s001", "alice", 0), session)
		if ok := recv(t, res.ch, "the result"); ok {
			t.Errorf("global=%v: a redirect was reported as delivered", global)
		}
		if got := redirector.hits.Load(); got != 1 {
			t.Errorf("global=%v: redirector got %d requests, want 1", global, got)
		}
	}
	if got := target.hits.Load(); got != 0 {
		t.Errorf("the redirect target got %d requests, want none", got)
	}
}

// TestGlobalURLOnLoopbackIsTrusted: the operator's own analytics URL may
// be on loopback with no allow list, while a session URL to the same
// receiver is refused.
func TestGlobalURLOnLoopbackIsTrusted(t *testing.T) {
	rc := newReceiver(t, nil)
	res := newResults()
	d := newDispatcher(t, res.opts(webhooks.Options{URL: rc.URL + "/global"}))
	d.Send(sessionEvent("Session/Started", "demo-w01-s001", "alice", 0), rc.URL+"/session")
	var oks int
	for range 2 {
		if recv(t, res.ch, "a result") {
			oks++
		}
	}
	if oks != 1 {
		t.Errorf("%d deliveries succeeded, want 1 (the global one)", oks)
	}
	if got := recv(t, rc.got, "the global delivery"); got.path != "/global" {
		t.Errorf("delivered to %q, want /global", got.path)
	}
	if got := rc.hits.Load(); got != 1 {
		t.Errorf("receiver got %d requests, want 1", got)
	}
}

// TestAdminListenerRefusedInAllowedNetwork: with loopback allowed, a
// session URL still cannot reach Caddy's admin listener, by name or by
// address. A real listener stands in for it.
func TestAdminListenerRefusedInAllowedNetwork(t *testing.T) {
	admin := newReceiver(t, nil)
	p := port(t, admin.URL)
	for _, listen := range []string{"localhost:" + p, "127.0.0.1:" + p, ":" + p} {
		g, err := webhooks.NewGuard([]string{"127.0.0.0/8"}, []string{listen})
		if err != nil {
			t.Fatal(err)
		}
		res := newResults()
		d := newDispatcher(t, res.opts(webhooks.Options{Guard: g}))
		d.Send(sessionEvent("Session/Started", "demo-w01-s001", "alice", 0), "http://localhost:"+p+"/stop")
		d.Send(sessionEvent("Session/Started", "demo-w01-s001", "alice", 1), "http://127.0.0.1:"+p+"/stop")
		for range 2 {
			if ok := recv(t, res.ch, "a result"); ok {
				t.Errorf("admin %s: a delivery to the admin listener succeeded", listen)
			}
		}
		if err := g.CheckURL("http://127.0.0.1:" + p + "/stop"); !errors.Is(err, webhooks.ErrBlocked) {
			t.Errorf("admin %s: CheckURL = %v, want refused", listen, err)
		}
	}
	if got := admin.hits.Load(); got != 0 {
		t.Errorf("the admin listener got %d requests, want none", got)
	}
}

func TestGuardAddresses(t *testing.T) {
	g := allowGuard(t, "10.1.0.0/16", "192.168.7.7", "fd00:1::/32")
	refused := []string{"127.0.0.1", "127.9.9.9", "::1", "0.0.0.0", "::", "169.254.169.254", "fe80::1",
		"10.0.0.1", "172.16.0.1", "192.168.1.1", "fd00::1", "fc00::1", "100.64.0.1", "224.0.0.1", "ff02::1",
		"255.255.255.255", "240.0.0.1", "198.18.0.1", "::ffff:127.0.0.1", "::ffff:169.254.169.254",
		"64:ff9b::7f00:1", "64:ff9b::a9fe:a9fe", "2002:7f00:1::1", "2001:db8::1", "0.1.2.3", "192.0.0.8"}
	allowed := []string{"8.8.8.8", "1.1.1.1", "2606:4700:4700::1111", "10.1.2.3", "192.168.7.7",
		"::ffff:10.1.2.3", "fd00:1::5", "64:ff9b::808:808"}
	for _, a := range refused {
		if err := g.CheckAddr(netip.AddrPortFrom(netip.MustParseAddr(a), 80)); !errors.Is(err, webhooks.ErrBlocked) {
			t.Errorf("CheckAddr(%s) = %v, want refused", a, err)
		}
	}
	for _, a := range allowed {
		if err := g.CheckAddr(netip.AddrPortFrom(netip.MustParseAddr(a), 80)); err != nil {
			t.Errorf("CheckAddr(%s) = %v, want allowed", a, err)
		}
	}
	for _, u := range []string{"http://localhost/", "http://app.localhost:8080/", "https://LocalHost./x",
		"http://127.0.0.1:2019/stop", "http://[::1]/", "http://169.254.169.254/latest/meta-data/",
		"http://0.0.0.0:2019/", "http://[fe80::1%25eth0]/"} {
		err := g.CheckURL(u)
		if !errors.Is(err, webhooks.ErrBlocked) {
			t.Errorf("CheckURL(%q) = %v, want refused", u, err)
		}
	}
	// Names are for the dialer to check; public and allowed literals pass.
	for _, u := range []string{"https://hooks.example.com/x?key=1", "http://8.8.8.8/", "http://10.1.2.3:9000/"} {
		if err := g.CheckURL(u); err != nil {
			t.Errorf("CheckURL(%q) = %v, want allowed", u, err)
		}
	}
	lo := allowGuard(t, "127.0.0.0/8", "::1")
	if err := lo.CheckURL("http://localhost:9000/"); err != nil {
		t.Errorf("with loopback allowed, CheckURL(localhost) = %v", err)
	}
	for _, bad := range []string{"", "10.0.0.0/33", "not-a-network", "ftp://x", "http://x/path", "http://u:p@x",
		"http://x:99999", "10.0.0.1/8/8"} {
		if _, err := webhooks.NewGuard([]string{bad}, nil); err == nil {
			t.Errorf("NewGuard accepted %q", bad)
		}
	}
}
