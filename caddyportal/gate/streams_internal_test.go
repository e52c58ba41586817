package gate

import (
	"testing"
	"time"
)

// TestStreamsArmOncePerExpiry: the requests of a session with one expiry
// share one timer; a request arriving while others are open does not
// replace it (every request used to, an allocation and a timer heap
// operation each, because the armed instant drifted past the expiry).
func TestStreamsArmOncePerExpiry(t *testing.T) {
	s := NewStreams(nil)
	until := time.Now().Add(time.Hour)
	first := s.Open("a", until, false, func() {})
	defer first.Done()
	s.mu.Lock()
	timer, at := s.sessions["a"].timer, s.sessions["a"].at
	s.mu.Unlock()
	if timer == nil || !at.Equal(until) {
		t.Fatalf("after the first request: timer %v armed for %v, want one for %v", timer, at, until)
	}
	for range 10 {
		st := s.Open("a", until, false, func() {})
		s.mu.Lock()
		same := s.sessions["a"].timer == timer
		s.mu.Unlock()
		st.Done()
		if !same {
			t.Fatal("a request of the same session with the same expiry armed a new timer")
		}
	}
	// An earlier expiry (the session was shortened) re-arms.
	sooner := until.Add(-time.Minute)
	st := s.Open("a", sooner, false, func() {})
	defer st.Done()
	s.mu.Lock()
	rearmed, at := s.sessions["a"].timer != timer, s.sessions["a"].at
	s.mu.Unlock()
	if !rearmed || !at.Equal(sooner) {
		t.Fatalf("a sooner expiry: re-armed %v, armed for %v, want %v", rearmed, at, sooner)
	}
}
