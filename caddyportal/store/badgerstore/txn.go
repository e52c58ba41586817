package badgerstore

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/caddyportal/caddyportal/caddyportal/store"
	"github.com/caddyportal/caddyportal/caddyportal/store/internal/kvcore"
	"github.com/caddyportal/caddyportal/caddyportal/store/internal/valuefmt"
)

// txn adapts a Badger transaction to store.Txn.
type txn struct {
	kvcore.TxnBase
	btx   *badger.Txn
	now   time.Time // one instant per attempt, so the whole fn sees one expiry cut-off
	wrote bool      // Put or Remove was called: the commit needs a sync
	// known is, in a read-write transaction, the expiry of the current
	// value of each key this attempt read or wrote: a write must drop the
	// index entry of the value it replaces, and reading again the record
	// the caller has just read (as every session change does) was about
	// 5% of the portal's CPU samples in a profiled class start.
	known map[string]expiry
	// pending holds a read-write transaction's writes until the commit
	// (flush) instead of handing them to Badger at once: Badger's
	// iterator in a read-write transaction copies and sorts every pending
	// write each time one is created, so a transaction that scans after
	// each of many writes (the allocation batch: every request scans its
	// learner's index, then writes the session) cost the square of its
	// size, 100 µs per request in a batch of 200 (BenchmarkBatchScans).
	pending map[string]pendingWrite
}

// pendingWrite is a write kept in txn.pending.
type pendingWrite struct {
	raw       []byte // the encoded value (see encode); unused for a deletion
	expiresAt uint64 // Badger's expiry (badgerExpiresAt), 0 for none
	del       bool
}

// expiry is what a write needs to know of the value it replaces; a
// missing key has no expiry (the zero value).
type expiry struct {
	expiring bool
	expires  int64 // Unix nanoseconds, when expiring
}

func newTxn(btx *badger.Txn, now time.Time, writable bool) *txn {
	t := &txn{btx: btx, now: now}
	if writable {
		t.known = map[string]expiry{}
		t.pending = map[string]pendingWrite{}
	}
	t.TxnBase = kvcore.NewTxnBase("badgerstore", writable, t)
	return t
}

// remember records key's current expiry in a read-write transaction.
func (t *txn) remember(key string, e expiry) {
	if t.known != nil {
		t.known[key] = e
	}
}

var _ store.Txn = (*txn)(nil)

// record is a decoded stored value.
type record = valuefmt.Record

func encode(value []byte, expiring bool, expires int64) []byte {
	return valuefmt.Encode(value, expiring, expires)
}

func decode(raw []byte) (record, error) { return valuefmt.Decode("badgerstore", raw) }

// indexKey returns the expiry index key of key expiring at nanos.
func indexKey(nanos int64, key string) []byte {
	return kvcore.AppendIndexKey(nil, nanos, key)
}

// badgerExpiresAt rounds nanos up to the next whole Unix second, so Badger
// never hides a key before the store does. Zero would mean "never" to
// Badger, so instants at or before the epoch map to 1.
func badgerExpiresAt(nanos int64) uint64 {
	secs := nanos / 1e9
	if nanos%1e9 > 0 {
		secs++
	}
	if secs < 1 {
		return 1
	}
	return uint64(secs)
}

// load returns the decoded record of key, including an expired one, or
// store.ErrNotFound. In a read-write transaction the read joins the conflict
// set, so a concurrent change to key makes this transaction retry.
func (t *txn) load(key string) (record, error) {
	if p, ok := t.pending[key]; ok {
		if p.del {
			t.remember(key, expiry{})
			return record{}, store.ErrNotFound
		}
		// A copy: the caller may change what Get returns, and the pending
		// bytes are what the commit writes.
		r, err := decode(bytes.Clone(p.raw))
		if err == nil {
			t.remember(key, expiry{expiring: r.Expiring, expires: r.Expires})
		}
		return r, err
	}
	item, err := t.btx.Get([]byte(key))
	if errors.Is(err, badger.ErrKeyNotFound) {
		t.remember(key, expiry{})
		return record{}, store.ErrNotFound
	}
	if err != nil {
		return record{}, fmt.Errorf("badgerstore: get %q: %w", key, err)
	}
	raw, err := item.ValueCopy(nil)
	if err != nil {
		return record{}, fmt.Errorf("badgerstore: get %q: %w", key, err)
	}
	r, err := decode(raw)
	if err == nil {
		t.remember(key, expiry{expiring: r.Expiring, expires: r.Expires})
	}
	return r, err
}

// Get returns a copy of key's value, or store.ErrNotFound if it is missing,
// expired or reserved.
func (t *txn) Get(key string) ([]byte, error) {
	if err := t.CheckRead(key); err != nil {
		return nil, err
	}
	r, err := t.load(key)
	if err != nil {
		return nil, err
	}
	if r.ExpiredAt(t.now) {
		return nil, store.ErrNotFound
	}
	return r.Value, nil
}

// Put writes key, for kvcore.TxnBase's Set and SetExpiring.
func (t *txn) Put(key string, value []byte, expiring bool, expires int64) error {
	t.wrote = true
	if err := t.dropIndexEntry(key); err != nil {
		return err
	}
	// encode copies value, so the caller may reuse its buffer before commit.
	w := pendingWrite{raw: encode(value, expiring, expires)}
	if expiring {
		w.expiresAt = badgerExpiresAt(expires)
		t.pending[string(indexKey(expires, key))] = pendingWrite{}
	}
	t.pending[key] = w
	t.remember(key, expiry{expiring: expiring, expires: expires})
	return nil
}

// dropIndexEntry deletes the expiry index entry of key's current value, if
// it has one.
func (t *txn) dropIndexEntry(key string) error {
	old, ok := t.known[key]
	if !ok {
		// load remembers what it finds (the read joins the conflict set
		// either way, as the caller's own read of key did).
		if _, err := t.load(key); err != nil && !errors.Is(err, store.ErrNotFound) {
			return err
		}
		old = t.known[key]
	}
	if old.expiring {
		t.deleteKey(string(indexKey(old.expires, key)))
	}
	return nil
}

// Remove deletes key and its expiry index entry, for kvcore.TxnBase's
// Delete.
func (t *txn) Remove(key string) error {
	t.wrote = true
	if err := t.dropIndexEntry(key); err != nil {
		return err
	}
	t.deleteKey(key)
	t.remember(key, expiry{})
	return nil
}

// deleteKey deletes key, a caller's or an index entry, at the commit.
func (t *txn) deleteKey(key string) {
	t.pending[key] = pendingWrite{del: true}
}

// flush hands the pending writes to Badger, just before the commit. Badger
// checks each write's size here, so ErrTxnTooBig comes from flush.
func (t *txn) flush() error {
	for k, w := range t.pending {
		var err error
		if w.del {
			err = t.btx.Delete([]byte(k))
		} else {
			e := badger.NewEntry([]byte(k), w.raw)
			e.ExpiresAt = w.expiresAt
			err = t.btx.SetEntry(e)
		}
		if err != nil {
			return fmt.Errorf("badgerstore: write %q: %w", k, err)
		}
	}
	return nil
}

// pendingUnder returns the pending writes of caller's keys with prefix, in
// key order, as they are now (fn of a Scan may write more).
func (t *txn) pendingUnder(prefix string) []keyedWrite {
	var out []keyedWrite
	for k, w := range t.pending {
		if strings.HasPrefix(k, prefix) && !strings.HasPrefix(k, store.ReservedPrefix) {
			out = append(out, keyedWrite{k, w})
		}
	}
	slices.SortFunc(out, func(a, b keyedWrite) int { return strings.Compare(a.key, b.key) })
	return out
}

// keyedWrite is a pending write and its key.
type keyedWrite struct {
	key string
	w   pendingWrite
}

// Scan visits the visible keys with prefix in ascending byte order, merging
// the stored keys with the transaction's pending writes. Reserved keys are
// skipped, and a reserved prefix visits nothing.
func (t *txn) Scan(prefix string, fn func(key string, value []byte) error) error {
	if visit, err := t.CheckScan(prefix); !visit {
		return err
	}
	// visit calls fn for one visible record, stored or pending.
	visit := func(key string, raw []byte) error {
		r, err := decode(raw)
		if err != nil {
			return err
		}
		if r.ExpiredAt(t.now) {
			return nil
		}
		return fn(key, r.Value)
	}
	pending := kvcore.NewPendingMerge(t.pendingUnder(prefix), func(p keyedWrite) string { return p.key },
		func(p keyedWrite) error {
			if p.w.del {
				return nil
			}
			return visit(p.key, bytes.Clone(p.w.raw))
		})
	opts := badger.DefaultIteratorOptions
	opts.Prefix = []byte(prefix)
	// Values are small and kept in the LSM tree; prefetching them starts
	// goroutines per batch of items, which cost more than they save.
	opts.PrefetchValues = false
	it := t.btx.NewIterator(opts)
	defer it.Close()
	for it.Rewind(); it.Valid(); {
		item := it.Item()
		k := item.Key()
		// Only Scan("") can reach the reserved range; jump over it rather
		// than stopping, because keys above "~" (0x7f and up) follow it.
		if prefix == "" && len(k) > 0 && k[0] == store.ReservedPrefix[0] {
			it.Seek([]byte{store.ReservedPrefix[0] + 1})
			continue
		}
		key := string(k)
		// The transaction's own write to key shadows the stored value.
		if shadowed, err := pending.Stored(key); err != nil {
			return err
		} else if shadowed {
			it.Next()
			continue
		}
		raw, err := item.ValueCopy(nil)
		if err != nil {
			return fmt.Errorf("badgerstore: scan %q: %w", k, err)
		}
		if err := visit(key, raw); err != nil {
			return err
		}
		it.Next()
	}
	return pending.Rest()
}
