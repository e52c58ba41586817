package sessions_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/caddyportal/caddyportal/caddyportal/config"
	"github.com/caddyportal/caddyportal/caddyportal/lifecycle"
	"github.com/caddyportal/caddyportal/caddyportal/sessions"
	"github.com/caddyportal/caddyportal/caddyportal/store"
	"github.com/caddyportal/caddyportal/caddyportal/store/badgerstore"
	"github.com/caddyportal/caddyportal/caddyportal/store/storetest"
)

// t0 is near the wall clock (Badger's own TTL, a space-reclaim aid, follows
// the wall clock) and has a millisecond fraction so formatting bugs show.
var t0 = time.Now().UTC().Truncate(time.Second).Add(123 * time.Millisecond)

// fakeClock is the conformance suite's settable clock, shared by the store
// and the service.
type fakeClock = storetest.Clock

func newClock() *fakeClock { return storetest.NewClock(t0) }

const grace = 2 * time.Second

func intp(n int) *int { return &n }

func durp(d time.Duration) *time.Duration { return &d }

// workshop returns a workshop with a {session} template upstream.
func workshop(name string, capacity, reserved int) config.Workshop {
	return config.Workshop{Name: name, Title: "Title " + name, Capacity: intp(capacity), Reserved: intp(reserved),
		Upstreams: []string{"dash-{session}.svc:8080"}}
}

func portal(ws ...config.Workshop) config.Portal {
	return config.Portal{Name: "demo", Robot: config.Credentials{Password: "robot-pw"},
		Admin:  &config.Credentials{Username: "admin", Password: "admin-pw"},
		Client: config.Client{ID: "client", Secret: "secret"}, Workshops: ws}
}

func openStore(t *testing.T, clk *fakeClock) store.Store {
	t.Helper()
	st, err := badgerstore.Open(badgerstore.Options{InMemory: true, Now: clk.Now, SweepInterval: -1})
	if err != nil {
		t.Fatalf("opening store: %v", err)
	}
	t.Cleanup(func() { _ = st.Close() })
	return st
}

func newService(t *testing.T, st store.Store, clk *fakeClock, cfg config.Portal) *sessions.Service {
	t.Helper()
	svc, err := sessions.New(context.Background(), st, cfg, sessions.Options{Now: clk.Now, StopGrace: grace,
		ReconcileInterval: time.Hour})
	if err != nil {
		t.Fatalf("sessions.New: %v", err)
	}
	t.Cleanup(svc.Close)
	return svc
}

// setup opens an in-memory store and a service on it.
func setup(t *testing.T, cfg config.Portal) (*sessions.Service, store.Store, *fakeClock) {
	t.Helper()
	clk := newClock()
	st := openStore(t, clk)
	return newService(t, st, clk, cfg), st, clk
}

func request(t *testing.T, svc *sessions.Service, env, user string) sessions.Result {
	t.Helper()
	res, err := svc.RequestSession(context.Background(), sessions.Request{Environment: env, User: user, IndexURL: "https://hub.example.com/"})
	if err != nil {
		t.Fatalf("RequestSession(%s, %s): %v", env, user, err)
	}
	return res
}

func requestErr(t *testing.T, svc *sessions.Service, req sessions.Request, want error) {
	t.Helper()
	if req.IndexURL == "" {
		req.IndexURL = "https://hub.example.com/"
	}
	res, err := svc.RequestSession(context.Background(), req)
	if !errors.Is(err, want) {
		name := ""
		if res.Session != nil {
			name = res.Session.Name
		}
		t.Fatalf("RequestSession(%+v) = %q, %v; want %v", req, name, err, want)
	}
}

func get(t *testing.T, svc *sessions.Service, name string) *sessions.Session {
	t.Helper()
	s, err := svc.Get(context.Background(), name)
	if err != nil {
		t.Fatalf("Get(%s): %v", name, err)
	}
	return s
}

func wantState(t *testing.T, svc *sessions.Service, name string, want lifecycle.State) *sessions.Session {
	t.Helper()
	s := get(t, svc, name)
	if s.State != want {
		t.Fatalf("%s state = %s (reason %q), want %s", name, s.State, s.Reason, want)
	}
	return s
}

// live returns the names of the live sessions of env, oldest first.
func live(t *testing.T, svc *sessions.Service, env string) []*sessions.Session {
	t.Helper()
	all, err := svc.EnvironmentSessions(context.Background())
	if err != nil {
		t.Fatalf("EnvironmentSessions: %v", err)
	}
	return all[env]
}

func names(list []*sessions.Session) []string {
	var out []string
	for _, s := range list {
		out = append(out, s.Name)
	}
	return out
}

func reserves(list []*sessions.Session) []string {
	var out []string
	for _, s := range list {
		if s.Reserved() {
			out = append(out, s.Name)
		}
	}
	return out
}

func reconcile(t *testing.T, svc *sessions.Service) {
	t.Helper()
	if err := svc.Reconcile(context.Background()); err != nil {
		t.Fatalf("Reconcile: %v", err)
	}
}
