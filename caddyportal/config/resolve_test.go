package config

import (
	"testing"
	"time"
)

func ip(n int) *int { return &n }

// TestEnvironmentsDefaultsAndClamping follows reference §4.5 and §4.4.
func TestEnvironmentsDefaultsAndClamping(t *testing.T) {
	pool := []string{"a:1", "b:1", "c:1"}
	tmpl := []string{"{session}.svc:80"}
	cases := []struct {
		name                        string
		maximum                     int
		w                           Workshop
		capacity, reserved, initial int
	}{
		{"pool size is the default capacity", 0, Workshop{Upstreams: pool}, 3, 1, 1},
		{"portal maximum caps the pool default", 2, Workshop{Upstreams: pool}, 2, 1, 1},
		{"template defaults to the portal maximum", 5, Workshop{Upstreams: tmpl}, 5, 1, 1},
		{"template without maximum has no capacity", 0, Workshop{Upstreams: tmpl}, 0, 0, 0},
		{"reserved clamped to capacity", 0, Workshop{Upstreams: tmpl, Capacity: ip(2), Reserved: ip(5)}, 2, 2, 2},
		{"initial raised to reserved", 0, Workshop{Upstreams: pool, Reserved: ip(2), Initial: ip(1)}, 3, 2, 2},
		{"initial 0 stays lazy", 0, Workshop{Upstreams: pool, Reserved: ip(2), Initial: ip(0)}, 3, 2, 0},
		{"initial clamped to capacity", 0, Workshop{Upstreams: pool, Initial: ip(9)}, 3, 1, 3},
		{"reserved 0", 0, Workshop{Upstreams: pool, Reserved: ip(0)}, 3, 0, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			c.w.Name = "w"
			e := Portal{Name: "p", Sessions: SessionLimits{Maximum: c.maximum}, Workshops: []Workshop{c.w}}.Environments()[0]
			if e.Name != "p-w01" || e.Capacity != c.capacity || e.Reserved != c.reserved || e.Initial != c.initial {
				t.Fatalf("got %s capacity %d reserved %d initial %d, want p-w01 %d %d %d",
					e.Name, e.Capacity, e.Reserved, e.Initial, c.capacity, c.reserved, c.initial)
			}
		})
	}
}

func TestDeadlineDefaultsToExpires(t *testing.T) {
	for _, c := range []struct{ expires, deadline, want time.Duration }{
		{time.Hour, 0, time.Hour},
		{time.Hour, 30 * time.Minute, time.Hour},
		{time.Hour, 2 * time.Hour, 2 * time.Hour},
		{0, 0, 0},
	} {
		w := Workshop{Name: "w", Upstreams: []string{"a:1"}, Expires: Duration(c.expires), Deadline: Duration(c.deadline)}
		if got := (Portal{Workshops: []Workshop{w}}).Environments()[0].Deadline; got != c.want {
			t.Errorf("expires %v deadline %v: got %v, want %v", c.expires, c.deadline, got, c.want)
		}
	}
}

func TestWithDefaults(t *testing.T) {
	p := Portal{Sessions: SessionLimits{Registered: 2}, Admin: &Credentials{Password: "x"}}.WithDefaults()
	if p.Name != DefaultName || p.Catalog != CatalogPrivate || p.Registration != RegistrationOneStep ||
		p.Robot.Username != DefaultRobotUsername || p.Admin.Username != DefaultAdminUsername ||
		p.Dashboards.Mode != DashboardsPath || p.Tokens.Access.D() != 10*time.Hour ||
		p.ActivationTimeout.D() != time.Minute || p.Sessions.Anonymous != 2 {
		t.Fatalf("defaults not applied: %+v", p)
	}
}

func TestParseDuration(t *testing.T) {
	for in, want := range map[string]time.Duration{"90s": 90 * time.Second, "1d": 24 * time.Hour, "1d12h": 36 * time.Hour, "60m": time.Hour} {
		if got, err := ParseDuration(in); err != nil || got != want {
			t.Errorf("%s: %v %v", in, got, err)
		}
	}
	for _, bad := range []string{"-5m", "soon", "5", "1dd"} {
		if _, err := ParseDuration(bad); err == nil {
			t.Errorf("%s accepted", bad)
		}
	}
}

// TestExpandSecrets: every secret setting is expanded, nothing else, and
// the caller's config is not changed through a shared pointer.
func TestExpandSecrets(t *testing.T) {
	p := Portal{Name: "{x}", Password: "{x}", Robot: Credentials{Username: "{x}", Password: "{x}"}, Client: Client{ID: "{x}", Secret: "{x}"},
		Admin: &Credentials{Username: "{x}", Password: "{x}"}, Storage: &Storage{Username: "{x}", Password: "{x}", Prefix: "{x}"}}
	q := p.ExpandSecrets(func(s string) string { return "<" + s + ">" })
	const e = "<{x}>"
	if q.Robot.Password != e || q.Client.ID != e || q.Client.Secret != e || q.Admin.Password != e || q.Password != e ||
		q.Storage.Username != e || q.Storage.Password != e {
		t.Errorf("not expanded: %+v %+v %+v", q, *q.Admin, *q.Storage)
	}
	if q.Name != "{x}" || q.Robot.Username != "{x}" || q.Admin.Username != "{x}" || q.Storage.Prefix != "{x}" {
		t.Errorf("expanded a setting that is no secret: %+v %+v %+v", q, *q.Admin, *q.Storage)
	}
	if p.Admin.Password != "{x}" || p.Storage.Password != "{x}" {
		t.Errorf("the original config changed: %+v %+v", *p.Admin, *p.Storage)
	}
}

// TestWithDefaultsEtcdPrefix: the etcd prefix defaults to the portal's
// name, once, without touching the caller's Storage.
func TestWithDefaultsEtcdPrefix(t *testing.T) {
	p := Portal{Storage: &Storage{Backend: StorageEtcd, Endpoints: []string{"e:2379"}}}
	q := p.WithDefaults()
	if q.Storage.Prefix != "/caddyportal/portal/" || p.Storage.Prefix != "" {
		t.Fatalf("prefix %q (original %q), want /caddyportal/portal/ on the copy only", q.Storage.Prefix, p.Storage.Prefix)
	}
	if r := q.WithDefaults(); r.Storage.Prefix != q.Storage.Prefix {
		t.Fatalf("applied twice: %q", r.Storage.Prefix)
	}
	if b := (Portal{Storage: &Storage{Path: "/d"}}).WithDefaults(); b.Storage.Prefix != "" {
		t.Fatalf("badger got an etcd prefix: %q", b.Storage.Prefix)
	}
}
