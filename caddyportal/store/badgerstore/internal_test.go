package badgerstore

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/caddyportal/caddyportal/caddyportal/store"
	"github.com/caddyportal/caddyportal/caddyportal/store/internal/kvcore"
	"github.com/caddyportal/caddyportal/caddyportal/store/storetest"
)

func openMem(t *testing.T, opts Options) *Store {
	t.Helper()
	opts.InMemory = true
	s, err := Open(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// rawKeys lists every key in the database, reserved ones included.
func rawKeys(t *testing.T, s *Store) []string {
	t.Helper()
	var keys []string
	err := s.db.View(func(btx *badger.Txn) error {
		it := btx.NewIterator(badger.DefaultIteratorOptions)
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			keys = append(keys, string(it.Item().Key()))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return keys
}

func countIndex(t *testing.T, s *Store) int {
	t.Helper()
	n := 0
	for _, k := range rawKeys(t, s) {
		if strings.HasPrefix(k, kvcore.IndexPrefix) {
			n++
		}
	}
	return n
}

func update(t *testing.T, s *Store, fn func(tx store.Txn) error) {
	t.Helper()
	if err := s.Update(context.Background(), fn); err != nil {
		t.Fatal(err)
	}
}

func TestBadgerExpiresAtRoundsUp(t *testing.T) {
	tests := []struct {
		nanos int64
		want  uint64
	}{
		{10_000_000_000, 10},
		{10_000_000_001, 11},
		{10_999_999_999, 11},
		{1, 1},
		{0, 1},
		{-5_000_000_000, 1},
	}
	for _, tc := range tests {
		if got := badgerExpiresAt(tc.nanos); got != tc.want {
			t.Errorf("badgerExpiresAt(%d) = %d, want %d", tc.nanos, got, tc.want)
		}
	}

	s := openMem(t, Options{})
	at := time.Now().Add(time.Hour).Truncate(time.Second).Add(time.Millisecond)
	update(t, s, func(tx store.Txn) error { return tx.SetExpiring("k", []byte("v"), at) })
	err := s.db.View(func(btx *badger.Txn) error {
		item, err := btx.Get([]byte("k"))
		if err != nil {
			return err
		}
		if got, want := item.ExpiresAt(), uint64(at.Unix()+1); got != want {
			t.Errorf("Badger ExpiresAt = %d, want %d", got, want)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestDecodeRejectsCorruptValues(t *testing.T) {
	for _, raw := range [][]byte{nil, {0x01, 0, 0}, {0x7f, 'v'}} {
		if _, err := decode(raw); err == nil {
			t.Errorf("decode(%q): no error", raw)
		}
	}
}

// TestIndexEntriesFollowTheKey checks the expiry index never keeps entries
// for keys that no longer expire at that instant.
func TestIndexEntriesFollowTheKey(t *testing.T) {
	s := openMem(t, Options{SweepInterval: -1})
	at := time.Now().Add(time.Hour)
	steps := []struct {
		name string
		fn   func(tx store.Txn) error
		want int
	}{
		{"SetExpiring", func(tx store.Txn) error { return tx.SetExpiring("k", nil, at) }, 1},
		{"SetExpiring again", func(tx store.Txn) error { return tx.SetExpiring("k", nil, at.Add(time.Second)) }, 1},
		{"Set", func(tx store.Txn) error { return tx.Set("k", nil) }, 0},
		{"SetExpiring after Set", func(tx store.Txn) error { return tx.SetExpiring("k", nil, at) }, 1},
		{"Delete", func(tx store.Txn) error { return tx.Delete("k") }, 0},
		{"two keys", func(tx store.Txn) error {
			if err := tx.SetExpiring("a", nil, at); err != nil {
				return err
			}
			return tx.SetExpiring("b", nil, at)
		}, 2},
		// Within one transaction a write replaces what the transaction
		// read or wrote last, not what was stored before it began.
		{"read, then re-expire twice", func(tx store.Txn) error {
			if _, err := tx.Get("a"); err != nil {
				return err
			}
			if err := tx.SetExpiring("a", nil, at.Add(time.Minute)); err != nil {
				return err
			}
			return tx.SetExpiring("a", nil, at.Add(2*time.Minute))
		}, 2},
		{"read missing, expire, delete, expire", func(tx store.Txn) error {
			if _, err := tx.Get("c"); !errors.Is(err, store.ErrNotFound) {
				return fmt.Errorf("Get(c) = %v, want ErrNotFound", err)
			}
			if err := tx.SetExpiring("c", nil, at); err != nil {
				return err
			}
			if err := tx.Delete("c"); err != nil {
				return err
			}
			return tx.SetExpiring("c", nil, at.Add(time.Minute))
		}, 3},
		{"read, then clear the expiry", func(tx store.Txn) error {
			if _, err := tx.Get("b"); err != nil {
				return err
			}
			return tx.Set("b", nil)
		}, 2},
		{"blind writes", func(tx store.Txn) error {
			if err := tx.SetExpiring("b", nil, at); err != nil {
				return err
			}
			if err := tx.SetExpiring("b", nil, at.Add(time.Hour)); err != nil {
				return err
			}
			return tx.Delete("a")
		}, 2},
	}
	for _, st := range steps {
		update(t, s, st.fn)
		if got := countIndex(t, s); got != st.want {
			t.Fatalf("after %s: %d index entries, want %d (keys %q)", st.name, got, st.want, rawKeys(t, s))
		}
	}
}

// TestSweepDropsStaleIndexEntries covers an index entry whose key vanished
// without going through the store (as when Badger's TTL drops it first).
func TestSweepDropsStaleIndexEntries(t *testing.T) {
	clock := storetest.NewClock(time.Now().Add(time.Hour))
	s := openMem(t, Options{SweepInterval: -1, Now: clock.Now})
	at := clock.Now().Add(time.Second)
	update(t, s, func(tx store.Txn) error { return tx.SetExpiring("k", nil, at) })
	if err := s.db.Update(func(btx *badger.Txn) error { return btx.Delete([]byte("k")) }); err != nil {
		t.Fatal(err)
	}
	clock.Set(at)
	n, err := s.Sweep(context.Background())
	if err != nil || n != 0 {
		t.Fatalf("Sweep = %d, %v; want 0 user keys, nil", n, err)
	}
	if keys := rawKeys(t, s); keys != nil {
		t.Fatalf("keys left after sweep: %q", keys)
	}
}

func TestSweepManyBatches(t *testing.T) {
	clock := storetest.NewClock(time.Now().Add(time.Hour))
	s := openMem(t, Options{SweepInterval: -1, Now: clock.Now})
	const n = sweepBatch*2 + 7
	at := clock.Now().Add(time.Second)
	update(t, s, func(tx store.Txn) error {
		for i := range n {
			if err := tx.SetExpiring(fmt.Sprintf("k/%04d", i), nil, at.Add(time.Duration(i))); err != nil {
				return err
			}
		}
		return nil
	})
	clock.Set(at.Add(time.Hour))
	got, err := s.Sweep(context.Background())
	if err != nil || got != n {
		t.Fatalf("Sweep = %d, %v; want %d, nil", got, err, n)
	}
	if keys := rawKeys(t, s); keys != nil {
		t.Fatalf("%d keys left after sweep", len(keys))
	}
}

func TestBackgroundSweeperDeletes(t *testing.T) {
	clock := storetest.NewClock(time.Now().Add(time.Hour))
	s := openMem(t, Options{SweepInterval: time.Millisecond, Now: clock.Now})
	update(t, s, func(tx store.Txn) error { return tx.SetExpiring("k", nil, clock.Now().Add(time.Second)) })
	clock.Set(clock.Now().Add(time.Second))
	// Tolerant wait for the loop; the deadline only bounds a failing run.
	deadline := time.Now().Add(20 * time.Second)
	for rawKeys(t, s) != nil {
		if time.Now().After(deadline) {
			t.Fatalf("background sweeper did not delete the key: %q", rawKeys(t, s))
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestTxnUnusableAfterFn(t *testing.T) {
	s := openMem(t, Options{})
	var kept store.Txn
	update(t, s, func(tx store.Txn) error { kept = tx; return nil })
	if _, err := kept.Get("k"); err == nil {
		t.Error("Get after fn returned: no error")
	}
	if err := kept.Scan("", func(string, []byte) error { return nil }); err == nil {
		t.Error("Scan after fn returned: no error")
	}
	if err := kept.Set("k", nil); err == nil {
		t.Error("Set after fn returned: no error")
	}
}

func TestLoggerAdapter(t *testing.T) {
	core, logs := observer.New(zapcore.DebugLevel)
	l := zapLogger{zap.New(core)}
	l.Infof("compaction %d done\n", 3)
	l.Warningf("careful\n\n")
	l.Errorf("broken: %v", errors.New("x"))
	l.Debugf("detail")
	want := []struct {
		lvl zapcore.Level
		msg string
	}{
		{zapcore.DebugLevel, "compaction 3 done"},
		{zapcore.WarnLevel, "careful"},
		{zapcore.ErrorLevel, "broken: x"},
		{zapcore.DebugLevel, "detail"},
	}
	got := logs.All()
	if len(got) != len(want) {
		t.Fatalf("%d entries, want %d", len(got), len(want))
	}
	for i, w := range want {
		if got[i].Level != w.lvl || got[i].Message != w.msg {
			t.Errorf("entry %d = %v %q, want %v %q", i, got[i].Level, got[i].Message, w.lvl, w.msg)
		}
	}

	// Below the logger's level nothing is written (or formatted).
	core, logs = observer.New(zapcore.InfoLevel)
	zapLogger{zap.New(core)}.Infof("chatty\n")
	if logs.Len() != 0 {
		t.Errorf("Badger Info reached an Info logger: %v", logs.All())
	}
}

func TestBackgroundPanicIsLogged(t *testing.T) {
	core, logs := observer.New(zapcore.ErrorLevel)
	s := openMem(t, Options{Logger: zap.New(core)})
	s.life.Safely("test task", func() { panic("boom") })
	entries := logs.FilterMessage("panic in store background task").All()
	if len(entries) != 1 || entries[0].ContextMap()["task"] != "test task" {
		t.Fatalf("logged %v, want one panic entry for the task", logs.All())
	}
}

// conflictingUpdate returns an Update function that reads k and, before
// committing, has k changed behind its back through Badger directly, so
// every attempt conflicts; calls counts the attempts.
func conflictingUpdate(t *testing.T, s *Store, calls *int, after func()) func(tx store.Txn) error {
	return func(tx store.Txn) error {
		*calls++
		if _, err := tx.Get("k"); err != nil && !errors.Is(err, store.ErrNotFound) {
			return err
		}
		if err := s.db.Update(func(btx *badger.Txn) error {
			return btx.Set([]byte("k"), encode([]byte(fmt.Sprint(*calls)), false, 0))
		}); err != nil {
			return err
		}
		after()
		return tx.Set("k", []byte("outer"))
	}
}

func TestUpdateGivesUpWithErrConflict(t *testing.T) {
	s := openMem(t, Options{})
	calls := 0
	err := s.Update(context.Background(), conflictingUpdate(t, s, &calls, func() {}))
	if !errors.Is(err, store.ErrConflict) {
		t.Fatalf("Update = %v, want store.ErrConflict", err)
	}
	if calls != maxAttempts {
		t.Fatalf("fn ran %d times, want %d", calls, maxAttempts)
	}
}

func TestUpdateRetryStopsOnCancel(t *testing.T) {
	s := openMem(t, Options{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	calls := 0
	err := s.Update(ctx, conflictingUpdate(t, s, &calls, func() {
		if calls == 2 {
			cancel()
		}
	}))
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Update = %v, want context.Canceled", err)
	}
	if calls != 2 {
		t.Fatalf("fn ran %d times, want 2", calls)
	}
}

// TestExclusiveAttemptExcludesWriters checks that once an Update runs
// alone, other Updates wait for it instead of committing under it.
func TestExclusiveAttemptExcludesWriters(t *testing.T) {
	s := openMem(t, Options{})
	calls := 0
	started := make(chan struct{})
	var otherErr error
	otherDone := make(chan struct{})
	err := s.Update(context.Background(), func(tx store.Txn) error {
		calls++
		if _, err := tx.Get("k"); err != nil && !errors.Is(err, store.ErrNotFound) {
			return err
		}
		switch {
		case calls <= exclusiveAfter:
			// Conflict on purpose until the attempt becomes exclusive.
			if err := s.db.Update(func(btx *badger.Txn) error {
				return btx.Set([]byte("k"), encode(nil, false, 0))
			}); err != nil {
				return err
			}
		case calls == exclusiveAfter+1:
			// Now exclusive: a competing Update must not get in before us.
			go func() {
				close(started)
				otherErr = s.Update(context.Background(), func(tx store.Txn) error {
					return tx.Set("k", []byte("other"))
				})
				close(otherDone)
			}()
			<-started
			// With exclusion this wait always times out; without it the
			// other Update would usually commit within it.
			select {
			case <-otherDone:
				return errors.New("another Update committed during the exclusive attempt")
			case <-time.After(100 * time.Millisecond):
			}
		}
		return tx.Set("k", []byte("first"))
	})
	if err != nil {
		t.Fatalf("Update: %v", err)
	}
	<-otherDone
	if otherErr != nil {
		t.Fatalf("other Update: %v", otherErr)
	}
	if calls != exclusiveAfter+1 {
		t.Fatalf("fn ran %d times, want %d", calls, exclusiveAfter+1)
	}
	// The other writer ran after the exclusive attempt committed.
	err = s.View(context.Background(), func(tx store.Txn) error {
		v, err := tx.Get("k")
		if err == nil && string(v) != "other" {
			err = fmt.Errorf("k = %q, want other", v)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}
