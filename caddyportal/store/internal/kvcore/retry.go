package kvcore

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/caddyportal/caddyportal/caddyportal/store"
)

// ErrRetry is returned by an attempt of Retrier.Run whose commit conflicted
// with another writer: the attempt must run again on fresh data.
var ErrRetry = errors.New("kvcore: conflict, run the attempt again")

// Retrier runs the attempts of a store's Updates: again on conflict, after
// a pause, and after a few conflicts alone among the Updates of the same
// Retrier. Running alone makes starving Updates win: without it, a hot key
// (a capacity counter) can starve an unlucky writer, because every round of
// contenders has one winner. Set its fields before the first Run.
type Retrier struct {
	// Life ends the retries with store.ErrClosed when the store closes.
	Life *Life
	// MaxAttempts bounds the attempts: after that many conflicting ones,
	// Run returns an error wrapping store.ErrConflict.
	MaxAttempts int
	// ExclusiveAfter is the number of conflicting attempts after which the
	// next attempts run alone, so no other Update commits under them.
	ExclusiveAfter int
	// Pause returns how long to wait after the n-th conflicting attempt
	// (n from 1); zero, or a nil Pause, means at once.
	Pause func(n int) time.Duration

	// writers is shared by optimistic attempts, held alone by exclusive ones.
	writers sync.RWMutex
}

// Run calls before (may be nil) and then attempt until attempt returns
// something other than ErrRetry, and returns that. It stops early with
// ctx's error when ctx ends (checked before every attempt and during
// pauses), with store.ErrClosed when the store closes, and with an error
// wrapping store.ErrConflict after MaxAttempts conflicts. before runs
// outside the exclusion, so waiting there does not hold up other Updates;
// its error is returned as is.
func (r *Retrier) Run(ctx context.Context, before, attempt func() error) error {
	for n := 1; ; n++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		if before != nil {
			if err := before(); err != nil {
				return err
			}
		}
		err := r.try(n > r.ExclusiveAfter, attempt)
		if !errors.Is(err, ErrRetry) {
			return err
		}
		if n >= r.MaxAttempts {
			return fmt.Errorf("%w (%d attempts)", store.ErrConflict, n)
		}
		if r.Pause == nil {
			continue
		}
		if d := r.Pause(n); d > 0 {
			if err := r.Life.Sleep(ctx, d); err != nil {
				return err
			}
		}
	}
}

// try runs one attempt, alone if exclusive, unless the store is closing.
func (r *Retrier) try(exclusive bool, attempt func() error) error {
	if exclusive {
		r.writers.Lock()
		defer r.writers.Unlock()
	} else {
		r.writers.RLock()
		defer r.writers.RUnlock()
	}
	if r.Life.Ending() {
		return store.ErrClosed
	}
	return attempt()
}

// Backoff returns a random wait for the n-th pause (n from 1): full jitter
// over a window that doubles from 1ms to 16ms, plus 50µs, which spreads out
// writers colliding on one key.
func Backoff(n int) time.Duration {
	window := time.Millisecond << min(max(n, 1)-1, 4)
	return time.Duration(rand.Int64N(int64(window))) + 50*time.Microsecond
}
