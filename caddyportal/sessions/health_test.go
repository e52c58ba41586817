package sessions_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/caddyportal/caddyportal/caddyportal/config"
	"github.com/caddyportal/caddyportal/caddyportal/sessions"
)

// healthBoard is a settable Options.Healthy.
type healthBoard struct {
	mu   sync.Mutex
	down map[string]bool
}

func (h *healthBoard) set(addr string, down bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.down[addr] = down
}

func (h *healthBoard) healthy(addr string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return !h.down[addr]
}

// TestUnhealthySlotsAreSkipped: with a pool whose first slot is down, a
// reserve made there before the probe knew is retired at the next request,
// which gets a healthy slot; with every free slot down the answer is "no
// session" rather than a dead dashboard; a slot that comes back is used.
func TestUnhealthySlotsAreSkipped(t *testing.T) {
	board := &healthBoard{down: map[string]bool{}}
	clk := newClock()
	st := openStore(t, clk)
	cfg := portal(config.Workshop{Name: "lab", Reserved: intp(1), Upstreams: []string{"a:1", "b:1", "c:1"}})
	svc, err := sessions.New(context.Background(), st, cfg, sessions.Options{Now: clk.Now, StopGrace: grace,
		ReconcileInterval: time.Hour, Healthy: board.healthy})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(svc.Close)
	env := svc.Environments()[0].Name
	// The initial reserve took slot a:1 while it was believed healthy.
	board.set("a:1", true)
	board.set("c:1", true)
	alice := request(t, svc, env, "alice")
	if alice.Session.Upstream != "b:1" {
		t.Fatalf("alice got %s, want b:1 (a:1 and c:1 are down)", alice.Session.Upstream)
	}
	if _, err := svc.RequestSession(context.Background(), sessions.Request{Environment: env, User: "bob",
		IndexURL: "https://hub.example.com/"}); !errors.Is(err, sessions.ErrNoSession) {
		t.Fatalf("bob with only dead slots free: err = %v, want ErrNoSession", err)
	}
	board.set("c:1", false)
	if bob := request(t, svc, env, "bob"); bob.Session.Upstream != "c:1" {
		t.Fatalf("bob got %s, want c:1 once it is up", bob.Session.Upstream)
	}
}
