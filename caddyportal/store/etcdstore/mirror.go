package etcdstore

import (
	"context"
	"hash/maphash"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/caddyportal/caddyportal/caddyportal/store"
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

// node is one key of the mirror: an immutable treap node. Updates copy the
// path from the root (persistent tree), so a reader that holds a root sees
// one state for as long as it likes without any lock.
type node struct {
	key         string // user key, without the store prefix
	raw         []byte // encoded value as stored in etcd (header included)
	modRev      int64
	prio        uint64
	left, right *node
}

// above reports whether a belongs above b in the heap order of the treap.
// Ties on priority are broken by key so the order is strict.
func above(a, b *node) bool {
	return a.prio > b.prio || a.prio == b.prio && a.key < b.key
}

// put returns the tree n with nn inserted or replacing the node with the
// same key. nn must be a fresh node; it becomes part of the result.
func put(n, nn *node) *node {
	if n == nil {
		return nn
	}
	if nn.key == n.key {
		nn.left, nn.right = n.left, n.right
		return nn
	}
	// The priority is a hash of the key, so if nn's key is in the subtree,
	// every node on the way to it is above nn and this split never sees it.
	if above(nn, n) {
		nn.left, nn.right = split(n, nn.key)
		return nn
	}
	c := *n
	if nn.key < n.key {
		c.left = put(n.left, nn)
	} else {
		c.right = put(n.right, nn)
	}
	return &c
}

// split returns the keys of n below k and above k (k is not in n).
func split(n *node, k string) (*node, *node) {
	if n == nil {
		return nil, nil
	}
	c := *n
	if n.key < k {
		var r *node
		c.right, r = split(n.right, k)
		return &c, r
	}
	var l *node
	l, c.left = split(n.left, k)
	return l, &c
}

// del returns n without key k, and whether k was there.
func del(n *node, k string) (*node, bool) {
	if n == nil {
		return nil, false
	}
	if k == n.key {
		return merge(n.left, n.right), true
	}
	c := *n
	var found bool
	if k < n.key {
		c.left, found = del(n.left, k)
	} else {
		c.right, found = del(n.right, k)
	}
	if !found {
		return n, false
	}
	return &c, true
}

// merge joins a and b, every key of a being below every key of b.
func merge(a, b *node) *node {
	if a == nil {
		return b
	}
	if b == nil {
		return a
	}
	if above(a, b) {
		c := *a
		c.right = merge(a.right, b)
		return &c
	}
	c := *b
	c.left = merge(a, b.left)
	return &c
}

// lookup returns the node of k in n, or nil.
func lookup(n *node, k string) *node {
	for n != nil {
		switch {
		case k < n.key:
			n = n.left
		case k > n.key:
			n = n.right
		default:
			return n
		}
	}
	return nil
}

// ascend calls fn for the nodes with keys at or after from, in key order,
// until fn returns false. It returns false if fn did.
func ascend(n *node, from string, fn func(*node) bool) bool {
	for n != nil {
		if n.key < from {
			n = n.right
			continue
		}
		if !ascend(n.left, from, fn) || !fn(n) {
			return false
		}
		n = n.right
	}
	return true
}

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
	s    *Store
	seed maphash.Seed

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
		seed:     maphash.MakeSeed(),
		advanced: make(chan struct{}),
		tombs:    map[string]int64{},
		subs:     map[*subscriber]struct{}{},
	}
	m.cur.Store(&snapshot{})
	return m
}

// snap returns the current state.
func (m *mirror) snap() *snapshot { return m.cur.Load() }

func (m *mirror) newNode(key string, raw []byte, modRev int64) *node {
	return &node{key: key, raw: raw, modRev: modRev, prio: maphash.String(m.seed, key)}
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
				root = put(root, m.newNode(strings.TrimPrefix(string(kv.Key), s.prefix), kv.Value, kv.ModRevision))
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
	for _, ev := range events {
		key := strings.TrimPrefix(string(ev.Kv.Key), m.s.prefix)
		if strings.HasPrefix(key, store.ReservedPrefix) {
			continue
		}
		r := ev.Kv.ModRevision // a deletion's Kv carries the deleting revision
		// Subscribers hear of every change, even one the mirror has
		// already applied as this store's own write.
		changed = append(changed, key)
		have := lookup(root, key)
		if have != nil && have.modRev >= r || m.tombs[key] >= r {
			continue // this store's own write, already applied
		}
		if ev.Type == clientv3.EventTypeDelete {
			if have != nil {
				root, _ = del(root, key)
				count--
			}
		} else {
			if have == nil {
				count++
			}
			root = put(root, m.newNode(key, ev.Kv.Value, r))
		}
	}
	m.publish(root, max(rev, old.rev), count, true)
	for sub := range m.subs {
		for _, k := range changed {
			sub.add(k)
		}
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
		have := lookup(root, key)
		if have != nil && have.modRev >= rev || m.tombs[key] >= rev {
			continue
		}
		if w.del {
			m.tombs[key] = rev
			if have != nil {
				root, _ = del(root, key)
				count--
			}
			continue
		}
		if have == nil {
			count++
		}
		root = put(root, m.newNode(key, w.raw, rev))
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
