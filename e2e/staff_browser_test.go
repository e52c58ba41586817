package e2e

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/caddyportal/caddyportal/internal/e2etest"
	"github.com/caddyportal/caddyportal/internal/e2etest/echo"
)

// TestBrowserStaffAccessAndBanners runs two real browsers: a learner in the
// session frame, and the admin, who signs in, opens the learner's session
// page and its dashboard (which then names the admin), while the
// learner's bar shows that staff is connected. Then the learner's link of
// the ended session brings them to the catalog, which says the session
// ended.
func TestBrowserStaffAccessAndBanners(t *testing.T) {
	up := echo.Start(t, "watched")
	port := e2etest.FreePort(t)
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	body := strings.Replace(gateBody("admin admin admin-pass\n\t\tframe\n\t\tcatalog public\n\t\turl "+base, up.Addr),
		"index https://hub.example.com/", "index "+base+"/workshops/catalog/", 1)
	p := &portal{&e2etest.Portal{T: t, Dir: t.TempDir(), Port: port}}
	p.Start(body)
	tok := p.Token(e2etest.RobotUser, e2etest.RobotPass)
	m := p.Request(tok, "demo-w01", "user=lena&index_url="+base+"/workshops/catalog/").JSON(t)
	name, link := m["name"].(string), p.Base+m["url"].(string)
	inBar := func(js string) string { return `document.getElementById("bar").contentDocument.` + js }

	learner := browser(t)
	if err := chromedp.Run(learner,
		chromedp.Navigate(link),
		chromedp.WaitReady("#bar", chromedp.ByQuery),
		chromedp.Poll(inBar(`getElementById("countdown") !== null`), nil),
	); err != nil {
		t.Fatalf("learner: %v", err)
	}

	admin := browser(t)
	var learnerName string
	if err := chromedp.Run(admin,
		chromedp.Navigate(p.Base+"/accounts/login/"),
		chromedp.SendKeys(`input[name="username"]`, "admin", chromedp.ByQuery),
		chromedp.SendKeys(`input[name="password"]`, "admin-pass", chromedp.ByQuery),
		chromedp.Submit(`input[name="password"]`, chromedp.ByQuery),
		chromedp.WaitReady("#allocated", chromedp.ByQuery),
		chromedp.Navigate(p.Base+"/admin/sessions/"+name+"/"),
		chromedp.WaitReady("#open", chromedp.ByQuery),
		// The button opens a new tab; here the same one.
		chromedp.Evaluate(`document.getElementById("open").form.target = "_self"`, nil),
		chromedp.Click("#open", chromedp.ByQuery),
		chromedp.WaitReady("#dashboard", chromedp.ByQuery),
		chromedp.Poll(`document.getElementById("dashboard").contentDocument.getElementById("u") !== null`, nil),
		chromedp.Evaluate(`document.getElementById("dashboard").contentDocument.getElementById("u").innerText`, &learnerName),
	); err != nil {
		t.Fatalf("admin: %v", err)
	}
	if learnerName != "admin" {
		t.Fatalf("the dashboard opened by the admin names %q", learnerName)
	}
	var staff string
	if err := chromedp.Run(learner,
		chromedp.Evaluate(inBar(`location.reload()`), nil),
		chromedp.Poll(`(() => { const d = document.getElementById("bar").contentDocument;
			return d.readyState === "complete" && d.body !== null && d.body.innerText.includes("Staff connected") })()`, nil),
		chromedp.Evaluate(inBar(`querySelector(".staff").innerText`), &staff),
	); err != nil {
		t.Fatalf("the learner's bar: %v", err)
	}
	if staff != "Staff connected: admin" {
		t.Fatalf("the learner's bar says %q", staff)
	}

	// The session ends; its link brings the learner to the catalog, which
	// says why.
	if r := p.Do(http.MethodPost, "/workshops/session/"+name+"/terminate/", tok, nil, nil); r.Status != http.StatusOK {
		t.Fatalf("terminate: %d", r.Status)
	}
	var notice, location string
	if err := chromedp.Run(learner,
		chromedp.Navigate(link),
		chromedp.WaitReady("#notice", chromedp.ByQuery),
		chromedp.Location(&location),
		chromedp.Text("#notice", &notice, chromedp.ByQuery),
	); err != nil {
		t.Fatalf("the ended session's link: %v", err)
	}
	if !strings.HasPrefix(location, base+"/workshops/catalog/") || !strings.Contains(notice, "Your workshop session has ended") {
		t.Fatalf("the ended session's link led to %q saying %q", location, notice)
	}
}
