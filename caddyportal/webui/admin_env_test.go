package webui_test

import (
	"context"
	"encoding/json"
	"html"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/caddyportal/caddyportal/caddyportal/config"
	"github.com/caddyportal/caddyportal/caddyportal/lifecycle"
	"github.com/caddyportal/caddyportal/caddyportal/routes"
	"github.com/caddyportal/caddyportal/caddyportal/sessions"
	"github.com/caddyportal/caddyportal/caddyportal/spawner"
	"github.com/caddyportal/caddyportal/caddyportal/spawner/process"
	"github.com/caddyportal/caddyportal/internal/proctest"
	"github.com/caddyportal/caddyportal/internal/spawntest"
)

// TestAdminSessionPageShowsEnvironment: the admin's page of a session
// whose workshop starts an environment per session says where its start
// stands (ready, failed and why, queued and where), which replica runs it
// and what the spawner recorded of it (the PID an operator looks for), with
// real dashboard processes. A session of a static pool has no such card.
func TestAdminSessionPageShowsEnvironment(t *testing.T) {
	replica := spawntest.Replica()
	spawnerOf := func(mode string) spawner.Spawner { return spawntest.Dashboards(t, mode, replica) }
	cfg := portalConfig(config.RegistrationOneStep, "")
	for _, name := range []string{"lab-ready", "lab-broken", "lab-slow"} {
		cfg.Workshops = append(cfg.Workshops, config.Workshop{Name: name, Title: name, Capacity: intp(3), Reserved: intp(0),
			Initial: intp(0), Expires: config.Duration(time.Hour)})
	}
	// One start at a time: a second session of lab-slow waits in the queue
	// behind the first, whose dashboard never answers.
	p := newPortalWith(t, cfg, sessions.Options{Starts: 1, Replica: replica, Spawners: map[string]spawner.Spawner{
		"lab-ready": spawnerOf(proctest.DashboardServe), "lab-broken": spawnerOf(proctest.DashboardExit),
		"lab-slow": spawnerOf(proctest.DashboardHang)}})
	admin := p.browser()
	admin.login(adminUser, adminPass, "/admin/")
	page := func(name string) string {
		t.Helper()
		r := admin.get(routes.AdminSessionPath(name))
		if r.status != 200 {
			t.Fatalf("session page of %s: %d %s", name, r.status, r.body)
		}
		return r.body
	}
	waitFor := func(name, what string, cond func(*sessions.Session) bool) *sessions.Session {
		t.Helper()
		// The limit only keeps a broken test from hanging; a loaded
		// machine may take long to start a process.
		for deadline := time.Now().Add(2 * time.Minute); ; time.Sleep(20 * time.Millisecond) {
			s := p.session(name)
			if cond(s) {
				return s
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: not %s: %+v", name, what, s)
			}
		}
	}
	var live []string
	defer func() {
		// Environments outlive a service that closes (a restart adopts
		// them): end the sessions, so that their processes are stopped.
		for _, name := range live {
			if _, err := p.svc.Terminate(context.Background(), name, ""); err != nil {
				t.Errorf("terminate %s: %v", name, err)
			}
		}
		// Past the stopping grace on the portal's clock.
		p.clk.Advance(time.Minute)
		for _, name := range live {
			waitFor(name, "STOPPED", func(s *sessions.Session) bool { return s.State == lifecycle.Stopped })
		}
	}()

	static := p.restRequest("pat")
	if body := page(static); strings.Contains(body, `id="environment"`) {
		t.Errorf("a session of a static pool shows an environment card:\n%s", body)
	}

	// Ready: the step, the replica and the process the spawner recorded.
	ready := p.restRequestTo("demo-w02", "ann")
	live = append(live, ready)
	s := waitFor(ready, "WAITING", func(s *sessions.Session) bool { return s.State == lifecycle.Waiting })
	// Starts end a second apart on the portal's clock from here, so that
	// a queued session's page below can estimate its wait. (One start at a
	// time: each begins only once the one before has ended.)
	p.clk.Advance(time.Second)
	var ps process.State
	if s.Env == nil || json.Unmarshal(s.Env.State, &ps) != nil || ps.PID == 0 {
		t.Fatalf("no process recorded: %+v", s.Env)
	}
	body := page(ready)
	for _, want := range []string{`id="environment"`, `<dd id="env-step">Ready`, `<dd id="env-replica">` + replica + `</dd>`,
		"<dt>pid</dt><dd><code>" + strconv.Itoa(ps.PID) + "</code>", "<dt>dir</dt><dd><code>" + html.EscapeString(ps.Dir) + "</code>"} {
		if !strings.Contains(body, want) {
			t.Errorf("ready session's page lacks %q:\n%s", want, body)
		}
	}
	if strings.Count(body, replica) != 1 {
		t.Errorf("the replica is named more than once:\n%s", body)
	}

	// Lost: its dashboard dies under the learner. The card says that the
	// environment stopped while it ran, and why; its start did not fail.
	if err := syscall.Kill(ps.PID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	s = waitFor(ready, "ended environment-lost", func(s *sessions.Session) bool {
		if s.Reason == sessions.ReasonEnvironmentLost {
			return true
		}
		_ = p.svc.Reconcile(context.Background())
		return false
	})
	live = slices.DeleteFunc(live, func(name string) bool { return name == ready })
	body = page(ready)
	if want := `<dt>Ended</dt><dd id="env-step">Stopped while running: ` + html.EscapeString(s.Progress.Message) + `</dd>`; !strings.Contains(body, want) ||
		!strings.Contains(s.Progress.Message, "signal") {
		t.Errorf("lost session's page lacks %q:\n%s", want, body)
	}

	// Failed: why, in the spawner's words, which the learner's page also
	// shows.
	broken := p.restRequestTo("demo-w03", "bob")
	s = waitFor(broken, "ended start-failed", func(s *sessions.Session) bool { return s.State == lifecycle.Stopped })
	if s.Reason != sessions.ReasonStartFailed || s.Progress == nil || !strings.Contains(s.Progress.Message, "status 3") {
		t.Fatalf("broken start: reason %q progress %+v", s.Reason, s.Progress)
	}
	if body := page(broken); !strings.Contains(body, `<dt>Start</dt><dd id="env-step">Failed: `+html.EscapeString(s.Progress.Message)+`</dd>`) {
		t.Errorf("failed session's page lacks why:\n%s", body)
	}
	p.clk.Advance(time.Second)
	// A third start that ends: now there is a pace.
	third := p.restRequestTo("demo-w02", "eve")
	live = append(live, third)
	waitFor(third, "WAITING", func(s *sessions.Session) bool { return s.State == lifecycle.Waiting })

	// Queued: the second start waits behind the first, which waits for a
	// dashboard that never answers.
	first := p.restRequestTo("demo-w04", "cat")
	live = append(live, first)
	waitFor(first, "waiting for its dashboard", func(s *sessions.Session) bool {
		return s.Progress != nil && s.Progress.Step == spawner.StepWaiting
	})
	second := p.restRequestTo("demo-w04", "dan")
	live = append(live, second)
	waitFor(second, "queued", func(s *sessions.Session) bool { return s.Progress != nil && s.Progress.Step == sessions.StepQueued })
	body = page(first)
	if !strings.Contains(body, `<dd id="env-step">Waiting for the dashboard</dd>`) {
		t.Errorf("starting session's page:\n%s", body)
	}
	// Its wait: one start ahead of it, at one end every 0.5 to 1 s.
	if body := page(second); !strings.Contains(body, `<dd id="env-step">Queued (position 1 in the start queue, in a few seconds)`) {
		t.Errorf("queued session's page:\n%s", body)
	}
	// The sessions list says where each start stands.
	list := admin.get(routes.AdminSessionsPath + "?environment=demo-w04")
	for name, step := range map[string]string{first: "Waiting for the dashboard", second: "Queued"} {
		_, row, ok := strings.Cut(list.body, `id="row-`+name+`"`)
		row, _, _ = strings.Cut(row, "</tr>")
		if !ok {
			t.Errorf("%s is not in the sessions list:\n%s", name, list.body)
		}
		if !strings.Contains(row, `<span class="muted step">`+step+`</span>`) {
			t.Errorf("%s's row in the sessions list lacks %q: %s", name, step, row)
		}
	}
}
