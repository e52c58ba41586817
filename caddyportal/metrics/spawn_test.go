package metrics_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/caddyportal/caddyportal/caddyportal/metrics"
	"github.com/caddyportal/caddyportal/caddyportal/sessions"
	"github.com/caddyportal/caddyportal/caddyportal/spawner"
	"github.com/caddyportal/caddyportal/caddyportal/spawner/spawnertest"
	"github.com/caddyportal/caddyportal/caddyportal/store/badgerstore"
)

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
	sp := spawnertest.New()
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
	close(sp.Release)
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
