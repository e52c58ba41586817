package metrics_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/caddyportal/caddyportal/caddyportal/config"
	"github.com/caddyportal/caddyportal/caddyportal/metrics"
	"github.com/caddyportal/caddyportal/caddyportal/sessions"
	"github.com/caddyportal/caddyportal/caddyportal/store/badgerstore"
	"github.com/caddyportal/caddyportal/caddyportal/store/storetest"
)

// t0 is near the wall clock, as Badger's own TTLs follow it.
var t0 = time.Now().UTC().Truncate(time.Second)

const env = "demo-w01"

func intp(n int) *int { return &n }

func portal(capacity int) config.Portal {
	return config.Portal{Name: "demo", Robot: config.Credentials{Password: "robot-pw"},
		Client: config.Client{ID: "client", Secret: "secret"},
		Workshops: []config.Workshop{{Name: "lab", Title: "Lab", Capacity: intp(capacity), Reserved: intp(0),
			Expires: config.Duration(30 * time.Minute), Overtime: config.Duration(10 * time.Minute),
			Deadline: config.Duration(time.Hour), Upstreams: []string{"dash-{session}.svc:8080"}}}}
}

// newService runs a real sessions service on an in-memory Badger store
// with a settable clock, reporting its events to m.
func newService(t *testing.T, m *metrics.Metrics, capacity int) (*sessions.Service, *storetest.Clock) {
	t.Helper()
	clk := storetest.NewClock(t0)
	st, err := badgerstore.Open(badgerstore.Options{InMemory: true, Now: clk.Now, SweepInterval: -1})
	if err != nil {
		t.Fatalf("opening store: %v", err)
	}
	t.Cleanup(func() { _ = st.Close() })
	svc, err := sessions.New(context.Background(), st, portal(capacity), sessions.Options{Now: clk.Now,
		StopGrace: 2 * time.Second, ReconcileInterval: time.Hour, OnEvent: m.ObserveEvent})
	if err != nil {
		t.Fatalf("sessions.New: %v", err)
	}
	t.Cleanup(svc.Close)
	return svc, clk
}

// find returns the gathered sample of name whose labels include want, or
// nil.
func find(t *testing.T, g prometheus.Gatherer, name string, want map[string]string) *dto.Metric {
	t.Helper()
next:
	for _, m := range findAll(t, g, name) {
		have := map[string]string{}
		for _, l := range m.GetLabel() {
			have[l.GetName()] = l.GetValue()
		}
		for k, v := range want {
			if have[k] != v {
				continue next
			}
		}
		return m
	}
	return nil
}

// value returns the counter or gauge value of a sample, 0 when absent.
func value(t *testing.T, g prometheus.Gatherer, name string, labels map[string]string) float64 {
	t.Helper()
	m := find(t, g, name, labels)
	switch {
	case m == nil:
		return 0
	case m.Counter != nil:
		return m.Counter.GetValue()
	case m.Gauge != nil:
		return m.Gauge.GetValue()
	}
	t.Fatalf("%s%v is neither a counter nor a gauge", name, labels)
	return 0
}

func want(t *testing.T, g prometheus.Gatherer, name string, labels map[string]string, v float64) {
	t.Helper()
	if got := value(t, g, name, labels); got != v {
		t.Errorf("%s%v = %v, want %v", name, labels, got, v)
	}
}

func state(s string) map[string]string { return map[string]string{"environment": env, "state": s} }

func request(t *testing.T, svc *sessions.Service, user string) sessions.Result {
	t.Helper()
	res, err := svc.RequestSession(context.Background(), sessions.Request{Environment: env, User: user,
		IndexURL: "https://hub.example.com/"})
	if err != nil {
		t.Fatalf("RequestSession(%s): %v", user, err)
	}
	return res
}

func TestCountersFollowSessionLifecycle(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	m, err := metrics.New(reg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	svc, clk := newService(t, m, 2)
	release := m.SetSessionsSource(metrics.ServiceSessions(svc))
	defer release()
	ctx := context.Background()

	want(t, reg, "caddyportal_sessions", state(metrics.StatePending), 0)

	alice := request(t, svc, "alice")
	want(t, reg, "caddyportal_allocations_total", map[string]string{"environment": env, "result": "allocated"}, 1)
	want(t, reg, "caddyportal_sessions", state(metrics.StatePending), 1)
	want(t, reg, "caddyportal_sessions", state(metrics.StateRunning), 0)

	clk.Advance(7 * time.Second)
	if _, err := svc.Activate(ctx, alice.Session.Name, alice.Token); err != nil {
		t.Fatalf("Activate: %v", err)
	}
	h := find(t, reg, "caddyportal_activation_latency_seconds", map[string]string{"environment": env})
	if h == nil || h.Histogram.GetSampleCount() != 1 || h.Histogram.GetSampleSum() != 7 {
		t.Fatalf("activation latency = %v, want one sample of 7s", h)
	}
	want(t, reg, "caddyportal_sessions", state(metrics.StatePending), 0)
	want(t, reg, "caddyportal_sessions", state(metrics.StateRunning), 1)

	// Within the last overtime step before expiry, extending is allowed.
	clk.Advance(25 * time.Minute)
	if _, _, ok, err := svc.Extend(ctx, alice.Session.Name); err != nil || !ok {
		t.Fatalf("Extend = %v, %v; want extended", ok, err)
	}
	want(t, reg, "caddyportal_extensions_total", map[string]string{"environment": env}, 1)

	// Capacity 2: bob takes the second slot, carol is refused.
	bob := request(t, svc, "bob")
	_, err = svc.RequestSession(ctx, sessions.Request{Environment: env, User: "carol", IndexURL: "https://hub.example.com/"})
	if !errors.Is(err, sessions.ErrNoSession) {
		t.Fatalf("carol's request: %v, want ErrNoSession", err)
	}
	m.AllocationFailed(env, err)
	want(t, reg, "caddyportal_allocations_total", map[string]string{"environment": env, "result": "no-session"}, 1)
	// A user's own cap is counted apart from capacity, though both are
	// ErrNoSession to the REST API.
	m.AllocationFailed(env, sessions.ErrSessionLimit)
	want(t, reg, "caddyportal_allocations_total", map[string]string{"environment": env, "result": "session-limit"}, 1)
	want(t, reg, "caddyportal_allocations_total", map[string]string{"environment": env, "result": "no-session"}, 1)

	// A client-chosen environment name never becomes a label value.
	_, err = svc.RequestSession(ctx, sessions.Request{Environment: "no-such-env", User: "dave", IndexURL: "https://hub.example.com/"})
	if !errors.Is(err, sessions.ErrNoEnvironment) {
		t.Fatalf("unknown environment: %v, want ErrNoEnvironment", err)
	}
	m.AllocationFailed("no-such-env", err)
	want(t, reg, "caddyportal_allocations_total", map[string]string{"environment": "", "result": "no-environment"}, 1)
	if find(t, reg, "caddyportal_allocations_total", map[string]string{"environment": "no-such-env"}) != nil {
		t.Errorf("the unknown environment's name became a label value")
	}

	// Terminate counts once, at once; the later Session/Deleted does not
	// count again.
	if _, err := svc.Terminate(ctx, alice.Session.Name, ""); err != nil {
		t.Fatalf("Terminate: %v", err)
	}
	want(t, reg, "caddyportal_terminations_total", map[string]string{"environment": env, "reason": "terminated"}, 1)
	want(t, reg, "caddyportal_sessions", state(metrics.StateStopping), 1)
	clk.Advance(3 * time.Second)
	if err := svc.Reconcile(ctx); err != nil {
		t.Fatalf("Reconcile: %v", err)
	}
	want(t, reg, "caddyportal_terminations_total", map[string]string{"environment": env, "reason": "terminated"}, 1)
	want(t, reg, "caddyportal_sessions", state(metrics.StateStopping), 0)

	// bob activates and then runs out of time.
	if _, err := svc.Activate(ctx, bob.Session.Name, bob.Token); err != nil {
		t.Fatalf("Activate bob: %v", err)
	}
	clk.Advance(31 * time.Minute)
	want(t, reg, "caddyportal_sessions", state(metrics.StateRunning), 0) // effective state, before any sweep
	if err := svc.Reconcile(ctx); err != nil {
		t.Fatalf("Reconcile: %v", err)
	}
	want(t, reg, "caddyportal_terminations_total", map[string]string{"environment": env, "reason": "expired"}, 1)
	h = find(t, reg, "caddyportal_activation_latency_seconds", map[string]string{"environment": env})
	if h.Histogram.GetSampleCount() != 2 {
		t.Errorf("activation latency samples = %d, want 2", h.Histogram.GetSampleCount())
	}
	want(t, reg, "caddyportal_sessions_scrape_errors_total", nil, 0)
}

func TestReloadKeepsCounts(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	m1, err := metrics.New(reg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	svc, _ := newService(t, m1, 3)
	release := m1.SetSessionsSource(metrics.ServiceSessions(svc))
	request(t, svc, "alice")
	m1.TokenGrant("password", "ok")
	m1.WebSocketOpened(env)

	// A second config on the same registry adopts the registered collectors.
	m2, err := metrics.New(reg)
	if err != nil {
		t.Fatalf("New on the same registry: %v", err)
	}
	m2.TokenGrant("password", "ok")
	m2.WebSocketClosed(env)
	m2.Allocation(env, metrics.ResultAllocated)
	grants := map[string]string{"grant": "password", "result": "ok"}
	allocs := map[string]string{"environment": env, "result": "allocated"}
	want(t, reg, "caddyportal_token_requests_total", grants, 2)
	want(t, reg, "caddyportal_websockets_open", map[string]string{"environment": env}, 0)
	want(t, reg, "caddyportal_allocations_total", allocs, 2)
	// The sessions gauge kept its source across the adoption.
	want(t, reg, "caddyportal_sessions", state(metrics.StatePending), 1)

	// Caddy 2.11 gives each config a fresh registry: Register carries the
	// same collectors, values included, over to it.
	next := prometheus.NewPedanticRegistry()
	if err := m2.Register(next); err != nil {
		t.Fatalf("Register: %v", err)
	}
	if err := m2.Register(next); err != nil {
		t.Fatalf("Register twice: %v", err)
	}
	want(t, next, "caddyportal_token_requests_total", grants, 2)
	want(t, next, "caddyportal_allocations_total", allocs, 2)
	m2.TokenGrant("password", "ok")
	want(t, next, "caddyportal_token_requests_total", grants, 3)
	want(t, reg, "caddyportal_token_requests_total", grants, 3)

	// The old config's Cleanup releases its source; the gauge then has
	// no samples instead of stale ones.
	release()
	if find(t, next, "caddyportal_sessions", nil) != nil {
		t.Errorf("sessions gauge still reports a released source")
	}
}

func TestSessionsSourcesNewestWins(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	m, err := metrics.New(reg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	fixed := func(n int) metrics.SessionsSource {
		return func(context.Context) (map[metrics.SessionKey]int, error) {
			return map[metrics.SessionKey]int{{Environment: env, State: metrics.StateRunning}: n}, nil
		}
	}
	releaseOld := m.SetSessionsSource(fixed(1))
	releaseNew := m.SetSessionsSource(fixed(5))
	releaseBad := m.SetSessionsSource(func(context.Context) (map[metrics.SessionKey]int, error) {
		return nil, errors.New("store closed")
	})
	// Overlapping configs of one portal are not summed: the newest wins,
	// and a failing source neither fails the scrape nor hides the others.
	want(t, reg, "caddyportal_sessions", state(metrics.StateRunning), 5)
	// Each scrape so far (this one is the second) met the failing source.
	want(t, reg, "caddyportal_sessions_scrape_errors_total", nil, 2)
	releaseBad()
	releaseNew()
	releaseNew() // releasing twice is harmless
	want(t, reg, "caddyportal_sessions", state(metrics.StateRunning), 1)
	want(t, reg, "caddyportal_sessions_scrape_errors_total", nil, 2)
	releaseOld()
}

func TestLabelsStayBounded(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	m, err := metrics.New(reg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	m.TokenGrant("urn:evil:"+strings.Repeat("x", 100), "unsupported_grant_type")
	m.TokenGrant("refresh_token", "invalid_grant")
	want(t, reg, "caddyportal_token_requests_total", map[string]string{"grant": "other", "result": "unsupported_grant_type"}, 1)
	want(t, reg, "caddyportal_token_requests_total", map[string]string{"grant": "refresh_token", "result": "invalid_grant"}, 1)

	for _, code := range []int{200, 204, 302, 403, 404, 502, 0, 999} {
		m.GateRequest(env, code)
	}
	for class, n := range map[string]float64{"2xx": 2, "3xx": 1, "4xx": 2, "5xx": 1, "other": 2} {
		want(t, reg, "caddyportal_gate_requests_total", map[string]string{"environment": env, "code": class}, n)
	}

	m.WebSocketOpened(env)
	m.WebSocketOpened(env)
	m.WebSocketClosed(env)
	want(t, reg, "caddyportal_websockets_open", map[string]string{"environment": env}, 1)

	m.WebhookDelivery(true)
	m.WebhookDelivery(false)
	m.WebhookDropped()
	m.WebhookDropped()
	want(t, reg, "caddyportal_webhook_deliveries_total", map[string]string{"result": "ok"}, 1)
	want(t, reg, "caddyportal_webhook_deliveries_total", map[string]string{"result": "failed"}, 1)
	want(t, reg, "caddyportal_webhook_deliveries_total", map[string]string{"result": "dropped"}, 2)

	// Other failures of a session request map to their own results.
	m.AllocationFailed(env, sessions.ErrUserNotPermitted)
	m.AllocationFailed(env, sessions.ErrCannotReacquire)
	m.AllocationFailed(env, errors.New("disk full"))
	m.AllocationFailed(env, nil) // not a failure: not counted
	for _, r := range []string{"not-permitted", "cannot-reacquire", "error"} {
		want(t, reg, "caddyportal_allocations_total", map[string]string{"environment": env, "result": r}, 1)
	}
}

func TestEndReasons(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	m, err := metrics.New(reg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	ev := func(name, session, user string, data map[string]any) sessions.Event {
		return sessions.Event{Name: name, Time: t0, User: user, Session: session, Environment: env, Data: data}
	}
	m.ObserveEvent(ev("Session/Orphaned", "demo-w01-s001", "u1", nil))
	m.ObserveEvent(ev("Session/Deleted", "demo-w01-s002", "", nil))
	m.ObserveEvent(ev("Session/Deleted", "demo-w01-s003", "u2", nil))
	m.ObserveEvent(ev("Session/Deleted", "demo-w01-s004", "u3", map[string]any{"reason": "activation-timeout"}))
	m.ObserveEvent(ev("User/Create", "", "u4", nil))
	for reason, n := range map[string]float64{"orphaned": 1, "reserve-removed": 1, "ended": 1, "activation-timeout": 1} {
		want(t, reg, "caddyportal_terminations_total", map[string]string{"environment": env, "reason": reason}, n)
	}
	// A Started without a Pending seen (a session handed out before this
	// process started) records no latency rather than a wrong one.
	m.ObserveEvent(ev("Session/Started", "demo-w01-s009", "u5", nil))
	if h := find(t, reg, "caddyportal_activation_latency_seconds", nil); h != nil {
		t.Errorf("latency recorded without a hand-out time: %v", h)
	}
}

func TestNilMetricsIsNoOp(t *testing.T) {
	var m *metrics.Metrics
	reg := prometheus.NewPedanticRegistry()
	if err := m.Register(reg); err != nil {
		t.Fatalf("nil Register: %v", err)
	}
	m.Unregister(reg)
	m.ObserveEvent(sessions.Event{Name: "Session/Pending", Session: "s", Environment: env})
	m.Allocation(env, "allocated")
	m.AllocationFailed(env, sessions.ErrNoSession)
	m.ActivationLatency(env, time.Second)
	m.Extension(env)
	m.Termination(env, "terminated")
	m.TokenGrant("password", "ok")
	m.GateRequest(env, 200)
	m.WebSocketOpened(env)
	m.WebSocketClosed(env)
	m.WebhookDelivery(true)
	m.WebhookDropped()
	m.ReplicaCurrent("demo", false)
	release := m.SetSessionsSource(func(context.Context) (map[metrics.SessionKey]int, error) { return nil, nil })
	if release == nil {
		t.Fatal("nil Metrics returned a nil release func")
	}
	release()
	families, err := reg.Gather()
	if err != nil || len(families) != 0 {
		t.Fatalf("registry after nil calls = %d families, %v; want empty", len(families), err)
	}
}

func TestNameClashIsAnError(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	other := prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: metrics.Namespace, Name: "allocations_total",
		Help: "Someone else's gauge."}, []string{"environment", "result"})
	if err := reg.Register(other); err != nil {
		t.Fatalf("registering the clashing gauge: %v", err)
	}
	if _, err := metrics.New(reg); err == nil {
		t.Fatal("New adopted a collector of another type")
	}
}

// findAll returns every gathered sample of name.
func findAll(t *testing.T, g prometheus.Gatherer, name string) []*dto.Metric {
	t.Helper()
	families, err := g.Gather()
	if err != nil {
		t.Fatalf("Gather: %v", err)
	}
	for _, f := range families {
		if f.GetName() == name {
			return f.GetMetric()
		}
	}
	return nil
}
