// Package storetest is a conformance test suite for store.Store
// implementations: every backend runs the same tests, so the portal logic
// can rely on the semantics documented in package store whichever backend
// holds its state.
package storetest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/caddyportal/caddyportal/caddyportal/store"
)

// Sweeper is implemented by stores that can delete expired keys on demand.
// The suite requires it to check that expired keys are really reclaimed.
type Sweeper interface {
	// Sweep deletes the keys whose expiry instant has passed and returns how
	// many it deleted.
	Sweep(ctx context.Context) (int, error)
}

// OpenFunc opens a fresh, empty store whose expiry clock is now. The store
// must implement Sweeper, its background sweeper must not run during the
// test (the suite sweeps explicitly and counts), and OpenFunc should
// register the store's Close with t.Cleanup; the suite may Close it too.
type OpenFunc func(t *testing.T, now func() time.Time) store.Store

// Opened is the end of a backend's test helper that opens a store: it
// fails t when the open failed (err), and otherwise has t's cleanup close
// s and fail t if that Close fails. It returns s.
func Opened[S store.Store](t testing.TB, s S, err error) S {
	t.Helper()
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

// Clock is a settable clock for expiry tests. It is safe for concurrent use.
type Clock struct {
	mu sync.Mutex
	t  time.Time
}

// NewClock returns a Clock showing t.
func NewClock(t time.Time) *Clock { return &Clock{t: t} }

// Now returns the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

// Set moves the clock to t, forwards or backwards.
func (c *Clock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}

// Advance moves the clock forward by d.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// Run runs the conformance suite against stores made by open.
func Run(t *testing.T, open OpenFunc) {
	tests := []struct {
		name string
		fn   func(t *testing.T, open OpenFunc)
	}{
		{"GetSetDelete", testGetSetDelete},
		{"ValuesAreCopies", testValuesAreCopies},
		{"ScanPrefixOrder", testScanPrefixOrder},
		{"ScanStopsOnError", testScanStopsOnError},
		{"ScanHidesReserved", testScanHidesReserved},
		{"ReservedKeysRejected", testReservedKeysRejected},
		{"EmptyKeyRejected", testEmptyKeyRejected},
		{"ViewIsReadOnly", testViewIsReadOnly},
		{"UpdateRollback", testUpdateRollback},
		{"UpdateSeesOwnWrites", testUpdateSeesOwnWrites},
		{"ScanSeesOwnWrites", testScanSeesOwnWrites},
		{"CanceledContext", testCanceledContext},
		{"ConcurrentIncrements", testConcurrentIncrements},
		{"ExpiryExact", testExpiryExact},
		{"ExpiryScan", testExpiryScan},
		{"SweepRemovesExpired", testSweepRemovesExpired},
		{"SetClearsExpiry", testSetClearsExpiry},
		{"SetClearsExpiryInOneTxn", testSetClearsExpiryInOneTxn},
		{"ReexpireMovesExpiry", testReexpireMovesExpiry},
		{"DeleteExpiring", testDeleteExpiring},
		{"UseAfterClose", testUseAfterClose},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, open) })
	}
}

// base is the suite's start time: an hour ahead of the wall clock, so a
// backend whose own TTL follows the wall clock (Badger) never hides a key
// before the injected clock says it has expired. The odd nanoseconds make
// sure expiry is not rounded to seconds.
func base() time.Time {
	return time.Now().Add(time.Hour).Truncate(time.Second).Add(123456789 * time.Nanosecond)
}

func openClocked(t *testing.T, open OpenFunc) (store.Store, *Clock) {
	t.Helper()
	c := NewClock(base())
	return open(t, c.Now), c
}

func update(t testing.TB, s store.Store, fn func(tx store.Txn) error) {
	t.Helper()
	if err := s.Update(context.Background(), fn); err != nil {
		t.Fatalf("Update: %v", err)
	}
}

// Set writes the pairs key, value, ... in one transaction, failing t on
// an error.
func Set(t testing.TB, s store.Store, kv ...string) {
	t.Helper()
	update(t, s, func(tx store.Txn) error {
		for i := 0; i+1 < len(kv); i += 2 {
			if err := tx.Set(kv[i], []byte(kv[i+1])); err != nil {
				return err
			}
		}
		return nil
	})
}

// Get returns key's value, or ok false for store.ErrNotFound, failing t
// on any other error.
func Get(t testing.TB, s store.Store, key string) (value string, ok bool) {
	t.Helper()
	err := s.View(context.Background(), func(tx store.Txn) error {
		v, err := tx.Get(key)
		if errors.Is(err, store.ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		value, ok = string(v), true
		return nil
	})
	if err != nil {
		t.Fatalf("View Get %q: %v", key, err)
	}
	return value, ok
}

func wantValue(t *testing.T, s store.Store, key, want string) {
	t.Helper()
	got, ok := Get(t, s, key)
	if !ok {
		t.Fatalf("Get %q: not found, want %q", key, want)
	}
	if got != want {
		t.Fatalf("Get %q = %q, want %q", key, got, want)
	}
}

func wantMissing(t *testing.T, s store.Store, key string) {
	t.Helper()
	if got, ok := Get(t, s, key); ok {
		t.Fatalf("Get %q = %q, want not found", key, got)
	}
}

// Keys returns the keys Scan(prefix) visits, in its order, failing t on
// an error.
func Keys(t testing.TB, s store.Store, prefix string) []string {
	t.Helper()
	var keys []string
	err := s.View(context.Background(), func(tx store.Txn) error {
		return tx.Scan(prefix, func(k string, _ []byte) error {
			keys = append(keys, k)
			return nil
		})
	})
	if err != nil {
		t.Fatalf("Scan %q: %v", prefix, err)
	}
	return keys
}

// scan returns the keys and values Scan(prefix) visits, as "k=v".
func scan(t *testing.T, s store.Store, prefix string) []string {
	t.Helper()
	var got []string
	err := s.View(context.Background(), func(tx store.Txn) error {
		return tx.Scan(prefix, func(k string, v []byte) error {
			got = append(got, k+"="+string(v))
			return nil
		})
	})
	if err != nil {
		t.Fatalf("Scan %q: %v", prefix, err)
	}
	return got
}

func sweep(t *testing.T, s store.Store) int {
	t.Helper()
	sw, ok := s.(Sweeper)
	if !ok {
		t.Fatalf("%T does not implement storetest.Sweeper", s)
	}
	n, err := sw.Sweep(context.Background())
	if err != nil {
		t.Fatalf("Sweep: %v", err)
	}
	return n
}

func testGetSetDelete(t *testing.T, open OpenFunc) {
	s, _ := openClocked(t, open)
	wantMissing(t, s, "a")
	Set(t, s, "a", "1", "b", "")
	wantValue(t, s, "a", "1")
	wantValue(t, s, "b", "") // an empty value is a value, not a missing key
	Set(t, s, "a", "2")
	wantValue(t, s, "a", "2")
	update(t, s, func(tx store.Txn) error { return tx.Delete("a") })
	wantMissing(t, s, "a")
	update(t, s, func(tx store.Txn) error { return tx.Delete("never-existed") })

	err := s.View(context.Background(), func(tx store.Txn) error {
		_, err := tx.Get("a")
		return err
	})
	if !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Get of deleted key: err = %v, want store.ErrNotFound", err)
	}
}

func testValuesAreCopies(t *testing.T, open OpenFunc) {
	s, _ := openClocked(t, open)
	buf := []byte("orig")
	update(t, s, func(tx store.Txn) error {
		err := tx.Set("k", buf)
		buf[0] = 'X' // callers may reuse a buffer after Set
		return err
	})
	wantValue(t, s, "k", "orig")
	err := s.View(context.Background(), func(tx store.Txn) error {
		v, err := tx.Get("k")
		if err != nil {
			return err
		}
		v[0] = 'Y'
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	wantValue(t, s, "k", "orig")
}

func testScanPrefixOrder(t *testing.T, open OpenFunc) {
	s, _ := openClocked(t, open)
	// Written out of order, with neighbours on both sides of the prefix.
	Set(t, s, "p/c", "3", "o/z", "x", "p/a", "1", "p", "x", "q/a", "x", "p/b/1", "2", "p0", "x", "p/", "0")
	got := scan(t, s, "p/")
	want := []string{"p/=0", "p/a=1", "p/b/1=2", "p/c=3"}
	if !slices.Equal(got, want) {
		t.Fatalf("Scan(p/) = %q, want %q", got, want)
	}
	if got := scan(t, s, "nothing/"); got != nil {
		t.Fatalf("Scan(nothing/) = %q, want none", got)
	}
	// Scan inside Update sees the transaction's own pending writes.
	err := s.Update(context.Background(), func(tx store.Txn) error {
		if err := tx.Set("p/bb", []byte("x")); err != nil {
			return err
		}
		if err := tx.Delete("p/a"); err != nil {
			return err
		}
		var keys []string
		if err := tx.Scan("p/", func(k string, _ []byte) error {
			keys = append(keys, k)
			return nil
		}); err != nil {
			return err
		}
		if want := []string{"p/", "p/b/1", "p/bb", "p/c"}; !slices.Equal(keys, want) {
			return fmt.Errorf("Scan in Update = %q, want %q", keys, want)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func testScanStopsOnError(t *testing.T, open OpenFunc) {
	s, _ := openClocked(t, open)
	Set(t, s, "k/1", "", "k/2", "", "k/3", "", "k/4", "")
	errStop := errors.New("stop")
	var seen []string
	err := s.View(context.Background(), func(tx store.Txn) error {
		return tx.Scan("k/", func(k string, _ []byte) error {
			seen = append(seen, k)
			if len(seen) == 2 {
				return errStop
			}
			return nil
		})
	})
	if !errors.Is(err, errStop) {
		t.Fatalf("View = %v, want the error returned by the Scan callback", err)
	}
	if want := []string{"k/1", "k/2"}; !slices.Equal(seen, want) {
		t.Fatalf("Scan visited %q, want %q", seen, want)
	}
}

func testScanHidesReserved(t *testing.T, open OpenFunc) {
	s, c := openClocked(t, open)
	// An expiring key makes backends that keep an expiry index write
	// reserved keys; "\x7f" and "é" sort after "~" and must still be seen.
	update(t, s, func(tx store.Txn) error {
		for _, k := range []string{"a", "\x7f", "é", "}"} {
			if err := tx.Set(k, []byte("v")); err != nil {
				return err
			}
		}
		return tx.SetExpiring("e", []byte("v"), c.Now().Add(time.Minute))
	})
	got := scan(t, s, "")
	want := []string{"a=v", "e=v", "}=v", "\x7f=v", "é=v"}
	if !slices.Equal(got, want) {
		t.Fatalf("Scan(\"\") = %q, want %q", got, want)
	}
	if got := scan(t, s, "~"); got != nil {
		t.Fatalf("Scan(~) = %q, want none", got)
	}
}

func testReservedKeysRejected(t *testing.T, open OpenFunc) {
	s, c := openClocked(t, open)
	writes := []struct {
		name string
		fn   func(tx store.Txn) error
	}{
		{"Set", func(tx store.Txn) error { return tx.Set("~x", []byte("v")) }},
		{"SetExpiring", func(tx store.Txn) error { return tx.SetExpiring("~x", []byte("v"), c.Now().Add(time.Hour)) }},
		{"Delete", func(tx store.Txn) error { return tx.Delete("~x") }},
	}
	for _, w := range writes {
		if err := s.Update(context.Background(), w.fn); !errors.Is(err, store.ErrReservedKey) {
			t.Errorf("%s of a reserved key: %v, want store.ErrReservedKey", w.name, err)
		}
	}
	wantMissing(t, s, "~x")
	if got := scan(t, s, ""); got != nil {
		t.Fatalf("Scan(\"\") after rejected writes = %q, want none", got)
	}
}

// testEmptyKeyRejected: every backend refuses to write the empty key (etcd
// did, Badger stored it), so code tested on one works on the other.
func testEmptyKeyRejected(t *testing.T, open OpenFunc) {
	s, c := openClocked(t, open)
	writes := []struct {
		name string
		fn   func(tx store.Txn) error
	}{
		{"Set", func(tx store.Txn) error { return tx.Set("", []byte("v")) }},
		{"SetExpiring", func(tx store.Txn) error { return tx.SetExpiring("", []byte("v"), c.Now().Add(time.Hour)) }},
		{"Delete", func(tx store.Txn) error { return tx.Delete("") }},
	}
	for _, w := range writes {
		if err := s.Update(context.Background(), w.fn); !errors.Is(err, store.ErrEmptyKey) {
			t.Errorf("%s of the empty key: %v, want store.ErrEmptyKey", w.name, err)
		}
	}
	if got := scan(t, s, ""); got != nil {
		t.Fatalf("Scan(\"\") after rejected writes = %q, want none", got)
	}
}

func testViewIsReadOnly(t *testing.T, open OpenFunc) {
	s, c := openClocked(t, open)
	Set(t, s, "k", "v")
	writes := []struct {
		name string
		fn   func(tx store.Txn) error
	}{
		{"Set", func(tx store.Txn) error { return tx.Set("n", []byte("v")) }},
		{"SetExpiring", func(tx store.Txn) error { return tx.SetExpiring("n", []byte("v"), c.Now().Add(time.Hour)) }},
		{"Delete", func(tx store.Txn) error { return tx.Delete("k") }},
	}
	for _, w := range writes {
		var inner error
		err := s.View(context.Background(), func(tx store.Txn) error {
			inner = w.fn(tx)
			return nil
		})
		if err != nil {
			t.Fatalf("View: %v", err)
		}
		if !errors.Is(inner, store.ErrReadOnly) {
			t.Errorf("%s in View: %v, want store.ErrReadOnly", w.name, inner)
		}
	}
	wantMissing(t, s, "n")
	wantValue(t, s, "k", "v")
}

func testUpdateRollback(t *testing.T, open OpenFunc) {
	s, _ := openClocked(t, open)
	Set(t, s, "keep", "1", "gone", "1")
	errBoom := errors.New("boom")
	calls := 0
	err := s.Update(context.Background(), func(tx store.Txn) error {
		calls++
		for _, k := range []string{"a", "b", "keep"} {
			if err := tx.Set(k, []byte("new")); err != nil {
				return err
			}
		}
		if err := tx.Delete("gone"); err != nil {
			return err
		}
		return errBoom
	})
	if !errors.Is(err, errBoom) {
		t.Fatalf("Update = %v, want fn's error", err)
	}
	if calls != 1 {
		t.Fatalf("fn ran %d times after returning an error, want 1", calls)
	}
	wantMissing(t, s, "a")
	wantMissing(t, s, "b")
	wantValue(t, s, "keep", "1")
	wantValue(t, s, "gone", "1")
}

func testUpdateSeesOwnWrites(t *testing.T, open OpenFunc) {
	s, _ := openClocked(t, open)
	update(t, s, func(tx store.Txn) error {
		if err := tx.Set("k", []byte("v")); err != nil {
			return err
		}
		v, err := tx.Get("k")
		if err != nil {
			return fmt.Errorf("Get after Set in the same Update: %w", err)
		}
		if string(v) != "v" {
			return fmt.Errorf("Get after Set = %q, want v", v)
		}
		if err := tx.Delete("k"); err != nil {
			return err
		}
		if _, err := tx.Get("k"); !errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("Get after Delete: err = %v, want store.ErrNotFound", err)
		}
		return nil
	})
}

// testScanSeesOwnWrites checks that Scan in an Update merges the
// transaction's own writes with what is stored: new keys in order, its
// values over stored ones, its deletions hidden, a key written and deleted
// again absent, expiring keys visible until they expire (and their expiry
// bookkeeping never), and values that are copies.
func testScanSeesOwnWrites(t *testing.T, open OpenFunc) {
	s, clock := openClocked(t, open)
	Set(t, s, "a/1", "v1", "a/3", "v3", "a/5", "v5", "b/x", "bx")
	var got, all []string
	update(t, s, func(tx store.Txn) error {
		for _, kv := range [][2]string{{"a/2", "n2"}, {"a/3", "n3"}, {"a/7", "n7"}, {"a/0", "n0"}} {
			if err := tx.Set(kv[0], []byte(kv[1])); err != nil {
				return err
			}
		}
		if err := tx.SetExpiring("a/6", []byte("n6"), clock.Now().Add(time.Minute)); err != nil {
			return err
		}
		if err := tx.SetExpiring("a/8", []byte("n8"), clock.Now().Add(time.Nanosecond)); err != nil {
			return err
		}
		for _, k := range []string{"a/5", "a/7"} {
			if err := tx.Delete(k); err != nil {
				return err
			}
		}
		err := tx.Scan("a/", func(k string, v []byte) error {
			got = append(got, k+"="+string(v))
			v[0] = 'X' // must not reach the store
			return nil
		})
		if err != nil {
			return err
		}
		return tx.Scan("", func(k string, v []byte) error {
			all = append(all, k)
			return nil
		})
	})
	want := []string{"a/0=n0", "a/1=v1", "a/2=n2", "a/3=n3", "a/6=n6", "a/8=n8"}
	if !slices.Equal(got, want) {
		t.Errorf("Scan(a/) in the Update = %q, want %q", got, want)
	}
	if wantAll := []string{"a/0", "a/1", "a/2", "a/3", "a/6", "a/8", "b/x"}; !slices.Equal(all, wantAll) {
		t.Errorf("Scan(\"\") in the Update = %q, want %q", all, wantAll)
	}
	if got, want := scan(t, s, "a/"), want; !slices.Equal(got, want) {
		t.Errorf("Scan(a/) after the commit = %q, want %q", got, want)
	}
	clock.Advance(time.Second)
	update(t, s, func(tx store.Txn) error {
		got = got[:0]
		return tx.Scan("a/", func(k string, v []byte) error {
			got = append(got, k)
			return nil
		})
	})
	if want := []string{"a/0", "a/1", "a/2", "a/3", "a/6"}; !slices.Equal(got, want) {
		t.Errorf("Scan(a/) a second later = %q, want %q (a/8 expired)", got, want)
	}
}

func testCanceledContext(t *testing.T, open OpenFunc) {
	s, _ := openClocked(t, open)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	ran := false
	fn := func(tx store.Txn) error { ran = true; return tx.Set("k", []byte("v")) }
	if err := s.Update(ctx, fn); !errors.Is(err, context.Canceled) {
		t.Fatalf("Update with a canceled context = %v, want context.Canceled", err)
	}
	if err := s.View(ctx, func(store.Txn) error { ran = true; return nil }); !errors.Is(err, context.Canceled) {
		t.Fatalf("View with a canceled context = %v, want context.Canceled", err)
	}
	if ran {
		t.Fatal("fn ran with a canceled context")
	}
	wantMissing(t, s, "k")
}

// testConcurrentIncrements is the lost-update test: read-modify-write of one
// counter from many goroutines must count every increment exactly once,
// which needs both conflict detection and retry.
func testConcurrentIncrements(t *testing.T, open OpenFunc) {
	const workers, perWorker = 20, 50
	s, _ := openClocked(t, open)
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range perWorker {
				err := s.Update(context.Background(), func(tx store.Txn) error {
					n := 0
					v, err := tx.Get("counter")
					switch {
					case errors.Is(err, store.ErrNotFound):
					case err != nil:
						return err
					default:
						if n, err = strconv.Atoi(string(v)); err != nil {
							return err
						}
					}
					return tx.Set("counter", []byte(strconv.Itoa(n+1)))
				})
				if err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("Update: %v", err)
	}
	wantValue(t, s, "counter", strconv.Itoa(workers*perWorker))
}

func testExpiryExact(t *testing.T, open OpenFunc) {
	s, c := openClocked(t, open)
	at := c.Now().Add(1500*time.Millisecond + 7*time.Nanosecond)
	update(t, s, func(tx store.Txn) error { return tx.SetExpiring("k", []byte("v"), at) })
	wantValue(t, s, "k", "v")
	c.Set(at.Add(-time.Nanosecond))
	wantValue(t, s, "k", "v")
	c.Set(at)
	wantMissing(t, s, "k")
	c.Set(at.Add(time.Nanosecond))
	wantMissing(t, s, "k")
	// Expired but not yet swept: rewinding the clock shows it again, which
	// the sweep test relies on to tell "hidden" from "deleted".
	c.Set(at.Add(-time.Nanosecond))
	wantValue(t, s, "k", "v")

	// An Update sees the same cut-off as a View.
	c.Set(at)
	update(t, s, func(tx store.Txn) error {
		if _, err := tx.Get("k"); !errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("Get of expired key in Update: err = %v, want store.ErrNotFound", err)
		}
		return nil
	})
}

func testExpiryScan(t *testing.T, open OpenFunc) {
	s, c := openClocked(t, open)
	now := c.Now()
	update(t, s, func(tx store.Txn) error {
		if err := tx.Set("s/a", []byte("plain")); err != nil {
			return err
		}
		if err := tx.SetExpiring("s/b", []byte("soon"), now.Add(100*time.Millisecond)); err != nil {
			return err
		}
		return tx.SetExpiring("s/c", []byte("later"), now.Add(time.Hour))
	})
	want := []string{"s/a=plain", "s/b=soon", "s/c=later"}
	if got := scan(t, s, "s/"); !slices.Equal(got, want) {
		t.Fatalf("Scan before expiry = %q, want %q", got, want)
	}
	c.Set(now.Add(100 * time.Millisecond))
	want = []string{"s/a=plain", "s/c=later"}
	if got := scan(t, s, "s/"); !slices.Equal(got, want) {
		t.Fatalf("Scan after s/b expired = %q, want %q", got, want)
	}
}

func testSweepRemovesExpired(t *testing.T, open OpenFunc) {
	s, c := openClocked(t, open)
	now := c.Now()
	at := now.Add(250 * time.Millisecond)
	update(t, s, func(tx store.Txn) error {
		if err := tx.Set("plain", []byte("v")); err != nil {
			return err
		}
		for i := range 3 {
			if err := tx.SetExpiring(fmt.Sprintf("due/%d", i), []byte("v"), at); err != nil {
				return err
			}
		}
		return tx.SetExpiring("later", []byte("v"), now.Add(time.Hour))
	})
	if n := sweep(t, s); n != 0 {
		t.Fatalf("Sweep before expiry deleted %d keys, want 0", n)
	}
	c.Set(at)
	if n := sweep(t, s); n != 3 {
		t.Fatalf("Sweep deleted %d keys, want 3", n)
	}
	if n := sweep(t, s); n != 0 {
		t.Fatalf("second Sweep deleted %d keys, want 0", n)
	}
	// Rewind: a key that was only hidden would reappear; a swept one stays gone.
	c.Set(now)
	for i := range 3 {
		wantMissing(t, s, fmt.Sprintf("due/%d", i))
	}
	wantValue(t, s, "plain", "v")
	wantValue(t, s, "later", "v")
}

func testSetClearsExpiry(t *testing.T, open OpenFunc) {
	s, c := openClocked(t, open)
	now := c.Now()
	at := now.Add(time.Second)
	update(t, s, func(tx store.Txn) error { return tx.SetExpiring("k", []byte("old"), at) })
	Set(t, s, "k", "new")
	c.Set(at.Add(time.Hour))
	wantValue(t, s, "k", "new")
	if n := sweep(t, s); n != 0 {
		t.Fatalf("Sweep deleted %d keys after Set cleared the expiry, want 0", n)
	}
	wantValue(t, s, "k", "new")
}

// testSetClearsExpiryInOneTxn: an expiry set and cleared again within one
// transaction leaves nothing for the sweeper (the sessions service writes a
// new anonymous user as expiring, then plainly once it gets a session).
func testSetClearsExpiryInOneTxn(t *testing.T, open OpenFunc) {
	s, c := openClocked(t, open)
	at := c.Now().Add(time.Second)
	update(t, s, func(tx store.Txn) error {
		if err := tx.SetExpiring("k", []byte("old"), at); err != nil {
			return err
		}
		return tx.Set("k", []byte("new"))
	})
	c.Set(at.Add(time.Hour))
	if n := sweep(t, s); n != 0 {
		t.Fatalf("Sweep deleted %d keys after Set cleared the expiry in the same transaction, want 0", n)
	}
	wantValue(t, s, "k", "new")
}

func testReexpireMovesExpiry(t *testing.T, open OpenFunc) {
	s, c := openClocked(t, open)
	now := c.Now()
	first, second := now.Add(time.Second), now.Add(time.Minute)
	update(t, s, func(tx store.Txn) error { return tx.SetExpiring("k", []byte("v1"), first) })
	update(t, s, func(tx store.Txn) error { return tx.SetExpiring("k", []byte("v2"), second) })
	c.Set(first)
	wantValue(t, s, "k", "v2")
	if n := sweep(t, s); n != 0 {
		t.Fatalf("Sweep at the old expiry deleted %d keys, want 0", n)
	}
	wantValue(t, s, "k", "v2")
	c.Set(second)
	wantMissing(t, s, "k")
	if n := sweep(t, s); n != 1 {
		t.Fatalf("Sweep at the new expiry deleted %d keys, want 1", n)
	}
}

func testDeleteExpiring(t *testing.T, open OpenFunc) {
	s, c := openClocked(t, open)
	at := c.Now().Add(time.Second)
	update(t, s, func(tx store.Txn) error { return tx.SetExpiring("k", []byte("v"), at) })
	update(t, s, func(tx store.Txn) error { return tx.Delete("k") })
	c.Set(at)
	if n := sweep(t, s); n != 0 {
		t.Fatalf("Sweep after Delete deleted %d keys, want 0", n)
	}
	// The key can be written again, without the old expiry.
	Set(t, s, "k", "again")
	wantValue(t, s, "k", "again")
}

func testUseAfterClose(t *testing.T, open OpenFunc) {
	s, _ := openClocked(t, open)
	Set(t, s, "k", "v")
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	ran := false
	if err := s.Update(context.Background(), func(store.Txn) error { ran = true; return nil }); err == nil {
		t.Error("Update after Close: no error")
	}
	if err := s.View(context.Background(), func(store.Txn) error { ran = true; return nil }); err == nil {
		t.Error("View after Close: no error")
	}
	if ran {
		t.Error("fn ran after Close")
	}
}
