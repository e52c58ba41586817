package badgerstore_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

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

// BenchmarkBatchScans measures what one transaction of the portal's
// allocation batch does for each request in it: scan the learner's index
// (which holds nothing yet), then write the session, its index entries and
// an expiring key. One op is one transaction of 200 such requests, a class
// arriving at once (in memory: the CPU, not the disk, is measured).
func BenchmarkBatchScans(b *testing.B) {
	s, err := badgerstore.Open(badgerstore.Options{InMemory: true, SweepInterval: -1})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	const requests = 200
	value := make([]byte, 400)
	b.ReportAllocs()
	for n := 0; b.Loop(); n++ {
		err := s.Update(context.Background(), func(tx store.Txn) error {
			for i := range requests {
				user := fmt.Sprintf("u%d-%d", n, i)
				found := 0
				if err := tx.Scan("o/"+user+"/", func(string, []byte) error { found++; return nil }); err != nil {
					return err
				}
				if found != 0 {
					return fmt.Errorf("%s already owns %d", user, found)
				}
				name := fmt.Sprintf("s%d-%d", n, i)
				for _, k := range []string{"s/" + name, "o/" + user + "/" + name, "l/" + name, "u/" + user} {
					if err := tx.Set(k, value); err != nil {
						return err
					}
				}
				if err := tx.SetExpiring("t/"+name, value[:32], time.Now().Add(time.Hour)); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
	}
}
