package badgerstore

import (
	"errors"
	"fmt"
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
	e := badger.NewEntry([]byte(key), encode(value, expiring, expires))
	if expiring {
		e.ExpiresAt = badgerExpiresAt(expires)
		if err := t.btx.Set(indexKey(expires, key), nil); err != nil {
			return fmt.Errorf("badgerstore: set %q: %w", key, err)
		}
	}
	if err := t.btx.SetEntry(e); err != nil {
		return fmt.Errorf("badgerstore: set %q: %w", key, err)
	}
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
	if !old.expiring {
		return nil
	}
	if err := t.btx.Delete(indexKey(old.expires, key)); err != nil {
		return fmt.Errorf("badgerstore: delete expiry of %q: %w", key, err)
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
	if err := t.btx.Delete([]byte(key)); err != nil {
		return fmt.Errorf("badgerstore: delete %q: %w", key, err)
	}
	t.remember(key, expiry{})
	return nil
}

// Scan visits the visible keys with prefix in ascending byte order. Reserved
// keys are skipped, and a reserved prefix visits nothing.
func (t *txn) Scan(prefix string, fn func(key string, value []byte) error) error {
	if visit, err := t.CheckScan(prefix); !visit {
		return err
	}
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
		raw, err := item.ValueCopy(nil)
		if err != nil {
			return fmt.Errorf("badgerstore: scan %q: %w", k, err)
		}
		r, err := decode(raw)
		if err != nil {
			return err
		}
		if !r.ExpiredAt(t.now) {
			if err := fn(string(k), r.Value); err != nil {
				return err
			}
		}
		it.Next()
	}
	return nil
}
