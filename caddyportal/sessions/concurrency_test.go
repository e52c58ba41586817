package sessions_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/caddyportal/caddyportal/caddyportal/config"
	"github.com/caddyportal/caddyportal/caddyportal/sessions"
)

// burst sends n concurrent requests for distinct users, spreading them over
// the services round-robin, and returns the sessions allocated.
func burst(t *testing.T, svcs []*sessions.Service, env string, n int) []*sessions.Session {
	t.Helper()
	var (
		mu   sync.Mutex
		wg   sync.WaitGroup
		got  []*sessions.Session
		errs []error
	)
	start := make(chan struct{})
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			<-start
			res, err := svcs[i%len(svcs)].RequestSession(context.Background(),
				sessions.Request{Environment: env, User: fmt.Sprintf("user-%03d", i), IndexURL: "/"})
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				got = append(got, res.Session)
			case !errors.Is(err, sessions.ErrNoSession):
				errs = append(errs, err)
			}
		}(i)
	}
	close(start)
	wg.Wait()
	for _, err := range errs {
		t.Errorf("unexpected error: %v", err)
	}
	return got
}

func checkDistinct(t *testing.T, got []*sessions.Session, want int) {
	t.Helper()
	if len(got) != want {
		t.Fatalf("%d sessions allocated, want exactly %d", len(got), want)
	}
	seenName, seenUser := map[string]bool{}, map[string]bool{}
	for _, s := range got {
		if seenName[s.Name] {
			t.Fatalf("session name %s handed out twice", s.Name)
		}
		if seenUser[s.Owner] {
			t.Fatalf("user %s got two sessions", s.Owner)
		}
		seenName[s.Name], seenUser[s.Owner] = true, true
	}
	assertDistinctSlots(t, got)
}

func TestConcurrentAllocationTemplate(t *testing.T) {
	svc, _, _ := setup(t, portal(workshop("lab", 50, 0)))
	got := burst(t, []*sessions.Service{svc}, "demo-w01", 500)
	checkDistinct(t, got, 50)
	for _, s := range got {
		if s.Upstream != "dash-"+s.Name+".svc:8080" {
			t.Fatalf("upstream %s for %s", s.Upstream, s.Name)
		}
	}
	if l := live(t, svc, "demo-w01"); len(l) != 50 {
		t.Fatalf("%d live sessions in the store", len(l))
	}
}

func TestConcurrentAllocationPool(t *testing.T) {
	var pool []string
	for i := 0; i < 50; i++ {
		pool = append(pool, fmt.Sprintf("127.0.0.1:%d", 10000+i))
	}
	svc, _, _ := setup(t, portal(config.Workshop{Name: "lab", Reserved: intp(0), Upstreams: pool}))
	got := burst(t, []*sessions.Service{svc}, "demo-w01", 500)
	checkDistinct(t, got, 50)
	for _, s := range got {
		if s.Slot < 0 || s.Upstream != pool[s.Slot] {
			t.Fatalf("%s: slot %d upstream %s", s.Name, s.Slot, s.Upstream)
		}
	}
	l := live(t, svc, "demo-w01")
	if len(l) != 50 {
		t.Fatalf("%d live sessions in the store", len(l))
	}
	assertDistinctSlots(t, l)
}

// TestConcurrentAllocationTwoServices simulates a config reload overlap:
// two services on one store allocate at the same time.
func TestConcurrentAllocationTwoServices(t *testing.T) {
	var pool []string
	for i := 0; i < 10; i++ {
		pool = append(pool, fmt.Sprintf("127.0.0.1:%d", 10000+i))
	}
	for _, tc := range []struct {
		name string
		w    config.Workshop
	}{
		{"template", workshop("lab", 10, 0)},
		{"pool", config.Workshop{Name: "lab", Reserved: intp(0), Upstreams: pool}},
		{"reserves", config.Workshop{Name: "lab", Reserved: intp(3), Upstreams: pool}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clk := newClock()
			st := openStore(t, clk)
			a := newService(t, st, clk, portal(tc.w))
			b := newService(t, st, clk, portal(tc.w))
			got := burst(t, []*sessions.Service{a, b}, "demo-w01", 200)
			checkDistinct(t, got, 10)
			for _, svc := range []*sessions.Service{a, b} {
				l := live(t, svc, "demo-w01")
				if len(l) != 10 {
					t.Fatalf("%d live sessions", len(l))
				}
				assertDistinctSlots(t, l)
			}
		})
	}
}

// TestConcurrentPortalMaximum checks the portal-wide cap across
// environments under concurrency.
func TestConcurrentPortalMaximum(t *testing.T) {
	cfg := portal(workshop("a", 20, 1), workshop("b", 20, 1), workshop("c", 20, 0))
	cfg.Sessions.Maximum = 15
	svc, _, _ := setup(t, cfg)
	var wg sync.WaitGroup
	var mu sync.Mutex
	total := 0
	for i := 0; i < 90; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			env := fmt.Sprintf("demo-w%02d", i%3+1)
			_, err := svc.RequestSession(context.Background(), sessions.Request{Environment: env, User: fmt.Sprint("u", i), IndexURL: "/"})
			if err == nil {
				mu.Lock()
				total++
				mu.Unlock()
			} else if !errors.Is(err, sessions.ErrNoSession) {
				t.Errorf("request: %v", err)
			}
		}(i)
	}
	wg.Wait()
	if total != 15 {
		t.Errorf("%d sessions allocated, maximum 15", total)
	}
	all, _ := svc.EnvironmentSessions(context.Background())
	n := 0
	for _, l := range all {
		n += len(l)
	}
	if n != 15 {
		t.Errorf("%d live sessions, maximum 15", n)
	}
}

// TestNewUserAskingManyTimesAtOnce: requests of a user who has no record
// yet, arriving together (so several land in one allocation batch), all get
// the one session: the first creates the user and the others, seeing that
// record, look for what the user owns.
func TestNewUserAskingManyTimesAtOnce(t *testing.T) {
	svc, _, _ := setup(t, portal(workshop("lab", 20, 0)))
	const n = 30
	names := make([]string, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			res, err := svc.RequestSession(context.Background(), sessions.Request{Environment: "demo-w01", User: "carol", IndexURL: "https://hub.example.com/"})
			if err != nil {
				t.Error(err)
				return
			}
			names[i] = res.Session.Name
		}()
	}
	close(start)
	wg.Wait()
	for i, name := range names {
		if name != names[0] {
			t.Fatalf("request %d got %s, request 0 got %s: a new user was given two sessions", i, name, names[0])
		}
	}
	if l := live(t, svc, "demo-w01"); len(l) != 1 {
		t.Fatalf("%d live sessions for one user", len(l))
	}
}
