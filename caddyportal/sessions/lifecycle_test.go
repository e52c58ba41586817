package sessions_test

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/caddyportal/caddyportal/caddyportal/config"
	"github.com/caddyportal/caddyportal/caddyportal/lifecycle"
	"github.com/caddyportal/caddyportal/caddyportal/sessions"
	"github.com/caddyportal/caddyportal/caddyportal/store"
)

func TestActivationDeadlineExact(t *testing.T) {
	svc, _, clk := setup(t, portal(workshop("lab", 1, 0)))
	ctx := context.Background()
	r := request(t, svc, "demo-w01", "alice")
	deadline := t0.Add(config.DefaultActivationTimeout)
	if !r.Session.Expires.Equal(deadline) {
		t.Fatalf("activation deadline %v, want %v", r.Session.Expires, deadline)
	}
	clk.Set(deadline.Add(-time.Nanosecond))
	wantState(t, svc, r.Session.Name, lifecycle.Waiting)
	requestErr(t, svc, sessions.Request{Environment: "demo-w01", User: "bob"}, sessions.ErrNoSession)
	if l := live(t, svc, "demo-w01"); len(l) != 1 {
		t.Fatalf("live 1ns before deadline: %v", names(l))
	}

	// At the instant, with no reconcile pass: STOPPED, and capacity is free.
	clk.Set(deadline)
	if s := wantState(t, svc, r.Session.Name, lifecycle.Stopped); s.Reason != "activation-timeout" {
		t.Errorf("reason %q", s.Reason)
	}
	if l := live(t, svc, "demo-w01"); len(l) != 0 {
		t.Fatalf("live at deadline: %v", names(l))
	}
	if _, err := svc.Activate(ctx, r.Session.Name, r.Token); !errors.Is(err, sessions.ErrSessionEnded) {
		t.Fatalf("Activate at deadline: %v", err)
	}
	if list, _ := svc.UserSessions(ctx, "alice"); len(list) != 0 {
		t.Errorf("user sessions at deadline: %v", names(list))
	}
	b := request(t, svc, "demo-w01", "bob")
	if b.Session.Name != "demo-w01-s002" {
		t.Errorf("bob got %s", b.Session.Name)
	}
	// Alice gets a new session later, not her expired one back.
	if _, _, err := svc.Schedule(ctx, r.Session.Name); !errors.Is(err, sessions.ErrSessionNotFound) {
		t.Errorf("Schedule of expired session: %v", err)
	}
}

func TestReacquireRearmsActivationWindow(t *testing.T) {
	svc, _, clk := setup(t, portal(workshop("lab", 1, 0)))
	r := request(t, svc, "demo-w01", "alice")
	clk.Advance(50 * time.Second)
	r2 := request(t, svc, "demo-w01", "alice")
	if r2.Session.Name != r.Session.Name || !r2.Session.Expires.Equal(clk.Now().Add(60*time.Second)) {
		t.Fatalf("reacquire: %s expires %v", r2.Session.Name, r2.Session.Expires)
	}
	clk.Advance(59 * time.Second)
	wantState(t, svc, r.Session.Name, lifecycle.Waiting)
	clk.Advance(time.Second)
	wantState(t, svc, r.Session.Name, lifecycle.Stopped)
}

func TestActivationTimeoutParameter(t *testing.T) {
	timed := workshop("timed", 5, 0)
	timed.Expires = config.Duration(30 * time.Minute)
	svc, _, clk := setup(t, portal(timed, workshop("open", 5, 0)))
	ctx := context.Background()
	tests := []struct {
		env     string
		timeout *time.Duration
		want    time.Time // zero: no deadline
	}{
		{"demo-w01", durp(10 * time.Second), t0.Add(10 * time.Second)},
		{"demo-w01", durp(0), t0.Add(30 * time.Minute)},
		{"demo-w02", durp(0), time.Time{}},
		{"demo-w02", nil, t0.Add(60 * time.Second)},
	}
	for i, tt := range tests {
		res, err := svc.RequestSession(ctx, sessions.Request{Environment: tt.env, User: "u" + string(rune('a'+i)),
			Timeout: tt.timeout, IndexURL: "/"})
		if err != nil {
			t.Fatal(err)
		}
		if !res.Session.Expires.Equal(tt.want) {
			t.Errorf("case %d: expires %v, want %v", i, res.Session.Expires, tt.want)
		}
	}
	// The pending session with no deadline lives on.
	clk.Advance(1000 * time.Hour)
	if l := live(t, svc, "demo-w02"); !slices.Equal(names(l), []string{"demo-w02-s001"}) {
		t.Errorf("live after a long time: %v", names(l))
	}
}

func TestActivate(t *testing.T) {
	w := workshop("lab", 2, 0)
	w.Expires = config.Duration(30 * time.Minute)
	svc, _, clk := setup(t, portal(w))
	ctx := context.Background()
	r := request(t, svc, "demo-w01", "alice")
	clk.Advance(10 * time.Second)
	at := clk.Now()
	if _, err := svc.Activate(ctx, r.Session.Name, "wrong"); err != sessions.ErrBadToken {
		t.Fatalf("wrong token: %v", err)
	}
	if _, err := svc.Activate(ctx, r.Session.Name, ""); err != sessions.ErrBadToken {
		t.Fatalf("empty token: %v", err)
	}
	if _, err := svc.Activate(ctx, "demo-w01-s999", r.Token); !errors.Is(err, sessions.ErrSessionNotFound) {
		t.Fatalf("unknown session: %v", err)
	}
	s, err := svc.Activate(ctx, r.Session.Name, r.Token)
	if err != nil {
		t.Fatal(err)
	}
	if s.State != lifecycle.Running || !s.Started.Equal(at) || !s.Expires.Equal(at.Add(30*time.Minute)) {
		t.Fatalf("activated: %s started %v expires %v", s.State, s.Started, s.Expires)
	}
	// Repeatable, and it does not restart the clock.
	clk.Advance(time.Minute)
	s, err = svc.Activate(ctx, r.Session.Name, r.Token)
	if err != nil || !s.Started.Equal(at) || !s.Expires.Equal(at.Add(30*time.Minute)) {
		t.Fatalf("second activation: %+v, %v", s, err)
	}
	// Reacquiring a running session returns it with the same token.
	r2 := request(t, svc, "demo-w01", "alice")
	if r2.Session.Name != r.Session.Name || r2.Session.State != lifecycle.Running || r2.Token != r.Token {
		t.Fatalf("reacquire running: %+v", r2.Session)
	}
	if _, err := svc.Activate(ctx, r.Session.Name, r2.Token); err != nil {
		t.Fatal(err)
	}
	// Expiry exact.
	exp := at.Add(30 * time.Minute)
	clk.Set(exp.Add(-time.Nanosecond))
	wantState(t, svc, r.Session.Name, lifecycle.Running)
	clk.Set(exp)
	if s := wantState(t, svc, r.Session.Name, lifecycle.Stopped); s.Reason != "expired" || s.IndexURL != "https://hub.example.com/" {
		t.Errorf("expired session reason %q index %q", s.Reason, s.IndexURL)
	}
	s, err = svc.Activate(ctx, r.Session.Name, r.Token)
	if !errors.Is(err, sessions.ErrSessionEnded) || s == nil || s.IndexURL != "https://hub.example.com/" {
		t.Fatalf("activate expired: %+v, %v", s, err)
	}
}

func TestActivateUnlimited(t *testing.T) {
	svc, _, clk := setup(t, portal(workshop("lab", 2, 0)))
	r := request(t, svc, "demo-w01", "alice")
	s, err := svc.Activate(context.Background(), r.Session.Name, r.Token)
	if err != nil || !s.Expires.IsZero() {
		t.Fatalf("unlimited activation: expires %v, %v", s.Expires, err)
	}
	clk.Advance(10000 * time.Hour)
	wantState(t, svc, r.Session.Name, lifecycle.Running)
}

func TestActivateReserveRefused(t *testing.T) {
	svc, _, _ := setup(t, portal(workshop("lab", 2, 1)))
	if _, err := svc.Activate(context.Background(), "demo-w01-s001", "anything"); err != sessions.ErrBadToken {
		t.Fatalf("activating a reserve: %v", err)
	}
}

func TestTerminate(t *testing.T) {
	svc, _, clk := setup(t, portal(workshop("lab", 1, 0)))
	ctx := context.Background()
	r := request(t, svc, "demo-w01", "alice")
	if _, err := svc.Activate(ctx, r.Session.Name, r.Token); err != nil {
		t.Fatal(err)
	}
	clk.Advance(time.Minute)
	at := clk.Now()
	s, err := svc.Terminate(ctx, r.Session.Name, "")
	if err != nil || s.State != lifecycle.Stopping || !s.Expires.Equal(at) || s.Reason != "terminated" {
		t.Fatalf("Terminate = %+v, %v", s, err)
	}
	wantState(t, svc, r.Session.Name, lifecycle.Stopping)
	// Activation of a STOPPING session is refused, with the session.
	s, err = svc.Activate(ctx, r.Session.Name, r.Token)
	if !errors.Is(err, sessions.ErrSessionEnded) || s == nil || s.IndexURL == "" {
		t.Fatalf("activate stopping: %+v, %v", s, err)
	}
	// Repeat terminate is fine.
	clk.Advance(time.Second)
	if s, err := svc.Terminate(ctx, r.Session.Name, ""); err != nil || s.State != lifecycle.Stopping {
		t.Fatalf("repeat terminate: %+v, %v", s, err)
	}
	// A STOPPING session is not listed for the user and not reacquired,
	// but it still holds its place (capacity 1).
	if list, _ := svc.UserSessions(ctx, "alice"); len(list) != 0 {
		t.Errorf("user sessions while stopping: %v", names(list))
	}
	requestErr(t, svc, sessions.Request{Environment: "demo-w01", User: "alice"}, sessions.ErrNoSession)
	// Grace counts from the first terminate.
	clk.Set(at.Add(grace - time.Nanosecond))
	wantState(t, svc, r.Session.Name, lifecycle.Stopping)
	clk.Set(at.Add(grace))
	wantState(t, svc, r.Session.Name, lifecycle.Stopped)
	if _, err := svc.Terminate(ctx, r.Session.Name, ""); !errors.Is(err, sessions.ErrSessionNotFound) {
		t.Errorf("terminate stopped: %v", err)
	}
	if r2 := request(t, svc, "demo-w01", "alice"); r2.Session.Name != "demo-w01-s002" {
		t.Errorf("new session %s", r2.Session.Name)
	}
}

func TestTerminatePending(t *testing.T) {
	svc, _, clk := setup(t, portal(workshop("lab", 1, 0)))
	r := request(t, svc, "demo-w01", "alice")
	if _, err := svc.Terminate(context.Background(), r.Session.Name, ""); err != nil {
		t.Fatal(err)
	}
	clk.Advance(grace)
	wantState(t, svc, r.Session.Name, lifecycle.Stopped)
}

func TestExtendWorkedExample(t *testing.T) {
	w := workshop("lab", 1, 0)
	w.Expires = config.Duration(60 * time.Minute)
	w.Deadline = config.Duration(120 * time.Minute)
	svc, _, clk := setup(t, portal(w))
	ctx := context.Background()
	r := request(t, svc, "demo-w01", "alice")
	// Not running yet: never extended.
	if _, _, ok, err := svc.Extend(ctx, r.Session.Name); err != nil || ok {
		t.Fatalf("extend pending: %v, %v", ok, err)
	}
	if _, err := svc.Activate(ctx, r.Session.Name, r.Token); err != nil {
		t.Fatal(err)
	}
	start := clk.Now()

	clk.Set(start.Add(10 * time.Minute))
	s, sch, ok, err := svc.Extend(ctx, r.Session.Name)
	if err != nil || ok || !s.Expires.Equal(start.Add(60*time.Minute)) || sch.Countdown != 3000 || sch.Extendable || sch.Expiring {
		t.Fatalf("extend at 50m remaining: %v %+v %v %v", s.Expires.Sub(start), sch, ok, err)
	}
	// Exactly 15 minutes left: not yet.
	clk.Set(start.Add(45 * time.Minute))
	if _, sch, ok, _ := svc.Extend(ctx, r.Session.Name); ok || sch.Extendable {
		t.Fatalf("extended with exactly 15m left")
	}
	for i, want := range []time.Duration{75, 90, 105, 120} {
		cur := get(t, svc, r.Session.Name).Expires
		clk.Set(cur.Add(-time.Minute))
		_, sch, err := svc.Schedule(ctx, r.Session.Name)
		if err != nil || !sch.Extendable || !sch.Expiring || sch.Countdown != 60 {
			t.Fatalf("schedule before extension %d: %+v %v", i+1, sch, err)
		}
		s, sch, ok, err := svc.Extend(ctx, r.Session.Name)
		if err != nil || !ok || !s.Expires.Equal(start.Add(want*time.Minute)) {
			t.Fatalf("extension %d: expires +%v ok %v err %v, want +%vm", i+1, s.Expires.Sub(start), ok, err, want)
		}
		if sch.Countdown != int((want*time.Minute-cur.Sub(start)+time.Minute)/time.Second) {
			t.Errorf("extension %d: countdown %d", i+1, sch.Countdown)
		}
	}
	// Capped at started + D.
	clk.Set(start.Add(120*time.Minute - time.Second))
	if s, sch, ok, err := svc.Extend(ctx, r.Session.Name); err != nil || ok || sch.Extendable || !s.Expires.Equal(start.Add(120*time.Minute)) {
		t.Fatalf("extend after cap: %v %+v %v", s.Expires.Sub(start), sch, ok)
	}
	clk.Set(start.Add(120 * time.Minute))
	wantState(t, svc, r.Session.Name, lifecycle.Stopped)
	if _, _, _, err := svc.Extend(ctx, r.Session.Name); !errors.Is(err, sessions.ErrSessionNotFound) {
		t.Errorf("extend stopped: %v", err)
	}
}

func TestReservedNotInUse(t *testing.T) {
	svc, _, _ := setup(t, portal(workshop("lab", 2, 1)))
	ctx := context.Background()
	if _, _, _, err := svc.Extend(ctx, "demo-w01-s001"); err != sessions.ErrNotInUse {
		t.Errorf("extend reserve: %v", err)
	}
	if _, err := svc.Terminate(ctx, "demo-w01-s001", ""); err != sessions.ErrNotInUse {
		t.Errorf("terminate reserve: %v", err)
	}
	// Schedule works on reserves.
	s, sch, err := svc.Schedule(ctx, "demo-w01-s001")
	if err != nil || s.State != lifecycle.Waiting || sch.HasExpiry {
		t.Errorf("schedule reserve: %+v %+v %v", s, sch, err)
	}
	wantState(t, svc, "demo-w01-s001", lifecycle.Waiting)
}

func TestReconcileFinalizesAndTopsUp(t *testing.T) {
	svc, st, clk := setup(t, portal(workshop("lab", 1, 1)))
	ctx := context.Background()
	r := request(t, svc, "demo-w01", "alice")
	if r.Session.Name != "demo-w01-s001" {
		t.Fatalf("got %s", r.Session.Name)
	}
	if got := reserves(live(t, svc, "demo-w01")); len(got) != 0 {
		t.Fatalf("reserves at capacity: %v", got)
	}
	clk.Advance(config.DefaultActivationTimeout)
	// Before a pass the stored record still says WAITING.
	if rec := rawSession(t, st, r.Session.Name); rec.State != lifecycle.Waiting {
		t.Fatalf("stored state before reconcile: %s", rec.State)
	}
	reconcile(t, svc)
	rec := rawSession(t, st, r.Session.Name)
	if rec.State != lifecycle.Stopped || rec.Reason != "activation-timeout" || !rec.Stopped.Equal(t0.Add(config.DefaultActivationTimeout)) {
		t.Fatalf("stored after reconcile: %s %q stopped %v", rec.State, rec.Reason, rec.Stopped)
	}
	for _, k := range []string{"l/demo-w01/demo-w01-s001", "o/alice/demo-w01-s001"} {
		if has(t, st, k) {
			t.Errorf("index key %s left behind", k)
		}
	}
	if got := reserves(live(t, svc, "demo-w01")); !slices.Equal(got, []string{"demo-w01-s002"}) {
		t.Fatalf("reserves after reconcile: %v", got)
	}
	// The STOPPED record is purged after the retention period.
	clk.Advance(config.DefaultRetention)
	if _, err := svc.Get(ctx, r.Session.Name); !errors.Is(err, sessions.ErrSessionNotFound) {
		t.Errorf("after retention: %v", err)
	}
}

func TestOrphanedSessionsStop(t *testing.T) {
	w := workshop("lab", 2, 0)
	w.Orphaned = config.Duration(5 * time.Minute)
	svc, _, clk := setup(t, portal(w))
	ctx := context.Background()
	r := request(t, svc, "demo-w01", "alice")
	if _, err := svc.Activate(ctx, r.Session.Name, r.Token); err != nil {
		t.Fatal(err)
	}
	clk.Advance(4 * time.Minute)
	if err := svc.Touch(ctx, r.Session.Name); err != nil {
		t.Fatal(err)
	}
	clk.Advance(5*time.Minute - time.Nanosecond)
	reconcile(t, svc)
	wantState(t, svc, r.Session.Name, lifecycle.Running)
	clk.Advance(time.Nanosecond)
	reconcile(t, svc)
	if s := wantState(t, svc, r.Session.Name, lifecycle.Stopped); s.Reason != "orphaned" {
		t.Errorf("reason %q", s.Reason)
	}
}

func rawSession(t *testing.T, st store.Store, name string) sessions.Session {
	t.Helper()
	var s sessions.Session
	err := st.View(context.Background(), func(tx store.Txn) error {
		v, err := tx.Get("s/" + name)
		if err != nil {
			return err
		}
		return json.Unmarshal(v, &s)
	})
	if err != nil {
		t.Fatalf("reading s/%s: %v", name, err)
	}
	return s
}

func has(t *testing.T, st store.Store, key string) bool {
	t.Helper()
	found := false
	err := st.View(context.Background(), func(tx store.Txn) error {
		_, err := tx.Get(key)
		if errors.Is(err, store.ErrNotFound) {
			return nil
		}
		found = err == nil
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return found
}

func TestRemovedWorkshopDrains(t *testing.T) {
	clk := newClock()
	st := openStore(t, clk)
	ctx := context.Background()
	svc := newService(t, st, clk, portal(workshop("a", 3, 1), workshop("b", 3, 0)))
	ra := request(t, svc, "demo-w01", "alice") // takes a's reserve, tops up
	request(t, svc, "demo-w02", "bob")
	svc.Close()

	// Reload without a.
	svc = newService(t, st, clk, portal(workshop("b", 3, 0)))
	ea, eb := svc.Environment("demo-w01"), svc.Environment("demo-w02")
	if ea == nil || ea.State != sessions.EnvStopping || eb == nil || eb.State != sessions.EnvRunning || eb.Workshop.Name != "b" {
		t.Fatalf("after removal: w01 %+v, w02 %+v", ea, eb)
	}
	// Alice keeps her session on the stopping environment; nobody new gets one.
	if r := request(t, svc, "demo-w01", "alice"); r.Session.Name != ra.Session.Name {
		t.Fatalf("alice got %s", r.Session.Name)
	}
	requestErr(t, svc, sessions.Request{Environment: "demo-w01", User: "carol"}, sessions.ErrNoSession)
	// A pass stops the removed environment's reserve.
	reconcile(t, svc)
	if got := names(live(t, svc, "demo-w01")); !slices.Equal(got, []string{ra.Session.Name}) {
		t.Fatalf("live in removed env: %v", got)
	}
	if s := wantState(t, svc, "demo-w01-s002", lifecycle.Stopped); s.Reason != "environment-removed" {
		t.Errorf("reserve reason %q", s.Reason)
	}
	// Once alice's session ends the environment is STOPPED and gone on the
	// next start.
	if _, err := svc.Terminate(ctx, ra.Session.Name, ""); err != nil {
		t.Fatal(err)
	}
	clk.Advance(grace)
	reconcile(t, svc)
	svc.Close()
	svc = newService(t, st, clk, portal(workshop("b", 3, 0)))
	if e := svc.Environment("demo-w01"); e != nil {
		t.Errorf("drained environment still listed: %+v", e)
	}
	// Re-adding a gets a new environment name, never w01 again.
	svc.Close()
	svc = newService(t, st, clk, portal(workshop("a", 3, 0), workshop("b", 3, 0)))
	var got []string
	for _, e := range svc.Environments() {
		got = append(got, e.Name+"="+e.Workshop.Name+"/"+e.State)
	}
	if want := []string{"demo-w02=b/RUNNING", "demo-w03=a/RUNNING"}; !slices.Equal(got, want) {
		t.Errorf("environments %v, want %v", got, want)
	}
}

func TestReorderKeepsEnvironmentNames(t *testing.T) {
	clk := newClock()
	st := openStore(t, clk)
	svc := newService(t, st, clk, portal(workshop("a", 3, 0), workshop("b", 3, 0)))
	request(t, svc, "demo-w02", "bob")
	svc.Close()
	svc = newService(t, st, clk, portal(workshop("b", 3, 0), workshop("c", 3, 0), workshop("a", 3, 0)))
	want := map[string]string{"a": "demo-w01", "b": "demo-w02", "c": "demo-w03"}
	for _, e := range svc.Environments() {
		if want[e.Workshop.Name] != e.Name || e.State != sessions.EnvRunning {
			t.Errorf("workshop %s in %s (%s)", e.Workshop.Name, e.Name, e.State)
		}
	}
	if r := request(t, svc, "demo-w02", "bob"); r.Session.Name != "demo-w02-s001" || r.Session.Workshop != "b" {
		t.Errorf("bob's session after reorder: %+v", r.Session)
	}
}

func TestRestartKeepsState(t *testing.T) {
	clk := newClock()
	st := openStore(t, clk)
	ctx := context.Background()
	cfg := portal(workshop("lab", 5, 1))
	svc := newService(t, st, clk, cfg)
	r := request(t, svc, "demo-w01", "alice") // s001 (reserve), tops up s002
	request(t, svc, "demo-w01", "bob")        // s002, tops up s003
	secret, err := svc.Secret(ctx)
	if err != nil || len(secret) != 32 {
		t.Fatalf("secret: %d bytes, %v", len(secret), err)
	}
	svc.Close()

	svc = newService(t, st, clk, cfg)
	if got := names(live(t, svc, "demo-w01")); !slices.Equal(got, []string{"demo-w01-s001", "demo-w01-s002", "demo-w01-s003"}) {
		t.Fatalf("live after restart: %v", got)
	}
	// The old token still works, and the counter continues.
	if _, err := svc.Activate(ctx, r.Session.Name, r.Token); err != nil {
		t.Fatalf("activate after restart: %v", err)
	}
	if c := request(t, svc, "demo-w01", "carol"); c.Session.Name != "demo-w01-s003" {
		t.Errorf("carol got %s", c.Session.Name)
	}
	if d := request(t, svc, "demo-w01", "dave"); d.Session.Name != "demo-w01-s004" {
		t.Errorf("dave got %s", d.Session.Name)
	}
	secret2, _ := svc.Secret(ctx)
	if string(secret2) != string(secret) {
		t.Errorf("secret changed across restart")
	}
}

func TestRequestAfterClose(t *testing.T) {
	clk := newClock()
	st := openStore(t, clk)
	svc := newService(t, st, clk, portal(workshop("lab", 5, 0)))
	svc.Close()
	_, err := svc.RequestSession(context.Background(), sessions.Request{Environment: "demo-w01", User: "a"})
	if !errors.Is(err, sessions.ErrClosed) {
		t.Fatalf("request after close: %v", err)
	}
}

func TestEventsEmitted(t *testing.T) {
	clk := newClock()
	st := openStore(t, clk)
	var evs eventLog
	svc, err := sessions.New(context.Background(), st, portal(workshop("lab", 5, 0)), sessions.Options{Now: clk.Now,
		ReconcileInterval: time.Hour, OnEvent: evs.add})
	if err != nil {
		t.Fatal(err)
	}
	defer svc.Close()
	r := request(t, svc, "demo-w01", "alice")
	if _, err := svc.Activate(context.Background(), r.Session.Name, r.Token); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Terminate(context.Background(), r.Session.Name, ""); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range evs.all() {
		got = append(got, e.Name)
	}
	joined := strings.Join(got, ",")
	for _, want := range []string{"User/Create", "Session/Created", "Session/Pending", "Session/Started", "Session/Stopping"} {
		if !strings.Contains(joined, want) {
			t.Errorf("events %v lack %s", got, want)
		}
	}
}

// TestGrantStaff: a staff grant lets its staff member into a learner's
// session until it ends (capped by the session's expiry), is recorded in
// the session and as an event, and cannot be had for a reserve or an
// ended session.
func TestGrantStaff(t *testing.T) {
	clk := newClock()
	st := openStore(t, clk)
	var evs eventLog
	w := workshop("lab", 5, 1)
	w.Expires = config.Duration(2 * time.Hour)
	svc, err := sessions.New(context.Background(), st, portal(w), sessions.Options{Now: clk.Now,
		ReconcileInterval: time.Hour, OnEvent: evs.add})
	if err != nil {
		t.Fatal(err)
	}
	defer svc.Close()
	ctx := context.Background()
	r := request(t, svc, "demo-w01", "alice")
	if _, err := svc.Activate(ctx, r.Session.Name, r.Token); err != nil {
		t.Fatal(err)
	}
	sess, g, err := svc.GrantStaff(ctx, r.Session.Name, "admin", "192.0.2.1", time.Hour)
	if err != nil || g.User != "admin" || g.Client != "192.0.2.1" || !g.Until.Equal(clk.Now().Add(time.Hour)) || len(sess.StaffGrants) != 1 {
		t.Fatalf("GrantStaff = %+v, %+v, %v", sess, g, err)
	}
	if !sess.StaffAllowed("admin", clk.Now()) || sess.StaffAllowed("bob", clk.Now()) || sess.StaffAllowed("admin", g.Until) {
		t.Error("StaffAllowed does not follow the grant")
	}
	// A grant never outlives the session's expiry.
	_, g2, _ := svc.GrantStaff(ctx, r.Session.Name, "admin", "", 1000*time.Hour)
	if sess.Expires.IsZero() || !g2.Until.Equal(sess.Expires) {
		t.Errorf("a long grant ends at %v, the session at %v", g2.Until, sess.Expires)
	}
	found := false
	for _, e := range evs.all() {
		if e.Name == sessions.EventSessionStaffAccess && e.Session == r.Session.Name && e.Data["staff"] == "admin" {
			found = true
		}
	}
	if !found {
		t.Error("no Session/StaffAccess event")
	}
	var reserve string
	all, _ := svc.EnvironmentSessions(ctx)
	for _, s := range all["demo-w01"] {
		if s.Reserved() {
			reserve = s.Name
		}
	}
	if _, _, err := svc.GrantStaff(ctx, reserve, "admin", "", time.Hour); !errors.Is(err, sessions.ErrNotInUse) {
		t.Errorf("a grant on a reserve: %v", err)
	}
	if _, err := svc.Terminate(ctx, r.Session.Name, ""); err != nil {
		t.Fatal(err)
	}
	if _, _, err := svc.GrantStaff(ctx, r.Session.Name, "admin", "", time.Hour); !errors.Is(err, sessions.ErrSessionEnded) {
		t.Errorf("a grant on an ended session: %v", err)
	}
}
