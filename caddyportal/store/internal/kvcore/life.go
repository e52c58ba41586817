// Package kvcore holds the mechanics the store backends (badgerstore,
// etcdstore) share, written once so that they cannot drift apart: a store's
// lifetime (in-flight calls, background loops, Close), Update's retry loop
// with its backoff and its turn to run alone, the expiry-index key codec,
// and the checks every transaction makes before it reads or writes. The
// backends keep what really differs: how one attempt reads and commits, and
// when a retry should wait.
package kvcore

import (
	"context"
	"errors"
	"runtime/debug"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/caddyportal/caddyportal/caddyportal/store"
)

// Life is the lifetime of one open store: it counts the calls running on
// it and owns its background goroutines, so that Close can release the
// backend only after all of them (Badger panics when an iterator is made on
// a closed DB; a closed etcd client fails every call). Its methods are safe
// for concurrent use.
type Life struct {
	log *zap.Logger

	// ctx belongs to the store, not to any caller or Caddy config: the
	// background loops must live exactly as long as the store.
	ctx    context.Context
	cancel context.CancelFunc
	bg     sync.WaitGroup

	// mu guards closed; inflight counts the calls between Enter and Leave.
	mu       sync.Mutex
	closed   bool
	inflight sync.WaitGroup

	closeOnce sync.Once
	closeErr  error
}

// NewLife starts the lifetime of a store; log receives the background
// loops' panics and sweep errors (nil discards them).
func NewLife(log *zap.Logger) *Life {
	if log == nil {
		log = zap.NewNop()
	}
	l := &Life{log: log}
	l.ctx, l.cancel = context.WithCancel(context.Background())
	return l
}

// Context is the store's own context: background work runs on it, and it
// ends when Close begins, so calls in flight can stop early.
func (l *Life) Context() context.Context { return l.ctx }

// Ending reports whether Close has begun.
func (l *Life) Ending() bool { return l.ctx.Err() != nil }

// Enter registers a call made with ctx. It refuses it with store.ErrClosed
// once Close has begun, and then with ctx's error when ctx has ended, so a
// call whose caller has given up does not start. Every successful Enter
// must be paired with Leave.
func (l *Life) Enter(ctx context.Context) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return store.ErrClosed
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	l.inflight.Add(1)
	return nil
}

// Leave ends a call registered by Enter.
func (l *Life) Leave() { l.inflight.Done() }

// Go runs fn on a background goroutine that Close waits for; fn must
// return once Context ends.
func (l *Life) Go(fn func()) {
	l.bg.Add(1)
	go func() {
		defer l.bg.Done()
		fn()
	}()
}

// Every runs task every interval on a background goroutine until Close,
// logging a panic of task instead of letting it kill the server.
func (l *Life) Every(name string, every time.Duration, task func()) {
	l.Go(func() {
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-l.ctx.Done():
				return
			case <-t.C:
				l.Safely(name, task)
			}
		}
	})
}

// Safely runs task and logs a panic instead of letting it kill the server.
func (l *Life) Safely(name string, task func()) {
	defer func() {
		if r := recover(); r != nil {
			l.log.Error("panic in store background task",
				zap.String("task", name),
				zap.Any("panic", r),
				zap.ByteString("stack", debug.Stack()))
		}
	}()
	task()
}

// SweepEvery calls sweep every interval (see Every) and logs its outcome:
// deletions at debug level, errors as warnings, except those that only say
// the store is closing and those matching one of quiet (which the backend
// reports some other way).
func (l *Life) SweepEvery(every time.Duration, sweep func(context.Context) (int, error), quiet ...error) {
	l.Every("expiry sweep", every, func() {
		n, err := sweep(l.ctx)
		switch {
		case err != nil && !errors.Is(err, store.ErrClosed) && !errors.Is(err, context.Canceled) && !isAny(err, quiet):
			l.log.Warn("expiry sweep failed", zap.Error(err))
		case n > 0:
			l.log.Debug("expiry sweep", zap.Int("deleted", n))
		}
	})
}

func isAny(err error, targets []error) bool {
	for _, t := range targets {
		if errors.Is(err, t) {
			return true
		}
	}
	return false
}

// Sleep waits d. It returns early with ctx's error when ctx ends, or with
// store.ErrClosed when Close begins.
func (l *Life) Sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-l.ctx.Done():
		return store.ErrClosed
	}
}

// Close refuses new calls, ends Context, waits for the background
// goroutines and then for the calls in flight, and finally runs release
// (which frees the backend; nil: nothing to free). Later calls wait for
// the first one and return its result. Close must not be called from
// inside a call registered with Enter: it would wait for itself.
func (l *Life) Close(release func() error) error {
	l.closeOnce.Do(func() {
		l.mu.Lock()
		l.closed = true
		l.mu.Unlock()
		l.cancel()
		l.bg.Wait()
		l.inflight.Wait()
		if release != nil {
			l.closeErr = release()
		}
	})
	return l.closeErr
}
