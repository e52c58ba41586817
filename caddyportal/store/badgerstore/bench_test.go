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
	var next atomic.Int64
	b.SetParallelism(16)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			key := fmt.Sprintf("bench/%d", next.Add(1))
			err := s.Update(context.Background(), func(tx store.Txn) error {
				return tx.Set(key, value)
			})
			if err != nil {
				b.Error(err)
				return
			}
		}
	})
}
