package sessions_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/caddyportal/caddyportal/caddyportal/config"
	"github.com/caddyportal/caddyportal/caddyportal/lifecycle"
	"github.com/caddyportal/caddyportal/caddyportal/sessions"
	"github.com/caddyportal/caddyportal/caddyportal/store"
	"github.com/caddyportal/caddyportal/caddyportal/tokens"
)

func TestNamesAreSequentialAndNeverReused(t *testing.T) {
	svc, _, clk := setup(t, portal(workshop("lab", 5, 0)))
	if e := svc.Environment("demo-w01"); e == nil || e.Workshop.Name != "lab" {
		t.Fatalf("environment demo-w01 = %+v", e)
	}
	a := request(t, svc, "demo-w01", "alice")
	b := request(t, svc, "demo-w01", "bob")
	if a.Session.Name != "demo-w01-s001" || b.Session.Name != "demo-w01-s002" {
		t.Fatalf("names = %s, %s", a.Session.Name, b.Session.Name)
	}
	if a.User != "alice" || a.Session.Owner != "alice" || a.Session.Workshop != "lab" || a.Session.Environment != "demo-w01" {
		t.Errorf("result = %+v / %+v", a, a.Session)
	}
	if _, err := svc.Terminate(context.Background(), a.Session.Name, ""); err != nil {
		t.Fatal(err)
	}
	clk.Advance(time.Hour)
	reconcile(t, svc)
	c := request(t, svc, "demo-w01", "carol")
	if c.Session.Name != "demo-w01-s003" {
		t.Errorf("after a stop, next name = %s, want demo-w01-s003", c.Session.Name)
	}
	// Alice's first session is over: she gets a new one, not s001 again.
	a2 := request(t, svc, "demo-w01", "alice")
	if a2.Session.Name != "demo-w01-s004" {
		t.Errorf("alice's new session = %s, want demo-w01-s004", a2.Session.Name)
	}
}

func TestTemplateUpstream(t *testing.T) {
	svc, _, _ := setup(t, portal(workshop("lab", 5, 0)))
	r := request(t, svc, "demo-w01", "alice")
	if r.Session.Upstream != "dash-demo-w01-s001.svc:8080" || r.Session.Slot != -1 {
		t.Errorf("upstream = %q slot %d", r.Session.Upstream, r.Session.Slot)
	}
}

func TestSameUserGetsSameSession(t *testing.T) {
	svc, st, _ := setup(t, portal(workshop("lab", 5, 0)))
	ctx := context.Background()
	// Every reacquire returns the same session and the same token, so
	// every link a front end was given keeps working (Educates returns one
	// URL; we used to issue a new token each time and keep the last 8).
	first := request(t, svc, "demo-w01", "alice")
	for i := 0; i < 10; i++ {
		r := request(t, svc, "demo-w01", "alice")
		if r.Session.Name != "demo-w01-s001" || r.Token != first.Token {
			t.Fatalf("reacquire %d: %s token %q, want %s %q", i, r.Session.Name, r.Token, first.Session.Name, first.Token)
		}
	}
	if n := len(live(t, svc, "demo-w01")); n != 1 {
		t.Fatalf("%d live sessions, want 1", n)
	}
	if len(first.Token) != tokens.Length {
		t.Errorf("token %q has %d characters, want %d", first.Token, len(first.Token), tokens.Length)
	}
	// Only its hash is stored: neither the token nor anything that gives it
	// without the portal's key.
	var raw []byte
	err := st.View(ctx, func(tx store.Txn) error {
		v, err := tx.Get("s/demo-w01-s001")
		raw = append(raw, v...)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(raw), first.Token) || !strings.Contains(string(raw), tokens.Hash(first.Token)) {
		t.Errorf("record %s does not hold just the token's hash", raw)
	}
	if _, err := svc.Activate(ctx, "demo-w01-s001", first.Token); err != nil {
		t.Fatal(err)
	}
	wrong := first.Token[:len(first.Token)-1] + "a"
	if wrong == first.Token {
		wrong = first.Token[:len(first.Token)-1] + "b"
	}
	if _, err := svc.Activate(ctx, "demo-w01-s001", wrong); err != sessions.ErrBadToken {
		t.Errorf("altered token: %v, want ErrBadToken", err)
	}
	// Another user's session has another token; so does the next
	// allocation of the same user after the first ended.
	bob := request(t, svc, "demo-w01", "bob")
	if bob.Token == first.Token {
		t.Error("two sessions share a token")
	}
	if _, err := svc.Terminate(ctx, "demo-w01-s001", ""); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Activate(ctx, "demo-w01-s001", first.Token); !errors.Is(err, sessions.ErrSessionEnded) {
		t.Errorf("link of an ended session: %v, want ErrSessionEnded", err)
	}
}

// TestStableLinkKeepsLegacyTokens: a record from before stable links (a
// list of token hashes, no seed) keeps its tokens valid and gains the
// stable one, which every later reacquire returns.
func TestStableLinkKeepsLegacyTokens(t *testing.T) {
	svc, st, _ := setup(t, portal(workshop("lab", 5, 0)))
	ctx := context.Background()
	first := request(t, svc, "demo-w01", "alice")
	legacy := "legacyTokenAAAAAAAAAAAAAAAAAAAAA"
	err := st.Update(ctx, func(tx store.Txn) error {
		v, err := tx.Get("s/" + first.Session.Name)
		if err != nil {
			return err
		}
		var rec map[string]any
		if err := json.Unmarshal(v, &rec); err != nil {
			return err
		}
		delete(rec, "link_seed")
		rec["token_hashes"] = []string{tokens.Hash(legacy)}
		b, _ := json.Marshal(rec)
		return tx.Set("s/"+first.Session.Name, b)
	})
	if err != nil {
		t.Fatal(err)
	}
	a := request(t, svc, "demo-w01", "alice")
	b := request(t, svc, "demo-w01", "alice")
	if a.Token != b.Token || a.Token == legacy {
		t.Fatalf("reacquires gave %q and %q", a.Token, b.Token)
	}
	for _, tok := range []string{legacy, a.Token} {
		if _, err := svc.Activate(ctx, first.Session.Name, tok); err != nil {
			t.Errorf("token %q: %v", tok, err)
		}
	}
}

func TestReacquireOnly(t *testing.T) {
	svc, _, _ := setup(t, portal(workshop("lab", 5, 0)))
	// No session yet: session= never creates one.
	requestErr(t, svc, sessions.Request{Environment: "demo-w01", User: "alice", Session: "demo-w01-s001"}, sessions.ErrNoSession)
	if n := len(live(t, svc, "demo-w01")); n != 0 {
		t.Fatalf("reacquire created %d sessions", n)
	}
	r := request(t, svc, "demo-w01", "alice")
	if r.Session.Name != "demo-w01-s001" {
		t.Fatalf("first session %s (the failed reacquire used a number?)", r.Session.Name)
	}
	// Mismatch.
	requestErr(t, svc, sessions.Request{Environment: "demo-w01", User: "alice", Session: "demo-w01-s009"}, sessions.ErrNoSession)
	// Another user naming alice's session.
	requestErr(t, svc, sessions.Request{Environment: "demo-w01", User: "bob", Session: "demo-w01-s001"}, sessions.ErrNoSession)
	// Match.
	res, err := svc.RequestSession(context.Background(), sessions.Request{Environment: "demo-w01", User: "alice",
		Session: "demo-w01-s001", IndexURL: "https://hub.example.com/"})
	if err != nil || res.Session.Name != "demo-w01-s001" || res.Token == "" {
		t.Fatalf("reacquire = %+v, %v", res, err)
	}
	if n := len(live(t, svc, "demo-w01")); n != 1 {
		t.Fatalf("%d live sessions, want 1", n)
	}
}

func TestUnknownEnvironment(t *testing.T) {
	svc, _, _ := setup(t, portal(workshop("lab", 5, 0)))
	requestErr(t, svc, sessions.Request{Environment: "demo-w09", User: "alice"}, sessions.ErrNoEnvironment)
	requestErr(t, svc, sessions.Request{Environment: "lab", User: "alice"}, sessions.ErrNoEnvironment)
}

func TestPerUserCap(t *testing.T) {
	tests := []struct {
		name                  string
		registered, anonymous int
		group                 string
		want                  int // sessions a user can hold
	}{
		{"anonymous falls back to registered", 1, 0, "", 1},
		{"anonymous own cap", 1, 2, "", 2},
		{"registered cap", 2, 1, sessions.GroupRegistered, 2},
		{"no cap", 0, 0, "", 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := portal(workshop("a", 5, 0), workshop("b", 5, 0), workshop("c", 5, 0))
			cfg.Sessions = config.SessionLimits{Registered: tt.registered, Anonymous: tt.anonymous}
			svc, _, clk := setup(t, cfg)
			envs := []string{"demo-w01", "demo-w02", "demo-w03"}
			for i, env := range envs {
				_, err := svc.RequestSession(context.Background(), sessions.Request{Environment: env, User: "alice",
					Group: tt.group, IndexURL: "/"})
				if i < tt.want && err != nil {
					t.Fatalf("session %d: %v", i+1, err)
				}
				// The cap is told apart from capacity (the pages and
				// metrics say which), and the REST API still sees
				// Educates' "No session available".
				if i >= tt.want && (err != sessions.ErrSessionLimit || !errors.Is(err, sessions.ErrNoSession)) {
					t.Fatalf("session %d beyond cap: %v, want ErrSessionLimit", i+1, err)
				}
			}
			// The existing session is still handed back at the cap.
			if r := request(t, svc, "demo-w01", "alice"); r.Session.Name != "demo-w01-s001" {
				t.Errorf("existing session at cap = %s", r.Session.Name)
			}
			// Another user is not affected.
			request(t, svc, "demo-w02", "bob")
			if tt.want >= len(envs) {
				return
			}
			// A session that is ending counts against the cap until it is
			// STOPPED, as Educates counts it (reference §2.5).
			if _, err := svc.Terminate(context.Background(), "demo-w01-s001", ""); err != nil {
				t.Fatal(err)
			}
			if s, err := svc.Get(context.Background(), "demo-w01-s001"); err != nil || s.State != lifecycle.Stopping {
				t.Fatalf("terminated session: %v, %v; want STOPPING", s, err)
			}
			next := sessions.Request{Environment: envs[tt.want], User: "alice", Group: tt.group, IndexURL: "/"}
			if _, err := svc.RequestSession(context.Background(), next); err != sessions.ErrSessionLimit {
				t.Fatalf("request with one session stopping: %v, want ErrSessionLimit", err)
			}
			clk.Advance(3 * time.Second) // past the stopping grace
			if _, err := svc.RequestSession(context.Background(), next); err != nil {
				t.Fatalf("request once the session stopped: %v", err)
			}
		})
	}
}

func TestEnvironmentCapacity(t *testing.T) {
	svc, _, _ := setup(t, portal(workshop("lab", 2, 0)))
	request(t, svc, "demo-w01", "a")
	request(t, svc, "demo-w01", "b")
	requestErr(t, svc, sessions.Request{Environment: "demo-w01", User: "c"}, sessions.ErrNoSession)
	// Capacity 0 never allocates.
	svc0, _, _ := setup(t, portal(workshop("lab", 0, 0)))
	requestErr(t, svc0, sessions.Request{Environment: "demo-w01", User: "c"}, sessions.ErrNoSession)
}

func TestPoolSlots(t *testing.T) {
	pool := []string{"127.0.0.1:9001", "127.0.0.1:9002", "127.0.0.1:9003"}
	w := config.Workshop{Name: "lab", Reserved: intp(0), Upstreams: pool}
	svc, _, clk := setup(t, portal(w))
	ctx := context.Background()
	if c := svc.Environment("demo-w01").Capacity; c != 3 {
		t.Fatalf("capacity defaults to pool size: %d", c)
	}
	got := map[int]string{}
	for _, u := range []string{"a", "b", "c"} {
		r := request(t, svc, "demo-w01", u)
		if r.Session.Slot < 0 || r.Session.Slot >= 3 || got[r.Session.Slot] != "" {
			t.Fatalf("slot %d reused or out of range: %v", r.Session.Slot, got)
		}
		if r.Session.Upstream != pool[r.Session.Slot] {
			t.Errorf("upstream %s for slot %d", r.Session.Upstream, r.Session.Slot)
		}
		got[r.Session.Slot] = r.Session.Name
	}
	requestErr(t, svc, sessions.Request{Environment: "demo-w01", User: "d"}, sessions.ErrNoSession)

	// Terminate b's session: its slot stays held while STOPPING.
	bs := get(t, svc, "demo-w01-s002")
	if _, err := svc.Terminate(ctx, bs.Name, ""); err != nil {
		t.Fatal(err)
	}
	stopAt := clk.Now().Add(grace)
	requestErr(t, svc, sessions.Request{Environment: "demo-w01", User: "d"}, sessions.ErrNoSession)
	clk.Set(stopAt.Add(-time.Nanosecond))
	requestErr(t, svc, sessions.Request{Environment: "demo-w01", User: "d"}, sessions.ErrNoSession)
	clk.Set(stopAt)
	r := request(t, svc, "demo-w01", "d")
	if r.Session.Slot != bs.Slot || r.Session.Upstream != bs.Upstream || r.Session.Name != "demo-w01-s004" {
		t.Errorf("new session %s slot %d, want demo-w01-s004 in freed slot %d", r.Session.Name, r.Session.Slot, bs.Slot)
	}
	assertDistinctSlots(t, live(t, svc, "demo-w01"))
}

func assertDistinctSlots(t *testing.T, list []*sessions.Session) {
	t.Helper()
	seen := map[int]string{}
	for _, s := range list {
		if s.Slot < 0 {
			continue
		}
		if other, dup := seen[s.Slot]; dup {
			t.Fatalf("slot %d held by %s and %s", s.Slot, other, s.Name)
		}
		seen[s.Slot] = s.Name
	}
}

func TestReservedAndInitial(t *testing.T) {
	w := workshop("lab", 4, 1)
	w.Initial = intp(2)
	svc, _, _ := setup(t, portal(w))
	if got := reserves(live(t, svc, "demo-w01")); !slices.Equal(got, []string{"demo-w01-s001", "demo-w01-s002"}) {
		t.Fatalf("initial reserves = %v", got)
	}
	for _, s := range live(t, svc, "demo-w01") {
		if s.State != lifecycle.Waiting || s.Upstream != "dash-"+s.Name+".svc:8080" {
			t.Errorf("reserve %+v", s)
		}
	}
	// The oldest reserve is handed out; one reserve remains, so no top-up.
	r := request(t, svc, "demo-w01", "alice")
	if r.Session.Name != "demo-w01-s001" || r.Session.Owner != "alice" || !r.Session.Pending() {
		t.Fatalf("handed out %+v", r.Session)
	}
	if got := reserves(live(t, svc, "demo-w01")); !slices.Equal(got, []string{"demo-w01-s002"}) {
		t.Fatalf("reserves after first hand-out = %v", got)
	}
	// Second hand-out takes s002 and tops up with s003.
	r = request(t, svc, "demo-w01", "bob")
	if r.Session.Name != "demo-w01-s002" {
		t.Fatalf("second hand-out %s", r.Session.Name)
	}
	if got := reserves(live(t, svc, "demo-w01")); !slices.Equal(got, []string{"demo-w01-s003"}) {
		t.Fatalf("reserves after top-up = %v", got)
	}
	// Reserves count against capacity: 2 owned + 1 reserve + 1 more = 4.
	request(t, svc, "demo-w01", "carol") // takes s003, tops up s004
	request(t, svc, "demo-w01", "dave")  // takes s004, no room to top up
	requestErr(t, svc, sessions.Request{Environment: "demo-w01", User: "erin"}, sessions.ErrNoSession)
	if got := reserves(live(t, svc, "demo-w01")); len(got) != 0 {
		t.Fatalf("reserves at capacity = %v", got)
	}
}

func TestInitialZeroIsLazy(t *testing.T) {
	w := workshop("lab", 3, 1)
	w.Initial = intp(0)
	svc, _, _ := setup(t, portal(w))
	if n := len(live(t, svc, "demo-w01")); n != 0 {
		t.Fatalf("%d sessions before any request", n)
	}
	reconcile(t, svc)
	if n := len(live(t, svc, "demo-w01")); n != 0 {
		t.Fatalf("reconcile created %d reserves before the first request", n)
	}
	r := request(t, svc, "demo-w01", "alice")
	if r.Session.Name != "demo-w01-s001" {
		t.Fatalf("first session %s", r.Session.Name)
	}
	if got := reserves(live(t, svc, "demo-w01")); !slices.Equal(got, []string{"demo-w01-s002"}) {
		t.Fatalf("reserves after first request = %v", got)
	}
}

// TestInitialZeroStaysActiveAfterRestart: once an environment with initial 0
// has had its first request, a restarted portal keeps topping up its
// reserves instead of waiting for another request.
func TestInitialZeroStaysActiveAfterRestart(t *testing.T) {
	w := workshop("lab", 2, 1)
	w.Initial = intp(0)
	svc, st, clk := setup(t, portal(w))
	request(t, svc, "demo-w01", "alice")      // s001, and reserve s002
	bob := request(t, svc, "demo-w01", "bob") // takes s002; full, no new reserve
	if _, err := svc.Terminate(context.Background(), bob.Session.Name, ""); err != nil {
		t.Fatal(err)
	}
	clk.Advance(grace + time.Second)
	svc.Close()
	svc = newService(t, st, clk, portal(w))
	reconcile(t, svc)
	if got := reserves(live(t, svc, "demo-w01")); !slices.Equal(got, []string{"demo-w01-s003"}) {
		t.Fatalf("reserves after a restart and a reconcile pass = %v, want the place bob left refilled", got)
	}
}

// TestRestartTopsUpReservesAtOnce: a portal restarted (or reloaded) on a
// store whose environment exists creates no initial reserves, so New tops
// its warm pool up itself rather than leaving it to the first reconcile
// pass, a ReconcileInterval later (an hour here): the place a learner left
// and the reserves a larger `reserved` asks for are there at once.
func TestRestartTopsUpReservesAtOnce(t *testing.T) {
	w := workshop("lab", 4, 1)
	svc, st, clk := setup(t, portal(w))
	request(t, svc, "demo-w01", "alice") // takes s001; reserve s002
	bob := request(t, svc, "demo-w01", "bob")
	if _, err := svc.Terminate(context.Background(), bob.Session.Name, ""); err != nil {
		t.Fatal(err)
	}
	clk.Advance(grace + time.Second)
	svc.Close()
	w.Reserved = intp(2)
	svc = newService(t, st, clk, portal(w))
	if got := reserves(live(t, svc, "demo-w01")); len(got) != 2 {
		t.Fatalf("reserves right after the restart with reserved 2 = %v, want two", got)
	}
}

func TestPortalMaximumEvictsOldestReserve(t *testing.T) {
	lazy := workshop("a", 3, 1)
	lazy.Initial = intp(0)
	cfg := portal(lazy, workshop("b", 3, 1), workshop("c", 3, 0))
	cfg.Sessions.Maximum = 3
	svc, _, clk := setup(t, cfg)
	// t0: b's initial reserve.
	if got := reserves(live(t, svc, "demo-w02")); !slices.Equal(got, []string{"demo-w02-s001"}) {
		t.Fatalf("w02 reserves = %v", got)
	}
	// (Steps are shorter than the 60s activation window.)
	clk.Advance(10 * time.Second)
	// t1: a session in a and a's first reserve: the portal is full.
	request(t, svc, "demo-w01", "u1")
	if got := reserves(live(t, svc, "demo-w01")); !slices.Equal(got, []string{"demo-w01-s002"}) {
		t.Fatalf("w01 reserves = %v", got)
	}
	clk.Advance(10 * time.Second)
	// c has no reserve: the oldest reserve portal-wide (b's, from t0) goes.
	r := request(t, svc, "demo-w03", "u2")
	if r.Session.Name != "demo-w03-s001" {
		t.Fatalf("u2 got %s", r.Session.Name)
	}
	if s := wantState(t, svc, "demo-w02-s001", lifecycle.Stopped); s.Reason != "evicted" {
		t.Errorf("evicted reserve reason %q", s.Reason)
	}
	wantState(t, svc, "demo-w01-s002", lifecycle.Waiting)
	// Next: a's reserve goes.
	request(t, svc, "demo-w03", "u3")
	wantState(t, svc, "demo-w01-s002", lifecycle.Stopped)
	// Full of owned sessions: nothing more, in any environment.
	for _, env := range []string{"demo-w01", "demo-w02", "demo-w03"} {
		requestErr(t, svc, sessions.Request{Environment: env, User: "u4"}, sessions.ErrNoSession)
	}
	// Reconcile does not top up past the maximum either.
	reconcile(t, svc)
	total := 0
	all, _ := svc.EnvironmentSessions(context.Background())
	for _, l := range all {
		total += len(l)
	}
	if total != 3 {
		t.Errorf("%d live sessions, maximum 3", total)
	}
}

func TestStaffAndRobotUsersRefused(t *testing.T) {
	svc, _, _ := setup(t, portal(workshop("lab", 5, 0)))
	for _, u := range []string{"robot@educates", "admin"} {
		requestErr(t, svc, sessions.Request{Environment: "demo-w01", User: u}, sessions.ErrUserNotPermitted)
	}
	// A stored staff user (made here through a request naming the group).
	if _, err := svc.RequestSession(context.Background(), sessions.Request{Environment: "demo-w01", User: "boss",
		Group: sessions.GroupStaff, IndexURL: "/"}); err != nil {
		t.Fatal(err)
	}
	requestErr(t, svc, sessions.Request{Environment: "demo-w01", User: "boss"}, sessions.ErrUserNotPermitted)
	if n := len(live(t, svc, "demo-w01")); n != 1 {
		t.Errorf("%d live sessions", n)
	}
}

func TestRandomUserWhenNoneGiven(t *testing.T) {
	svc, _, _ := setup(t, portal(workshop("lab", 5, 0)))
	a := request(t, svc, "demo-w01", "")
	b := request(t, svc, "demo-w01", "")
	if a.User == "" || a.User == b.User || a.Session.Name == b.Session.Name {
		t.Fatalf("anonymous requests: %q %s, %q %s", a.User, a.Session.Name, b.User, b.Session.Name)
	}
	if len(a.User) != 36 || a.User[14] != '4' {
		t.Errorf("user id %q is not a UUIDv4", a.User)
	}
}

func TestUserDetailsUpdated(t *testing.T) {
	svc, _, _ := setup(t, portal(workshop("lab", 5, 0)))
	ctx := context.Background()
	req := sessions.Request{Environment: "demo-w01", User: "alice", Email: "a@example.com", IndexURL: "/"}
	if _, err := svc.RequestSession(ctx, req); err != nil {
		t.Fatal(err)
	}
	req = sessions.Request{Environment: "demo-w01", User: "alice", FirstName: "Alice", LastName: "Liddell", Email: "alice@example.com", IndexURL: "/"}
	if _, err := svc.RequestSession(ctx, req); err != nil {
		t.Fatal(err)
	}
	// A later request without details keeps them.
	if _, err := svc.RequestSession(ctx, sessions.Request{Environment: "demo-w01", User: "alice", IndexURL: "/"}); err != nil {
		t.Fatal(err)
	}
	u, err := svc.GetUser(ctx, "alice")
	if err != nil {
		t.Fatal(err)
	}
	if u.Email != "alice@example.com" || u.FirstName != "Alice" || u.LastName != "Liddell" || u.Group != sessions.GroupAnonymous {
		t.Errorf("user = %+v", u)
	}
}

func TestRequestStoresIndexAndParams(t *testing.T) {
	svc, _, _ := setup(t, portal(workshop("lab", 5, 0)))
	res, err := svc.RequestSession(context.Background(), sessions.Request{Environment: "demo-w01", User: "alice",
		IndexURL: "https://hub.example.com/x", AnalyticsURL: "https://a.example.com/hook",
		Params: []sessions.Param{{Name: "P", Value: "v"}}})
	if err != nil {
		t.Fatal(err)
	}
	s := get(t, svc, res.Session.Name)
	if s.IndexURL != "https://hub.example.com/x" || s.AnalyticsURL != "https://a.example.com/hook" ||
		len(s.Params) != 1 || s.Params[0] != (sessions.Param{Name: "P", Value: "v"}) {
		t.Errorf("stored session = %+v", s)
	}
	if !s.Allocated.Equal(t0) || !s.Created.Equal(t0) {
		t.Errorf("allocated %v created %v", s.Allocated, s.Created)
	}
}

func TestNoTokenSessionCannotBeReacquired(t *testing.T) {
	w := workshop("lab", 5, 0)
	w.Expires = config.Duration(30 * time.Minute)
	svc, _, _ := setup(t, portal(w))
	res, err := svc.RequestSession(context.Background(), sessions.Request{Environment: "demo-w01", User: "alice", NoToken: true})
	if err != nil || res.Token != "" || res.Session.State != lifecycle.Running {
		t.Fatalf("NoToken request = %+v, %v", res, err)
	}
	if !res.Session.Expires.Equal(t0.Add(30 * time.Minute)) {
		t.Errorf("expires %v", res.Session.Expires)
	}
	requestErr(t, svc, sessions.Request{Environment: "demo-w01", User: "alice"}, sessions.ErrCannotReacquire)
}

func TestManyEnvironmentsNamed(t *testing.T) {
	var ws []config.Workshop
	for i := 1; i <= 12; i++ {
		ws = append(ws, workshop(fmt.Sprintf("w%d", i), 1, 0))
	}
	svc, _, _ := setup(t, portal(ws...))
	envs := svc.Environments()
	if len(envs) != 12 || envs[0].Name != "demo-w01" || envs[11].Name != "demo-w12" || envs[11].Workshop.Name != "w12" {
		t.Fatalf("environments: %d, first %s, last %s", len(envs), envs[0].Name, envs[len(envs)-1].Name)
	}
}

// TestRequestRefusesControlCharacterUsers: whatever door a user id comes
// through, the service refuses one it could never serve.
func TestRequestRefusesControlCharacterUsers(t *testing.T) {
	svc, _, _ := setup(t, portal(workshop("lab", 3, 0)))
	for _, user := range []string{"a\nb", "a\x00", "\xff"} {
		requestErr(t, svc, sessions.Request{Environment: "demo-w01", User: user}, sessions.ErrUserNotPermitted)
	}
	if sessions.ValidUserID("a\tb") || !sessions.ValidUserID("") || !sessions.ValidUserID("Zoë 李") {
		t.Fatal("ValidUserID")
	}
	// Names too: they are stored with the user and sent in webhooks.
	for _, name := range []string{"Ann\nMarie", "Lee\xff", "x\u2029"} {
		requestErr(t, svc, sessions.Request{Environment: "demo-w01", User: "bob", FirstName: name}, sessions.ErrUserNotPermitted)
		requestErr(t, svc, sessions.Request{Environment: "demo-w01", User: "bob", LastName: name}, sessions.ErrUserNotPermitted)
	}
	if _, err := svc.GetUser(context.Background(), "bob"); err == nil {
		t.Fatal("a refused request created its user")
	}
	request(t, svc, "demo-w01", "alice")
}
