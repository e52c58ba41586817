package etcdstore_test

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/caddyportal/caddyportal/caddyportal/store"
	"github.com/caddyportal/caddyportal/caddyportal/store/etcdstore"
	"github.com/caddyportal/caddyportal/caddyportal/store/etcdstore/etcdtest"
	"github.com/caddyportal/caddyportal/caddyportal/store/storetest"
)

// TestMirrorSeesOtherReplica: transactions read the local mirror, yet a
// write by another store on the same etcd is never missed. A View right
// after the other's commit sees a key created and then changed there; an
// Update whose read the other store changes conflicts once and then runs
// on the new value.
func TestMirrorSeesOtherReplica(t *testing.T) {
	srv := etcdtest.Start(t)
	prefix := newPrefix()
	a := open(t, srv, etcdstore.Options{Prefix: prefix})
	b := open(t, srv, etcdstore.Options{Prefix: prefix})
	for i := range 30 {
		k := fmt.Sprintf("k/%d", i)
		storetest.Set(t, b, k, "1")
		if v, ok := storetest.Get(t, a, k); !ok || v != "1" {
			t.Fatalf("View of %s right after the other store created it = %q, %v; want 1", k, v, ok)
		}
		storetest.Set(t, b, k, "2")
		if v, _ := storetest.Get(t, a, k); v != "2" {
			t.Fatalf("View of %s right after the other store changed it = %q, want 2", k, v)
		}
	}

	var seen []string
	err := a.Update(context.Background(), func(tx store.Txn) error {
		v, err := tx.Get("k/0")
		if err != nil {
			return err
		}
		seen = append(seen, string(v))
		if len(seen) == 1 {
			if err := increment(b, "k/0"); err != nil {
				return err
			}
		}
		n, err := strconv.Atoi(string(v))
		if err != nil {
			return err
		}
		return tx.Set("k/0", []byte(strconv.Itoa(n*10)))
	})
	if err != nil {
		t.Fatal(err)
	}
	// [2 3] as a rule: a conflict, then a retry on the other store's
	// value; a busy machine's slower mirror may add a stale "2" between.
	if len(seen) < 2 || seen[0] != "2" || seen[len(seen)-1] != "3" || slices.ContainsFunc(seen[1:len(seen)-1], func(v string) bool { return v != "2" }) {
		t.Fatalf("attempts read %q, want [2 3]: a conflict, then a retry on the other store's value", seen)
	}
	if v, _ := storetest.Get(t, b, "k/0"); v != "30" {
		t.Fatalf("k/0 = %q, want 30", v)
	}
}

// TestFnErrorCheckedAgainstEtcd: an error that fn returns after reading a
// key is returned only if the key is still what fn read; a stale read
// makes fn run again instead.
func TestFnErrorCheckedAgainstEtcd(t *testing.T) {
	srv := etcdtest.Start(t)
	prefix := newPrefix()
	a := open(t, srv, etcdstore.Options{Prefix: prefix})
	b := open(t, srv, etcdstore.Options{Prefix: prefix})
	storetest.Set(t, a, "state", "closed")
	errClosed := errors.New("closed")
	calls := 0
	err := a.Update(context.Background(), func(tx store.Txn) error {
		calls++
		v, err := tx.Get("state")
		if err != nil {
			return err
		}
		if calls == 1 {
			storetest.Set(t, b, "state", "open")
		}
		if string(v) == "closed" {
			return errClosed
		}
		return tx.Set("seen", v)
	})
	if err != nil {
		t.Fatalf("Update = %v; the first attempt's error was based on a changed key", err)
	}
	// Twice as a rule; more when the mirror was slower to bring the other
	// store's write than the store's short catch-up wait (a busy machine).
	if calls < 2 {
		t.Fatalf("fn ran %d times, want at least 2", calls)
	}
	if v, _ := storetest.Get(t, a, "seen"); v != "open" {
		t.Fatalf("seen = %q, want open: the last attempt read the other store's write", v)
	}
	err = a.Update(context.Background(), func(tx store.Txn) error {
		if _, err := tx.Get("state"); err != nil {
			return err
		}
		return errClosed
	})
	if !errors.Is(err, errClosed) {
		t.Fatalf("Update = %v, want fn's own error", err)
	}
}

// TestMirrorResumesAfterRestart stops and restarts etcd under two open
// stores: the mirror's watch resumes by itself, so the other store's
// writes after the restart reach it (Watch, which the mirror feeds,
// reports them, and an Update reads them on its first attempt).
func TestMirrorResumesAfterRestart(t *testing.T) {
	srv := etcdtest.Start(t)
	prefix := newPrefix()
	// 2 s, not less: calls to the live etcd must finish within it on a
	// loaded machine too.
	a := open(t, srv, etcdstore.Options{Prefix: prefix, RequestTimeout: 2 * time.Second})
	b := open(t, srv, etcdstore.Options{Prefix: prefix, RequestTimeout: 2 * time.Second})
	events := make(chan string, 64)
	wctx, stop := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); a.Watch(wctx, "", func(k string) { events <- k }) }()
	t.Cleanup(func() { stop(); <-done })
	expectEvents(t, events, "")
	storetest.Set(t, b, "k", "1")
	expectEvents(t, events, "k")

	srv.Stop()
	srv.Restart()
	var err error
	for range 40 { // the first calls may still meet the dead connection
		// A blind write: one whose outcome was unknown may run twice.
		if err = b.Update(context.Background(), func(tx store.Txn) error { return tx.Set("k", []byte("2")) }); err == nil {
			break
		}
		if !errors.Is(err, store.ErrUnavailable) {
			t.Fatal(err)
		}
	}
	if err != nil {
		t.Fatalf("b did not recover: %v", err)
	}
	expectEvents(t, events, "k")
	calls := 0
	err = a.Update(context.Background(), func(tx store.Txn) error {
		calls++
		v, err := tx.Get("k")
		if err != nil {
			return err
		}
		if string(v) != "2" {
			return fmt.Errorf("attempt %d read k = %q, want 2", calls, v)
		}
		return tx.Set("k", []byte("3"))
	})
	if err != nil {
		t.Fatal(err)
	}
	if calls != 1 {
		t.Fatalf("fn ran %d times, want 1: the mirror should hold the write made after the restart", calls)
	}
}

// TestCollapsedComparesDetectChanges runs etcd with --max-txn-ops 8: an
// Update that reads 20 keys with Get (more compares than etcd takes) still
// commits, with range compares per key-prefix group, and still conflicts
// when another store changes one of those keys or creates one it found
// missing.
func TestCollapsedComparesDetectChanges(t *testing.T) {
	const limit = 8
	srv := etcdtest.Start(t, "--max-txn-ops", strconv.Itoa(limit))
	prefix := newPrefix()
	a := open(t, srv, etcdstore.Options{Prefix: prefix, MaxTxnOps: limit})
	b := open(t, srv, etcdstore.Options{Prefix: prefix, MaxTxnOps: limit})
	for i := range 20 {
		storetest.Set(t, a, fmt.Sprintf("s/%02d", i), "x")
	}
	storetest.Set(t, a, "alloc", "0", "u/alice", "x")

	for _, tc := range []struct {
		name      string
		interfere func() error
	}{
		{"changed", func() error {
			return b.Update(context.Background(), func(tx store.Txn) error { return tx.Set("s/05", []byte("y")) })
		}},
		{"created", func() error { return increment(b, "s/missing") }},
		{"untouched", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			calls := 0
			err := a.Update(context.Background(), func(tx store.Txn) error {
				calls++
				for _, k := range []string{"alloc", "u/alice", "s/missing"} {
					if _, err := tx.Get(k); err != nil && !errors.Is(err, store.ErrNotFound) {
						return err
					}
				}
				for i := range 20 {
					if _, err := tx.Get(fmt.Sprintf("s/%02d", i)); err != nil {
						return err
					}
				}
				if calls == 1 && tc.interfere != nil {
					if err := tc.interfere(); err != nil {
						return err
					}
				}
				return tx.Set("alloc", []byte(strconv.Itoa(calls)))
			})
			if err != nil {
				t.Fatalf("Update reading 23 keys with --max-txn-ops %d: %v", limit, err)
			}
			want := 2
			if tc.interfere == nil {
				want = 1
			}
			if calls != want {
				t.Fatalf("fn ran %d times, want %d", calls, want)
			}
		})
	}
}

// TestMirrorMemory logs how much memory the mirror takes per stored
// session-sized record, for the package documentation, and checks that
// the overhead beyond the value itself stays small.
func TestMirrorMemory(t *testing.T) {
	const n, size = 5000, 600
	srv := etcdtest.Start(t)
	prefix := newPrefix()
	w := open(t, srv, etcdstore.Options{Prefix: prefix})
	value := string(make([]byte, size))
	for lo := 0; lo < n; lo += 100 {
		kv := make([]string, 0, 200)
		for i := lo; i < lo+100; i++ {
			kv = append(kv, fmt.Sprintf("s/demo-w01-s%05d", i), value)
		}
		storetest.Set(t, w, kv...)
	}
	// The heap with a second store open, minus the heap once it is
	// closed: its mirror, plus a client's small fixed cost.
	r, err := etcdstore.Open(context.Background(), etcdstore.Options{Endpoints: srv.Endpoints(),
		Prefix: prefix, SweepInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	if keys := storetest.Keys(t, r, "s/"); len(keys) != n {
		t.Fatalf("mirror holds %d keys, want %d", len(keys), n)
	}
	var open, closed runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&open)
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	runtime.GC()
	runtime.ReadMemStats(&closed)
	per := (int64(open.HeapAlloc) - int64(closed.HeapAlloc)) / n
	t.Logf("mirror: about %d bytes per record of %d value bytes and a %d-byte key", per, size+1, len("s/demo-w01-s00000"))
	if per > 2*size+512 {
		t.Fatalf("mirror takes %d bytes per %d-byte record", per, size)
	}
}
