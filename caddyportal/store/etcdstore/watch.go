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
	if err != nil && ctx.Err() == nil && !errors.Is(err, store.ErrClosed) {
		s.log.Error("watch refused", zap.String("prefix", prefix), zap.Error(err))
	}
}

// watch is Watch, returning why it stopped: ctx's error, store.ErrClosed, or a
// refused prefix. It is fed by the mirror's watch (see the package
// documentation): fn(k) runs after the mirror has applied the change of k,
// so a cache that reloads k through View in fn, or later, never reads the
// state from before that change.
func (s *Store) watch(ctx context.Context, prefix string, fn func(key string)) error {
	if err := s.life.Enter(ctx); err != nil {
		return err
	}
	defer s.life.Leave()
	if strings.HasPrefix(prefix, store.ReservedPrefix) {
		return fmt.Errorf("etcdstore: watch %q: %w", prefix, store.ErrReservedKey)
	}
	sub := s.mirror.subscribe(prefix)
	defer s.mirror.unsubscribe(sub)
	for {
		select {
		case <-sub.signal:
			for _, k := range sub.take() {
				fn(k)
			}
		case <-ctx.Done():
			return ctx.Err()
		case <-s.life.Context().Done():
			return store.ErrClosed
		}
	}
}

// currentRevision returns etcd's current revision.
func (s *Store) currentRevision(ctx context.Context) (int64, error) {
	cctx, cancel := s.callCtx(ctx)
	defer cancel()
	resp, err := s.cli.Get(cctx, s.prefix+store.ReservedPrefix, clientv3.WithCountOnly())
	if err != nil {
		return 0, s.wrap(ctx, "reading the current revision", err)
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
