package badgerstore

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/caddyportal/caddyportal/caddyportal/store"
)

// TestGroupSyncSharesRounds: commits that wait while a round runs are all
// covered by the one round after it, never by the one that was already
// running when they came.
func TestGroupSyncSharesRounds(t *testing.T) {
	var rounds atomic.Int32
	entered := make(chan struct{}, 10)
	release := make(chan struct{})
	g := newGroupSync(func() error {
		rounds.Add(1)
		entered <- struct{}{}
		<-release
		return nil
	})
	first := make(chan error, 1)
	go func() { first <- g.wait() }()
	<-entered // round 1 runs
	const n = 10
	var wg sync.WaitGroup
	var returned atomic.Int32
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := g.wait(); err != nil {
				t.Error(err)
			}
			returned.Add(1)
		}()
	}
	// Let the waiters queue behind round 1, then finish it.
	for {
		g.mu.Lock()
		queued := g.waiting == n
		g.mu.Unlock()
		if queued {
			break
		}
		runtime.Gosched()
	}
	release <- struct{}{}
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	<-entered // round 2 runs: none of the ten may have returned with round 1
	if r := returned.Load(); r != 0 {
		t.Fatalf("%d waiters returned with the round that was running when they came", r)
	}
	release <- struct{}{}
	wg.Wait()
	if r := rounds.Load(); r != 2 {
		t.Fatalf("%d sync rounds for 1 + %d commits, want 2", r, n)
	}
}

// TestGroupSyncReportsFailure: a failed round fails the commits it covered
// and not the ones after it.
func TestGroupSyncReportsFailure(t *testing.T) {
	fail := errors.New("disk gone")
	var calls atomic.Int32
	g := newGroupSync(func() error {
		if calls.Add(1) == 1 {
			return fail
		}
		return nil
	})
	if err := g.wait(); !errors.Is(err, fail) {
		t.Fatalf("wait over a failed round = %v, want %v", err, fail)
	}
	if err := g.wait(); err != nil {
		t.Fatalf("wait over a good round after a failed one = %v", err)
	}
}

// TestUpdatesShareSyncs: on a durable store, concurrent Updates need fewer
// sync rounds than there are Updates, a read-only Update none, and every
// acknowledged write reads back.
func TestUpdatesShareSyncs(t *testing.T) {
	s, err := Open(DefaultOptions(t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var rounds atomic.Int32
	orig := s.group.round
	s.group.round = func() error { rounds.Add(1); return orig() }
	ctx := context.Background()
	if err := s.Update(ctx, func(tx store.Txn) error { _, err := tx.Get("nothing"); return ignoreNotFound(err) }); err != nil {
		t.Fatal(err)
	}
	if r := rounds.Load(); r != 0 {
		t.Fatalf("a read-only Update ran %d sync rounds", r)
	}
	const n = 50
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			if err := s.Update(ctx, func(tx store.Txn) error { return tx.Set(fmt.Sprintf("k/%02d", i), []byte("v")) }); err != nil {
				t.Error(err)
			}
		}()
	}
	close(start)
	wg.Wait()
	if r := rounds.Load(); r < 1 || r >= n {
		t.Fatalf("%d sync rounds for %d concurrent Updates, want between 1 and %d", r, n, n-1)
	}
	t.Logf("%d concurrent Updates, %d sync rounds", n, rounds.Load())
	err = s.View(ctx, func(tx store.Txn) error {
		for i := range n {
			if _, err := tx.Get(fmt.Sprintf("k/%02d", i)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestVolatileUpdatesDoNotWaitForSync: an Update under store.Volatile
// returns while a sync round is stuck, is visible at once, and the next
// synced Update waits for a round that covers it.
func TestVolatileUpdatesDoNotWaitForSync(t *testing.T) {
	s, err := Open(DefaultOptions(t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	entered := make(chan struct{}, 1)
	release := make(chan struct{})
	orig := s.group.round
	s.group.round = func() error {
		entered <- struct{}{}
		<-release
		return orig()
	}
	ctx := context.Background()
	synced := make(chan error, 1)
	go func() {
		synced <- s.Update(ctx, func(tx store.Txn) error { return tx.Set("synced", []byte("v")) })
	}()
	<-entered // the synced Update's round is stuck
	if err := s.Update(store.Volatile(ctx), func(tx store.Txn) error { return tx.Set("volatile", []byte("v")) }); err != nil {
		t.Fatal(err)
	}
	err = s.View(ctx, func(tx store.Txn) error { _, err := tx.Get("volatile"); return err })
	if err != nil {
		t.Fatalf("a volatile write is not visible once its Update returned: %v", err)
	}
	select {
	case err := <-synced:
		t.Fatalf("a synced Update returned while its sync round was stuck (%v)", err)
	default:
	}
	close(release)
	if err := <-synced; err != nil {
		t.Fatal(err)
	}
}

// TestSyncCoversFilledMemtables: once writes fill a memtable, Badger moves
// on to a new log and syncs only that one; a round syncs the filled one's
// log too, once.
func TestSyncCoversFilledMemtables(t *testing.T) {
	s, err := Open(DefaultOptions(t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	value := []byte(strings.Repeat("x", 64<<10))
	var synced int
	for i := 0; synced == 0; i++ {
		if i == 500 { // 32 MB: eight memtables of 4 MB
			t.Fatal("no filled memtable log was synced after 32 MB of writes")
		}
		if err := s.Update(ctx, func(tx store.Txn) error { return tx.Set(fmt.Sprintf("big/%03d", i), value) }); err != nil {
			t.Fatal(err)
		}
		synced = len(s.syncedMem)
	}
}

func ignoreNotFound(err error) error {
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	return err
}
