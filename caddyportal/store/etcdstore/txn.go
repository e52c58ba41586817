package etcdstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/caddyportal/caddyportal/caddyportal/store"
	"github.com/caddyportal/caddyportal/caddyportal/store/etcdstore/internal/treap"
	"github.com/caddyportal/caddyportal/caddyportal/store/internal/kvcore"
	"github.com/caddyportal/caddyportal/caddyportal/store/internal/valuefmt"
)

// scanPage is how many keys one etcd range call of Scan returns, so a
// large prefix is neither one huge response nor read past where fn stops.
const scanPage = 256

// record is a decoded stored value.
type record = valuefmt.Record

func encode(value []byte, expiring bool, expires int64) []byte {
	return valuefmt.Encode(value, expiring, expires)
}

func decode(raw []byte) (record, error) { return valuefmt.Decode("etcdstore", raw) }

// rangeEnd returns the end of the etcd range holding every key that starts
// with p; "\x00" means "to the end of the keyspace", as in etcd.
func rangeEnd(p string) string {
	return clientv3.GetPrefixRangeEnd(p)
}

// userRanges returns the etcd ranges [start, end) that Scan(prefix) reads.
// For the empty prefix the reserved range is left out, with a second range
// for the keys that sort after "~" ("\x7f" and up).
func (s *Store) userRanges(prefix string) [][2]string {
	if prefix != "" {
		p := s.prefix + prefix
		return [][2]string{{p, rangeEnd(p)}}
	}
	start := s.prefix
	if start == "" {
		start = "\x00" // etcd refuses an empty key
	}
	return [][2]string{
		{start, s.prefix + store.ReservedPrefix},
		{s.prefix + string(rune(store.ReservedPrefix[0]+1)), rangeEnd(s.prefix)},
	}
}

// loaded is what a read of one key at the snapshot found.
type loaded struct {
	raw    []byte // nil when missing
	modRev int64  // 0 when missing
}

// write is a buffered write of one key.
type write struct {
	del      bool
	raw      []byte // encoded value
	expiring bool
	expires  int64
}

// txn is one attempt of an Update, or one View.
type txn struct {
	kvcore.TxnBase
	s   *Store
	ctx context.Context
	now time.Time // one instant per attempt, so the whole fn sees one expiry cut-off
	// retry is set when a read failed because the snapshot was compacted.
	retry bool

	// snap is the mirror state the transaction reads; nil when a View
	// reads etcd directly at rev (the mirror could not catch up in time).
	snap    *snapshot
	rev     int64             // snapshot revision; 0 until the first direct read
	cache   map[string]loaded // keys read with Get
	scanned map[string]int64  // keys visited by Scan, with their ModRevision
	scans   []string          // prefixes scanned
	writes  map[string]write
}

var _ store.Txn = (*txn)(nil)

// newTxn starts a transaction that reads snap, or etcd at rev when snap is
// nil (rev 0: at the revision of the first read).
func newTxn(ctx context.Context, s *Store, writable bool, snap *snapshot, rev int64) *txn {
	t := &txn{
		s:       s,
		ctx:     ctx,
		now:     s.now(),
		snap:    snap,
		rev:     rev,
		cache:   map[string]loaded{},
		scanned: map[string]int64{},
		writes:  map[string]write{},
	}
	t.TxnBase = kvcore.NewTxnBase("etcdstore", writable, t)
	if snap != nil {
		t.rev = snap.rev
	}
	return t
}

// get runs one etcd range read at the snapshot, fixing the snapshot on the
// first read.
func (t *txn) get(op, key string, opts ...clientv3.OpOption) (*clientv3.GetResponse, error) {
	if t.rev != 0 {
		opts = append(opts, clientv3.WithRev(t.rev))
	}
	ctx, cancel := t.s.callCtx(t.ctx)
	defer cancel()
	resp, err := t.s.cli.Get(ctx, key, opts...)
	if err != nil {
		if isCompacted(err) {
			t.retry = true
		}
		return nil, t.s.wrap(t.ctx, op, err)
	}
	if t.rev == 0 {
		t.rev = resp.Header.Revision
	}
	return resp, nil
}

// load returns what key holds at the snapshot; the read joins the compare
// set of an Update.
func (t *txn) load(key string) (loaded, error) {
	if l, ok := t.cache[key]; ok {
		return l, nil
	}
	if t.snap != nil {
		var l loaded
		if n := treap.Get(t.snap.root, key); n != nil {
			l = loaded{raw: n.Value.raw, modRev: n.Value.modRev}
		}
		t.cache[key] = l
		return l, nil
	}
	resp, err := t.get(fmt.Sprintf("get %q", key), t.s.prefix+key)
	if err != nil {
		return loaded{}, err
	}
	var l loaded
	if len(resp.Kvs) > 0 {
		l = loaded{raw: resp.Kvs[0].Value, modRev: resp.Kvs[0].ModRevision}
	}
	t.cache[key] = l
	return l, nil
}

// Get returns a copy of key's value, or store.ErrNotFound if it is missing,
// expired or reserved.
func (t *txn) Get(key string) ([]byte, error) {
	if err := t.CheckRead(key); err != nil {
		return nil, err
	}
	if w, ok := t.writes[key]; ok {
		return w.visible(t.now)
	}
	l, err := t.load(key)
	if err != nil {
		return nil, err
	}
	if l.raw == nil {
		return nil, store.ErrNotFound
	}
	r, err := decode(l.raw)
	if err != nil {
		return nil, fmt.Errorf("%w (key %q)", err, key)
	}
	if r.ExpiredAt(t.now) {
		return nil, store.ErrNotFound
	}
	return bytes.Clone(r.Value), nil
}

// visible returns a copy of the value a buffered write leaves, or
// store.ErrNotFound.
func (w write) visible(now time.Time) ([]byte, error) {
	if w.del {
		return nil, store.ErrNotFound
	}
	r, err := decode(w.raw)
	if err != nil {
		return nil, err
	}
	if r.ExpiredAt(now) {
		return nil, store.ErrNotFound
	}
	return bytes.Clone(r.Value), nil
}

// Put buffers a write of key, for kvcore.TxnBase's Set and SetExpiring.
func (t *txn) Put(key string, value []byte, expiring bool, expires int64) error {
	// encode copies value, so the caller may reuse its buffer before commit.
	t.writes[key] = write{raw: encode(value, expiring, expires), expiring: expiring, expires: expires}
	return nil
}

// Remove buffers the deletion of key, for kvcore.TxnBase's Delete.
func (t *txn) Remove(key string) error {
	t.writes[key] = write{del: true}
	return nil
}

// Scan visits the visible keys with prefix in ascending byte order, merging
// the snapshot with the transaction's buffered writes. Reserved keys are
// skipped, and a reserved prefix visits nothing.
func (t *txn) Scan(prefix string, fn func(key string, value []byte) error) error {
	if visit, err := t.CheckScan(prefix); !visit {
		return err
	}
	if !slices.Contains(t.scans, prefix) {
		t.scans = append(t.scans, prefix)
	}

	// The buffered writes under the prefix, in key order, to merge in.
	var keys []string
	for k := range t.writes {
		if strings.HasPrefix(k, prefix) {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	pending := kvcore.NewPendingMerge(keys, func(k string) string { return k }, func(k string) error {
		v, err := t.writes[k].visible(t.now)
		if errors.Is(err, store.ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		return fn(k, v)
	})

	err := t.stored(prefix, func(key string, raw []byte, modRev int64) error {
		t.scanned[key] = modRev
		// The transaction's own write shadows the stored value.
		if shadowed, err := pending.Stored(key); shadowed || err != nil {
			return err
		}
		rec, err := decode(raw)
		if err != nil {
			return fmt.Errorf("%w (key %q)", err, key)
		}
		if rec.ExpiredAt(t.now) {
			return nil
		}
		return fn(key, bytes.Clone(rec.Value))
	})
	if err != nil {
		return err
	}
	// Buffered keys after the last stored one.
	return pending.Rest()
}

// stored calls visit for every stored user key under prefix in key order,
// from the mirror snapshot or, without one, from etcd at the snapshot
// revision in pages.
func (t *txn) stored(prefix string, visit func(key string, raw []byte, modRev int64) error) error {
	if t.snap != nil {
		var err error
		treap.Ascend(t.snap.root, prefix, func(n *node) bool {
			if !strings.HasPrefix(n.Key, prefix) {
				return false
			}
			err = visit(n.Key, n.Value.raw, n.Value.modRev)
			return err == nil
		})
		return err
	}
	for _, r := range t.s.userRanges(prefix) {
		start, end := r[0], r[1]
		for {
			resp, err := t.get(fmt.Sprintf("scan %q", prefix), start,
				clientv3.WithRange(end), clientv3.WithLimit(scanPage))
			if err != nil {
				return err
			}
			for _, kv := range resp.Kvs {
				if err := visit(strings.TrimPrefix(string(kv.Key), t.s.prefix), kv.Value, kv.ModRevision); err != nil {
					return err
				}
			}
			if !resp.More || len(resp.Kvs) == 0 {
				break
			}
			start = string(resp.Kvs[len(resp.Kvs)-1].Key) + "\x00"
		}
	}
	return nil
}

// read reports whether the transaction read anything.
func (t *txn) read() bool {
	return len(t.cache) > 0 || len(t.scans) > 0
}

// group returns the key-prefix group of key: the key up to and including
// its last '/' ("" for a key without one).
func group(key string) string {
	return key[:strings.LastIndexByte(key, '/')+1]
}

// compares returns the If of the commit: one ModRevision compare per key
// read when they fit in MaxTxnOps, otherwise range compares for scanned
// prefixes and then for the largest key-prefix groups of Get reads, until
// they fit (see the package documentation).
func (t *txn) compares() ([]clientv3.Cmp, error) {
	p := t.s.prefix
	limit := t.s.maxTxnOps
	var scannedOnly []string
	for k := range t.scanned {
		if _, ok := t.cache[k]; !ok {
			scannedOnly = append(scannedOnly, k)
		}
	}
	var cmps []clientv3.Cmp
	if len(t.cache)+len(scannedOnly) <= limit {
		for k, l := range t.cache {
			cmps = append(cmps, clientv3.Compare(clientv3.ModRevision(p+k), "=", l.modRev))
		}
		for _, k := range scannedOnly {
			cmps = append(cmps, clientv3.Compare(clientv3.ModRevision(p+k), "=", t.scanned[k]))
		}
		return cmps, nil
	}

	// Range prefixes, in a deterministic order: every scanned prefix, then
	// the groups of Get reads collapsed because they would not fit.
	ranges := slices.Clone(t.scans)
	nranges := 0
	for _, pr := range ranges {
		nranges += len(t.s.userRanges(pr))
	}
	groups := map[string][]string{}
	for k := range t.cache {
		g := group(k)
		groups[g] = append(groups[g], k)
	}
	names := make([]string, 0, len(groups))
	for g := range groups {
		names = append(names, g)
	}
	// Largest first: each collapse saves the most compares.
	slices.SortFunc(names, func(a, b string) int {
		if d := len(groups[b]) - len(groups[a]); d != 0 {
			return d
		}
		return strings.Compare(a, b)
	})
	perKey := len(t.cache)
	collapsed := map[string]bool{}
	for _, g := range names {
		if perKey+nranges <= limit {
			break
		}
		cost := len(t.s.userRanges(g))
		if len(groups[g]) <= cost {
			break // the rest are no larger: collapsing saves nothing
		}
		collapsed[g] = true
		perKey -= len(groups[g])
		nranges += cost
		ranges = append(ranges, g)
	}
	if perKey+nranges > limit {
		return nil, fmt.Errorf("%w: %d compares even with range compares, the limit is %d",
			ErrTxnTooLarge, perKey+nranges, limit)
	}
	for k, l := range t.cache {
		if !collapsed[group(k)] {
			cmps = append(cmps, clientv3.Compare(clientv3.ModRevision(p+k), "=", l.modRev))
		}
	}
	for _, pr := range ranges {
		for _, r := range t.s.userRanges(pr) {
			cmps = append(cmps, clientv3.Compare(clientv3.ModRevision(r[0]), "<", t.rev+1).WithRange(r[1]))
		}
	}
	return cmps, nil
}

// commit writes the buffered writes with one etcd Txn guarded by the reads;
// with no writes it only checks the reads (a read-only Txn, which etcd
// serves without a log entry). It returns kvcore.ErrRetry and the revision of the
// failed Txn when a compare failed.
func (t *txn) commit() (int64, error) {
	if len(t.writes) == 0 && !t.read() {
		return 0, nil
	}
	p := t.s.prefix

	keys := make([]string, 0, len(t.writes))
	for k := range t.writes {
		keys = append(keys, k)
	}
	slices.Sort(keys) // a deterministic Txn is easier to read in etcd's logs
	var ops []clientv3.Op
	for _, k := range keys {
		w := t.writes[k]
		if w.del {
			ops = append(ops, clientv3.OpDelete(p+k))
			continue
		}
		ops = append(ops, clientv3.OpPut(p+k, string(w.raw)))
		if w.expiring {
			ops = append(ops, clientv3.OpPut(p+kvcore.IndexKey(w.expires, k), ""))
		}
	}
	// etcd limits the compares and the operations of a Txn separately,
	// each to --max-txn-ops (not their sum). Writes cannot be collapsed.
	if len(ops) > t.s.maxTxnOps {
		return 0, fmt.Errorf("%w: %d operations, the limit is %d",
			ErrTxnTooLarge, len(ops), t.s.maxTxnOps)
	}
	cmps, err := t.compares()
	if err != nil {
		return 0, err
	}

	ctx, cancel := t.s.callCtx(t.ctx)
	defer cancel()
	resp, err := t.s.cli.Txn(ctx).If(cmps...).Then(ops...).Commit()
	if err != nil {
		return 0, t.s.wrap(t.ctx, "commit", err)
	}
	if !resp.Succeeded {
		return resp.Header.Revision, kvcore.ErrRetry
	}
	if len(t.writes) > 0 {
		t.s.committed(t.writes, resp.Header.Revision)
	}
	return 0, nil
}
