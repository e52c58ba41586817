package webui_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"golang.org/x/crypto/bcrypt"

	"github.com/caddyportal/caddyportal/caddyportal/config"
	"github.com/caddyportal/caddyportal/caddyportal/lifecycle"
	"github.com/caddyportal/caddyportal/caddyportal/sessions"
	"github.com/caddyportal/caddyportal/internal/e2etest/chromium"
)

// chrome starts a headless Chromium for one test and returns a browser
// context. The limit bounds a hung browser, not a timed assertion: the
// steps below wait for elements, never for durations.
func chrome(t *testing.T) context.Context {
	t.Helper()
	return chromium.New(t, 1100, 760, 90*time.Second)
}

// screenshot captures the page into the artefact directory.
func screenshot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	var png []byte
	if err := chromedp.Run(ctx, chromedp.FullScreenshot(&png, 100)); err != nil {
		t.Fatalf("screenshot %s: %v", name, err)
	}
	chromium.KeepScreenshot(t, png, "webui-"+name+".png")
}

// adminSignIn opens page, which sends a browser that is not signed in to
// the login form with next pointing back, and signs in as the admin.
func adminSignIn(page string) chromedp.Tasks {
	return chromedp.Tasks{
		chromedp.Navigate(page),
		chromedp.WaitVisible("#login-form", chromedp.ByQuery),
		chromedp.SendKeys("#username", adminUser, chromedp.ByQuery),
		chromedp.SendKeys("#password", adminPass, chromedp.ByQuery),
		chromedp.Click("#submit", chromedp.ByQuery),
	}
}

// TestBrowserAdminTerminates: a REST client requests a session; the admin
// logs in through the form, finds the session in the list, opens it,
// clicks Terminate, and the list no longer shows it.
func TestBrowserAdminTerminates(t *testing.T) {
	p := newPortal(t, portalConfig(config.RegistrationDisabled, hubIndex))
	name := p.restRequest("rest-user")
	ctx := chrome(t)
	base := p.srv.URL

	var overview string
	err := chromedp.Run(ctx,
		adminSignIn(base+"/admin/sessions/"),
		chromedp.WaitVisible("#row-"+name, chromedp.ByID),
	)
	if err != nil {
		t.Fatalf("admin login and sessions list: %v", err)
	}
	screenshot(t, ctx, "admin-sessions")
	var owner, state string
	err = chromedp.Run(ctx,
		chromedp.Click(`#row-`+name+` a`, chromedp.ByQuery),
		chromedp.WaitVisible("#terminate-ask", chromedp.ByQuery),
		chromedp.Text("#owner", &owner, chromedp.ByQuery),
		chromedp.Text("#state", &state, chromedp.ByQuery),
	)
	if err != nil {
		t.Fatalf("session detail: %v", err)
	}
	if !strings.Contains(owner, "rest-user") || state != "WAITING" {
		t.Fatalf("detail shows owner %q state %q", owner, state)
	}
	screenshot(t, ctx, "admin-session-detail")
	var notice, location string
	var gone bool
	// Terminate asks first: one click shows what it does and the button
	// that does it.
	var hidden bool
	err = chromedp.Run(ctx,
		chromedp.Evaluate(`!document.getElementById("terminate").checkVisibility()`, &hidden),
		chromedp.Click("#terminate-ask", chromedp.ByQuery),
		chromedp.WaitVisible("#terminate", chromedp.ByQuery),
	)
	if err != nil || !hidden {
		t.Fatalf("terminate's confirmation: hidden at first %v, %v", hidden, err)
	}
	screenshot(t, ctx, "admin-session-terminate")
	err = chromedp.Run(ctx,
		chromedp.Click("#terminate", chromedp.ByQuery),
		chromedp.WaitVisible("#notice", chromedp.ByQuery),
		chromedp.Text("#notice", &notice, chromedp.ByQuery),
		chromedp.Location(&location),
		chromedp.Evaluate(`document.getElementById(`+"`row-"+name+"`"+`) === null && document.getElementById("sessions") !== null`, &gone),
	)
	if err != nil {
		t.Fatalf("terminate: %v", err)
	}
	if !gone || !strings.Contains(notice, "terminated") || location != base+"/admin/sessions/?notice=terminated" {
		t.Fatalf("after terminate: gone %v, notice %q, at %q", gone, notice, location)
	}
	screenshot(t, ctx, "admin-terminated")
	if s := p.session(name); s.State != lifecycle.Stopping || s.Reason != "terminated" {
		t.Fatalf("session after terminate: %s %q", s.State, s.Reason)
	}
	// The overview renders for the admin too (chart and environments).
	if err := chromedp.Run(ctx, chromedp.Navigate(base+"/admin/"), chromedp.WaitVisible("#chart", chromedp.ByQuery),
		chromedp.Text("#environments", &overview, chromedp.ByQuery)); err != nil {
		t.Fatalf("overview: %v", err)
	}
	if !strings.Contains(overview, "demo-w01") {
		t.Fatalf("overview: %q", overview)
	}
	screenshot(t, ctx, "admin-overview")
}

// TestBrowserLearnerStarts: with one-step registration a learner signs up,
// sees the catalog, clicks Start and lands on the session's dashboard
// through the activation link.
func TestBrowserLearnerStarts(t *testing.T) {
	p := newPortal(t, portalConfig(config.RegistrationOneStep, ""))
	ctx := chrome(t)
	base := p.srv.URL
	err := chromedp.Run(ctx,
		chromedp.Navigate(base+"/"),
		// `/` → catalog → login (private catalog); follow the sign-up link.
		chromedp.WaitVisible("#login-form", chromedp.ByQuery),
		chromedp.Click(`a[href="/accounts/signup/"]`, chromedp.ByQuery),
		chromedp.WaitVisible("#signup-form", chromedp.ByQuery),
		chromedp.SendKeys("#email", "ann@example.com", chromedp.ByQuery),
		chromedp.SendKeys("#first_name", "Ann", chromedp.ByQuery),
		chromedp.SendKeys("#last_name", "Lee", chromedp.ByQuery),
		chromedp.SendKeys("#password", "ann-password", chromedp.ByQuery),
		chromedp.SendKeys("#password2", "ann-password", chromedp.ByQuery),
	)
	if err != nil {
		t.Fatalf("sign-up form: %v", err)
	}
	screenshot(t, ctx, "learner-signup")
	var who, prefilled string
	err = chromedp.Run(ctx,
		chromedp.Click("#submit", chromedp.ByQuery),
		// Sign-up does not sign in (that would tell a new address from an
		// existing one): the login page says so, with the address filled
		// in, and the learner signs in.
		chromedp.WaitVisible("#notice", chromedp.ByQuery),
		chromedp.Value("#username", &prefilled, chromedp.ByQuery),
		chromedp.SendKeys("#password", "ann-password", chromedp.ByQuery),
		chromedp.Click("#submit", chromedp.ByQuery),
		chromedp.WaitVisible("#start-"+env1, chromedp.ByID),
		chromedp.Text("#who", &who, chromedp.ByQuery),
	)
	if err != nil {
		t.Fatalf("catalog after sign-up: %v", err)
	}
	if who != "ann@example.com" || prefilled != "ann@example.com" {
		t.Fatalf("catalog shows user %q (the login page had %q filled in)", who, prefilled)
	}
	screenshot(t, ctx, "learner-catalog")
	// On a phone the catalog fits the screen: nothing to scroll sideways.
	var fits bool
	err = chromedp.Run(ctx,
		chromedp.EmulateViewport(390, 844),
		chromedp.Poll(`document.documentElement.clientWidth <= 390`, nil),
		chromedp.Evaluate(`document.documentElement.scrollWidth <= document.documentElement.clientWidth`, &fits),
	)
	if err != nil {
		t.Fatal(err)
	}
	screenshot(t, ctx, "learner-catalog-phone")
	if !fits {
		t.Fatal("on a 390-pixel screen the catalog is wider than the screen (learner-catalog-phone.png)")
	}
	if err := chromedp.Run(ctx, chromedp.EmulateViewport(1100, 760)); err != nil {
		t.Fatal(err)
	}
	var heading, user, location string
	err = chromedp.Run(ctx,
		chromedp.Click("#start-"+env1, chromedp.ByID),
		chromedp.WaitVisible("#dashboard", chromedp.ByID),
		chromedp.Text("#dashboard", &heading, chromedp.ByID),
		chromedp.Text("#user", &user, chromedp.ByID),
		chromedp.Location(&location),
	)
	if err != nil {
		t.Fatalf("start: %v", err)
	}
	usr, err := p.svc.FindUserByEmail(context.Background(), "ann@example.com")
	if err != nil {
		t.Fatal(err)
	}
	owned, err := p.svc.UserSessions(context.Background(), usr.ID)
	if err != nil || len(owned) != 1 {
		t.Fatalf("learner's sessions: %v, %v", owned, err)
	}
	name := owned[0].Name
	if location != base+"/workshops/session/"+name+"/" || heading != "Workshop dashboard "+name || user != usr.ID {
		t.Fatalf("landed at %q showing %q for %q", location, heading, user)
	}
	if owned[0].State != lifecycle.Running {
		t.Fatalf("session is %s after the landing", owned[0].State)
	}
	screenshot(t, ctx, "learner-dashboard")

	// Back in the catalog, the learner's card offers End session, which
	// ends the session and says so.
	var notice string
	err = chromedp.Run(ctx,
		chromedp.Navigate(base+"/workshops/catalog/"),
		chromedp.WaitVisible("#end-"+env1, chromedp.ByID),
		chromedp.Click("#end-"+env1, chromedp.ByID),
		chromedp.WaitVisible("#notice", chromedp.ByID),
		chromedp.Text("#notice", &notice, chromedp.ByID),
	)
	if err != nil {
		t.Fatalf("end session from the catalog: %v", err)
	}
	if !strings.Contains(notice, "Your workshop session has ended") {
		t.Errorf("notice after End session: %q", notice)
	}
	if s := p.session(name); !s.State.Ending() {
		t.Errorf("session is %s after End session", s.State)
	}
	screenshot(t, ctx, "learner-ended")
}

// TestBrowserLoginDisabled: with registration disabled the login form
// refuses a learner who has a stored password.
func TestBrowserLoginDisabled(t *testing.T) {
	p := newPortal(t, portalConfig(config.RegistrationDisabled, ""))
	hash, _ := bcrypt.GenerateFromPassword([]byte("ann-password"), bcrypt.MinCost)
	if _, err := p.svc.CreateUser(context.Background(), sessions.User{Email: "ann@example.com", Group: sessions.GroupRegistered,
		PasswordHash: string(hash)}); err != nil {
		t.Fatal(err)
	}
	ctx := chrome(t)
	base := p.srv.URL
	var msg, location string
	var signupLink bool
	err := chromedp.Run(ctx,
		chromedp.Navigate(base+"/accounts/login/"),
		chromedp.WaitVisible("#login-form", chromedp.ByQuery),
		chromedp.Evaluate(`document.querySelector('a[href="/accounts/signup/"]') !== null`, &signupLink),
		chromedp.SendKeys("#username", "ann@example.com", chromedp.ByQuery),
		chromedp.SendKeys("#password", "ann-password", chromedp.ByQuery),
		chromedp.Click("#submit", chromedp.ByQuery),
		chromedp.WaitVisible("#error", chromedp.ByQuery),
		chromedp.Text("#error", &msg, chromedp.ByQuery),
		chromedp.Location(&location),
	)
	if err != nil {
		t.Fatalf("login: %v", err)
	}
	if signupLink || !strings.Contains(msg, "only the administrator can sign in") || location != base+"/accounts/login/" {
		t.Fatalf("refusal: signup link %v, message %q, at %q", signupLink, msg, location)
	}
	screenshot(t, ctx, "login-disabled")
	// And the catalog still sends this browser to the login page.
	var form bool
	if err := chromedp.Run(ctx, chromedp.Navigate(base+"/workshops/catalog/"), chromedp.WaitVisible("#login-form", chromedp.ByQuery),
		chromedp.Evaluate(`document.getElementById("login-form") !== null`, &form)); err != nil || !form {
		t.Fatalf("catalog after refusal: %v %v", form, err)
	}
}
