package badgerstore

import (
	"context"
	"errors"

	"github.com/dgraph-io/badger/v4"

	"github.com/caddyportal/caddyportal/caddyportal/store"
	"github.com/caddyportal/caddyportal/caddyportal/store/internal/kvcore"
)

// sweepBatch bounds the deletions per transaction, which keeps each commit
// far below Badger's transaction size limit and short enough to rarely
// conflict with the portal's own writes.
const sweepBatch = 256

// Sweep deletes every key whose expiry instant is at or before Options.Now
// and returns how many it deleted. The background sweeper calls it every
// SweepInterval; tests call it directly.
func (s *Store) Sweep(ctx context.Context) (int, error) {
	total := 0
	for {
		var n, seen int
		err := s.Update(ctx, func(tx store.Txn) error {
			var err error
			n, seen, err = sweepOnce(tx.(*txn))
			return err
		})
		if err != nil {
			return total, err
		}
		total += n
		if seen < sweepBatch {
			return total, nil
		}
	}
}

// sweepOnce handles up to sweepBatch due index entries. It returns the user
// keys deleted and the index entries handled.
func sweepOnce(t *txn) (deleted, seen int, err error) {
	type due struct {
		nanos int64
		key   string
	}
	var batch []due
	opts := badger.DefaultIteratorOptions
	opts.Prefix = []byte(kvcore.IndexPrefix)
	opts.PrefetchValues = false
	it := t.btx.NewIterator(opts)
	for it.Rewind(); it.Valid() && len(batch) < sweepBatch; it.Next() {
		nanos, key, ok := kvcore.ParseIndexKey(it.Item().Key())
		if !ok {
			continue
		}
		if nanos > t.now.UnixNano() {
			break // the index is in time order: nothing later is due
		}
		batch = append(batch, due{nanos, key})
	}
	it.Close()

	for _, d := range batch {
		r, err := t.load(d.key)
		switch {
		case errors.Is(err, store.ErrNotFound):
			// Deleted behind the index's back (for example by Badger's TTL).
		case err != nil:
			return 0, 0, err
		case r.Expiring && r.Expires == d.nanos:
			t.deleteKey(d.key)
			deleted++
		}
		t.deleteKey(string(indexKey(d.nanos, d.key)))
	}
	return deleted, len(batch), nil
}
