package badgerstore_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/caddyportal/caddyportal/caddyportal/store"
	"github.com/caddyportal/caddyportal/caddyportal/store/badgerstore"
)

// BenchmarkUpdateSynced measures durable commits from many concurrent
// writers on disk. Badger's single write goroutine syncs once per batch of
// waiting commits, so throughput should grow with parallelism far beyond
// one fsync per Update.
func BenchmarkUpdateSynced(b *testing.B) {
	s, err := badgerstore.Open(badgerstore.DefaultOptions(b.TempDir()))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	value := make([]byte, 256)
	runUpdates(b, s, 16, func(i int64) func(store.Txn) error {
		key := fmt.Sprintf("bench/%d", i)
		return func(tx store.Txn) error { return tx.Set(key, value) }
	})
}

// BenchmarkReadModifyWrite measures the update every session change makes:
// read a stored record and write it back changed, in one transaction, from
// 8 writers at once (in memory, so no sync is measured and the machine's
// CPU is the limit, as in a class start).
func BenchmarkReadModifyWrite(b *testing.B) {
	s, err := badgerstore.Open(badgerstore.Options{InMemory: true, SweepInterval: -1})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	const keys = 1000
	value := make([]byte, 400)
	for i := range keys {
		if err := s.Update(context.Background(), func(tx store.Txn) error { return tx.Set(fmt.Sprintf("bench/%d", i), value) }); err != nil {
			b.Fatal(err)
		}
	}
	runUpdates(b, s, 4, func(i int64) func(store.Txn) error {
		key := fmt.Sprintf("bench/%d", i%keys)
		return func(tx store.Txn) error {
			v, err := tx.Get(key)
			if err != nil {
				return err
			}
			v[0]++
			return tx.Set(key, v)
		}
	})
}

// runUpdates times b.N updates of s from parallelism writers per CPU; the
// i-th update (counting from 1) runs update(i).
func runUpdates(b *testing.B, s *badgerstore.Store, parallelism int, update func(i int64) func(store.Txn) error) {
	var next atomic.Int64
	b.SetParallelism(parallelism)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := s.Update(context.Background(), update(next.Add(1))); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
