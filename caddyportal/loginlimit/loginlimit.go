// Package loginlimit slows down password guessing: after Burst failed
// logins from one client address within Window, further attempts are
// refused until Window has passed since the last failure. The REST API's
// token endpoint and the web login share it.
package loginlimit

import (
	"sync"
	"time"
)

// Limits.
const (
	// Burst is how many failures an address may have within Window.
	Burst = 10
	// Window is how long failures are remembered.
	Window = time.Minute
	// maxTracked bounds the table, so a flood of addresses cannot grow it
	// without bound.
	maxTracked = 100000
)

// Limiter counts failed logins per client address.
type Limiter struct {
	mu    sync.Mutex
	now   func() time.Time
	fails map[string]*failures
}

type failures struct {
	count int
	last  time.Time
}

// New returns a Limiter on the clock now.
func New(now func() time.Time) *Limiter {
	return &Limiter{now: now, fails: map[string]*failures{}}
}

// Blocked returns how long addr must wait before trying again, or 0.
func (l *Limiter) Blocked(addr string) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	f := l.fails[addr]
	if f == nil || f.count < Burst {
		return 0
	}
	wait := f.last.Add(Window).Sub(l.now())
	if wait <= 0 {
		delete(l.fails, addr)
		return 0
	}
	return wait
}

// Fail records a failed login from addr.
func (l *Limiter) Fail(addr string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	f := l.fails[addr]
	if f == nil || now.Sub(f.last) > Window {
		if len(l.fails) >= maxTracked {
			l.prune(now)
		}
		f = &failures{}
		l.fails[addr] = f
	}
	f.count++
	f.last = now
}

// Succeed forgets addr's failures.
func (l *Limiter) Succeed(addr string) {
	l.mu.Lock()
	delete(l.fails, addr)
	l.mu.Unlock()
}

// prune drops stale entries, and if that is not enough, half the table.
func (l *Limiter) prune(now time.Time) {
	for k, f := range l.fails {
		if now.Sub(f.last) > Window {
			delete(l.fails, k)
		}
	}
	if len(l.fails) >= maxTracked {
		for k := range l.fails {
			delete(l.fails, k)
			if len(l.fails) < maxTracked/2 {
				break
			}
		}
	}
}
