package gate_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyportal/caddyportal/caddyportal/gate"
)

// stopped is a stop func that records it ran.
type stopped struct{ ch chan struct{} }

func newStopped() *stopped { return &stopped{ch: make(chan struct{}, 2)} }

func (s *stopped) stop() { s.ch <- struct{}{} }

// within waits for the stop, up to a generous bound (the registry stops
// requests at once or from a timer due now; the bound is not a speed
// target).
func (s *stopped) within(t *testing.T, what string) {
	t.Helper()
	select {
	case <-s.ch:
	case <-time.After(time.Minute):
		t.Fatalf("%s: the request was not stopped", what)
	}
}

func (s *stopped) not(t *testing.T, what string) {
	t.Helper()
	select {
	case <-s.ch:
		t.Fatalf("%s: the request was stopped", what)
	default:
	}
}

// sessionState is a fake of the store's view of sessions, for the check
// func: live sessions and their expiries.
type sessionState struct {
	mu    sync.Mutex
	live  map[string]time.Time
	err   error
	reads atomic.Int64
}

func (s *sessionState) check(_ context.Context, name string) (bool, time.Time, error) {
	s.reads.Add(1)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return false, time.Time{}, s.err
	}
	until, ok := s.live[name]
	return ok, until, nil
}

func (s *sessionState) set(name string, live bool, until time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if live {
		s.live[name] = until
	} else {
		delete(s.live, name)
	}
}

func newRegistry() (*gate.Streams, *sessionState) {
	st := &sessionState{live: map[string]time.Time{}}
	s := gate.NewStreams(nil)
	s.SetCheck(st.check)
	return s, st
}

// TestStreamsEnd: End stops every open request of the session, only that
// session's, and a request of that session that registers afterwards (it
// was admitted just before the end) is stopped as it registers. A request
// that ended by itself is not stopped again.
func TestStreamsEnd(t *testing.T) {
	s, _ := newRegistry()
	a1, a2, b, gone := newStopped(), newStopped(), newStopped(), newStopped()
	s.Open("a", time.Time{}, false, a1.stop)
	s.Open("a", time.Time{}, false, a2.stop)
	s.Open("b", time.Time{}, false, b.stop)
	done := s.Open("a", time.Time{}, false, gone.stop)
	done.Done()
	if n := s.Count("a"); n != 2 {
		t.Fatalf("%d requests of a open, want 2", n)
	}
	s.End("a")
	a1.within(t, "first request")
	a2.within(t, "second request")
	gone.not(t, "a request that had ended")
	b.not(t, "another session's request")
	if n := s.Count("a"); n != 0 {
		t.Fatalf("%d requests of a still registered", n)
	}
	late := newStopped()
	s.Open("a", time.Time{}, false, late.stop)
	late.within(t, "a request registering after the end")
	if n := s.Count("b"); n != 1 {
		t.Fatalf("%d requests of b, want 1", n)
	}
	s.CloseAll()
	b.within(t, "CloseAll")
}

// TestStreamsExpiry: nothing announces an expiry, so the registry checks
// a session at the expiry it was admitted with: a session that did expire
// has its requests stopped; one that was extended meanwhile keeps them and
// is checked again at its new expiry.
func TestStreamsExpiry(t *testing.T) {
	s, st := newRegistry()
	until := time.Now().Add(200 * time.Millisecond)
	st.set("a", true, until)
	st.set("b", true, until)
	a, b := newStopped(), newStopped()
	s.Open("a", until, false, a.stop)
	s.Open("b", until, false, b.stop)
	later := until.Add(time.Hour)
	st.set("b", true, later) // extended
	st.set("a", false, time.Time{})
	a.within(t, "expired session")
	// b's check at its old expiry found it extended: wait until that read
	// happened, then b must still be open.
	for deadline := time.Now().Add(time.Minute); st.reads.Load() < 2; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the extended session was never checked")
		}
	}
	b.not(t, "extended session")
	if s.Count("b") != 1 {
		t.Fatal("the extended session's request was dropped")
	}

	// A request admitted with an expiry already past (the gate read the
	// session an instant before it expired) is stopped as it registers.
	past := newStopped()
	s.Open("c", time.Now().Add(-time.Millisecond), false, past.stop)
	past.within(t, "admitted at the expiry instant")
}

// TestStreamsChanged: a change reported by another process makes the
// registry read the session afresh and stop its requests if it is no
// longer live; a request registering soon after such a change is checked
// too (its admission may have used the record from before); a failed read
// stops what is open (fail closed) without refusing reconnects.
func TestStreamsChanged(t *testing.T) {
	s, st := newRegistry()
	st.set("a", true, time.Time{})
	st.set("b", true, time.Time{})
	a, b := newStopped(), newStopped()
	s.Open("a", time.Time{}, false, a.stop)
	s.Open("b", time.Time{}, false, b.stop)
	s.Changed("a") // still live: e.g. its activity was recorded
	for deadline := time.Now().Add(time.Minute); st.reads.Load() < 1; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the changed session was never read")
		}
	}
	st.set("a", false, time.Time{})
	s.Changed("a")
	a.within(t, "ended on another replica")
	b.not(t, "another session")

	// Changed before the request registered: the registry had nothing of
	// "c" to check then, so it checks when "c" registers.
	s.Changed("c")
	c := newStopped()
	s.Open("c", time.Time{}, false, c.stop)
	c.within(t, "admitted on a stale record")

	// "" means anything may have changed.
	st.set("b", false, time.Time{})
	s.Changed("")
	b.within(t, "changes missed")

	// A failed read stops open requests but does not mark the session
	// ended: a reconnect is not refused by the registry.
	st.set("d", true, time.Time{})
	d := newStopped()
	s.Open("d", time.Time{}, false, d.stop)
	st.mu.Lock()
	st.err = errors.New("store unavailable")
	st.mu.Unlock()
	s.Changed("d")
	d.within(t, "read failed")
	st.mu.Lock()
	st.err = nil
	st.mu.Unlock()
	again := newStopped()
	s.Open("d", time.Time{}, false, again.stop) // read 6: it changed lately
	s.Changed("d")                              // read 7
	for deadline := time.Now().Add(time.Minute); st.reads.Load() < 7; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d reads, want 7", st.reads.Load())
		}
	}
	again.not(t, "reconnect after a failed read")
	if s.Count("d") != 1 {
		t.Fatal("the reconnect was dropped")
	}
}

// TestStreamsDistrust: while the process cannot vouch for what it admitted
// (Distrust(true)), the requests of shared dashboards are stopped, those
// open and those that register, and nobody else's; once it can again,
// shared requests stay open. Each gate (two during a reload) speaks for
// itself.
func TestStreamsDistrust(t *testing.T) {
	s, _ := newRegistry()
	shared, mixed, own := newStopped(), newStopped(), newStopped()
	s.Open("pool", time.Time{}, true, shared.stop)
	// One shared request makes the whole session's requests shared: they
	// all reach the same dashboard.
	s.Open("pool", time.Time{}, false, mixed.stop)
	s.Open("spawned", time.Time{}, false, own.stop)
	if n := s.Distrust("gate", true); n != 2 {
		t.Fatalf("Distrust stopped %d requests, want the shared session's 2", n)
	}
	shared.within(t, "a shared request while distrusted")
	mixed.within(t, "another request of the shared session")
	own.not(t, "a request to a session's own dashboard")

	late, lateOwn := newStopped(), newStopped()
	s.Open("pool2", time.Time{}, true, late.stop)
	late.within(t, "a shared request registering while distrusted")
	s.Open("spawned2", time.Time{}, false, lateOwn.stop)
	lateOwn.not(t, "a request to its own dashboard registering while distrusted")
	if n := s.Distrust("gate", true); n != 0 {
		t.Fatalf("a second Distrust stopped %d requests, want none", n)
	}

	// During a reload two gates speak: the old one's all-clear (it is
	// stopping) does not overrule the new one that cannot vouch.
	s.Distrust("new gate", true)
	s.Distrust("gate", false)
	overruled := newStopped()
	s.Open("pool4", time.Time{}, true, overruled.stop)
	overruled.within(t, "a shared request while another gate distrusts")
	s.Distrust("new gate", false)
	again := newStopped()
	s.Open("pool3", time.Time{}, true, again.stop)
	if n := s.Distrust("gate", false); n != 0 {
		t.Fatalf("Distrust(false) stopped %d requests", n)
	}
	again.not(t, "a shared request once trusted again")
	if n := s.Count("pool3"); n != 1 {
		t.Fatalf("%d requests of pool3 registered, want 1", n)
	}
	s.CloseAll()
	own.within(t, "CloseAll")
}
