package e2e

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/caddyportal/caddyportal/internal/e2etest"
	"github.com/caddyportal/caddyportal/internal/e2etest/chromium"
	"github.com/caddyportal/caddyportal/internal/e2etest/echo"
)

// frameBody is a portal whose workshop shows the session frame; a session
// is expiring (and extendable) from its start: 4 minutes, under the
// 5-minute warning, extended by 10 up to an hour.
func frameBody(upstream string) string {
	return strings.Replace(gateBody("frame", upstream), "expires 60m", "expires 4m\n\t\t\tovertime 10m\n\t\t\tdeadline 60m", 1)
}

// TestBrowserSessionFrame: the learner's dashboard opens in the session
// frame in Chromium: the bar shows the workshop, a countdown that goes
// down, the warning before the end and Extend, which moves the expiry;
// the dashboard below is the real one, through the gate; End session ends
// the session and takes the whole window to the index with Educates'
// notification; the bar of an ended session says so.
func TestBrowserSessionFrame(t *testing.T) {
	up := echo.Start(t, "framed")
	p := startPortal(t, t.TempDir(), frameBody(up.Addr))
	tok := p.Token(e2etest.RobotUser, e2etest.RobotPass)
	m := p.Request(tok, "demo-w01", "user=frida&index_url=https://hub.example.com/frida").JSON(t)
	name := m["name"].(string)
	schedule := func() map[string]any {
		return p.Do(http.MethodGet, "/workshops/session/"+name+"/schedule/", tok, nil, nil).JSON(t)
	}

	bctx := browser(t)
	inBar := func(js string) string { return `document.getElementById("bar").contentDocument.` + js }
	var location, title, countdown, warning, dashboard string
	err := chromedp.Run(bctx,
		chromedp.Navigate(p.Base+m["url"].(string)),
		chromedp.WaitReady("#dashboard", chromedp.ByQuery),
		chromedp.Location(&location),
		chromedp.Poll(inBar(`getElementById("countdown") !== null`), nil),
		chromedp.Poll(`document.getElementById("dashboard").contentDocument.querySelector("h1") !== null`, nil),
		chromedp.Evaluate(inBar(`getElementById("title").innerText`), &title),
		chromedp.Evaluate(inBar(`getElementById("countdown").innerText`), &countdown),
		chromedp.Evaluate(inBar(`getElementById("expiring").innerText`), &warning),
		chromedp.Evaluate(`document.getElementById("dashboard").contentDocument.querySelector("h1").innerText`, &dashboard),
	)
	if err != nil {
		t.Fatalf("browser: %v", err)
	}
	if location != p.Base+"/workshops/session/"+name+"/" || title != "Gate lab" || !strings.HasPrefix(countdown, "Time left: 3:") ||
		!strings.Contains(warning, "Ends soon") || dashboard != "Workshop dashboard framed" {
		t.Fatalf("frame at %q: title %q, countdown %q, warning %q, dashboard %q", location, title, countdown, warning, dashboard)
	}
	var png []byte
	if err := chromedp.Run(bctx, chromedp.CaptureScreenshot(&png)); err != nil {
		t.Fatal(err)
	}
	chromium.KeepScreenshot(t, png, "session-frame.png")

	// On a phone the bar, warning and all, still shows its links and
	// buttons whole: the title and the warning give way.
	var fits bool
	if err := chromedp.Run(bctx,
		chromedp.EmulateViewport(390, 844),
		chromedp.Poll(`document.getElementById("bar").contentDocument.documentElement.clientWidth <= 390`, nil),
		chromedp.Evaluate(`(() => { const d = document.getElementById("bar").contentDocument, w = d.documentElement.clientWidth;
			return ["workshops", "extend", "end"].every(id => { const r = d.getElementById(id).getBoundingClientRect();
				return r.width > 0 && r.left >= 0 && r.right <= w }) })()`, &fits),
		chromedp.CaptureScreenshot(&png),
		chromedp.EmulateViewport(1100, 760),
	); err != nil {
		t.Fatal(err)
	}
	chromium.KeepScreenshot(t, png, "session-frame-phone.png")
	if !fits {
		t.Fatal("on a 390-pixel screen the bar cuts off Workshops, Extend or End session (session-frame-phone.png)")
	}

	// The countdown goes down at the bar's next load.
	time.Sleep(1100 * time.Millisecond)
	var later string
	if err := chromedp.Run(bctx,
		chromedp.Evaluate(inBar(`location.reload()`), nil),
		chromedp.Poll(`(() => { const d = document.getElementById("bar").contentDocument, c = d.getElementById("countdown");
			return d.readyState === "complete" && c !== null && c.innerText !== `+quoteJS(countdown)+` })()`, nil),
		chromedp.Evaluate(inBar(`getElementById("countdown").innerText`), &later),
	); err != nil {
		t.Fatalf("reloading the bar: %v", err)
	}
	if later >= countdown {
		t.Fatalf("the countdown went from %q to %q", countdown, later)
	}

	// Extend moves the expiry.
	before := schedule()["expires"]
	if err := chromedp.Run(bctx,
		// The bar may be reloading itself: wait for its button.
		chromedp.Poll(`(() => { const d = document.getElementById("bar").contentDocument;
			return d.readyState === "complete" && d.getElementById("extend") !== null })()`, nil),
		chromedp.Evaluate(inBar(`getElementById("extend").click()`), nil),
	); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the expiry to move", func() bool { return schedule()["expires"] != before })

	// End session ends it and sends the whole window to the index.
	if err := chromedp.Run(bctx,
		chromedp.Poll(`(() => { const d = document.getElementById("bar").contentDocument;
			return d.readyState === "complete" && d.getElementById("end") !== null })()`, nil),
		chromedp.Evaluate(inBar(`getElementById("end").click()`), nil),
	); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the session to end", func() bool {
		r := p.Do(http.MethodGet, "/workshops/session/"+name+"/schedule/", tok, nil, nil)
		return r.Status == http.StatusNotFound || r.JSON(t)["status"] == "STOPPING"
	})
	// The whole window left the frame for the index (which does not exist
	// here, so Chromium may show its error page for it).
	waitFor(t, "the window to leave the frame", func() bool {
		_ = chromedp.Run(bctx, chromedp.Location(&location))
		return !strings.Contains(location, "/workshops/session/")
	})
	// The bar of the ended session says so, and where to go.
	var ended string
	if err := chromedp.Run(bctx,
		chromedp.Navigate(p.Base+"/workshops/session/"+name+"/portal-frame/bar"),
		chromedp.Text("#ended", &ended, chromedp.ByQuery),
	); err != nil {
		t.Fatalf("the bar after End: %v", err)
	}
	if !strings.Contains(ended, "This session has ended") {
		t.Errorf("the bar after End says %q", ended)
	}
}

// quoteJS is s as a JavaScript string literal.
func quoteJS(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
}
