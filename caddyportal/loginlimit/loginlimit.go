// Package loginlimit slows down password guessing and floods of other
// unauthenticated writes.
//
// Limiter counts failed logins twice: per account and per client address.
// After Burst failures on either within Window, attempts on that account,
// or from that address, are refused until Window has passed since the last
// failure. An attempt reserves its slot before the password is checked, so
// concurrent guesses count while they are in flight: 100 concurrent wrong
// logins against a Burst of 10 get at most 10 password checks. A success
// resets only its own account's counter, never the address's, so a guesser
// cannot clear their address by logging in to an account of their own. The
// REST API's token endpoint and the web login are given the same Limiter.
//
// With several replicas of a portal behind a load balancer, each counting
// alone would give a guesser Burst attempts per replica. Share gives the
// Limiter a store every replica reads and writes: failures are recorded
// there too, and an attempt is refused when the failures recorded there
// for its account or address, with this process's attempts in flight,
// fill Burst. If that store cannot be read in time, the count in memory
// still applies.
//
// Rate is a plain per-address token bucket for requests that are not logins
// (sign-up, token revocation, anonymous session creation); Share puts its
// buckets in the replicas' store in the same way.
package loginlimit

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Shared keeps failure counts where every replica of a portal sees them
// (package sessions' Service on a shared store).
type Shared interface {
	// LoginFailures returns the failures recorded for key within window
	// of now, and when the last was.
	LoginFailures(ctx context.Context, key string, window time.Duration) (int, time.Time, error)
	// AddLoginFailure records one more failure for key.
	AddLoginFailure(ctx context.Context, key string, window time.Duration) error
	// ClearLoginFailures forgets key's failures.
	ClearLoginFailures(ctx context.Context, key string) error
}

// sharedTimeout bounds each call to the shared store: a login is not held
// up for long by a slow store, which then counts in memory only.
const sharedTimeout = time.Second

// Limits.
const (
	// Burst is how many failures an account, or an address, may have
	// within Window.
	Burst = 10
	// Window is how long failures are remembered.
	Window = time.Minute
	// maxTracked bounds each table, so a flood of addresses or account
	// names cannot grow it without bound.
	maxTracked = 100000
)

// Limiter counts failed logins per account and per client address.
type Limiter struct {
	mu     sync.Mutex
	now    func() time.Time
	fails  map[string]*failures
	shared Shared
}

// Share makes the Limiter count failures in s as well, for every replica
// that shares it; nil counts in this process only.
func (l *Limiter) Share(s Shared) {
	l.mu.Lock()
	l.shared = s
	l.mu.Unlock()
}

func (l *Limiter) sharedStore() Shared {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.shared
}

// sharedCount is what the shared store records for one key.
type sharedCount struct {
	count int
	last  time.Time
}

// readShared returns the shared counts of keys; a key the store could not
// answer for is left out.
func (l *Limiter) readShared(keys []string) map[string]sharedCount {
	sh := l.sharedStore()
	if sh == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), sharedTimeout)
	defer cancel()
	out := map[string]sharedCount{}
	for _, k := range keys {
		if n, last, err := sh.LoginFailures(ctx, k, Window); err == nil && n > 0 {
			out[k] = sharedCount{n, last}
		}
	}
	return out
}

type failures struct {
	count int
	// pending counts reserved attempts whose outcome is not known yet.
	pending int
	last    time.Time
}

// New returns a Limiter on the clock now.
func New(now func() time.Time) *Limiter {
	return &Limiter{now: now, fails: map[string]*failures{}}
}

// maxKey bounds the length of a key kept in a table: longer account names
// (anyone can send one) are kept as their hash, so 100000 entries stay
// small.
const maxKey = 256

// Keys of the two counters; the prefixes keep an account named like an
// address apart from the address.
func accountKey(account string) string {
	return boundKey("a:" + strings.ToLower(strings.TrimSpace(account)))
}
func addressKey(addr string) string { return boundKey("ip:" + addr) }

func boundKey(k string) string {
	if len(k) <= maxKey {
		return k
	}
	sum := sha256.Sum256([]byte(k))
	return k[:strings.IndexByte(k, ':')+1] + "#" + hex.EncodeToString(sum[:])
}

// Attempt is a reserved login attempt: exactly one of Fail, Succeed or
// Release ends it; later calls do nothing.
type Attempt struct {
	l    *Limiter
	keys []string
	done bool
	// sharedFailures says the shared store held failures of the account
	// when the attempt began: only then does a success write to clear them.
	sharedFailures bool
}

// Reserve takes a slot for one login attempt on account from addr, before
// the password is checked. If the account or the address has no slot left
// it returns nil and how long to wait. account may be "" when the attempt
// names none (a refresh token): then only the address counts.
func (l *Limiter) Reserve(account, addr string) (*Attempt, time.Duration) {
	keys := []string{addressKey(addr)}
	if strings.TrimSpace(account) != "" {
		keys = append(keys, accountKey(account))
	}
	shared := l.readShared(keys)
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	var wait time.Duration
	for _, k := range keys {
		if w := l.waitLocked(k, now, shared[k]); w > wait {
			wait = w
		}
	}
	if wait > 0 {
		return nil, wait
	}
	a := &Attempt{l: l, keys: keys}
	for _, k := range keys {
		l.entry(k, now).pending++
		if isAccount(k) && shared[k].count > 0 {
			a.sharedFailures = true
		}
	}
	return a, 0
}

// waitLocked is how long key must wait, counting reserved attempts as
// failures, and the failures the shared store recorded (every replica's,
// this one's included) when there are more of those than in memory; stale
// entries are dropped.
func (l *Limiter) waitLocked(key string, now time.Time, shared sharedCount) time.Duration {
	f := l.fails[key]
	if f == nil {
		if shared.count < Burst {
			return 0
		}
		f = &failures{}
	}
	if f.count > 0 && now.Sub(f.last) >= Window {
		f.count = 0
	}
	count, last := f.count, f.last
	if shared.count > count {
		count, last = shared.count, shared.last
	}
	if count+f.pending < Burst {
		if f.count == 0 && f.pending == 0 {
			delete(l.fails, key)
		}
		return 0
	}
	if count == 0 {
		// Only attempts in flight fill the slots: they end within a
		// password check.
		return time.Second
	}
	if wait := last.Add(Window).Sub(now); wait > 0 {
		return wait
	}
	return time.Second
}

// entry returns key's counters, creating them.
func (l *Limiter) entry(key string, now time.Time) *failures {
	f := l.fails[key]
	if f == nil {
		if len(l.fails) >= maxTracked {
			l.prune(now)
		}
		f = &failures{}
		l.fails[key] = f
	}
	return f
}

// Fail records that the attempt failed: it counts against the account and
// the address for Window, in the shared store too.
func (a *Attempt) Fail() {
	if !a.end(func(k string, f *failures, now time.Time) {
		if now.Sub(f.last) >= Window {
			f.count = 0
		}
		f.count++
		f.last = now
	}) {
		return
	}
	a.l.toShared(a.keys, func(ctx context.Context, sh Shared, k string) error {
		return sh.AddLoginFailure(ctx, k, Window)
	})
}

// Succeed records a successful login: it clears the account's failures,
// but not the address's, which only time clears.
func (a *Attempt) Succeed() {
	if !a.end(func(k string, f *failures, _ time.Time) {
		if isAccount(k) {
			f.count = 0
		}
	}) {
		return
	}
	if !a.sharedFailures {
		return // nothing to clear: a login is not a write to the store
	}
	a.l.toShared(a.keys, func(ctx context.Context, sh Shared, k string) error {
		if !isAccount(k) {
			return nil
		}
		return sh.ClearLoginFailures(ctx, k)
	})
}

func isAccount(key string) bool { return strings.HasPrefix(key, "a:") }

// toShared applies write to the shared store for each key, if there is one;
// a store that does not answer in time leaves the count in memory alone.
func (l *Limiter) toShared(keys []string, write func(context.Context, Shared, string) error) {
	sh := l.sharedStore()
	if sh == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), sharedTimeout)
	defer cancel()
	for _, k := range keys {
		_ = write(ctx, sh, k)
	}
}

// Release gives the slot back without an outcome, for an attempt that was
// not decided (the store was unavailable).
func (a *Attempt) Release() { a.end(func(string, *failures, time.Time) {}) }

// end applies the outcome once; it reports whether this call did.
func (a *Attempt) end(apply func(k string, f *failures, now time.Time)) bool {
	if a == nil {
		return false
	}
	l := a.l
	l.mu.Lock()
	defer l.mu.Unlock()
	if a.done {
		return false
	}
	a.done = true
	now := l.now()
	for _, k := range a.keys {
		f := l.entry(k, now)
		if f.pending > 0 {
			f.pending--
		}
		apply(k, f, now)
		if f.count == 0 && f.pending == 0 {
			delete(l.fails, k)
		}
	}
	return true
}

// prune drops stale entries, and if that is not enough, half of those with
// no attempt in flight.
func (l *Limiter) prune(now time.Time) {
	for k, f := range l.fails {
		if f.pending == 0 && now.Sub(f.last) >= Window {
			delete(l.fails, k)
		}
	}
	if len(l.fails) >= maxTracked {
		for k, f := range l.fails {
			if f.pending == 0 {
				delete(l.fails, k)
			}
			if len(l.fails) < maxTracked/2 {
				break
			}
		}
	}
}

// Rate allows each key (a client address) Burst requests at once and then
// one every Every: a token bucket per key.
type Rate struct {
	mu      sync.Mutex
	now     func() time.Time
	burst   float64
	every   time.Duration
	buckets map[string]*bucket
	shared  SharedRate
	name    string
}

// SharedRate keeps token buckets where every replica of a portal sees them
// (package sessions' Service on a shared store).
type SharedRate interface {
	// TakeToken takes a token from the bucket of key, which holds burst
	// tokens and gains one every every: 0 if it took one, else how long
	// until there is one (and it took none).
	TakeToken(ctx context.Context, key string, burst int, every time.Duration) (time.Duration, error)
}

// Share makes the Rate take its tokens from s, for every replica that
// shares it, under name (which keeps the buckets of different rates
// apart); nil takes them in this process only. If s does not answer in
// time, the bucket in memory is used.
func (r *Rate) Share(s SharedRate, name string) {
	r.mu.Lock()
	r.shared, r.name = s, name
	r.mu.Unlock()
}

// allowShared asks the shared store; ok is false when there is none or it
// did not answer.
func (r *Rate) allowShared(key string) (wait time.Duration, ok bool) {
	r.mu.Lock()
	sh, name := r.shared, r.name
	r.mu.Unlock()
	if sh == nil {
		return 0, false
	}
	ctx, cancel := context.WithTimeout(context.Background(), sharedTimeout)
	defer cancel()
	wait, err := sh.TakeToken(ctx, name+":"+key, int(r.burst), r.every)
	return wait, err == nil
}

type bucket struct {
	tokens float64
	at     time.Time
}

// NewRate returns a Rate of burst requests at once and one every every
// after that, on the clock now.
func NewRate(now func() time.Time, burst int, every time.Duration) *Rate {
	return &Rate{now: now, burst: float64(burst), every: every, buckets: map[string]*bucket{}}
}

// Allow takes one request for key: 0 if it may go ahead, else how long
// until it may (and nothing is taken).
func (r *Rate) Allow(key string) time.Duration {
	if wait, ok := r.allowShared(key); ok {
		return wait
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.now()
	b := r.buckets[key]
	if b == nil {
		if len(r.buckets) >= maxTracked {
			r.prune(now)
		}
		b = &bucket{tokens: r.burst, at: now}
		r.buckets[key] = b
	}
	r.refill(b, now)
	if b.tokens < 1 {
		return time.Duration((1 - b.tokens) * float64(r.every))
	}
	b.tokens--
	return 0
}

func (r *Rate) refill(b *bucket, now time.Time) {
	if d := now.Sub(b.at); d > 0 {
		b.tokens += float64(d) / float64(r.every)
		if b.tokens > r.burst {
			b.tokens = r.burst
		}
		b.at = now
	}
}

// prune drops full buckets (they are the same as no bucket), and if that is
// not enough, half the table.
func (r *Rate) prune(now time.Time) {
	for k, b := range r.buckets {
		if r.refill(b, now); b.tokens >= r.burst {
			delete(r.buckets, k)
		}
	}
	if len(r.buckets) >= maxTracked {
		for k := range r.buckets {
			delete(r.buckets, k)
			if len(r.buckets) < maxTracked/2 {
				break
			}
		}
	}
}

// RetryAfter is wait as a Retry-After value: whole seconds, at least 1.
func RetryAfter(wait time.Duration) string {
	s := int64((wait + time.Second - 1) / time.Second)
	return strconv.FormatInt(max(s, 1), 10)
}
