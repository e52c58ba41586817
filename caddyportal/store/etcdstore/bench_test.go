package etcdstore_test

import (
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/caddyportal/caddyportal/caddyportal/store/etcdstore"
	"github.com/caddyportal/caddyportal/caddyportal/store/etcdstore/etcdtest"
)

// BenchmarkUpdate measures read-modify-write transactions (a Get and a Set,
// so one linearizable read and one guarded Txn) from many concurrent
// writers, each incrementing its own counter so that they do not conflict.
// etcd batches concurrent proposals into one WAL sync, so throughput should
// grow with parallelism beyond one round trip per Update.
func BenchmarkUpdate(b *testing.B) {
	srv := etcdtest.Start(b)
	s := open(b, srv, etcdstore.Options{})
	var next atomic.Int64
	b.SetParallelism(16)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		key := fmt.Sprintf("bench/%d", next.Add(1))
		for pb.Next() {
			if err := increment(s, key); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
