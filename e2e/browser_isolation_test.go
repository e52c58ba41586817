package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"html"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"

	"github.com/caddyportal/caddyportal/internal/e2etest"
	"github.com/caddyportal/caddyportal/internal/e2etest/echo"
)

// attackPage is a dashboard page that tries what a hostile path-mode
// dashboard would: read its own secret (allowed), fetch the victim
// session's dashboard with the browser's cookie, with and without a
// Referer, call the portal's API in the background, and set cookies
// outside its session, among them the portal's login cookie. It writes
// what it got into #result as JSON and adds #done.
const attackPage = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Hostile dashboard</title></head>
<body><h1>Dashboard %s</h1><pre id="result"></pre>
<script>
const victim = new URLSearchParams(location.search).get("victim");
const out = {};
async function probe(key, url, opts) {
	try {
		const r = await fetch(url, opts);
		out[key] = r.status + " " + (await r.text()).slice(0, 300);
	} catch (e) {
		out[key] = "error " + e;
	}
}
(async () => {
	await probe("setcookie", "setcookie");
	await probe("own", "secret");
	await probe("cross", "/workshops/session/" + victim + "/secret");
	await probe("crossNoReferrer", "/workshops/session/" + victim + "/secret", {referrerPolicy: "no-referrer"});
	await probe("catalog", "/workshops/catalog/environments/");
	document.getElementById("result").textContent = JSON.stringify(out);
	const done = document.createElement("div");
	done.id = "done";
	document.body.appendChild(done);
})();
</script></body></html>
`

// hostileUpstream is the stand-in dashboard (its WebSocket page at / and
// echo at /ws) that also serves attackPage at /attack, the session's
// secret at /secret, and cookies it should not set at /setcookie.
type hostileUpstream struct {
	*echo.Server
	secretReads atomic.Int64 // requests that reached /secret
}

func startHostileUpstream(t *testing.T, name string) *hostileUpstream {
	t.Helper()
	u := &hostileUpstream{}
	u.Server = echo.Start(t, name, echo.Handle("/attack", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprintf(w, attackPage, html.EscapeString(name))
	}), echo.Handle("/strict", func(w http.ResponseWriter, r *http.Request) {
		// A dashboard that asks browsers to send no referrers at all.
		w.Header().Set("Referrer-Policy", "no-referrer")
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprint(w, `<!doctype html><title>Strict</title><pre id="result"></pre><script>
fetch("secret").then(async (r) => r.status + " " + await r.text(), (e) => "error " + e).then((v) => {
	document.getElementById("result").textContent = v;
	const d = document.createElement("div"); d.id = "done"; document.body.appendChild(d);
});
</script>`)
	}), echo.Handle("/secret", func(w http.ResponseWriter, r *http.Request) {
		u.secretReads.Add(1)
		fmt.Fprintf(w, "secret of %s", r.Header.Get("X-Portal-Session"))
	}), echo.Handle("/setcookie", func(w http.ResponseWriter, r *http.Request) {
		prefix := r.Header.Get("X-Forwarded-Prefix")
		for _, c := range []string{
			"portal-demo-login=forged; Path=/",
			"portal-demo-other=forged; Path=" + prefix + "/",
			"escape=1; Path=/",
			"escapesibling=1; Path=" + prefix + "9/",
			"inside=1; Path=" + prefix + "/",
		} {
			w.Header().Add("Set-Cookie", c)
		}
		fmt.Fprint(w, "cookies set")
	}))
	return u
}

// TestBrowserPathModeIsolation: in path mode, one browser holds the
// cookies of two sessions. A page of session A's dashboard still reaches
// its own dashboard (page, WebSocket, fetch), but its fetches of session
// B's dashboard, with or without a Referer, and of the portal's API are
// refused and never reach B's upstream; the cookies its upstream tries to
// set outside its session, the portal's login cookie among them, never
// reach the browser. Last, another site's link to B's delete link only
// shows a confirmation, whose button ends the session.
func TestBrowserPathModeIsolation(t *testing.T) {
	upA, upB := startHostileUpstream(t, "alpha"), startHostileUpstream(t, "beta")
	p := startPortal(t, t.TempDir(), gateBody("catalog public", upA.Addr, upB.Addr))
	tok := p.Token(e2etest.RobotUser, e2etest.RobotPass)
	link := func(user string) (string, string) {
		m := p.Request(tok, "demo-w01", "user="+user+"&index_url=https://hub.example.com/").JSON(t)
		return m["name"].(string), p.Base + m["url"].(string)
	}
	a, linkA := link("alice")
	b, linkB := link("bob")

	bctx := browser(t)
	var locA, locB, status, result string
	err := chromedp.Run(bctx,
		// The activation redirects land on each dashboard, and A's page
		// talks to its own dashboard over a WebSocket.
		chromedp.Navigate(linkB),
		chromedp.WaitReady("#echoed", chromedp.ByQuery),
		chromedp.Location(&locB),
		chromedp.Navigate(linkA),
		chromedp.WaitReady("#echoed", chromedp.ByQuery),
		chromedp.Location(&locA),
		chromedp.Text("#status", &status, chromedp.ByQuery),
		chromedp.Navigate(p.Base+sessionPath(a)+"attack?victim="+b),
		chromedp.WaitReady("#done", chromedp.ByQuery),
		chromedp.Text("#result", &result, chromedp.ByQuery),
	)
	if err != nil {
		t.Fatalf("browser: %v", err)
	}
	if locA != p.Base+sessionPath(a) || locB != p.Base+sessionPath(b) || status != "echoed" {
		t.Fatalf("own dashboards: A at %q, B at %q, A's WebSocket %q", locA, locB, status)
	}
	var got map[string]string
	if err := json.Unmarshal([]byte(result), &got); err != nil {
		t.Fatalf("page result %q: %v", result, err)
	}
	t.Logf("hostile page saw: %v", got)
	if got["own"] != "200 secret of "+a || !strings.HasPrefix(got["setcookie"], "200 ") {
		t.Errorf("the page's own dashboard: %q, %q", got["own"], got["setcookie"])
	}
	for _, k := range []string{"cross", "crossNoReferrer", "catalog"} {
		if !strings.HasPrefix(got[k], "403 ") || strings.Contains(got[k], "secret of") {
			t.Errorf("%s: the hostile page got %q, want a 403 refusal", k, got[k])
		}
	}
	if n := upB.secretReads.Load() + upA.secretReads.Load(); n != 1 {
		t.Errorf("%d requests reached a /secret, want only the page's own", n)
	}
	// A dashboard whose pages say Referrer-Policy: no-referrer still
	// reaches itself: the gate keeps same-origin referrers on.
	var strict string
	if err := chromedp.Run(bctx,
		chromedp.Navigate(p.Base+sessionPath(a)+"strict"),
		chromedp.WaitReady("#done", chromedp.ByQuery),
		chromedp.Text("#result", &strict, chromedp.ByQuery),
	); err != nil {
		t.Fatalf("browser: %v", err)
	}
	if strict != "200 secret of "+a {
		t.Errorf("a no-referrer dashboard's own fetch: %q", strict)
	}

	var cookies []*network.Cookie
	err = chromedp.Run(bctx, chromedp.ActionFunc(func(ctx context.Context) error {
		var err error
		cookies, err = network.GetCookies().WithURLs([]string{
			p.Base + "/", p.Base + sessionPath(a) + "x", p.Base + sessionPath(b) + "x", p.Base + sessionPath(a+"9") + "x",
		}).Do(ctx)
		return err
	}))
	if err != nil {
		t.Fatalf("reading the browser's cookies: %v", err)
	}
	have := map[string]string{}
	for _, c := range cookies {
		have[c.Name] = c.Value + " " + c.Path
	}
	t.Logf("browser cookies: %v", have)
	for _, n := range []string{"portal-demo-login", "portal-demo-other", "escape", "escapesibling"} {
		if v, ok := have[n]; ok {
			t.Errorf("the dashboard set cookie %s (%s) in the browser", n, v)
		}
	}
	if have["inside"] != "1 "+sessionPath(a) {
		t.Errorf("the dashboard's own cookie inside its prefix: %q", have["inside"])
	}
	if have["portal-demo-"+a] == "" || have["portal-demo-"+b] == "" {
		t.Errorf("the browser lost a session cookie: %v", have)
	}

	// Another site (localhost is not the same site as 127.0.0.1) links to
	// B's delete link: the browser gets the confirmation page and B keeps
	// running until the learner presses its button.
	evil := http.NewServeMux()
	evil.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprintf(w, `<!doctype html><title>Elsewhere</title><a id="go" href="%s">free prizes</a>`,
			html.EscapeString(p.Base+sessionPath(b)+"delete/"))
	})
	el, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	esrv := &http.Server{Handler: evil, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = esrv.Serve(el) }()
	t.Cleanup(func() { _ = esrv.Close() })
	state := func() any {
		return p.Do("GET", "/workshops/session/"+b+"/schedule/", tok, nil, nil).JSON(t)["status"]
	}
	var title string
	err = chromedp.Run(bctx,
		chromedp.Navigate(fmt.Sprintf("http://localhost:%d/", el.Addr().(*net.TCPAddr).Port)),
		chromedp.Click("#go", chromedp.ByQuery),
		chromedp.WaitReady("#end", chromedp.ByQuery),
		chromedp.Title(&title),
	)
	if err != nil {
		t.Fatalf("browser on the other site: %v", err)
	}
	if title != "End workshop session?" || state() != "RUNNING" {
		t.Fatalf("after another site's link: page %q, session %v", title, state())
	}
	if err := chromedp.Run(bctx, chromedp.Click("#end", chromedp.ByQuery)); err != nil {
		t.Fatalf("pressing End session: %v", err)
	}
	// Bounded wait for the browser's POST; what is asserted is the end.
	for i := 0; i < 100 && state() == "RUNNING"; i++ {
		time.Sleep(50 * time.Millisecond)
	}
	if s := state(); s == "RUNNING" {
		t.Fatalf("the confirmed delete did not end the session: %v", s)
	}
}
