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
	"github.com/caddyportal/caddyportal/caddyportal/store"
	"github.com/caddyportal/caddyportal/caddyportal/store/badgerstore"
)

// TestStartQueueGauge: sessions of a spawned workshop show as queued while
// they wait for a start slot, as starting while their environment starts,
// and as pending once it is ready.
func TestStartQueueGauge(t *testing.T) {
	reg, m, st := spawnSetup(t)
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

// TestStrandedSessionsGauge: sessions that wait for a replica that is not
// running (here the store's former replica name) show per replica, until
// they are released; a portal's newest source wins.
func TestStrandedSessionsGauge(t *testing.T) {
	reg, m, st := spawnSetup(t)
	cfg := portal(3)
	cfg.Workshops[0].Upstreams = nil
	sp := spawnertest.New()
	close(sp.Release)
	open := func(replica string) *sessions.Service {
		svc, err := sessions.New(context.Background(), st, cfg, sessions.Options{ReconcileInterval: time.Hour,
			Spawners: map[string]spawner.Spawner{"lab": sp}, Replica: replica})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(svc.Close)
		return svc
	}
	old := open("old")
	for _, u := range []string{"alice", "bob"} {
		request(t, old, u)
	}
	cur := open("new")
	release := m.SetStrandedSource("demo", metrics.ServiceStranded(cur, 0))
	defer release()
	stranded := map[string]string{"portal": "demo", "replica": "old"}
	// Until old has started both environments, some of its sessions wait
	// in its queue; they wait for old all the same.
	want(t, reg, "caddyportal_stranded_sessions", stranded, 2)
	want(t, reg, "caddyportal_stranded_sessions", map[string]string{"replica": "new"}, 0)
	old.Close()
	if _, err := cur.ReleaseReplica(context.Background(), "old"); err != nil {
		t.Fatal(err)
	}
	if find(t, reg, "caddyportal_stranded_sessions", stranded) != nil {
		t.Fatal("released sessions still show as stranded")
	}
	// A newer config of the same portal replaces the source, not adds to it.
	releaseNewer := m.SetStrandedSource("demo", func(context.Context) (map[string]int, error) { return map[string]int{"x": 7}, nil })
	defer releaseNewer()
	want(t, reg, "caddyportal_stranded_sessions", map[string]string{"portal": "demo", "replica": "x"}, 7)
	if n := len(findAll(t, reg, "caddyportal_stranded_sessions")); n != 1 {
		t.Fatalf("%d stranded samples, want the newest source's one", n)
	}
}

// spawnSetup returns a registry with the portal's metrics on it and an
// in-memory store for a service.
func spawnSetup(t *testing.T) (*prometheus.Registry, *metrics.Metrics, store.Store) {
	t.Helper()
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
	return reg, m, st
}
