package etcdstore_test

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/caddyportal/caddyportal/caddyportal/store"

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

// BenchmarkAllocationContended mimics the portal's allocation transaction
// under contention: each Update reads the "alloc" key, scans an index of
// 100 keys and reads the record each names, then writes 4 records and
// bumps "alloc", so every pair of Updates conflicts. It runs from one
// store and from three stores (three replicas) on one etcd, 8 goroutines
// per store.
func BenchmarkAllocationContended(b *testing.B) {
	for _, stores := range []int{1, 3} {
		b.Run(fmt.Sprintf("stores=%d", stores), func(b *testing.B) {
			srv := etcdtest.Start(b)
			prefix := newPrefix()
			var ss []*etcdstore.Store
			for range stores {
				ss = append(ss, open(b, srv, etcdstore.Options{Prefix: prefix}))
			}
			record := make([]byte, 500)
			for lo := 0; lo < 100; lo += 50 {
				err := ss[0].Update(context.Background(), func(tx store.Txn) error {
					for i := lo; i < lo+50; i++ {
						name := fmt.Sprintf("demo-w01-s%03d", i)
						if err := tx.Set("l/demo-w01/"+name, nil); err != nil {
							return err
						}
						if err := tx.Set("s/"+name, record); err != nil {
							return err
						}
					}
					return nil
				})
				if err != nil {
					b.Fatal(err)
				}
			}
			var next atomic.Int64
			b.SetParallelism(8 * stores / max(runtime.GOMAXPROCS(0), 1))
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				id := next.Add(1)
				s := ss[int(id)%len(ss)]
				for pb.Next() {
					if err := allocate(s, id); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}

// allocate is one allocation-like transaction (see
// BenchmarkAllocationContended).
func allocate(s store.Store, id int64) error {
	return s.Update(context.Background(), func(tx store.Txn) error {
		n := 0
		if v, err := tx.Get("alloc"); err == nil {
			if n, err = strconv.Atoi(string(v)); err != nil {
				return err
			}
		} else if !errors.Is(err, store.ErrNotFound) {
			return err
		}
		var names []string
		err := tx.Scan("l/demo-w01/", func(k string, _ []byte) error {
			names = append(names, strings.TrimPrefix(k, "l/demo-w01/"))
			return nil
		})
		if err != nil {
			return err
		}
		for _, name := range names {
			if _, err := tx.Get("s/" + name); err != nil {
				return err
			}
		}
		for i := range 4 {
			rec := fmt.Appendf(nil, "%d by %d", n, id)
			if err := tx.Set("s/"+names[(n*4+i)%len(names)], rec); err != nil {
				return err
			}
		}
		return tx.Set("alloc", []byte(strconv.Itoa(n+1)))
	})
}
