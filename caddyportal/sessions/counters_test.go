package sessions_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/caddyportal/caddyportal/caddyportal/lifecycle"
	"github.com/caddyportal/caddyportal/caddyportal/sessions"
	"github.com/caddyportal/caddyportal/caddyportal/store"
)

// storedCount is the c/<env> record as the key schema documents it.
type storedCount struct {
	Live     int      `json:"live"`
	Reserves []string `json:"reserves"`
}

// checkCounters compares every environment's stored counters with the live
// index they summarize: the number of index keys, and the reserves ready
// to hand out, oldest first. A missing record is allowed (it is rebuilt on
// use); a wrong one is what would let allocation overbook.
func checkCounters(t *testing.T, st store.Store, envs []string, step string) {
	t.Helper()
	err := st.View(context.Background(), func(tx store.Txn) error {
		for _, env := range envs {
			v, err := tx.Get("c/" + env)
			if errors.Is(err, store.ErrNotFound) {
				continue
			}
			if err != nil {
				return err
			}
			var c storedCount
			if err := json.Unmarshal(v, &c); err != nil {
				return fmt.Errorf("c/%s: %w", env, err)
			}
			var indexed []*sessions.Session
			err = tx.Scan("l/"+env+"/", func(k string, _ []byte) error {
				raw, err := tx.Get("s/" + strings.TrimPrefix(k, "l/"+env+"/"))
				if err != nil {
					return fmt.Errorf("%s lists a session without a record: %w", k, err)
				}
				var s sessions.Session
				if err := json.Unmarshal(raw, &s); err != nil {
					return err
				}
				indexed = append(indexed, &s)
				return nil
			})
			if err != nil {
				return err
			}
			slices.SortFunc(indexed, func(a, b *sessions.Session) int {
				if c := a.Created.Compare(b.Created); c != 0 {
					return c
				}
				return strings.Compare(a.Name, b.Name)
			})
			var reserves []string
			for _, s := range indexed {
				if s.Reserved() && s.State == lifecycle.Waiting {
					reserves = append(reserves, s.Name)
				}
			}
			if c.Live != len(indexed) || !slices.Equal(c.Reserves, reserves) {
				t.Errorf("after %s: c/%s = %d live, reserves %v; the live index holds %d, reserves %v",
					step, env, c.Live, c.Reserves, len(indexed), reserves)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("after %s: reading the store: %v", step, err)
	}
}

// TestCountersFollowTheLiveIndex runs random mixes of every operation that
// changes the live index (requests, activations, terminations, deadlines
// passing, reconcile passes, restarts, and counters lost as in a store
// written before they existed) and checks after each step that the
// counters match the index and that no environment is over capacity.
func TestCountersFollowTheLiveIndex(t *testing.T) {
	for seed := range uint64(6) {
		t.Run(fmt.Sprint("seed=", seed), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(seed, 42))
			fixed := workshop("fixed", 3, 1)
			fixed.Upstreams = []string{"a:1", "b:1", "c:1"}
			cfg := portal(workshop("lab", 4, 1), workshop("big", 6, 2), fixed)
			cfg.Sessions.Maximum = 10
			capacity := map[string]int{"demo-w01": 4, "demo-w02": 6, "demo-w03": 3}
			envs := []string{"demo-w01", "demo-w02", "demo-w03"}
			clk := newClock()
			st := openStore(t, clk)
			svc := newService(t, st, clk, cfg)
			tokens := map[string]string{}
			ctx := context.Background()
			for step := range 300 {
				var what string
				switch op := rng.IntN(100); {
				case op < 45:
					env := envs[rng.IntN(len(envs))]
					user := fmt.Sprint("user-", rng.IntN(16))
					what = "request " + env + " " + user
					res, err := svc.RequestSession(ctx, sessions.Request{Environment: env, User: user, IndexURL: "/"})
					if err != nil && !errors.Is(err, sessions.ErrNoSession) {
						t.Fatalf("step %d %s: %v", step, what, err)
					}
					if err == nil {
						tokens[res.Session.Name] = res.Token
					}
				case op < 60:
					what = "activate"
					for name, tok := range tokens {
						_, _ = svc.Activate(ctx, name, tok)
						break
					}
				case op < 70:
					what = "terminate"
					for name := range tokens {
						_, _ = svc.Terminate(ctx, name, "")
						delete(tokens, name)
						break
					}
				case op < 82:
					d := time.Duration(rng.IntN(90)) * time.Second
					what = fmt.Sprint("advance ", d)
					clk.Advance(d)
				case op < 92:
					what = "reconcile"
					reconcile(t, svc)
				case op < 96:
					what = "restart"
					svc.Close()
					svc = newService(t, st, clk, cfg)
				default:
					what = "counters lost"
					err := st.Update(ctx, func(tx store.Txn) error {
						for _, env := range envs {
							if err := tx.Delete("c/" + env); err != nil {
								return err
							}
						}
						return nil
					})
					if err != nil {
						t.Fatal(err)
					}
				}
				checkCounters(t, st, envs, fmt.Sprintf("step %d (%s)", step, what))
				total := 0
				for env, list := range liveByEnv(t, svc) {
					total += len(list)
					if len(list) > capacity[env] {
						t.Fatalf("step %d (%s): %s has %d live sessions, capacity %d", step, what, env, len(list), capacity[env])
					}
				}
				if total > cfg.Sessions.Maximum {
					t.Fatalf("step %d (%s): %d live sessions, portal maximum %d", step, what, total, cfg.Sessions.Maximum)
				}
				if t.Failed() {
					return
				}
			}
		})
	}
}

func liveByEnv(t *testing.T, svc *sessions.Service) map[string][]*sessions.Session {
	t.Helper()
	all, err := svc.EnvironmentSessions(context.Background())
	if err != nil {
		t.Fatalf("EnvironmentSessions: %v", err)
	}
	return all
}

// TestCapacityWithoutCounters: a store whose counters are gone (written by
// an older version) still allocates exactly up to capacity, because the
// counters are rebuilt from the live index rather than taken as zero.
func TestCapacityWithoutCounters(t *testing.T) {
	svc, st, clk := setup(t, portal(workshop("lab", 5, 0)))
	for i := range 3 {
		request(t, svc, "demo-w01", fmt.Sprint("early-", i))
	}
	err := st.Update(context.Background(), func(tx store.Txn) error { return tx.Delete("c/demo-w01") })
	if err != nil {
		t.Fatal(err)
	}
	svc.Close()
	svc = newService(t, st, clk, portal(workshop("lab", 5, 0)))
	got := burst(t, []*sessions.Service{svc}, "demo-w01", 10)
	if len(got) != 2 {
		t.Fatalf("%d sessions allocated after the counters were lost, want the 2 left of capacity 5", len(got))
	}
	checkCounters(t, st, []string{"demo-w01"}, "the burst")
}

// TestFullCountersStillFreePassedDeadlines: the counters include sessions
// whose activation deadline passed but which no pass has finalized; a
// request at that point must find the room they left, not be refused.
func TestFullCountersStillFreePassedDeadlines(t *testing.T) {
	svc, st, clk := setup(t, portal(workshop("lab", 2, 0)))
	request(t, svc, "demo-w01", "a")
	request(t, svc, "demo-w01", "b")
	requestErr(t, svc, sessions.Request{Environment: "demo-w01", User: "c"}, sessions.ErrNoSession)
	clk.Advance(time.Hour) // both activation deadlines pass; nothing runs a pass
	res := request(t, svc, "demo-w01", "c")
	if res.Session.Name != "demo-w01-s003" {
		t.Fatalf("got %s", res.Session.Name)
	}
	wantState(t, svc, "demo-w01-s001", lifecycle.Stopped)
	checkCounters(t, st, []string{"demo-w01"}, "the request")
}
