package etcdstore

import (
	"context"
	"fmt"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/caddyportal/caddyportal/caddyportal/store/internal/kvcore"
)

// sweepBatch is how many due index entries one etcd range call returns.
const sweepBatch = 256

// Sweep deletes every key whose expiry instant is at or before Options.Now
// and returns how many it deleted. The background sweeper calls it every
// SweepInterval; tests call it directly. Several stores (replicas) may sweep
// the same etcd at once: each deletion is a Txn guarded by the key's
// ModRevision, so a key is counted by exactly one of them and a key
// rewritten since it was checked survives.
func (s *Store) Sweep(ctx context.Context) (int, error) {
	if err := s.life.Enter(ctx); err != nil {
		return 0, err
	}
	defer s.life.Leave()
	now := s.now().UnixNano()
	start := s.prefix + kvcore.IndexPrefix
	// Index keys are ordered by expiry, so every entry due at now sorts
	// before the end of the range of entries expiring exactly at now.
	end := rangeEnd(s.prefix + kvcore.IndexKey(now, ""))
	total := 0
	for {
		cctx, cancel := s.callCtx(ctx)
		resp, err := s.cli.Get(cctx, start, clientv3.WithRange(end), clientv3.WithLimit(sweepBatch))
		cancel()
		if err != nil {
			return total, s.wrap(ctx, "sweep: reading the expiry index", err)
		}
		for _, kv := range resp.Kvs {
			nanos, key, ok := kvcore.ParseIndexKey(kv.Key[len(s.prefix):])
			if !ok {
				continue
			}
			n, err := s.sweepOne(ctx, string(kv.Key), kv.ModRevision, nanos, key)
			if err != nil {
				return total, err
			}
			total += n
		}
		if !resp.More || len(resp.Kvs) == 0 {
			return total, nil
		}
		// Go on after this page rather than from the start, so an entry
		// that could not be removed is not visited again in this Sweep.
		start = string(resp.Kvs[len(resp.Kvs)-1].Key) + "\x00"
	}
}

// sweepOne handles the due index entry idx (a full etcd key, at ModRevision
// idxRev) for key expiring at nanos. It returns 1 if it deleted key.
func (s *Store) sweepOne(ctx context.Context, idx string, idxRev, nanos int64, key string) (int, error) {
	cctx, cancel := s.callCtx(ctx)
	defer cancel()
	resp, err := s.cli.Get(cctx, s.prefix+key)
	if err != nil {
		return 0, s.wrap(ctx, fmt.Sprintf("sweep: get %q", key), err)
	}
	if len(resp.Kvs) > 0 {
		kv := resp.Kvs[0]
		if rec, err := decode(kv.Value); err == nil && rec.Expiring && rec.Expires == nanos {
			// Delete key only if nobody has written it since we looked; the
			// loser of two sweepers racing here sees ModRevision 0.
			tr, err := s.cli.Txn(cctx).
				If(clientv3.Compare(clientv3.ModRevision(s.prefix+key), "=", kv.ModRevision)).
				Then(clientv3.OpDelete(s.prefix+key), clientv3.OpDelete(idx)).
				Commit()
			if err != nil {
				return 0, s.wrap(ctx, fmt.Sprintf("sweep: delete %q", key), err)
			}
			if tr.Succeeded {
				return 1, nil
			}
			return 0, nil
		}
	}
	// Stale entry: the key is gone or was rewritten with another (or no)
	// expiry. Drop the entry unless a new SetExpiring with this very expiry
	// has just written it again.
	_, err = s.cli.Txn(cctx).
		If(clientv3.Compare(clientv3.ModRevision(idx), "=", idxRev)).
		Then(clientv3.OpDelete(idx)).
		Commit()
	if err != nil {
		return 0, s.wrap(ctx, fmt.Sprintf("sweep: drop index entry of %q", key), err)
	}
	return 0, nil
}
