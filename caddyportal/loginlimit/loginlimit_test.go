package loginlimit

import (
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func fail(t *testing.T, l *Limiter, account, addr string) {
	t.Helper()
	a, wait := l.Reserve(account, addr)
	if a == nil {
		t.Fatalf("Reserve(%q, %q) refused, wait %v", account, addr, wait)
	}
	a.Fail()
}

func blocked(l *Limiter, account, addr string) time.Duration {
	a, wait := l.Reserve(account, addr)
	a.Release()
	return wait
}

func TestLimiterPerAddress(t *testing.T) {
	now := time.Unix(1700000000, 0)
	l := New(func() time.Time { return now })
	for i := range Burst {
		if w := blocked(l, fmt.Sprint("user", i), "a"); w != 0 {
			t.Fatalf("blocked after %d failures", i)
		}
		fail(t, l, fmt.Sprint("user", i), "a")
	}
	if w := blocked(l, "someone-else", "a"); w != Window {
		t.Fatalf("after %d failures: wait %v, want %v", Burst, w, Window)
	}
	if blocked(l, "someone-else", "b") != 0 {
		t.Fatal("another address is blocked too")
	}
	now = now.Add(Window / 2)
	if w := blocked(l, "x", "a"); w != Window/2 {
		t.Fatalf("half a window later: wait %v", w)
	}
	now = now.Add(Window/2 + time.Nanosecond)
	if w := blocked(l, "x", "a"); w != 0 {
		t.Fatalf("still blocked a window after the last failure: %v", w)
	}
}

// TestLimiterPerAccount: failures on one account from many addresses lock
// that account, and only that account.
func TestLimiterPerAccount(t *testing.T) {
	now := time.Unix(1700000000, 0)
	l := New(func() time.Time { return now })
	for i := range Burst {
		fail(t, l, "Admin", fmt.Sprint("10.0.0.", i))
	}
	if w := blocked(l, "admin", "10.9.9.9"); w != Window {
		t.Fatalf("account after %d failures from different addresses: wait %v, want %v", Burst, w, Window)
	}
	if w := blocked(l, "robot", "10.9.9.9"); w != 0 {
		t.Fatalf("another account is blocked too: %v", w)
	}
}

// TestSuccessResetsOnlyItsAccount: logging in to one's own account clears
// that account's failures, not the address's (the attack in issue 12: a
// self-registered learner's login reset the admin guesser's counter).
func TestSuccessResetsOnlyItsAccount(t *testing.T) {
	now := time.Unix(1700000000, 0)
	l := New(func() time.Time { return now })
	for range Burst - 1 {
		fail(t, l, "admin", "a")
	}
	a, _ := l.Reserve("learner@example.com", "a")
	if a == nil {
		t.Fatal("the last slot was refused")
	}
	a.Succeed()
	fail(t, l, "admin", "a")
	if w := blocked(l, "admin", "a"); w == 0 {
		t.Fatal("a success on another account reset the address counter")
	}
	if w := blocked(l, "learner@example.com", "a"); w == 0 {
		t.Fatal("the address is not blocked for other accounts")
	}
	// The account's own success clears the account, from another address.
	now = now.Add(Window + time.Second)
	for range Burst - 1 {
		fail(t, l, "ann", "b")
	}
	a, _ = l.Reserve("ann", "c")
	a.Succeed()
	for range Burst - 1 {
		fail(t, l, "ann", "c")
	}
	if w := blocked(l, "ann", "d"); w != 0 {
		t.Fatalf("the account's success did not reset its counter: wait %v", w)
	}
}

// TestConcurrentAttemptsReserve: attempts in flight take their slots, so a
// burst of concurrent guesses gets at most Burst checks.
func TestConcurrentAttemptsReserve(t *testing.T) {
	now := time.Unix(1700000000, 0)
	l := New(func() time.Time { return now })
	var checks atomic.Int32
	start := make(chan struct{})
	var held []*Attempt
	var mu sync.Mutex
	var wg sync.WaitGroup
	for range 100 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			a, _ := l.Reserve("admin", "a")
			if a == nil {
				return
			}
			checks.Add(1)
			mu.Lock()
			held = append(held, a)
			mu.Unlock()
		}()
	}
	close(start)
	wg.Wait()
	if n := checks.Load(); n != Burst {
		t.Fatalf("%d of 100 concurrent attempts were let through, want %d", n, Burst)
	}
	for _, a := range held {
		a.Fail()
	}
	if w := blocked(l, "admin", "b"); w != Window {
		t.Fatalf("account after the burst: wait %v", w)
	}
	// Released slots are given back.
	now = now.Add(2 * Window)
	for range 3 * Burst {
		a, w := l.Reserve("ann", "c")
		if a == nil {
			t.Fatalf("released attempts still hold slots: wait %v", w)
		}
		a.Release()
		a.Fail() // after Release: no effect
	}
}

func TestLimiterBounded(t *testing.T) {
	now := time.Unix(1700000000, 0)
	l := New(func() time.Time { return now })
	for i := range maxTracked + 10 {
		fail(t, l, "", fmt.Sprint("addr-", i))
	}
	if n := len(l.fails); n > maxTracked {
		t.Fatalf("%d addresses tracked, limit %d", n, maxTracked)
	}
}

func TestRate(t *testing.T) {
	now := time.Unix(1700000000, 0)
	r := NewRate(func() time.Time { return now }, 3, 10*time.Second)
	for i := range 3 {
		if w := r.Allow("a"); w != 0 {
			t.Fatalf("request %d refused: %v", i, w)
		}
	}
	if w := r.Allow("a"); w != 10*time.Second {
		t.Fatalf("fourth request: wait %v, want 10s", w)
	}
	if r.Allow("b") != 0 {
		t.Fatal("another key is limited too")
	}
	now = now.Add(10 * time.Second)
	if r.Allow("a") != 0 {
		t.Fatal("no request allowed after refill")
	}
	if r.Allow("a") == 0 {
		t.Fatal("refill gave more than one request")
	}
	if got := RetryAfter(1500 * time.Millisecond); got != "2" {
		t.Fatalf("RetryAfter(1.5s) = %q", got)
	}
	if got := RetryAfter(0); got != "1" {
		t.Fatalf("RetryAfter(0) = %q", got)
	}
}

// TestLongAccountNamesBounded: an account name of any length is kept as a
// short key, and still counted as itself.
func TestLongAccountNamesBounded(t *testing.T) {
	now := time.Unix(1700000000, 0)
	l := New(func() time.Time { return now })
	long := strings.Repeat("x", 60000)
	for i := range Burst {
		fail(t, l, long, fmt.Sprint("addr-", i))
	}
	for k := range l.fails {
		if len(k) > maxKey+4 {
			t.Fatalf("a key of %d bytes is kept", len(k))
		}
	}
	if w := blocked(l, long, "fresh"); w == 0 {
		t.Fatal("the long account name is not counted")
	}
	if w := blocked(l, long+"y", "fresh"); w != 0 {
		t.Fatal("another long name shares its counter")
	}
}
