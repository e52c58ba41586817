package portal_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/caddyportal/caddyportal/caddyportal/config"
	"github.com/caddyportal/caddyportal/caddyportal/portal"
	"github.com/caddyportal/caddyportal/caddyportal/spawner"
	"github.com/caddyportal/caddyportal/caddyportal/spawner/spawnertest"
	"github.com/caddyportal/caddyportal/caddyportal/store/badgerstore"
)

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
	sp := spawnertest.New()
	sp.Page = func(spec spawner.Spec) string { return "environment of " + spec.Session + " for " + spec.User }
	p, err := portal.New(context.Background(), cfg, st, portal.Deps{Proxy: proxy{},
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
	close(sp.Release)
	deadline := time.Now().Add(time.Minute)
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
