package badgerstore_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/caddyportal/caddyportal/caddyportal/store"
	"github.com/caddyportal/caddyportal/caddyportal/store/badgerstore"
	"github.com/caddyportal/caddyportal/caddyportal/store/storetest"
)

func TestMain(m *testing.M) {
	// The crash test re-runs this binary as the process it kills.
	if dir := os.Getenv(crashChildEnv); dir != "" {
		crashChild(dir)
		return
	}
	goleak.VerifyTestMain(m)
}

// open returns a store that the test closes on cleanup. The background
// sweeper is off, as storetest requires.
func open(t *testing.T, opts badgerstore.Options) *badgerstore.Store {
	t.Helper()
	if opts.SweepInterval == 0 {
		opts.SweepInterval = -1
	}
	s, err := badgerstore.Open(opts)
	return storetest.Opened(t, s, err)
}

func TestConformanceInMemory(t *testing.T) {
	storetest.Run(t, func(t *testing.T, now func() time.Time) store.Store {
		return open(t, badgerstore.Options{InMemory: true, Now: now})
	})
}

func TestConformanceOnDisk(t *testing.T) {
	storetest.Run(t, func(t *testing.T, now func() time.Time) store.Store {
		opts := badgerstore.DefaultOptions(t.TempDir())
		opts.Now = now
		return open(t, opts)
	})
}

func TestOpenOptionErrors(t *testing.T) {
	tests := []struct {
		name string
		opts badgerstore.Options
	}{
		{"no dir on disk", badgerstore.Options{}},
		{"dir in memory", badgerstore.Options{InMemory: true, Dir: t.TempDir()}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, err := badgerstore.Open(tc.opts)
			if err == nil {
				s.Close()
				t.Fatal("Open: no error")
			}
		})
	}
}

func TestRestartKeepsData(t *testing.T) {
	dir := t.TempDir()
	clock := storetest.NewClock(time.Now().Add(time.Hour))
	at := clock.Now().Add(1500 * time.Millisecond)
	opts := badgerstore.DefaultOptions(dir)
	opts.Now = clock.Now
	opts.SweepInterval = -1

	s, err := badgerstore.Open(opts)
	if err != nil {
		t.Fatal(err)
	}
	err = s.Update(context.Background(), func(tx store.Txn) error {
		if err := tx.Set("plain", []byte("p")); err != nil {
			return err
		}
		return tx.SetExpiring("exp", []byte("e"), at)
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s = open(t, opts)
	want := map[string]string{"plain": "p", "exp": "e"}
	if got := getAll(t, s); !equalMaps(got, want) {
		t.Fatalf("after reopen: %v, want %v", got, want)
	}
	// The expiry survived the restart, and so did its index entry.
	clock.Set(at)
	if got := getAll(t, s); !equalMaps(got, map[string]string{"plain": "p"}) {
		t.Fatalf("after expiry: %v, want only plain", got)
	}
	if n, err := s.Sweep(context.Background()); err != nil || n != 1 {
		t.Fatalf("Sweep after reopen = %d, %v; want 1, nil", n, err)
	}
}

func getAll(t *testing.T, s store.Store) map[string]string {
	t.Helper()
	got := map[string]string{}
	err := s.View(context.Background(), func(tx store.Txn) error {
		return tx.Scan("", func(k string, v []byte) error {
			got[k] = string(v)
			return nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	return got
}

func equalMaps(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

func TestSecondOpenLocked(t *testing.T) {
	dir := t.TempDir()
	open(t, badgerstore.DefaultOptions(dir))
	s, err := badgerstore.Open(badgerstore.DefaultOptions(dir))
	if err == nil {
		s.Close()
		t.Fatal("second Open of an open directory: no error")
	}
	if !errors.Is(err, badgerstore.ErrLocked) {
		t.Errorf("err = %v, want it to wrap ErrLocked", err)
	}
	for _, want := range []string{dir, "caddy reload", "another process"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("err = %q, want it to mention %q", err, want)
		}
	}
}

func TestCloseIdempotentAndConcurrent(t *testing.T) {
	s, err := badgerstore.Open(badgerstore.Options{InMemory: true})
	if err != nil {
		t.Fatal(err)
	}
	// Writers keep going while Close runs: each call either succeeds or
	// reports ErrClosed, and nothing panics.
	ctx := context.Background()
	var writes atomic.Int64
	done := make(chan error, 4)
	for w := range 4 {
		go func() {
			for i := 0; ; i++ {
				err := s.Update(ctx, func(tx store.Txn) error {
					if err := tx.Set(fmt.Sprintf("w%d/%d", w, i), []byte("v")); err != nil {
						return err
					}
					return tx.Scan(fmt.Sprintf("w%d/", w), func(string, []byte) error { return nil })
				})
				if err != nil {
					done <- err
					return
				}
				writes.Add(1)
			}
		}()
	}
	for writes.Load() < 20 {
		time.Sleep(time.Millisecond) // let the writers get going; not an assertion
	}
	closed := make(chan error, 2)
	go func() { closed <- s.Close() }()
	go func() { closed <- s.Close() }()
	for range 2 {
		if err := <-closed; err != nil {
			t.Errorf("Close: %v", err)
		}
	}
	for range 4 {
		if err := <-done; !errors.Is(err, store.ErrClosed) {
			t.Errorf("Update during Close = %v, want ErrClosed", err)
		}
	}
	if err := s.Close(); err != nil {
		t.Errorf("Close after Close: %v", err)
	}
	if _, err := s.Sweep(ctx); !errors.Is(err, store.ErrClosed) {
		t.Errorf("Sweep after Close = %v, want ErrClosed", err)
	}
}

func TestBackgroundLoopsStopOnClose(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	opts := badgerstore.DefaultOptions(t.TempDir())
	opts.GCInterval = time.Millisecond
	opts.SweepInterval = time.Millisecond
	s, err := badgerstore.Open(opts)
	if err != nil {
		t.Fatal(err)
	}
	err = s.Update(context.Background(), func(tx store.Txn) error {
		return tx.SetExpiring("k", []byte("v"), time.Now().Add(-time.Second))
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
}

const crashChildEnv = "BADGERSTORE_CRASH_CHILD_DIR"

// crashChild writes keys with synced Updates and then with volatile ones,
// reports them acknowledged and waits to be killed without closing the
// store.
func crashChild(dir string) {
	s, err := badgerstore.Open(badgerstore.DefaultOptions(dir))
	if err != nil {
		fmt.Println("open:", err)
		os.Exit(1)
	}
	for i := range 100 {
		err := s.Update(context.Background(), func(tx store.Txn) error {
			return tx.Set(fmt.Sprintf("acked/%03d", i), []byte("v"))
		})
		if err != nil {
			fmt.Println("update:", err)
			os.Exit(1)
		}
	}
	// Volatile writes after the last synced one: nothing syncs them.
	for i := range 100 {
		err := s.Update(store.Volatile(context.Background()), func(tx store.Txn) error {
			return tx.Set(fmt.Sprintf("volatile/%03d", i), []byte("v"))
		})
		if err != nil {
			fmt.Println("volatile update:", err)
			os.Exit(1)
		}
	}
	fmt.Println("acked")
	select {}
}

// TestAcknowledgedWritesSurviveKill kills a process right after its Updates
// returned, without Close, and checks a new open sees every write: the
// volatile ones too, which only a power loss may lose (what a portal that
// was killed wrote under store.Volatile is still there when it restarts).
func TestAcknowledgedWritesSurviveKill(t *testing.T) {
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), crashChildEnv+"="+dir)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || line != "acked\n" {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("child said %q, %v; want acked", line, err)
	}
	if err := cmd.Process.Kill(); err != nil { // SIGKILL: no Close, no flush
		t.Fatal(err)
	}
	cmd.Wait()

	s := open(t, badgerstore.DefaultOptions(dir))
	got := getAll(t, s)
	for i := range 100 {
		for _, k := range []string{fmt.Sprintf("acked/%03d", i), fmt.Sprintf("volatile/%03d", i)} {
			if got[k] != "v" {
				t.Fatalf("after kill: %q missing (have %d keys)", k, len(got))
			}
		}
	}
}

// TestOpenAfterFailedMemtable: a start that failed on a full disk leaves an
// empty memtable file; the next open must still succeed with the data.
func TestOpenAfterFailedMemtable(t *testing.T) {
	dir := t.TempDir()
	st, err := badgerstore.Open(badgerstore.DefaultOptions(dir))
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Update(context.Background(), func(tx store.Txn) error { return tx.Set("k", []byte("v")) }); err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"00001.mem", "00002.mem", "00007.mem"} {
		if err := os.WriteFile(filepath.Join(dir, name), nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	st, err = badgerstore.Open(badgerstore.DefaultOptions(dir))
	if err != nil {
		t.Fatalf("reopening with empty memtable files left behind: %v", err)
	}
	defer st.Close()
	var got []byte
	if err := st.View(context.Background(), func(tx store.Txn) error { got, err = tx.Get("k"); return err }); err != nil || string(got) != "v" {
		t.Fatalf("after reopening: %q, %v", got, err)
	}
}

// TestFlattenKeepsData: flattening a store written in a burst (several
// memtables' worth, with overwrites and deletes across tables) keeps the
// newest value of every key and no deleted key, across a reopen.
func TestFlattenKeepsData(t *testing.T) {
	dir := t.TempDir()
	opts := badgerstore.DefaultOptions(dir)
	opts.SweepInterval = -1
	s, err := badgerstore.Open(opts)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{}
	value := strings.Repeat("v", 200)
	for round := range 3 {
		for batch := range 20 {
			err := s.Update(context.Background(), func(tx store.Txn) error {
				for i := range 500 {
					k := fmt.Sprintf("k/%02d/%03d", batch, i)
					if round == 2 && i%7 == 0 {
						delete(want, k)
						if err := tx.Delete(k); err != nil {
							return err
						}
						continue
					}
					v := fmt.Sprintf("%d:%s", round, value)
					want[k] = v
					if err := tx.Set(k, []byte(v)); err != nil {
						return err
					}
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := s.Flatten(); err != nil {
		t.Fatal(err)
	}
	if got := getAll(t, s); !equalMaps(got, want) {
		t.Fatalf("after Flatten: %d keys, want %d", len(got), len(want))
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = open(t, opts)
	if got := getAll(t, s); !equalMaps(got, want) {
		t.Fatalf("after reopen: %d keys, want %d", len(got), len(want))
	}
}
