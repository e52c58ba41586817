package etcdstore

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/caddyportal/caddyportal/caddyportal/store"
)

// watchRetry is the base wait before re-establishing a failed watch.
const watchRetry = 200 * time.Millisecond

var _ store.Watcher = (*Store)(nil)

// Watch calls fn with the key (without the store prefix) of every change
// under prefix, by this store or any other on the same etcd, until ctx ends
// or the store is closed, and only then returns. It is meant for keeping a
// per-replica cache fresh, and implements store.Watcher.
//
// fn("") means "anything under prefix may have changed": it is called once
// when the watch starts and again after a gap, when etcd has compacted the
// revisions the watch needed to resume. A cache that drops everything on ""
// and one key on "k" is therefore never stale longer than event delivery
// takes, whatever the order of its loads and the watch's start. After
// connection errors and etcd restarts the watch resumes where it stopped,
// without a gap. Deletions by the expiry sweeper are changes too; keys
// reserved by the store are never passed, and a reserved prefix is refused
// (logged, Watch returns at once). fn runs on Watch's goroutine, one call at
// a time, and should be quick.
func (s *Store) Watch(ctx context.Context, prefix string, fn func(key string)) {
	err := s.watch(ctx, prefix, fn)
	if err != nil && ctx.Err() == nil && !errors.Is(err, ErrClosed) {
		s.log.Error("watch refused", zap.String("prefix", prefix), zap.Error(err))
	}
}

// watch is Watch, returning why it stopped: ctx's error, ErrClosed, or a
// refused prefix.
func (s *Store) watch(ctx context.Context, prefix string, fn func(key string)) error {
	if err := s.enter(); err != nil {
		return err
	}
	defer s.inflight.Done()
	if strings.HasPrefix(prefix, reservedPrefix) {
		return fmt.Errorf("etcdstore: watch %q: %w", prefix, ErrReservedKey)
	}
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer context.AfterFunc(s.ctx, cancel)()

	start := s.prefix + prefix
	if start == "" {
		start = "\x00" // etcd refuses an empty key
	}
	end := rangeEnd(s.prefix + prefix)
	var next int64 // revision to resume from; 0 means start afresh
	for {
		if wctx.Err() != nil {
			if err := ctx.Err(); err != nil {
				return err
			}
			return ErrClosed
		}
		if next == 0 {
			rev, err := s.currentRevision(wctx)
			if err != nil {
				s.log.Debug("watch: reading the current revision", zap.String("prefix", prefix), zap.Error(err))
				sleep(wctx, watchRetry)
				continue
			}
			next = rev + 1
			fn("")
		}
		var gap bool
		next, gap = s.watchFrom(wctx, start, end, next, fn)
		if gap {
			s.log.Info("watch: revisions compacted, resetting", zap.String("prefix", prefix))
			next = 0
			continue
		}
		sleep(wctx, watchRetry)
	}
}

// watchFrom runs one etcd watch from revision next until it fails or ctx
// ends. It returns the revision to resume from and whether events were
// lost to compaction.
func (s *Store) watchFrom(ctx context.Context, start, end string, next int64, fn func(string)) (int64, bool) {
	// WithRequireLeader ends the watch when its member loses the leader,
	// instead of leaving it silently stuck on a minority member.
	wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	defer cancel()
	for resp := range s.cli.Watch(wctx, start, clientv3.WithRange(end), clientv3.WithRev(next)) {
		if resp.CompactRevision != 0 {
			return next, true
		}
		if err := resp.Err(); err != nil {
			if ctx.Err() == nil {
				s.log.Debug("watch interrupted", zap.Error(err))
			}
			return next, false
		}
		for _, ev := range resp.Events {
			// A deletion's Kv carries the deleting revision too.
			if ev.Kv.ModRevision >= next {
				next = ev.Kv.ModRevision + 1
			}
			key := strings.TrimPrefix(string(ev.Kv.Key), s.prefix)
			if strings.HasPrefix(key, reservedPrefix) {
				continue
			}
			fn(key)
		}
	}
	return next, false
}

// currentRevision returns etcd's current revision.
func (s *Store) currentRevision(ctx context.Context) (int64, error) {
	cctx, cancel := s.callCtx(ctx)
	defer cancel()
	resp, err := s.cli.Get(cctx, s.prefix+reservedPrefix, clientv3.WithCountOnly())
	if err != nil {
		return 0, s.wrap(ctx, "watch: current revision", err)
	}
	return resp.Header.Revision, nil
}

// sleep waits about d (jittered, so replicas do not retry in step) or until
// ctx ends.
func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d/2 + time.Duration(rand.Int64N(int64(d))))
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}
