package sessions

import (
	"testing"
	"time"

	"github.com/caddyportal/caddyportal/caddyportal/lifecycle"
)

// A gate read that began before a change and ends after the change dropped
// the name holds the record from before: keeping it would show the old
// state (a starting page, a terminated session's dashboard) for a second.
func TestCacheRefusesAFillADropOvertook(t *testing.T) {
	var c gateCache
	now := time.Now()
	before := &Session{Name: "s1", State: lifecycle.Starting}
	gen := c.generation() // the gate starts reading
	c.drop("s1")          // the change commits and drops the name
	c.put(before, now, gen)
	if got, ok := c.get("s1", now); ok {
		t.Fatalf("the cache kept a record read before the change: %+v", got)
	}

	// A read that began after the drop is current, and is kept until a
	// later change drops it.
	after := &Session{Name: "s1", State: lifecycle.Waiting}
	c.put(after, now, c.generation())
	got, ok := c.get("s1", now)
	if !ok || got.State != lifecycle.Waiting {
		t.Fatalf("a current record was not kept: %+v, %v", got, ok)
	}
	gen = c.generation()
	c.clear()
	c.put(after, now, gen)
	if _, ok := c.get("s1", now); ok {
		t.Fatal("the cache kept a fill that a clear overtook")
	}
}

// TestQueueKnowsLearnersStarts: refills yield while only reserves' starts
// wait; a learner's start waiting, or a waiting reserve given to a learner,
// ends that.
func TestQueueKnowsLearnersStarts(t *testing.T) {
	var q workQueue
	q.addStarts([]string{"r1", "r2"}, []string{"r1", "r2"}, nil)
	if q.learnerWaiting() {
		t.Fatal("only reserves wait, yet a learner is said to")
	}
	q.addStarts(nil, nil, []string{"r2"}) // r2 handed to a learner while queued
	if !q.learnerWaiting() {
		t.Fatal("a reserve given to a learner still counts as a reserve")
	}
	var q2 workQueue
	q2.addStarts([]string{"r1"}, []string{"r1"}, nil)
	q2.addStarts([]string{"s1"}, nil, nil) // a learner's own session
	if !q2.learnerWaiting() {
		t.Fatal("a learner's start waits, yet none is said to")
	}
	// A name that is not queued is not remembered as a spare.
	var q3 workQueue
	q3.addStarts(nil, []string{"gone"}, nil)
	if len(q3.spares) != 0 {
		t.Fatalf("spares %v for a queue with nothing in it", q3.spares)
	}
}

// A waiter on a name wakes at that name's next drop, not at another
// name's, and every waiter wakes when the cache is cleared.
func TestCacheChangedWakesWaiters(t *testing.T) {
	var c gateCache
	closed := func(ch <-chan struct{}) bool {
		select {
		case <-ch:
			return true
		default:
			return false
		}
	}
	s1, s2 := c.changed("s1"), c.changed("s2")
	if again := c.changed("s1"); again != s1 {
		t.Fatal("two waiters on one name got different channels")
	}
	c.drop("s2")
	if closed(s1) || !closed(s2) {
		t.Fatalf("after dropping s2: s1 closed %v, s2 closed %v", closed(s1), closed(s2))
	}
	next := c.changed("s2")
	if closed(next) {
		t.Fatal("a new waiter on s2 woke for the drop before it")
	}
	c.clear()
	if !closed(s1) || !closed(next) || len(c.waiters) != 0 {
		t.Fatalf("clear left a waiter asleep: s1 closed %v, s2 closed %v, %d kept", closed(s1), closed(next), len(c.waiters))
	}
}
