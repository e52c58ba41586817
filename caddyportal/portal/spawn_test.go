package portal_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddyportal/caddyportal/caddyportal/config"
	"github.com/caddyportal/caddyportal/caddyportal/portal"
	"github.com/caddyportal/caddyportal/caddyportal/spawner"
	"github.com/caddyportal/caddyportal/caddyportal/store/badgerstore"
)

// testSpawner starts each environment as a loopback HTTP server, once
// release is closed.
type testSpawner struct {
	release chan struct{}
	mu      sync.Mutex
	srvs    map[string]*httptest.Server
}

func (s *testSpawner) Start(ctx context.Context, spec spawner.Spec, progress func(spawner.Progress)) (spawner.Env, error) {
	select {
	case <-s.release:
	case <-ctx.Done():
		return spawner.Env{}, ctx.Err()
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "environment of %s for %s", spec.Session, spec.User)
	}))
	s.mu.Lock()
	s.srvs[spec.Session] = srv
	s.mu.Unlock()
	return spawner.Env{Session: spec.Session, Addr: strings.TrimPrefix(srv.URL, "http://")}, nil
}

func (s *testSpawner) Ready(ctx context.Context, env spawner.Env) error {
	return spawner.Probe(ctx, env.Addr, "/")
}
func (s *testSpawner) ReadyTimeout() time.Duration { return 5 * time.Second }
func (s *testSpawner) Stop(_ context.Context, env spawner.Env) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if srv := s.srvs[env.Session]; srv != nil {
		srv.Close()
		delete(s.srvs, env.Session)
	}
	return nil
}
func (s *testSpawner) List(context.Context) ([]spawner.Env, error) { return nil, nil }
func (s *testSpawner) Alive(_ context.Context, env spawner.Env) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.srvs[env.Session] != nil
}

// TestPortalSpawner: Deps.Spawners reach the service; a learner activated
// before the environment is ready sees the starting page, then the
// environment started for them.
func TestPortalSpawner(t *testing.T) {
	st, err := badgerstore.Open(badgerstore.Options{InMemory: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	capacity, reserved := 2, 0
	cfg := config.Portal{Name: "demo", Index: "https://hub.example.com/", Robot: config.Credentials{Username: "robot@portal", Password: "robot-pass"},
		Client: config.Client{ID: "cid", Secret: "csecret"},
		// The upstream is never used: the spawner gives each session its own.
		Workshops: []config.Workshop{{Name: "lab", Capacity: &capacity, Reserved: &reserved, Upstreams: []string{"unused-{session}:1"}}}}
	sp := &testSpawner{release: make(chan struct{}), srvs: map[string]*httptest.Server{}}
	p, err := portal.New(context.Background(), cfg, st, portal.Deps{Proxy: proxy{}, Replica: "r1",
		Spawners: map[string]spawner.Spawner{"lab": sp}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if h := p.Route(r); h != nil {
			h.ServeHTTP(w, r)
			return
		}
		w.WriteHeader(http.StatusTeapot)
	}))
	t.Cleanup(srv.Close)
	c := &http.Client{Timeout: 30 * time.Second, Jar: newJar(t)}
	link := requestLink(t, c, srv.URL, "alice")
	res, err := c.Get(srv.URL + link)
	if err != nil {
		t.Fatal(err)
	}
	body := new(strings.Builder)
	_, _ = readAll(body, res)
	if res.StatusCode != 200 || !strings.Contains(body.String(), "Starting your workshop") {
		t.Fatalf("activation before ready: %d %q", res.StatusCode, body)
	}
	dashURL := res.Request.URL.String() // where the activation landed: the session's path
	close(sp.release)
	deadline := time.Now().Add(10 * time.Second)
	for {
		if res, err = c.Get(dashURL); err != nil {
			t.Fatal(err)
		}
		body.Reset()
		_, _ = readAll(body, res)
		if strings.HasPrefix(body.String(), "environment of demo-w01-s") && strings.HasSuffix(body.String(), " for alice") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("dashboard never reached: %d %q", res.StatusCode, body)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
