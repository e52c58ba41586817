package health_test

import (
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyportal/caddyportal/caddyportal/health"
)

// waitFor bounds a wait for the background prober; it measures nothing.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(2 * time.Minute); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatalf("waiting for %s: gave up (hang guard)", what)
}

func status(c *health.Checker, addr string) (health.Status, bool) {
	for _, s := range c.Statuses() {
		if s.Addr == addr {
			return s, true
		}
	}
	return health.Status{}, false
}

// TestTCPProbeFollowsTheListener: an address where nothing listens turns
// unhealthy, and healthy again once a real listener is there; an address
// never probed counts as healthy.
func TestTCPProbeFollowsTheListener(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // now it refuses connections
	results := make(chan bool, 1024)
	c := health.Start(health.Options{
		Targets: func() []health.Target {
			return []health.Target{{Environment: "demo-w01", Addr: addr, Probe: health.Probe{Interval: 20 * time.Millisecond}}}
		},
		OnResult: func(_ health.Target, ok bool) { results <- ok },
		Tick:     10 * time.Millisecond,
	})
	t.Cleanup(c.Close)
	if !c.Healthy("127.0.0.1:1") {
		t.Error("an address never probed is reported unhealthy")
	}
	waitFor(t, "the refusing address to be unhealthy", func() bool { return !c.Healthy(addr) })
	s, ok := status(c, addr)
	if !ok || s.Healthy || s.Environment != "demo-w01" || !strings.Contains(s.Error, "refused") || s.Checked.IsZero() {
		t.Errorf("status %+v, want unhealthy with the refusal", s)
	}
	<-results // one failure alone leaves it healthy (TestOneFailureIsNotUnhealthy)
	if ok := <-results; ok {
		t.Error("OnResult reported the refusing address healthy after two failures")
	}

	l, err = net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("listening again on %s: %v", addr, err)
	}
	defer l.Close()
	go func() {
		for {
			conn, err := l.Accept()
			if err != nil {
				return
			}
			conn.Close()
		}
	}()
	waitFor(t, "the listening address to be healthy", func() bool { return c.Healthy(addr) })
	if s, _ := status(c, addr); !s.Healthy || s.Error != "" {
		t.Errorf("status %+v, want healthy", s)
	}
}

// TestHTTPProbeChecksThePath: with a path, the answer counts: 5xx is
// unhealthy, a redirect is an answer (healthy), and targets that go away
// are forgotten.
func TestHTTPProbeChecksThePath(t *testing.T) {
	var code atomic.Int64
	code.Store(http.StatusServiceUnavailable)
	var paths atomic.Value
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		paths.Store(r.URL.Path)
		if c := int(code.Load()); c == http.StatusFound {
			http.Redirect(w, r, "/login", c)
		} else {
			w.WriteHeader(c)
		}
	}))
	t.Cleanup(srv.Close)
	addr := strings.TrimPrefix(srv.URL, "http://")
	var gone atomic.Bool
	c := health.Start(health.Options{
		Targets: func() []health.Target {
			if gone.Load() {
				return nil
			}
			return []health.Target{{Environment: "demo-w01", Addr: addr,
				Probe: health.Probe{Path: "/api/status", Interval: 20 * time.Millisecond}}}
		},
		Tick: 10 * time.Millisecond,
	})
	t.Cleanup(c.Close)
	waitFor(t, "a 503 to be unhealthy", func() bool { return !c.Healthy(addr) })
	if p, _ := paths.Load().(string); p != "/api/status" {
		t.Errorf("probed %q, want /api/status", p)
	}
	code.Store(http.StatusFound)
	waitFor(t, "a redirect to be healthy", func() bool { return c.Healthy(addr) })
	gone.Store(true)
	waitFor(t, "the target to be forgotten", func() bool { _, ok := status(c, addr); return !ok })
}

// TestOneFailureIsNotUnhealthy: the first round runs while Caddy is still
// provisioning, before dashboards served by the same Caddy listen. One
// failed probe must not take a slot out of service; the second in a row,
// which follows at the next tick rather than after the interval, does.
func TestOneFailureIsNotUnhealthy(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	var probes atomic.Int32
	c := health.Start(health.Options{
		Targets: func() []health.Target {
			return []health.Target{{Environment: "demo-w01", Addr: addr, Probe: health.Probe{Interval: time.Hour}}}
		},
		OnResult: func(health.Target, bool) { probes.Add(1) },
		Tick:     time.Hour, // rounds run only when refreshed
	})
	t.Cleanup(c.Close)
	waitFor(t, "the first probe", func() bool { return probes.Load() == 1 })
	if s, _ := status(c, addr); !c.Healthy(addr) || !s.Healthy || !strings.Contains(s.Error, "refused") {
		t.Fatalf("after one failed probe: healthy %v, status %+v; want healthy, with the refusal noted", c.Healthy(addr), s)
	}
	// The interval is an hour, yet the failed target is due again.
	c.Refresh()
	waitFor(t, "the second probe", func() bool { return probes.Load() == 2 })
	if c.Healthy(addr) {
		t.Fatal("two failed probes in a row: still healthy")
	}
	l, err = net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	c.Refresh()
	waitFor(t, "the third probe", func() bool { return probes.Load() == 3 })
	if !c.Healthy(addr) {
		t.Fatal("a listening address is still unhealthy after a successful probe")
	}
}

// TestPausedUntilResume: a Checker started Paused probes nothing (every
// address counts as healthy) until Resume, then probes at once.
func TestPausedUntilResume(t *testing.T) {
	var probes atomic.Int32
	c := health.Start(health.Options{
		Targets: func() []health.Target {
			return []health.Target{{Environment: "demo-w01", Addr: "127.0.0.1:1"}}
		},
		OnResult: func(health.Target, bool) { probes.Add(1) },
		Tick:     time.Millisecond,
		Paused:   true,
	})
	t.Cleanup(c.Close)
	c.Refresh()
	time.Sleep(100 * time.Millisecond) // a running checker would have probed many times
	if n := probes.Load(); n != 0 || len(c.Statuses()) != 0 {
		t.Fatalf("paused checker probed %d times, statuses %v", n, c.Statuses())
	}
	c.Resume()
	c.Resume() // a second call is harmless
	waitFor(t, "probes after Resume", func() bool { return probes.Load() >= 2 })
	if c.Healthy("127.0.0.1:1") {
		t.Fatal("a refusing address is healthy after two probes")
	}
}

// TestRoundBoundsProbesInFlight: a round with more due targets than
// Parallel probes no more than Parallel at once, and still probes them
// all. (Unbounded, 5,000 template sessions meant 5,000 dials at once.)
func TestRoundBoundsProbesInFlight(t *testing.T) {
	const targets, parallel = 12, 3
	var (
		inFlight, most atomic.Int32
		release        = make(chan struct{})
		done           = make(chan struct{})
	)
	var list []health.Target
	for range targets {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			n := inFlight.Add(1)
			for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
			}
			select {
			case <-release:
			case <-done: // the test failed: let the server close
			}
			inFlight.Add(-1)
		}))
		t.Cleanup(srv.Close)
		list = append(list, health.Target{Environment: "demo-w01", Addr: srv.URL,
			Probe: health.Probe{Path: "/", Interval: time.Hour, Timeout: time.Hour}})
	}
	t.Cleanup(func() { close(done) }) // runs before the servers close
	var probed atomic.Int32
	c := health.Start(health.Options{
		Targets:  func() []health.Target { return list },
		OnResult: func(_ health.Target, ok bool) { probed.Add(1) },
		Tick:     time.Hour,
		Parallel: parallel,
	})
	t.Cleanup(c.Close)
	waitFor(t, "the first probes", func() bool { return inFlight.Load() >= parallel })
	time.Sleep(200 * time.Millisecond) // room for any probe beyond the bound to arrive
	if n := inFlight.Load(); n != parallel {
		t.Fatalf("%d probes in flight, want %d", n, parallel)
	}
	for range targets {
		release <- struct{}{}
	}
	waitFor(t, "every target probed", func() bool { return probed.Load() == targets })
	if m := most.Load(); m != parallel {
		t.Fatalf("at most %d probes were in flight, want %d", m, parallel)
	}
	for _, tg := range list {
		if s, ok := status(c, tg.Addr); !ok || !s.Healthy {
			t.Fatalf("%s: %+v, want probed and healthy", tg.Addr, s)
		}
	}
}
