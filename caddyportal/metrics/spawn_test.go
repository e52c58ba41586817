package metrics_test

import (
	"context"
	"errors"
	"net"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/caddyportal/caddyportal/caddyportal/metrics"
	"github.com/caddyportal/caddyportal/caddyportal/sessions"
	"github.com/caddyportal/caddyportal/caddyportal/spawner"
	"github.com/caddyportal/caddyportal/caddyportal/store/badgerstore"
)

// heldSpawner starts real loopback HTTP servers as environments, but only
// once release is closed, so a test can hold starts in the queue.
type heldSpawner struct{ release chan struct{} }

func (h heldSpawner) Start(ctx context.Context, spec spawner.Spec, _ func(spawner.Progress)) (spawner.Env, error) {
	select {
	case <-h.release:
	case <-ctx.Done():
		return spawner.Env{}, ctx.Err()
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return spawner.Env{}, err
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(http.ResponseWriter, *http.Request) {})}
	go srv.Serve(l)
	return spawner.Env{Session: spec.Session, Addr: l.Addr().String(), State: []byte(strconv.Quote(l.Addr().String()))}, nil
}

func (heldSpawner) Ready(ctx context.Context, env spawner.Env) error {
	res, err := http.Get("http://" + env.Addr + "/")
	if err != nil {
		return err
	}
	res.Body.Close()
	return nil
}

func (heldSpawner) ReadyTimeout() time.Duration                 { return time.Minute }
func (heldSpawner) Stop(context.Context, spawner.Env) error     { return nil }
func (heldSpawner) List(context.Context) ([]spawner.Env, error) { return nil, nil }
func (heldSpawner) Alive(context.Context, spawner.Env) bool     { return true }

// TestStartQueueGauge: sessions of a spawned workshop show as queued while
// they wait for a start slot, as starting while their environment starts,
// and as pending once it is ready.
func TestStartQueueGauge(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	m, err := metrics.New(reg)
	if err != nil {
		t.Fatal(err)
	}
	st, err := badgerstore.Open(badgerstore.Options{InMemory: true, SweepInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	cfg := portal(3)
	cfg.Workshops[0].Upstreams = nil
	cfg.Workshops[0].Spawner = []byte(`{"spawner":"held"}`)
	cfg.Starts = 1
	sp := heldSpawner{release: make(chan struct{})}
	svc, err := sessions.New(context.Background(), st, cfg, sessions.Options{ReconcileInterval: time.Hour,
		Spawners: map[string]spawner.Spawner{"lab": sp}, Replica: "test", OnEvent: m.ObserveEvent})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(svc.Close)
	release := m.SetSessionsSource(metrics.ServiceSessions(svc))
	defer release()

	for _, u := range []string{"alice", "bob", "carol"} {
		request(t, svc, u)
	}
	// One start runs (held), two wait.
	waitGauge(t, reg, map[string]float64{metrics.StateStarting: 1, metrics.StateQueued: 2, metrics.StatePending: 0})
	close(sp.release)
	waitGauge(t, reg, map[string]float64{metrics.StateStarting: 0, metrics.StateQueued: 0, metrics.StatePending: 3})
}

// waitGauge polls the sessions gauge until it shows want, within a bound
// that only a broken run reaches.
func waitGauge(t *testing.T, reg prometheus.Gatherer, want map[string]float64) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		ok := true
		for st, v := range want {
			if value(t, reg, "caddyportal_sessions", state(st)) != v {
				ok = false
			}
		}
		if ok {
			return
		}
		if time.Now().After(deadline) {
			for st := range want {
				t.Logf("%s = %v", st, value(t, reg, "caddyportal_sessions", state(st)))
			}
			t.Fatal(errors.New("the sessions gauge never showed the expected states"))
		}
		time.Sleep(10 * time.Millisecond)
	}
}
