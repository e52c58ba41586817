package config

import (
	"slices"
	"strings"
	"testing"
	"time"
)

// TestCheckUpstreams: the dashboard addresses a workshop may list are the
// ones the gate and the health checker can dial, each once; a JSON config
// is held to the same rules as the Caddyfile.
func TestCheckUpstreams(t *testing.T) {
	for _, ok := range [][]string{
		{"127.0.0.1:9001"},
		{"127.0.0.1:9001", "127.0.0.1:9002", "dash.internal:8080"},
		{"[::1]:9001"},
		{"{session}.lab.internal:8080"},
		{"dash-{session}:80"},
	} {
		if err := CheckUpstreams(ok); err != nil {
			t.Errorf("%q refused: %v", ok, err)
		}
	}
	for _, c := range []struct {
		addrs []string
		want  string
	}{
		{[]string{""}, "empty address"},
		{[]string{"a:1", "b:1", "a:1"}, `"a:1" listed twice`},
		{[]string{"a:1", "{session}:1"}, "template must be the only address"},
		{[]string{"{session}:1", "a:1"}, "template must be the only address"},
		{[]string{"http://a:1"}, "not a dial address"},
		{[]string{"a"}, "not a dial address"},
		{[]string{"::1"}, "not a dial address"},
		{[]string{"a:b"}, "the port must be a number"},
		{[]string{"a:65536"}, "the port must be a number"},
		{[]string{"a@b:1"}, "not a dial address"},
	} {
		if err := CheckUpstreams(c.addrs); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: error %v, want %q", c.addrs, err, c.want)
		}
	}
	// The JSON config's workshop: the same slot twice would hand one
	// dashboard to two learners.
	w := Workshop{Name: "lab", Upstreams: []string{"127.0.0.1:9001", "127.0.0.1:9001"}}
	if err := w.Validate(); err == nil || !strings.Contains(err.Error(), `upstream: "127.0.0.1:9001" listed twice`) {
		t.Errorf("a JSON pool with one address twice: %v", err)
	}
}

// TestCapacityNeeded: a workshop whose dashboards are started per session
// has no pool to default its capacity to; without a capacity or the
// portal's sessions maximum it could never give a session, so it is refused.
func TestCapacityNeeded(t *testing.T) {
	zero, four := 0, 4
	spawned := Workshop{Name: "lab", Spawner: []byte(`{"spawner":"process","command":["x"]}`)}
	tmpl := Workshop{Name: "lab", Upstreams: []string{"{session}.lab:80"}}
	pool := Workshop{Name: "lab", Upstreams: []string{"a:1", "b:1"}}
	valid := func(max int, w Workshop) error {
		p := Portal{Name: "p", Robot: Credentials{Username: "r", Password: "pw"}, Client: Client{ID: "c", Secret: "s"},
			Sessions: SessionLimits{Maximum: max}, Workshops: []Workshop{w}}
		return p.Validate()
	}
	for _, w := range []Workshop{spawned, tmpl} {
		if err := valid(0, w); err == nil || !strings.Contains(err.Error(), "set `capacity <n>`, or the portal's `sessions maximum <n>`") {
			t.Errorf("%+v without a capacity: %v", w, err)
		}
		if err := valid(10, w); err != nil {
			t.Errorf("%+v under sessions maximum 10: %v", w, err)
		}
		for _, c := range []*int{&four, &zero} {
			w.Capacity = c
			if err := valid(0, w); err != nil {
				t.Errorf("%+v with capacity %d: %v", w, *c, err)
			}
		}
	}
	if err := valid(0, pool); err != nil {
		t.Errorf("a pool without a capacity: %v", err)
	}
}

// TestAdjusted: settings the portal runs otherwise than written are named
// for the log, each with what the portal does instead; plain ones are not.
func TestAdjusted(t *testing.T) {
	n := func(v int) *int { return &v }
	mins := func(m int) Duration { return Duration(time.Duration(m) * time.Minute) }
	p := Portal{Sessions: SessionLimits{Maximum: 3}, Workshops: []Workshop{
		{Name: "plain", Upstreams: []string{"a:1", "b:1"}, Reserved: n(1), Initial: n(2), Expires: mins(30), Overtime: mins(10), Deadline: mins(60)},
		{Name: "short", Upstreams: []string{"{session}:80"}, Expires: mins(30), Overtime: mins(1)},
		{Name: "early", Upstreams: []string{"{session}:80"}, Expires: mins(10), Deadline: mins(5)},
		{Name: "many", Upstreams: []string{"{session}:80"}, Reserved: n(5), Initial: n(9)},
		{Name: "probed", Upstreams: []string{"a:1"}, HealthCheck: &HealthCheck{Interval: Duration(time.Second), Timeout: Duration(5 * time.Second)}},
		{Name: "probed-fine", Upstreams: []string{"a:1"}, HealthCheck: &HealthCheck{Interval: Duration(10 * time.Second), Timeout: Duration(5 * time.Second)}},
	}}
	want := []string{
		`workshop "short": overtime 1m0s is shorter than the shortest extension step: each extension adds 5m0s`,
		`workshop "early": deadline 5m0s is before expires 10m0s: sessions last 10m0s and cannot be extended`,
		`workshop "many": reserved 5 is more than its capacity: 3 are kept ready`,
		`workshop "many": initial 9 is more than its capacity: 3 are started at start-up`,
		`workshop "probed": health_check timeout 5s is longer than its interval 1s: a dashboard that hangs holds each probe round up to 5s, so dashboards are probed less often than every 1s`,
	}
	if got := p.Adjusted(); !slices.Equal(got, want) {
		t.Errorf("Adjusted() =\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// TestWeakSecrets: the example Caddyfile's demo values and short secrets
// are named for the log; long ones, and an admin that is not configured,
// are not.
func TestWeakSecrets(t *testing.T) {
	p := Portal{Robot: Credentials{Password: "demo-robot-password"}, Client: Client{ID: "c", Secret: "short"},
		Admin: &Credentials{Password: "a-long-enough-admin-password"}}
	want := []string{
		"the robot's password is the example Caddyfile's demo value: change it before anyone else can reach this portal",
		"the client secret has 5 characters: use at least 12, such as the output of `openssl rand -base64 18`",
	}
	if got := p.WeakSecrets(); !slices.Equal(got, want) {
		t.Errorf("WeakSecrets() =\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	p = Portal{Robot: Credentials{Password: "0123456789ab"}, Client: Client{Secret: "kq3J9vX2mP0zR7tY"}}
	if got := p.WeakSecrets(); len(got) != 0 {
		t.Errorf("strong secrets and no admin: %v", got)
	}
	p.Admin = &Credentials{Password: "demo-admin-password"}
	p.URL = "https://training.example.com"
	if got := p.WeakSecrets(); len(got) != 1 || !strings.HasPrefix(got[0], "the admin's password is the example") {
		t.Errorf("the example's admin password at %s: %v", p.URL, got)
	}
	// A portal whose url is on this machine is somebody's laptop.
	for _, local := range []string{"http://localhost:8080", "http://LOCALHOST", "http://127.0.0.1:8080", "http://[::1]:8080"} {
		p.URL = local
		if got := p.WeakSecrets(); len(got) != 0 {
			t.Errorf("at %s: %v", local, got)
		}
	}
}
