package webui_test

import (
	"context"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/caddyportal/caddyportal/caddyportal/config"
	"github.com/caddyportal/caddyportal/caddyportal/lifecycle"
	"github.com/caddyportal/caddyportal/caddyportal/routes"
	"github.com/caddyportal/caddyportal/caddyportal/sessions"
	"github.com/caddyportal/caddyportal/caddyportal/spawner"
	"github.com/caddyportal/caddyportal/caddyportal/spawner/spawnertest"
)

// strandedPortal runs the pages on replica "new" of a store where replica
// "old", which no longer runs, left a learner's session with its
// environment and an ended one that waits for it to stop its environment.
func strandedPortal(t *testing.T) (p *portal, running, ending string) {
	t.Helper()
	cfg := portalConfig(config.RegistrationOneStep, "")
	cfg.Workshops = append(cfg.Workshops, config.Workshop{Name: "lab", Title: "Lab", Capacity: intp(3), Reserved: intp(0),
		Initial: intp(0), Expires: config.Duration(time.Hour)})
	sp := spawnertest.New()
	close(sp.Release)
	p = newPortalWith(t, cfg, sessions.Options{Replica: "new", Spawners: map[string]spawner.Spawner{"lab": sp}})
	old, err := sessions.New(context.Background(), p.st, cfg, sessions.Options{Now: p.clk.Now, ReconcileInterval: time.Hour,
		Replica: "old", Spawners: map[string]spawner.Spawner{"lab": sp}})
	if err != nil {
		t.Fatal(err)
	}
	for _, user := range []string{"ann", "bob"} {
		res, err := old.RequestSession(context.Background(), sessions.Request{Environment: "demo-w02", User: user})
		if err != nil {
			t.Fatal(err)
		}
		name := res.Session.Name
		// The limit only keeps a broken test from hanging.
		for deadline := time.Now().Add(2 * time.Minute); p.session(name).State != lifecycle.Waiting; time.Sleep(10 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("%s never became ready", name)
			}
		}
		if running == "" {
			running = name
		} else {
			ending = name
		}
	}
	old.Close()
	if _, err := p.svc.Terminate(context.Background(), ending, ""); err != nil {
		t.Fatal(err)
	}
	return p, running, ending
}

// TestBrowserAdminReleasesAGoneReplica: the overview tells the admin that
// a replica is not running and what waits for it; Release… asks to
// confirm and says what will happen; confirmed, the replica's sessions end
// and the overview no longer warns.
func TestBrowserAdminReleasesAGoneReplica(t *testing.T) {
	p, running, ending := strandedPortal(t)
	ctx := chrome(t)
	base := p.srv.URL
	var banner, row string
	err := chromedp.Run(ctx,
		adminSignIn(base+"/admin/"),
		chromedp.WaitVisible("#stranded-old", chromedp.ByID),
		chromedp.Text("#stranded-old", &banner, chromedp.ByID),
		chromedp.Text("#replica-old", &row, chromedp.ByID),
	)
	if err != nil {
		t.Fatalf("admin overview: %v", err)
	}
	screenshot(t, ctx, "replica-stranded")
	if !strings.Contains(banner, "Replica old is not running") || !strings.Contains(banner, "1 learner's session and 1 ended session wait for it") {
		t.Fatalf("banner: %q", banner)
	}
	if !strings.Contains(row, "not reporting") {
		t.Fatalf("replica row: %q", row)
	}
	// Whose sessions they are: the warning's link lists them.
	var listed, filter string
	err = chromedp.Run(ctx,
		chromedp.Click("#stranded-sessions-old", chromedp.ByID),
		chromedp.WaitVisible("#sessions", chromedp.ByID),
		chromedp.Text("#sessions", &listed, chromedp.ByID),
		chromedp.Value("#replica-filter", &filter, chromedp.ByID),
	)
	if err != nil {
		t.Fatalf("the sessions of old: %v", err)
	}
	screenshot(t, ctx, "replica-sessions")
	if !strings.Contains(listed, running) || !strings.Contains(listed, ending) || filter != "old" {
		t.Fatalf("the sessions of old: filter %q, list %q", filter, listed)
	}
	var confirm string
	err = chromedp.Run(ctx,
		chromedp.Navigate(base+"/admin/"),
		chromedp.WaitVisible("#release-old", chromedp.ByID),
		chromedp.Click("#release-old", chromedp.ByID),
		chromedp.WaitVisible("#release-confirm", chromedp.ByID),
		chromedp.Text("main", &confirm, chromedp.ByQuery),
	)
	if err != nil {
		t.Fatalf("release confirmation: %v", err)
	}
	screenshot(t, ctx, "replica-release-confirm")
	if !strings.Contains(confirm, "Release replica old?") || !strings.Contains(confirm, "Release 2 sessions") ||
		!strings.Contains(confirm, "1 learner's session ends now") || !strings.Contains(confirm, "1 ended session waits for old") ||
		strings.Contains(confirm, "reserve") || strings.Contains(confirm, "still starting") {
		t.Fatalf("confirmation page: %q", confirm)
	}
	if s := p.session(running); s.State != lifecycle.Waiting {
		t.Fatalf("%s before the confirmation: %s", running, s.State)
	}
	var notice string
	var warned bool
	err = chromedp.Run(ctx,
		chromedp.Click("#release-confirm", chromedp.ByID),
		chromedp.WaitVisible("#notice", chromedp.ByID),
		chromedp.Text("#notice", &notice, chromedp.ByID),
		chromedp.Evaluate(`document.querySelector(".stranded") !== null || document.getElementById("replicas") !== null`, &warned),
	)
	if err != nil {
		t.Fatalf("release: %v", err)
	}
	screenshot(t, ctx, "replica-released")
	if !strings.Contains(notice, "2 of its sessions ended") || warned {
		t.Fatalf("after the release: notice %q, still warned %v", notice, warned)
	}
	for name, reason := range map[string]string{running: sessions.ReasonEnvironmentLost, ending: sessions.ReasonTerminated} {
		if s := p.session(name); s.State != lifecycle.Stopped || s.Reason != reason {
			t.Fatalf("%s after the release: %s %s", name, s.State, s.Reason)
		}
	}
}

// TestReleaseRefusals: only the admin, with the form's CSRF token, may
// release, and only a replica that is known and not running.
func TestReleaseRefusals(t *testing.T) {
	p, running, _ := strandedPortal(t)
	admin := p.browser()
	admin.login(adminUser, adminPass, "/admin/")
	tok := admin.csrf("/admin/")
	for _, c := range []struct {
		path   string
		form   url.Values
		status int
		text   string
	}{
		{routes.AdminReleasePath("new"), url.Values{"csrf": {tok}, "confirm": {"yes"}}, http.StatusConflict, "Replica still running"},
		{routes.AdminReleasePath("new"), url.Values{"csrf": {tok}}, http.StatusConflict, "Replica still running"},
		{routes.AdminReleasePath("gone"), url.Values{"csrf": {tok}, "confirm": {"yes"}}, http.StatusNotFound, "Replica not found"},
		{routes.AdminReleasePath("gone"), url.Values{"csrf": {tok}}, http.StatusNotFound, "Replica not found"},
		{routes.AdminReleasePath("old"), url.Values{"confirm": {"yes"}}, http.StatusForbidden, ""},
	} {
		r := admin.post(c.path, c.form)
		if r.status != c.status || !strings.Contains(r.body, c.text) {
			t.Fatalf("POST %s %v: %d %s", c.path, c.form, r.status, r.body)
		}
	}
	if r := admin.get(routes.AdminReleasePath("old")); r.status != http.StatusMethodNotAllowed {
		t.Fatalf("GET of the release form target: %d", r.status)
	}
	learner := p.browser()
	learner.signup("cat@example.com", "a-long-password-1")
	r := learner.post(routes.AdminReleasePath("old"), url.Values{"csrf": {learner.csrf("/workshops/catalog/")}, "confirm": {"yes"}})
	if r.status != http.StatusForbidden {
		t.Fatalf("a learner's release: %d %s", r.status, r.body)
	}
	if s := p.session(running); s.State != lifecycle.Waiting || s.EnvOwner != "old" {
		t.Fatalf("%s after refused releases: %s of %s", running, s.State, s.EnvOwner)
	}
}

// TestSessionsOfAReplica: the overview's links list the sessions whose
// environment a replica started, and a bulk action from that list covers
// those alone.
func TestSessionsOfAReplica(t *testing.T) {
	p, running, ending := strandedPortal(t)
	reserve := p.reserve("demo-w01") // another workshop's, of no replica
	mine := p.restRequestTo("demo-w02", "cat")
	admin := p.browser()
	admin.login(adminUser, adminPass, "/admin/")
	overview := admin.get("/admin/")
	if !strings.Contains(overview.body, `href="/admin/sessions/?replica=old&amp;state=all"`) || !strings.Contains(overview.body, `href="/admin/sessions/?replica=old"`) {
		t.Fatalf("the overview does not link to old's sessions:\n%s", overview.body)
	}
	rows := func(path string) []string {
		t.Helper()
		r := admin.get(path)
		if r.status != http.StatusOK {
			t.Fatalf("GET %s: %d", path, r.status)
		}
		var out []string
		for _, m := range regexp.MustCompile(`id="row-([a-z0-9-]+)"`).FindAllStringSubmatch(r.body, -1) {
			out = append(out, m[1])
		}
		slices.Sort(out)
		return out
	}
	if got := rows("/admin/sessions/?replica=old&state=all"); !slices.Equal(got, sorted(running, ending)) {
		t.Fatalf("old's sessions: %v, want %s and %s", got, running, ending)
	}
	if got := rows("/admin/sessions/?replica=old"); !slices.Equal(got, []string{running}) {
		t.Fatalf("old's active sessions: %v, want %s", got, running)
	}
	if got := rows("/admin/sessions/?replica=new&state=all"); !slices.Equal(got, []string{mine}) {
		t.Fatalf("new's sessions: %v, want %s (not the static reserve %s)", got, mine, reserve)
	}
	tok := admin.csrf("/admin/sessions/?replica=old")
	confirm := admin.post("/admin/bulk/", url.Values{"csrf": {tok}, "action": {"terminate"}, "replica": {"old"}})
	if confirm.status != http.StatusOK || !strings.Contains(confirm.body, "replica: old") ||
		!strings.Contains(confirm.body, `name="name" value="`+running+`"`) || strings.Contains(confirm.body, `value="`+mine+`"`) {
		t.Fatalf("bulk confirmation for old's sessions: %d\n%s", confirm.status, confirm.body)
	}
}

func sorted(s ...string) []string { slices.Sort(s); return s }
