package main

import (
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/caddyportal/caddyportal/internal/e2etest/chromium"
)

// walkExample is a newcomer's path through the running Caddyfile.example
// (its portal at base) in Chromium, as README's quick start tells it: the
// catalog asks them to sign in, they sign up and sign in, start the
// workshop whose sessions get
// a dashboard process of their own, work in it under the session frame,
// end the session, and are back at the catalog, which says the session
// ended.
func walkExample(t *testing.T, base string) {
	ctx := chromium.New(t, 1100, 700, 90*time.Second)
	inFrame := func(id, js string) string { return `document.getElementById("` + id + `").contentDocument.` + js }
	var location, listing, notice string
	var png []byte
	err := chromedp.Run(ctx,
		chromedp.Navigate(base+"/workshops/catalog/"),
		chromedp.WaitReady("#username", chromedp.ByQuery),
		chromedp.Location(&location),
	)
	if err != nil || !strings.HasPrefix(location, base+"/accounts/login/") {
		t.Fatalf("the catalog for a visitor: at %q (%v)", location, err)
	}
	err = chromedp.Run(ctx,
		chromedp.Navigate(base+"/accounts/signup/"),
		chromedp.SendKeys("#email", "newcomer@example.com", chromedp.ByID),
		chromedp.SendKeys("#first_name", "New", chromedp.ByID),
		chromedp.SendKeys("#password", "newcomer-pass", chromedp.ByID),
		chromedp.SendKeys("#password2", "newcomer-pass", chromedp.ByID),
		chromedp.Click("#submit", chromedp.ByID),
		chromedp.WaitReady("#notice", chromedp.ByID),
		// The login page has the address filled in.
		chromedp.SendKeys("#password", "newcomer-pass", chromedp.ByID),
		chromedp.Click("#submit", chromedp.ByID),
		// lab-files is the example's third workshop: demo-w03.
		chromedp.WaitReady("#start-demo-w03", chromedp.ByID),
		chromedp.Click("#start-demo-w03", chromedp.ByID),
		chromedp.WaitReady("#bar", chromedp.ByID),
		chromedp.Poll(`(() => { const d = document.getElementById("dashboard").contentDocument;
			return d !== null && d.body !== null && d.body.innerText.includes("Directory listing") })()`, nil),
		chromedp.Evaluate(inFrame("dashboard", `body.innerText`), &listing),
		chromedp.Poll(inFrame("bar", `getElementById("end") !== null`), nil),
		chromedp.CaptureScreenshot(&png),
	)
	if err != nil {
		t.Fatalf("sign-up, sign-in and Start: %v", err)
	}
	chromium.KeepScreenshot(t, png, "example-session-frame.png")
	if !strings.Contains(listing, "Directory listing") {
		t.Fatalf("the dashboard in the frame: %q", listing)
	}
	err = chromedp.Run(ctx,
		chromedp.Evaluate(inFrame("bar", `getElementById("end").click()`), nil),
		chromedp.WaitReady("#notice", chromedp.ByID),
		chromedp.Location(&location),
		chromedp.Text("#notice", &notice, chromedp.ByID),
	)
	if err != nil {
		t.Fatalf("End session: %v", err)
	}
	if !strings.HasPrefix(location, base+"/workshops/catalog/") || !strings.Contains(notice, "Your workshop session has ended") {
		t.Fatalf("after End session: at %q saying %q", location, notice)
	}
}
