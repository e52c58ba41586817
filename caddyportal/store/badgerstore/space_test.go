package badgerstore_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/caddyportal/caddyportal/caddyportal/store"
	"github.com/caddyportal/caddyportal/caddyportal/store/badgerstore"
	"github.com/caddyportal/caddyportal/internal/e2etest/tmpfs"
)

// mountTmpfs mounts a tmpfs of the given size on a new directory, unmounted
// when the test ends, or skips the test where mounting is not permitted.
func mountTmpfs(t *testing.T, size string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "fs")
	tmpfs.MountOrSkip(t, dir, size)
	return dir
}

// TestFullDiskRefusesWrites: on a full file system an Update fails with an
// error wrapping store.ErrNoSpace and store.ErrUnavailable (so the portal
// answers 503) instead of Badger dying with SIGBUS on its memory-mapped
// log; reads still work, and writes work again once space is freed,
// without reopening. Opening on the full file system fails with an error
// naming the directory and the cause.
func TestFullDiskRefusesWrites(t *testing.T) {
	fs := mountTmpfs(t, "96m")
	dir := filepath.Join(fs, "db")
	opts := badgerstore.DefaultOptions(dir)
	opts.SweepInterval = -1
	s, err := badgerstore.Open(opts)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	set := func(k string) error {
		return s.Update(ctx, func(tx store.Txn) error { return tx.Set(k, []byte(strings.Repeat("v", 2000))) })
	}
	for i := range 50 {
		if err := set("before/" + strconv.Itoa(i)); err != nil {
			t.Fatal(err)
		}
	}

	filler := tmpfs.Fill(t, fs)
	for i := range 200 { // well past a page of the write-ahead log
		err := set("full/" + strconv.Itoa(i))
		if !errors.Is(err, store.ErrNoSpace) || !errors.Is(err, store.ErrUnavailable) {
			t.Fatalf("write %d on a full disk: %v; want ErrNoSpace and ErrUnavailable", i, err)
		}
		if i == 0 && !strings.Contains(err.Error(), dir) {
			t.Fatalf("error does not name the directory %s: %v", dir, err)
		}
	}
	err = s.View(ctx, func(tx store.Txn) error {
		_, err := tx.Get("before/49")
		return err
	})
	if err != nil {
		t.Fatalf("read on a full disk: %v", err)
	}

	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	if err := set("after"); err != nil {
		t.Fatalf("write after freeing space: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	// A start on the full disk is refused with a message, not a crash.
	filler = tmpfs.Fill(t, fs)
	s2, err := badgerstore.Open(opts)
	if err == nil {
		s2.Close()
		t.Fatal("Open on a full disk succeeded")
	}
	if !errors.Is(err, store.ErrNoSpace) || !strings.Contains(err.Error(), dir) {
		t.Fatalf("Open on a full disk: %v; want ErrNoSpace naming %s", err, dir)
	}
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	s = open(t, opts)
	err = s.View(ctx, func(tx store.Txn) error {
		if _, err := tx.Get("after"); err != nil {
			return err
		}
		_, err := tx.Get("before/0")
		return err
	})
	if err != nil {
		t.Fatalf("data after reopening: %v", err)
	}
}

// TestCloseOnFullDisk: closing flushes the memtable into a new table
// through a sparse mmap, which on a full disk was a SIGBUS. The store keeps
// an allocated reserve file and gives it back before that flush; every
// acknowledged write is there after the next open, and the reserve file
// is allocated again.
func TestCloseOnFullDisk(t *testing.T) {
	fs := mountTmpfs(t, "96m")
	dir := filepath.Join(fs, "db")
	opts := badgerstore.DefaultOptions(dir)
	opts.SweepInterval = -1
	s, err := badgerstore.Open(opts)
	if err != nil {
		t.Fatal(err)
	}
	reserve := filepath.Join(dir, "caddyportal-reserve")
	if _, err := os.Stat(reserve); err != nil {
		t.Fatalf("no reserve file after Open: %v", err)
	}
	for i := range 50 {
		err := s.Update(context.Background(), func(tx store.Txn) error {
			return tx.Set("k/"+strconv.Itoa(i), []byte(strings.Repeat("v", 2000)))
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	filler := tmpfs.Fill(t, fs)
	if err := s.Close(); err != nil {
		t.Fatalf("Close on a full disk: %v", err)
	}
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	s = open(t, opts)
	if got := getAll(t, s); len(got) != 50 {
		t.Fatalf("after reopening: %d keys, want 50", len(got))
	}
	if fi, err := os.Stat(reserve); err != nil || fi.Size() != 16<<20 {
		t.Fatalf("reserve file not allocated again: %v", err)
	}
}
