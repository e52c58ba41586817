package etcdstore

import (
	"context"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/caddyportal/caddyportal/caddyportal/store"
	"github.com/caddyportal/caddyportal/caddyportal/store/etcdstore/internal/treap"
)

// loadPage is how many keys one range call of a full mirror load reads.
const loadPage = 1000

// catchUpWait bounds how long a transaction waits for the mirror to reach
// a revision. The change at that revision may be outside the prefix (no
// event will come), so the wait must be short; running out of it is never
// an error: View then reads etcd directly, Update lets the commit decide.
const catchUpWait = 20 * time.Millisecond

// maxQueued bounds the keys queued for one Watch subscriber; past it the
// queue collapses into one "" (drop everything), which is always correct.
const maxQueued = 4096

// entry is what the mirror holds for one user key (the node's key, without
// the store prefix).
type entry struct {
	raw    []byte // encoded value as stored in etcd (header included)
	modRev int64
}

// node is one key of the mirror, in an immutable tree: a transaction reads
// one state for as long as it likes without any lock.
type node = treap.Node[entry]

// snapshot is one published state of the mirror.
type snapshot struct {
	root *node
	// rev is the revision up to which every change under the prefix has
	// been applied from etcd (the load, then the watch). Writes of this
	// store's own commits may be newer; they are applied at once with
	// their own revision, without moving rev.
	rev   int64
	count int
}

// mirror is the local copy of every user key under the store's prefix,
// kept current by one etcd watch. See the package documentation.
type mirror struct {
	s *Store

	cur atomic.Pointer[snapshot]

	// mu serializes changes of the mirror and guards what follows.
	mu sync.Mutex
	// advanced is closed (and replaced) whenever the watch brings events.
	advanced chan struct{}
	// tombs remembers this store's own deletions newer than cur.rev, so a
	// watch event older than the deletion does not bring the key back.
	tombs map[string]int64
	subs  map[*subscriber]struct{}

	// watchCtx is the context of the mirror's watch.
	watchCtx context.Context
}

func newMirror(s *Store) *mirror {
	m := &mirror{
		s:        s,
		advanced: make(chan struct{}),
		tombs:    map[string]int64{},
		subs:     map[*subscriber]struct{}{},
	}
	m.cur.Store(&snapshot{})
	return m
}

// snap returns the current state.
func (m *mirror) snap() *snapshot { return m.cur.Load() }

func newNode(key string, raw []byte, modRev int64) *node {
	return treap.New(key, entry{raw: raw, modRev: modRev})
}

// publish installs root at rev and wakes the waiters if wake; m.mu must
// be held.
func (m *mirror) publish(root *node, rev, count int64, wake bool) {
	old := m.cur.Load()
	m.cur.Store(&snapshot{root: root, rev: rev, count: int(count)})
	if rev > old.rev {
		for k, r := range m.tombs {
			if r <= rev {
				delete(m.tombs, k)
			}
		}
	}
	if wake {
		close(m.advanced)
		m.advanced = make(chan struct{})
	}
}

// load reads every user key under the prefix at one revision, in pages.
func (m *mirror) load(ctx context.Context) (*node, int64, int64, error) {
	s := m.s
	var root *node
	var rev, count int64
	for _, r := range s.userRanges("") {
		start, end := r[0], r[1]
		for {
			opts := []clientv3.OpOption{clientv3.WithRange(end), clientv3.WithLimit(loadPage)}
			if rev != 0 {
				opts = append(opts, clientv3.WithRev(rev))
			}
			cctx, cancel := s.callCtx(ctx)
			resp, err := s.cli.Get(cctx, start, opts...)
			cancel()
			if err != nil {
				return nil, 0, 0, s.wrap(ctx, "loading the mirror", err)
			}
			if rev == 0 {
				rev = resp.Header.Revision
			}
			for _, kv := range resp.Kvs {
				root = treap.Put(root, newNode(strings.TrimPrefix(string(kv.Key), s.prefix), kv.Value, kv.ModRevision))
				count++
			}
			if !resp.More || len(resp.Kvs) == 0 {
				break
			}
			start = string(resp.Kvs[len(resp.Kvs)-1].Key) + "\x00"
		}
	}
	return root, rev, count, nil
}

// reload replaces the mirror with a fresh load and tells every Watch
// subscriber that anything may have changed.
func (m *mirror) reload(ctx context.Context) error {
	root, rev, count, err := m.load(ctx)
	if err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	// Own writes newer than the load are lost here; the watch brings them
	// back, since it resumes from the load's revision.
	m.tombs = map[string]int64{}
	old := m.cur.Load()
	if rev < old.rev {
		// Cannot happen with one etcd cluster; never go back in time.
		rev = old.rev
	}
	m.cur.Store(&snapshot{root: root, rev: rev, count: int(count)})
	close(m.advanced)
	m.advanced = make(chan struct{})
	for sub := range m.subs {
		sub.reset()
	}
	return nil
}

// run keeps the mirror current until the store closes: it watches from the
// revision after the mirror's and reloads when etcd has compacted the
// revisions the watch needs.
func (m *mirror) run() {
	s := m.s
	ctx := s.life.Context()
	start := s.prefix
	if start == "" {
		start = "\x00" // etcd refuses an empty key
	}
	end := rangeEnd(s.prefix)
	for ctx.Err() == nil {
		compacted := m.watchFrom(start, end)
		if ctx.Err() != nil {
			return
		}
		if !compacted {
			sleep(ctx, watchRetry)
			continue
		}
		s.log.Info("mirror: revisions compacted, reloading")
		for ctx.Err() == nil {
			err := m.reload(ctx)
			if err == nil {
				break
			}
			s.log.Warn("mirror: reloading", zap.Error(err))
			sleep(ctx, watchRetry)
		}
	}
}

// watchFrom runs one etcd watch from the revision after the mirror's until
// it fails or the store closes; it reports whether it failed because the
// revisions it needed were compacted.
func (m *mirror) watchFrom(start, end string) bool {
	wctx, cancel := context.WithCancel(m.watchCtx)
	defer cancel()
	next := m.snap().rev + 1
	for resp := range m.s.cli.Watch(wctx, start, clientv3.WithRange(end), clientv3.WithRev(next)) {
		if resp.CompactRevision != 0 {
			return true
		}
		if err := resp.Err(); err != nil {
			if !m.s.life.Ending() {
				m.s.log.Debug("mirror: watch interrupted", zap.Error(err))
			}
			return false
		}
		if len(resp.Events) > 0 {
			// Events come in revision order, whole revisions at a time, so
			// the last one's revision is complete.
			m.apply(resp.Events, resp.Events[len(resp.Events)-1].Kv.ModRevision)
		}
	}
	return false
}

// apply applies watch events and moves the mirror's revision to rev.
func (m *mirror) apply(events []*clientv3.Event, rev int64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	old := m.cur.Load()
	root, count := old.root, int64(old.count)
	var changed []string
	var beat []byte
	for _, ev := range events {
		if string(ev.Kv.Key) == m.s.beats.key && ev.Type == clientv3.EventTypePut {
			beat = ev.Kv.Value
			continue
		}
		key := strings.TrimPrefix(string(ev.Kv.Key), m.s.prefix)
		if strings.HasPrefix(key, store.ReservedPrefix) {
			continue
		}
		r := ev.Kv.ModRevision // a deletion's Kv carries the deleting revision
		// Subscribers hear of every change, even one the mirror has
		// already applied as this store's own write.
		changed = append(changed, key)
		have := treap.Get(root, key)
		if have != nil && have.Value.modRev >= r || m.tombs[key] >= r {
			continue // this store's own write, already applied
		}
		if ev.Type == clientv3.EventTypeDelete {
			if have != nil {
				root, _ = treap.Delete(root, key)
				count--
			}
		} else {
			if have == nil {
				count++
			}
			root = treap.Put(root, newNode(key, ev.Kv.Value, r))
		}
	}
	m.publish(root, max(rev, old.rev), count, true)
	for sub := range m.subs {
		for _, k := range changed {
			sub.add(k)
		}
	}
	// Only now that every change before it is queued for the
	// subscribers does the heartbeat count (heartbeat.go).
	if beat != nil {
		m.s.beats.echoed(beat)
	}
}

// applyOwn applies the writes of this store's commit at revision rev at
// once, so that its next transactions read them without waiting for the
// watch. Watch subscribers hear of them through the watch, as of anyone's.
func (m *mirror) applyOwn(writes map[string]write, rev int64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	old := m.cur.Load()
	if rev <= old.rev {
		return // the watch was faster
	}
	root, count := old.root, int64(old.count)
	for key, w := range writes {
		have := treap.Get(root, key)
		if have != nil && have.Value.modRev >= rev || m.tombs[key] >= rev {
			continue
		}
		if w.del {
			m.tombs[key] = rev
			if have != nil {
				root, _ = treap.Delete(root, key)
				count--
			}
			continue
		}
		if have == nil {
			count++
		}
		root = treap.Put(root, newNode(key, w.raw, rev))
	}
	m.publish(root, old.rev, count, false)
}

// waitRev waits until the mirror has applied every change up to rev, or
// ctx ends (its error is returned). Only events move the mirror's revision
// (etcd 3.4's progress notifications can run ahead of queued events, so
// they are not used): when the change at rev is outside the prefix, no
// event comes and the wait lasts until ctx ends, which callers bound with
// catchUpWait.
func (m *mirror) waitRev(ctx context.Context, rev int64) error {
	for {
		m.mu.Lock()
		cur, ch := m.cur.Load(), m.advanced
		m.mu.Unlock()
		if cur.rev >= rev {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		case <-m.s.life.Context().Done():
			return store.ErrClosed
		}
	}
}

// subscriber is one Watch call's queue of changed keys.
type subscriber struct {
	prefix string
	signal chan struct{} // capacity 1: "the queue is not empty"
	mu     sync.Mutex
	queue  []string
}

func (sub *subscriber) add(key string) {
	if !strings.HasPrefix(key, sub.prefix) {
		return
	}
	sub.mu.Lock()
	if len(sub.queue) >= maxQueued {
		sub.queue = append(sub.queue[:0], "")
	} else {
		sub.queue = append(sub.queue, key)
	}
	sub.mu.Unlock()
	sub.wake()
}

// reset replaces whatever is queued by "" (drop everything).
func (sub *subscriber) reset() {
	sub.mu.Lock()
	sub.queue = append(sub.queue[:0], "")
	sub.mu.Unlock()
	sub.wake()
}

func (sub *subscriber) wake() {
	select {
	case sub.signal <- struct{}{}:
	default:
	}
}

func (sub *subscriber) take() []string {
	sub.mu.Lock()
	defer sub.mu.Unlock()
	q := sub.queue
	sub.queue = nil
	return q
}

// subscribe registers a Watch subscriber; its first key is "".
func (m *mirror) subscribe(prefix string) *subscriber {
	sub := &subscriber{prefix: prefix, signal: make(chan struct{}, 1)}
	sub.reset()
	m.mu.Lock()
	m.subs[sub] = struct{}{}
	m.mu.Unlock()
	return sub
}

func (m *mirror) unsubscribe(sub *subscriber) {
	m.mu.Lock()
	delete(m.subs, sub)
	m.mu.Unlock()
}
