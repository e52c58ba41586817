package portal

import (
	"context"
	"slices"
	"testing"

	"github.com/caddyportal/caddyportal/caddyportal/config"
	"github.com/caddyportal/caddyportal/caddyportal/lifecycle"
	"github.com/caddyportal/caddyportal/caddyportal/sessions"
	"github.com/caddyportal/caddyportal/caddyportal/store/badgerstore"
)

// TestHealthTargetsOfATemplate: the health checker probes the address of
// every session of a {session} template workshop that is not STOPPED (here
// its reserves and a learner's session), as the sessions' records hold
// them, and every address of a pool; not a workshop whose checks are off.
func TestHealthTargetsOfATemplate(t *testing.T) {
	st, err := badgerstore.Open(badgerstore.Options{InMemory: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	capacity, reserved := 5, 2
	cfg := config.Portal{Name: "demo", Robot: config.Credentials{Password: "pw"}, Client: config.Client{ID: "c", Secret: "s"},
		Workshops: []config.Workshop{
			{Name: "tmpl", Capacity: &capacity, Reserved: &reserved, Initial: &reserved, Upstreams: []string{"dash-{session}.lab:8080"}},
			{Name: "pool", Upstreams: []string{"127.0.0.1:9001", "127.0.0.1:9002"}},
			{Name: "off", Upstreams: []string{"127.0.0.1:9003"}, HealthCheck: &config.HealthCheck{Disabled: true}},
		}}
	ctx := context.Background()
	svc, err := sessions.New(ctx, st, cfg, sessions.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(svc.Close)
	tmpl := svc.Environments()[0].Name
	if _, err := svc.RequestSession(ctx, sessions.Request{Environment: tmpl, User: "alice", IndexURL: "https://hub.example.com/"}); err != nil {
		t.Fatal(err)
	}
	byEnv, err := svc.EnvironmentSessions(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, s := range byEnv[tmpl] {
		if s.State != lifecycle.Stopped {
			want = append(want, tmpl+" "+s.Upstream)
		}
	}
	want = append(want, svc.Environments()[1].Name+" 127.0.0.1:9001", svc.Environments()[1].Name+" 127.0.0.1:9002")
	var got []string
	for _, tg := range healthTargets(svc) {
		got = append(got, tg.Environment+" "+tg.Addr)
	}
	slices.Sort(got)
	slices.Sort(want)
	if len(want) < 5 || !slices.Equal(got, want) {
		t.Fatalf("health targets:\n%v\nwant (the template's live sessions, two reserves and alice's, and the pool):\n%v", got, want)
	}
}
