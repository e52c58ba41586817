package sessions

import (
	"testing"
	"time"
)

// TestQueueWaitEstimate: a queued start's wait is its position times the
// interval at which starts ended lately; with fewer than three recent ends,
// ends at one instant, or only ends older than the window, there is no
// estimate rather than a wild one.
func TestQueueWaitEstimate(t *testing.T) {
	t0 := time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)
	ends := func(q *workQueue, at ...time.Duration) {
		for _, d := range at {
			q.finishLocked(t0.Add(d))
		}
	}
	var q workQueue
	if _, ok := q.wait(1, t0); ok {
		t.Fatal("an estimate with no start ended")
	}
	ends(&q, 0, 2*time.Second)
	if _, ok := q.wait(1, t0.Add(2*time.Second)); ok {
		t.Fatal("an estimate from two ends")
	}
	// Four ends over 6 s: one every 2 s.
	ends(&q, 4*time.Second, 6*time.Second)
	now := t0.Add(7 * time.Second)
	for pos, want := range map[int]time.Duration{1: 2 * time.Second, 10: 20 * time.Second} {
		if got, ok := q.wait(pos, now); !ok || got != want {
			t.Errorf("position %d: %v %v, want %v", pos, got, ok, want)
		}
	}
	if _, ok := q.wait(0, now); ok {
		t.Error("an estimate for a start that does not wait")
	}
	// Past the window, the old pace says nothing about the queue now.
	if _, ok := q.wait(1, t0.Add(paceWindow+7*time.Second)); ok {
		t.Error("an estimate from ends older than the window")
	}
	// Ends at one instant (a burst the clock did not separate).
	var burst workQueue
	ends(&burst, time.Second, time.Second, time.Second)
	if _, ok := burst.wait(1, t0.Add(time.Second)); ok {
		t.Error("an estimate from ends at one instant")
	}
	// Only the last paceKept ends count: an old slow pace is forgotten.
	var long workQueue
	for i := range paceKept {
		ends(&long, time.Duration(i)*10*time.Second)
	}
	last := time.Duration(paceKept-1) * 10 * time.Second
	for i := 1; i <= paceKept; i++ {
		ends(&long, last+time.Duration(i)*time.Second)
	}
	if got, ok := long.wait(1, t0.Add(last+time.Duration(paceKept)*time.Second)); !ok || got != time.Second {
		t.Errorf("after %d quick ends: %v %v, want 1s", paceKept, got, ok)
	}
}

// TestAboutWait: estimates are said as a person would: rounded up to 5
// seconds under a minute, to minutes above.
func TestAboutWait(t *testing.T) {
	for d, want := range map[time.Duration]string{
		800 * time.Millisecond: "a few seconds", 5 * time.Second: "a few seconds",
		5100 * time.Millisecond: "about 10 seconds", 21 * time.Second: "about 25 seconds", 50 * time.Second: "about 50 seconds",
		70 * time.Second: "about a minute", 150 * time.Second: "about 3 minutes", 2 * time.Hour: "more than an hour",
	} {
		if got := AboutWait(d); got != want {
			t.Errorf("AboutWait(%v) = %q, want %q", d, got, want)
		}
	}
}
