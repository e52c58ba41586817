package etcdstore_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/goleak"

	"github.com/caddyportal/caddyportal/caddyportal/store"
	"github.com/caddyportal/caddyportal/caddyportal/store/etcdstore"
	"github.com/caddyportal/caddyportal/caddyportal/store/etcdstore/etcdtest"
	"github.com/caddyportal/caddyportal/caddyportal/store/storetest"
)

func TestMain(m *testing.M) {
	// Close must stop the sweeper, the watches and the client's goroutines.
	goleak.VerifyTestMain(m)
}

// waitFor bounds how long a test waits for something that must happen
// (a watch event). It is a liveness guard that turns a hang into a clear
// failure, not a speed assertion.
const waitFor = 20 * time.Second

// prefixes gives every store of a test binary its own key space, so tests
// can share one etcd server.
var prefixes atomic.Int64

func newPrefix() string { return fmt.Sprintf("/test/%d/", prefixes.Add(1)) }

// open opens a store on srv that the test closes on cleanup. The background
// sweeper is off unless opts sets an interval.
func open(t testing.TB, srv *etcdtest.Server, opts etcdstore.Options) *etcdstore.Store {
	t.Helper()
	opts.Endpoints = srv.Endpoints()
	if opts.Prefix == "" {
		opts.Prefix = newPrefix()
	}
	if opts.SweepInterval == 0 {
		opts.SweepInterval = -1
	}
	s, err := etcdstore.Open(context.Background(), opts)
	return storetest.Opened(t, s, err)
}

func TestConformance(t *testing.T) {
	srv := etcdtest.Start(t)
	storetest.Run(t, func(t *testing.T, now func() time.Time) store.Store {
		return open(t, srv, etcdstore.Options{Now: now})
	})
}

// increment adds one to the decimal counter at key.
func increment(s store.Store, key string) error {
	return s.Update(context.Background(), func(tx store.Txn) error {
		n := 0
		v, err := tx.Get(key)
		switch {
		case errors.Is(err, store.ErrNotFound):
		case err != nil:
			return err
		default:
			if n, err = strconv.Atoi(string(v)); err != nil {
				return err
			}
		}
		return tx.Set(key, []byte(strconv.Itoa(n+1)))
	})
}

// TestReplicasConcurrentIncrements is the lost-update test across two
// replicas: two stores on one etcd, each with many goroutines incrementing
// one counter. Only etcd's compare-and-swap can make the total exact.
func TestReplicasConcurrentIncrements(t *testing.T) {
	const perStore, perWorker = 6, 20
	srv := etcdtest.Start(t)
	prefix := newPrefix()
	replicas := []*etcdstore.Store{
		open(t, srv, etcdstore.Options{Prefix: prefix}),
		open(t, srv, etcdstore.Options{Prefix: prefix}),
	}
	var wg sync.WaitGroup
	errs := make(chan error, 2*perStore)
	for _, s := range replicas {
		for range perStore {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range perWorker {
					if err := increment(s, "counter"); err != nil {
						errs <- err
						return
					}
				}
			}()
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("increment: %v", err)
	}
	want := strconv.Itoa(len(replicas) * perStore * perWorker)
	for i, s := range replicas {
		if got, _ := storetest.Get(t, s, "counter"); got != want {
			t.Errorf("replica %d reads counter = %q, want %s", i, got, want)
		}
	}
}

// TestConflictRetriesOnChangedRead checks the compare set directly: a key
// read by an attempt and changed by another replica before the commit makes
// the attempt run again, and the commit then builds on the new value.
func TestConflictRetriesOnChangedRead(t *testing.T) {
	srv := etcdtest.Start(t)
	prefix := newPrefix()
	a := open(t, srv, etcdstore.Options{Prefix: prefix})
	b := open(t, srv, etcdstore.Options{Prefix: prefix})
	storetest.Set(t, a, "k", "1", "p/1", "x", "p/2", "x")

	tests := []struct {
		name      string
		read      func(tx store.Txn) error
		interfere func() error
	}{
		{"changed Get", func(tx store.Txn) error { _, err := tx.Get("k"); return err },
			func() error { return increment(b, "k") }},
		{"created after missing Get", func(tx store.Txn) error {
			if _, err := tx.Get("new"); err != nil && !errors.Is(err, store.ErrNotFound) {
				return err
			}
			return nil
		}, func() error {
			return b.Update(context.Background(), func(tx store.Txn) error { return tx.Set("new", nil) })
		}},
		{"deleted scanned key", func(tx store.Txn) error {
			return tx.Scan("p/", func(string, []byte) error { return nil })
		}, func() error {
			return b.Update(context.Background(), func(tx store.Txn) error { return tx.Delete("p/2") })
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			calls := 0
			err := a.Update(context.Background(), func(tx store.Txn) error {
				calls++
				if err := tc.read(tx); err != nil {
					return err
				}
				if calls == 1 {
					if err := tc.interfere(); err != nil {
						return fmt.Errorf("interfering write: %w", err)
					}
				}
				return tx.Set("out/"+tc.name, []byte("done"))
			})
			if err != nil {
				t.Fatalf("Update: %v", err)
			}
			// Twice as a rule (a conflict, then a clean retry); more when
			// the mirror brought the interfering write later than the
			// store's short catch-up wait (a busy machine).
			if calls < 2 {
				t.Fatalf("fn ran %d times, want at least 2 (a conflict, then a retry)", calls)
			}
		})
	}
}

// TestBlindWriteDoesNotConflict: a transaction that only writes has nothing
// to compare, so another replica's write to the same key does not make it
// retry (last writer wins, as in Badger).
func TestBlindWriteDoesNotConflict(t *testing.T) {
	srv := etcdtest.Start(t)
	prefix := newPrefix()
	a := open(t, srv, etcdstore.Options{Prefix: prefix})
	b := open(t, srv, etcdstore.Options{Prefix: prefix})
	calls := 0
	err := a.Update(context.Background(), func(tx store.Txn) error {
		calls++
		if err := tx.Set("k", []byte("a")); err != nil {
			return err
		}
		storetest.Set(t, b, "k", "b")
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if calls != 1 {
		t.Fatalf("fn ran %d times, want 1", calls)
	}
	if got, _ := storetest.Get(t, b, "k"); got != "a" {
		t.Fatalf("k = %q, want the later commit's a", got)
	}
}

// TestMaxTxnOpsFallback runs etcd with a small --max-txn-ops: a scan of
// more keys than that must still commit (range compares instead of one per
// key), still detect a key inserted under the scanned prefix, and a
// transaction too large anyway must fail with ErrTxnTooLarge.
func TestMaxTxnOpsFallback(t *testing.T) {
	const limit = 8
	srv := etcdtest.Start(t, "--max-txn-ops", strconv.Itoa(limit))
	prefix := newPrefix()
	a := open(t, srv, etcdstore.Options{Prefix: prefix, MaxTxnOps: limit})
	b := open(t, srv, etcdstore.Options{Prefix: prefix, MaxTxnOps: limit})
	for i := range 20 {
		storetest.Set(t, a, fmt.Sprintf("p/%02d", i), "x")
	}
	storetest.Set(t, a, "counter", "0")

	calls := 0
	err := a.Update(context.Background(), func(tx store.Txn) error {
		calls++
		n := 0
		if err := tx.Scan("p/", func(string, []byte) error { n++; return nil }); err != nil {
			return err
		}
		if _, err := tx.Get("counter"); err != nil {
			return err
		}
		if calls == 1 {
			storetest.Set(t, b, "p/99", "inserted")
		}
		return tx.Set("count", []byte(strconv.Itoa(n)))
	})
	if err != nil {
		t.Fatalf("Update scanning more keys than MaxTxnOps: %v", err)
	}
	if calls < 2 {
		t.Fatalf("fn ran %d times, want at least 2: the range compare must catch the inserted key", calls)
	}
	if got, _ := storetest.Get(t, a, "count"); got != "21" {
		t.Fatalf("count = %q, want 21", got)
	}

	// At the limit: as many Get compares and as many writes as etcd takes
	// (16 in all, but etcd counts each list on its own).
	err = a.Update(context.Background(), func(tx store.Txn) error {
		for i := range limit {
			if _, err := tx.Get(fmt.Sprintf("p/%02d", i)); err != nil {
				return err
			}
			if err := tx.Set(fmt.Sprintf("edge/%d", i), nil); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("Update with %d Gets and %d writes: %v", limit, limit, err)
	}

	err = a.Update(context.Background(), func(tx store.Txn) error {
		for i := range limit + 1 {
			if err := tx.Set(fmt.Sprintf("big/%d", i), nil); err != nil {
				return err
			}
		}
		return nil
	})
	if !errors.Is(err, etcdstore.ErrTxnTooLarge) {
		t.Fatalf("Update with %d writes = %v, want ErrTxnTooLarge", limit+1, err)
	}
	if keys := storetest.Keys(t, a, "big/"); keys != nil {
		t.Fatalf("a rejected transaction left %q", keys)
	}
}

// TestUnavailableAndRecovery stops etcd under an open store: calls fail
// with store.ErrUnavailable (bounded by RequestTimeout, not by the caller's
// much longer deadline), and after a restart the same store and the same
// watch work again without being reopened.
func TestUnavailableAndRecovery(t *testing.T) {
	srv := etcdtest.Start(t)
	// 2 s, not less: calls to the live etcd before the outage must finish
	// within it on a loaded machine too.
	s := open(t, srv, etcdstore.Options{RequestTimeout: 2 * time.Second})
	storetest.Set(t, s, "k", "1")

	events := make(chan string, 64)
	wctx, stopWatch := context.WithCancel(context.Background())
	watchDone := make(chan struct{})
	go func() { defer close(watchDone); s.Watch(wctx, "w/", func(k string) { events <- k }) }()
	t.Cleanup(func() {
		stopWatch()
		<-watchDone
	})
	expectEvents(t, events, "")

	srv.Stop()
	// The caller's deadline is far away: an ErrUnavailable must come from
	// the store's own per-request bound.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	err := s.Update(ctx, func(tx store.Txn) error {
		_, err := tx.Get("k")
		if err != nil {
			return err
		}
		return tx.Set("k", []byte("2"))
	})
	if !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("Update with etcd down = %v, want store.ErrUnavailable", err)
	}
	err = s.Update(ctx, func(tx store.Txn) error { return tx.Set("blind", []byte("x")) })
	if !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("blind Update with etcd down = %v, want store.ErrUnavailable", err)
	}
	err = s.View(ctx, func(tx store.Txn) error { _, err := tx.Get("k"); return err })
	if !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("View with etcd down = %v, want store.ErrUnavailable", err)
	}
	if _, err := s.Sweep(ctx); !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("Sweep with etcd down = %v, want store.ErrUnavailable", err)
	}
	// The caller's own cancellation still wins over the unavailability.
	canceled, cancelNow := context.WithCancel(context.Background())
	cancelNow()
	if err := s.View(canceled, func(store.Txn) error { return nil }); !errors.Is(err, context.Canceled) {
		t.Fatalf("View with a canceled context = %v, want context.Canceled", err)
	}

	srv.Restart()
	// The client reconnects by itself; the first calls after the restart
	// may still see the old connection fail, so allow a few.
	var lastErr error
	for range 40 {
		if lastErr = increment(s, "k"); lastErr == nil {
			break
		}
		if !errors.Is(lastErr, store.ErrUnavailable) {
			t.Fatalf("increment after restart: %v", lastErr)
		}
	}
	if lastErr != nil {
		t.Fatalf("store did not recover after etcd came back: %v", lastErr)
	}
	if got, _ := storetest.Get(t, s, "k"); got != "2" {
		t.Fatalf("k = %q after recovery, want 2 (the failed Update must not have applied)", got)
	}
	storetest.Set(t, s, "w/after", "x")
	expectEvents(t, events, "w/after")
}

func TestOpenUnreachable(t *testing.T) {
	addr := "127.0.0.1:1" // nothing listens on port 1 without root
	_, err := etcdstore.Open(context.Background(), etcdstore.Options{
		Endpoints:   []string{addr},
		DialTimeout: 300 * time.Millisecond,
	})
	if err == nil {
		t.Fatal("Open with no etcd: no error")
	}
	if !errors.Is(err, store.ErrUnavailable) {
		t.Errorf("Open error %v does not wrap store.ErrUnavailable", err)
	}
	if !strings.Contains(err.Error(), addr) {
		t.Errorf("Open error %q does not name the endpoint %s", err, addr)
	}
}

func TestOpenOptionErrors(t *testing.T) {
	dir := t.TempDir()
	notPEM := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(notPEM, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		opts etcdstore.Options
		want string
	}{
		{"no endpoints", etcdstore.Options{}, "endpoint"},
		{"cert without key", etcdstore.Options{Endpoints: []string{"127.0.0.1:1"}, CertFile: "c.pem"}, "key"},
		{"missing CA file", etcdstore.Options{Endpoints: []string{"127.0.0.1:1"}, CAFile: filepath.Join(dir, "none")}, "CA file"},
		{"CA file without PEM", etcdstore.Options{Endpoints: []string{"127.0.0.1:1"}, CAFile: notPEM}, "no PEM"},
		{"missing client cert", etcdstore.Options{Endpoints: []string{"127.0.0.1:1"},
			CertFile: filepath.Join(dir, "c"), KeyFile: filepath.Join(dir, "k")}, "client certificate"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, err := etcdstore.Open(context.Background(), tc.opts)
			if err == nil {
				s.Close()
				t.Fatal("Open: no error")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Open error %q does not mention %q", err, tc.want)
			}
		})
	}
}

// expectEvents reads len(want) watch events and compares them in order.
func expectEvents(t *testing.T, events <-chan string, want ...string) {
	t.Helper()
	var got []string
	timeout := time.After(waitFor)
	for len(got) < len(want) {
		select {
		case k := <-events:
			got = append(got, k)
		case <-timeout:
			t.Fatalf("watch delivered %q, want %q (gave up waiting)", got, want)
		}
	}
	if !slices.Equal(got, want) {
		t.Fatalf("watch delivered %q, want %q", got, want)
	}
}

// TestWatchOtherReplica: replica A watches, replica B writes. A sees B's
// changes under the watched prefix only, in order, with the store prefix
// stripped, and never the reserved expiry index.
func TestWatchOtherReplica(t *testing.T) {
	srv := etcdtest.Start(t)
	prefix := newPrefix()
	clock := storetest.NewClock(time.Now())
	a := open(t, srv, etcdstore.Options{Prefix: prefix, Now: clock.Now})
	b := open(t, srv, etcdstore.Options{Prefix: prefix, Now: clock.Now})
	// Another portal's keys under a different prefix must not show.
	other := open(t, srv, etcdstore.Options{})

	// watch starts a watch; its done channel closes when Watch returns.
	watch := func(prefix string) (<-chan string, context.CancelFunc, <-chan struct{}) {
		events := make(chan string, 64)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { defer close(done); a.Watch(ctx, prefix, func(k string) { events <- k }) }()
		t.Cleanup(func() { cancel(); <-done })
		return events, cancel, done
	}
	sEvents, stopS, sDone := watch("s/")
	allEvents, _, allDone := watch("")
	expectEvents(t, sEvents, "")
	expectEvents(t, allEvents, "")

	storetest.Set(t, b, "s/1", "v")
	storetest.Set(t, b, "x/1", "v")
	storetest.Set(t, other, "s/1", "v")
	if err := b.Update(context.Background(), func(tx store.Txn) error { return tx.Delete("s/1") }); err != nil {
		t.Fatal(err)
	}
	if err := b.Update(context.Background(), func(tx store.Txn) error {
		return tx.SetExpiring("s/e", []byte("v"), clock.Now().Add(time.Minute))
	}); err != nil {
		t.Fatal(err)
	}
	clock.Advance(time.Minute)
	if n, err := b.Sweep(context.Background()); err != nil || n != 1 {
		t.Fatalf("Sweep = %d, %v; want 1 deleted", n, err)
	}
	storetest.Set(t, b, "s/2", "v")

	expectEvents(t, sEvents, "s/1", "s/1", "s/e", "s/e", "s/2")
	expectEvents(t, allEvents, "s/1", "x/1", "s/1", "s/e", "s/e", "s/2")

	// Canceling ctx ends a watch; closing the store ends the others. The
	// waits are liveness guards: a Watch that never returns fails here.
	stopS()
	waitClosed(t, sDone, "Watch after its context was canceled")
	if err := a.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	waitClosed(t, allDone, "Watch after Close")
	onClosed := make(chan struct{})
	go func() {
		defer close(onClosed)
		a.Watch(context.Background(), "", func(k string) { t.Errorf("Watch on a closed store called fn(%q)", k) })
	}()
	waitClosed(t, onClosed, "Watch on a closed store")
}

// waitClosed fails the test if ch is not closed within waitFor.
func waitClosed(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(waitFor):
		t.Fatalf("%s did not return", what)
	}
}

// TestSweepTwoReplicas: both replicas sweep the same expired keys at once;
// every key is deleted and counted exactly once, a key rewritten after it
// expired survives, and a key not yet due stays.
func TestSweepTwoReplicas(t *testing.T) {
	const n = 60
	srv := etcdtest.Start(t)
	prefix := newPrefix()
	clock := storetest.NewClock(time.Now())
	a := open(t, srv, etcdstore.Options{Prefix: prefix, Now: clock.Now})
	b := open(t, srv, etcdstore.Options{Prefix: prefix, Now: clock.Now})

	start := clock.Now()
	due := start.Add(time.Second)
	err := a.Update(context.Background(), func(tx store.Txn) error {
		for i := range n {
			if err := tx.SetExpiring(fmt.Sprintf("e/%03d", i), []byte("v"), due); err != nil {
				return err
			}
		}
		if err := tx.SetExpiring("rewritten", []byte("old"), due); err != nil {
			return err
		}
		if err := tx.SetExpiring("reexpired", []byte("old"), due); err != nil {
			return err
		}
		return tx.SetExpiring("later", []byte("v"), start.Add(time.Hour))
	})
	if err != nil {
		t.Fatal(err)
	}
	clock.Set(due)
	// Rewritten by the other replica after expiring, before any sweep.
	storetest.Set(t, b, "rewritten", "new")
	if err := b.Update(context.Background(), func(tx store.Txn) error {
		return tx.SetExpiring("reexpired", []byte("new"), start.Add(time.Hour))
	}); err != nil {
		t.Fatal(err)
	}

	var wg sync.WaitGroup
	counts := make([]int, 4)
	errs := make([]error, 4)
	for i, s := range []*etcdstore.Store{a, b, a, b} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			counts[i], errs[i] = s.Sweep(context.Background())
		}()
	}
	wg.Wait()
	total := 0
	for i := range counts {
		if errs[i] != nil {
			t.Fatalf("Sweep: %v", errs[i])
		}
		total += counts[i]
	}
	if total != n {
		t.Fatalf("sweepers deleted %d keys in all (%v), want each of %d once", total, counts, n)
	}
	// Rewind: a key that was only hidden would show again.
	clock.Set(start)
	if keys := storetest.Keys(t, b, "e/"); keys != nil {
		t.Fatalf("expired keys left after sweeping: %q", keys)
	}
	for key, want := range map[string]string{"rewritten": "new", "reexpired": "new", "later": "v"} {
		if got, ok := storetest.Get(t, a, key); !ok || got != want {
			t.Errorf("%s = %q (found %v), want %q", key, got, ok, want)
		}
	}
	// The index is clean: nothing is left for the next sweep at that time.
	clock.Set(due)
	if n, err := a.Sweep(context.Background()); err != nil || n != 0 {
		t.Fatalf("second Sweep = %d, %v; want 0", n, err)
	}
}

// TestBackgroundSweeper: with a SweepInterval the store deletes expired
// keys by itself.
func TestBackgroundSweeper(t *testing.T) {
	srv := etcdtest.Start(t)
	prefix := newPrefix()
	cli := srv.Client(t)
	clock := storetest.NewClock(time.Now())
	s := open(t, srv, etcdstore.Options{Prefix: prefix, Now: clock.Now, SweepInterval: 10 * time.Millisecond})
	if err := s.Update(context.Background(), func(tx store.Txn) error {
		return tx.SetExpiring("gone", []byte("v"), clock.Now().Add(time.Second))
	}); err != nil {
		t.Fatal(err)
	}
	// Watch the raw key for its deletion rather than polling.
	wctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	wch := cli.Watch(wctx, prefix+"gone")
	clock.Advance(time.Second)
	select {
	case resp := <-wch:
		if len(resp.Events) == 0 || resp.Events[0].Type != clientv3.EventTypeDelete {
			t.Fatalf("watch on the expired key got %+v, want its deletion", resp)
		}
	case <-time.After(waitFor):
		t.Fatal("the background sweeper did not delete the expired key")
	}
}

// TestReservedKeysInvisible: the expiry index really lives in etcd under
// the prefix, and neither it nor any other "~" key written behind the
// store's back shows through Get, Scan or Watch.
func TestReservedKeysInvisible(t *testing.T) {
	srv := etcdtest.Start(t)
	prefix := newPrefix()
	cli := srv.Client(t)
	clock := storetest.NewClock(time.Now())
	s := open(t, srv, etcdstore.Options{Prefix: prefix, Now: clock.Now})

	events := make(chan string, 16)
	wctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); s.Watch(wctx, "", func(k string) { events <- k }) }()
	defer func() { cancel(); <-done }()
	expectEvents(t, events, "")

	if err := s.Update(context.Background(), func(tx store.Txn) error {
		return tx.SetExpiring("e", []byte("v"), clock.Now().Add(time.Hour))
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Put(context.Background(), prefix+"~other", "\x00v"); err != nil {
		t.Fatal(err)
	}
	storetest.Set(t, s, "z", "v")

	resp, err := cli.Get(context.Background(), prefix+"~x/", clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil {
		t.Fatal(err)
	}
	if resp.Count != 1 {
		t.Fatalf("expiry index holds %d entries in etcd, want 1", resp.Count)
	}
	if _, ok := storetest.Get(t, s, "~other"); ok {
		t.Error("Get of a reserved key found it")
	}
	if keys := storetest.Keys(t, s, ""); !slices.Equal(keys, []string{"e", "z"}) {
		t.Errorf("Scan(\"\") = %q, want [e z]", keys)
	}
	if keys := storetest.Keys(t, s, "~"); keys != nil {
		t.Errorf("Scan(~) = %q, want none", keys)
	}
	expectEvents(t, events, "e", "z")
	refused := make(chan struct{})
	go func() {
		defer close(refused)
		s.Watch(context.Background(), "~x/", func(k string) { t.Errorf("Watch of a reserved prefix called fn(%q)", k) })
	}()
	waitClosed(t, refused, "Watch of a reserved prefix")
}

// TestScanPagesAndOwnWrites scans more keys than one etcd page holds, with
// the transaction's own writes interleaved, deleted and appended.
func TestScanPagesAndOwnWrites(t *testing.T) {
	const n = 600 // more than two pages
	srv := etcdtest.Start(t)
	s := open(t, srv, etcdstore.Options{})
	for lo := 0; lo < n; lo += 100 {
		err := s.Update(context.Background(), func(tx store.Txn) error {
			for i := lo; i < lo+100; i++ {
				if err := tx.Set(fmt.Sprintf("k/%04d", 2*i), nil); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	var want []string
	for i := range 2*n + 1 {
		if i%2 == 1 || i%10 != 0 {
			want = append(want, fmt.Sprintf("k/%04d", i))
		}
	}
	err := s.View(context.Background(), func(tx store.Txn) error {
		var got []string
		if err := tx.Scan("k/", func(k string, _ []byte) error { got = append(got, k); return nil }); err != nil {
			return err
		}
		if len(got) != n {
			return fmt.Errorf("Scan saw %d keys, want %d", len(got), n)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	err = s.Update(context.Background(), func(tx store.Txn) error {
		for i := range 2*n + 1 {
			var err error
			switch {
			case i%10 == 0:
				err = tx.Delete(fmt.Sprintf("k/%04d", i))
			case i%2 == 1:
				err = tx.Set(fmt.Sprintf("k/%04d", i), nil)
			}
			if err != nil {
				return err
			}
		}
		var got []string
		if err := tx.Scan("k/", func(k string, _ []byte) error { got = append(got, k); return nil }); err != nil {
			return err
		}
		if !slices.Equal(got, want) {
			return fmt.Errorf("Scan in Update saw %d keys, want %d (first difference near %q)", len(got), len(want), firstDiff(got, want))
		}
		return errors.New("rollback")
	})
	if err == nil || err.Error() != "rollback" {
		t.Fatal(err)
	}
}

func firstDiff(a, b []string) string {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return a[i] + " vs " + b[i]
		}
	}
	return "the end"
}

// TestAuth enables etcd authentication: the right credentials work, wrong
// ones fail Open with an error that is not mistaken for an outage.
func TestAuth(t *testing.T) {
	srv := etcdtest.Start(t)
	cli := srv.Client(t)
	ctx := context.Background()
	if _, err := cli.UserAdd(ctx, "root", "rootpw"); err != nil {
		t.Fatal(err)
	}
	if _, err := cli.UserGrantRole(ctx, "root", "root"); err != nil {
		t.Fatal(err)
	}
	if _, err := cli.AuthEnable(ctx); err != nil {
		t.Fatal(err)
	}

	s := open(t, srv, etcdstore.Options{Username: "root", Password: "rootpw"})
	storetest.Set(t, s, "k", "v")
	if got, _ := storetest.Get(t, s, "k"); got != "v" {
		t.Fatalf("k = %q, want v", got)
	}

	bad, err := etcdstore.Open(ctx, etcdstore.Options{
		Endpoints: srv.Endpoints(), Prefix: newPrefix(), Username: "root", Password: "wrong",
		DialTimeout: 2 * time.Second,
	})
	if err == nil {
		bad.Close()
		t.Fatal("Open with a wrong password: no error")
	}
	if errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("Open with a wrong password = %v, which claims etcd is unavailable", err)
	}
	if !strings.Contains(err.Error(), "authentication failed") {
		t.Fatalf("Open with a wrong password = %v, want etcd's authentication error", err)
	}
}
