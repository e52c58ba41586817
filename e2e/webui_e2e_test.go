package e2e

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"

	"github.com/caddyportal/caddyportal/internal/e2etest"
	"github.com/caddyportal/caddyportal/internal/e2etest/chromium"
	"github.com/caddyportal/caddyportal/internal/e2etest/echo"
)

// pagesBody is a portal with web pages: one-step registration, no portal
// index (so learners see the catalog), an admin login.
func pagesBody(registration, upstream string) string {
	return `
		name demo
		storage badger {dir}
		redirects https://hub.example.com
		registration ` + registration + `
		sessions maximum 10 registered 1 anonymous 1
		robot robot@portal robot-pass
		client test-client test-secret
		admin admin admin-pass
		workshop lab {
			title "Gate lab"
			reserved 0
			upstream ` + upstream + `
			health_check off
		}
`
}

// TestBrowserLearnerSignsUpAndWorks is the learner's whole path on a real
// Caddy: sign up, catalog, Start, and the dashboard through the gate with
// its WebSocket echoing.
func TestBrowserLearnerSignsUpAndWorks(t *testing.T) {
	up := echo.Start(t, "alpha")
	p := startPortal(t, t.TempDir(), pagesBody("one-step", up.Addr))
	ctx := browser(t)
	var who, location, heading, echoed string
	var png []byte
	err := chromedp.Run(ctx,
		chromedp.Navigate(p.Base+"/accounts/signup/"),
		chromedp.WaitVisible("#signup-form", chromedp.ByQuery),
		chromedp.SendKeys("#email", "ann@example.com", chromedp.ByQuery),
		chromedp.SendKeys("#first_name", "Ann", chromedp.ByQuery),
		chromedp.SendKeys("#last_name", "Lee", chromedp.ByQuery),
		chromedp.SendKeys("#password", "ann-password", chromedp.ByQuery),
		chromedp.SendKeys("#password2", "ann-password", chromedp.ByQuery),
		chromedp.Click("#submit", chromedp.ByQuery),
		// Sign-up does not sign in (that would tell a new address from an
		// existing one): the login page says what to do next, the
		// address filled in.
		chromedp.WaitVisible("#notice", chromedp.ByQuery),
		chromedp.SendKeys("#password", "ann-password", chromedp.ByQuery),
		chromedp.Click("#submit", chromedp.ByQuery),
		chromedp.WaitVisible("#start-demo-w01", chromedp.ByID),
		chromedp.Text("#who", &who, chromedp.ByQuery),
		chromedp.Click("#start-demo-w01", chromedp.ByID),
		chromedp.WaitReady("#echoed", chromedp.ByQuery),
		chromedp.Location(&location),
		chromedp.Text("h1", &heading, chromedp.ByQuery),
		chromedp.Text("#echo", &echoed, chromedp.ByQuery),
		chromedp.CaptureScreenshot(&png),
	)
	if err != nil {
		t.Fatalf("learner path: %v", err)
	}
	if who != "ann@example.com" {
		t.Fatalf("catalog greeted %q", who)
	}
	if !strings.HasPrefix(location, p.Base+"/workshops/session/demo-w01-s") || heading != "Workshop dashboard alpha" ||
		echoed != "echo: hello through the gate" {
		t.Fatalf("landed at %q showing %q, echo %q", location, heading, echoed)
	}
	if got := up.LastUpgrade().Get("X-Portal-Session"); !strings.HasPrefix(location, p.Base+"/workshops/session/"+got+"/") {
		t.Fatalf("dashboard WebSocket named session %q, browser is at %q", got, location)
	}
	chromium.KeepScreenshot(t, png, "pages-learner-dashboard.png")
}

// TestBrowserAdminTerminatesOnCaddy: a session the REST API just created
// shows in the admin's list on a real Caddy; the admin terminates it and
// it is gone from the list and from the API.
func TestBrowserAdminTerminatesOnCaddy(t *testing.T) {
	up := echo.Start(t, "alpha")
	p := startPortal(t, t.TempDir(), pagesBody("disabled", up.Addr))
	robot := p.Token(e2etest.RobotUser, e2etest.RobotPass)
	name := p.Request(robot, "demo-w01", "user=rest-user&index_url=https://hub.example.com/").JSON(t)["name"].(string)

	ctx := browser(t)
	var gone bool
	var png []byte
	err := chromedp.Run(ctx,
		chromedp.Navigate(p.Base+"/admin/sessions/"),
		chromedp.WaitVisible("#login-form", chromedp.ByQuery),
		chromedp.SendKeys("#username", "admin", chromedp.ByQuery),
		chromedp.SendKeys("#password", "admin-pass", chromedp.ByQuery),
		chromedp.Click("#submit", chromedp.ByQuery),
		chromedp.WaitVisible("#row-"+name, chromedp.ByID),
		chromedp.Click(`#row-`+name+` a`, chromedp.ByQuery),
		chromedp.Click("#terminate-ask", chromedp.ByQuery),
		chromedp.WaitVisible("#terminate", chromedp.ByQuery),
		chromedp.Click("#terminate", chromedp.ByQuery),
		chromedp.WaitVisible("#notice", chromedp.ByQuery),
		chromedp.Evaluate(`document.getElementById("row-`+name+`") === null && document.getElementById("sessions") !== null`, &gone),
		chromedp.CaptureScreenshot(&png),
	)
	if err != nil {
		t.Fatalf("admin path: %v", err)
	}
	if !gone {
		t.Fatal("the terminated session is still listed")
	}
	chromium.KeepScreenshot(t, png, "pages-admin-terminated.png")
	if res := p.Do("GET", "/workshops/user/rest-user/sessions/", robot, nil, nil); strings.Contains(string(res.Body), name) {
		t.Fatalf("REST API still lists %s: %s", name, res.Body)
	}
}

// TestPagesLoginDisabledOnCaddy: a learner who signed up under one-step
// registration can log in; after a reload to `registration disabled` the
// same login is refused.
func TestPagesLoginDisabledOnCaddy(t *testing.T) {
	dir := t.TempDir()
	p := startPortal(t, dir, pagesBody("one-step", "127.0.0.1:1"))
	ctx := browser(t)
	login := func(wait string) chromedp.Tasks {
		return chromedp.Tasks{
			network.ClearBrowserCookies(),
			chromedp.Navigate(p.Base + "/accounts/login/"),
			chromedp.WaitVisible("#login-form", chromedp.ByQuery),
			chromedp.SendKeys("#username", "ann@example.com", chromedp.ByQuery),
			chromedp.SendKeys("#password", "ann-password", chromedp.ByQuery),
			chromedp.Click("#submit", chromedp.ByQuery),
			chromedp.WaitVisible(wait, chromedp.ByQuery),
		}
	}
	err := chromedp.Run(ctx,
		chromedp.Navigate(p.Base+"/accounts/signup/"),
		chromedp.WaitVisible("#signup-form", chromedp.ByQuery),
		chromedp.SendKeys("#email", "ann@example.com", chromedp.ByQuery),
		chromedp.SendKeys("#password", "ann-password", chromedp.ByQuery),
		chromedp.SendKeys("#password2", "ann-password", chromedp.ByQuery),
		chromedp.Click("#submit", chromedp.ByQuery),
		chromedp.WaitVisible("#notice", chromedp.ByQuery),
		login("#who"),
	)
	if err != nil {
		t.Fatalf("sign-up and login under one-step registration: %v", err)
	}

	p.Load(pagesBody("disabled", "127.0.0.1:1"))
	var msg string
	if err := chromedp.Run(ctx, login("#error"), chromedp.Text("#error", &msg, chromedp.ByQuery)); err != nil {
		t.Fatalf("learner login with registration disabled: %v", err)
	}
	if msg == "" {
		t.Fatal("the refused login shows no message")
	}
	if signup := p.Do("GET", "/accounts/signup/", "", nil, nil); signup.Status < 400 || signup.Status >= 500 {
		t.Fatalf("sign-up page with registration disabled answered %d, want a 4xx", signup.Status)
	}
}

// TestEnvironmentStartOnCaddy: Educates' web start link on a real Caddy.
// A visitor is sent to sign in and back; once signed in, the link goes
// through the session's activation to its dashboard behind the gate, and
// an unknown environment comes back to the catalog with Educates'
// notification.
func TestEnvironmentStartOnCaddy(t *testing.T) {
	up := echo.Start(t, "alpha")
	p := startPortal(t, t.TempDir(), pagesBody("one-step", up.Addr))
	c := formClient(t)
	if r := p.postForm(c, "", "/accounts/signup/", url.Values{"email": {"ann@example.com"}, "first_name": {"Ann"},
		"last_name": {"Lee"}, "password": {"ann-password"}, "password2": {"ann-password"}}); r.Status != http.StatusSeeOther {
		t.Fatalf("sign-up: %d %s", r.Status, r.Body)
	}
	get := func(path string) resp {
		t.Helper()
		r, err := e2etest.DoWith(c, "GET", p.Base+path, "", nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}

	start := "/workshops/environment/demo-w01/"
	login := get(start)
	wantRedirect(t, login, "/accounts/login/?next="+url.QueryEscape(start))
	if r := p.postForm(c, "", login.Header.Get("Location"), url.Values{"username": {"ann@example.com"},
		"password": {"ann-password"}, "next": {start}}); r.Status != http.StatusSeeOther || r.Header.Get("Location") != start {
		t.Fatalf("login: %d %q", r.Status, r.Header.Get("Location"))
	}

	act := get(start)
	if act.Status != http.StatusFound || !strings.HasPrefix(act.Header.Get("Location"), "/workshops/session/demo-w01-s001/activate/?token=") {
		t.Fatalf("start: %d %q %s", act.Status, act.Header.Get("Location"), act.Body)
	}
	wantRedirect(t, get(act.Header.Get("Location")), sessionPath("demo-w01-s001"))
	if d := get(sessionPath("demo-w01-s001")); d.Status != http.StatusOK || !echo.IsPage(d.Body) {
		t.Fatalf("dashboard: %d %s", d.Status, d.Body)
	}
	// Reopening the link reuses the session.
	if again := get(start); again.Header.Get("Location") != act.Header.Get("Location") {
		t.Fatalf("second start went to %q, want %q", again.Header.Get("Location"), act.Header.Get("Location"))
	}

	wantRedirect(t, get("/workshops/environment/nope-w01/"), "/workshops/catalog/?notification=workshop-invalid")
}

// TestAccessCodeOnCaddy: the Caddyfile's `password` (from the environment,
// kept out of the adapted JSON) puts the catalog behind the event access
// code; the code opens it for that browser.
func TestAccessCodeOnCaddy(t *testing.T) {
	t.Setenv("PORTAL_TEST_ACCESS_CODE", "event-2026")
	p := startPortal(t, t.TempDir(), strings.Replace(pagesBody("one-step", "127.0.0.1:1"), "name demo", "name demo\n\t\tpassword {env.PORTAL_TEST_ACCESS_CODE}", 1))
	c := formClient(t)
	get := func(path string) resp {
		t.Helper()
		r, err := e2etest.DoWith(c, "GET", p.Base+path, "", nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	door := "/workshops/access/?redirect_url=" + url.QueryEscape("/workshops/catalog/")
	wantRedirect(t, get("/workshops/catalog/"), door)
	if r := p.postForm(c, "", door, url.Values{"redirect_url": {"/workshops/catalog/"}, "password": {"guess"}}); r.Status != http.StatusForbidden {
		t.Fatalf("wrong code: %d", r.Status)
	}
	if r := p.postForm(c, "", door, url.Values{"redirect_url": {"/workshops/catalog/"}, "password": {"event-2026"}}); r.Status != http.StatusFound ||
		r.Header.Get("Location") != "/workshops/catalog/" {
		t.Fatalf("right code: %d %q", r.Status, r.Header.Get("Location"))
	}
	wantRedirect(t, get("/workshops/catalog/"), "/accounts/login/?next="+url.QueryEscape("/workshops/catalog/"))
}
