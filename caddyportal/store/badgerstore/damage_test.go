package badgerstore_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/caddyportal/caddyportal/caddyportal/store"
	"github.com/caddyportal/caddyportal/caddyportal/store/badgerstore"
)

// writeAndClose stores n keys through the store API and closes the store,
// which flushes them into a table.
func writeAndClose(t *testing.T, dir string, n int) {
	t.Helper()
	s, err := badgerstore.Open(badgerstore.DefaultOptions(dir))
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		err := s.Update(context.Background(), func(tx store.Txn) error {
			return tx.Set(fmt.Sprintf("k/%04d", i), []byte(strings.Repeat("value ", 20)))
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
}

// writeAndKill has a child process store 100 acknowledged keys and kills
// it with SIGKILL, so that they are only in the write-ahead log.
func writeAndKill(t *testing.T, dir string) {
	t.Helper()
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
	_ = cmd.Process.Kill()
	_ = cmd.Wait()
	if err != nil || line != "acked\n" {
		t.Fatalf("child said %q, %v; want acked", line, err)
	}
}

// dirState lists the files of dir with their sizes and contents' length,
// to check that a refused Open changed nothing.
func dirState(t *testing.T, dir string) string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, e := range entries {
		b, _ := os.ReadFile(filepath.Join(dir, e.Name()))
		lines = append(lines, fmt.Sprintf("%s %d %x", e.Name(), len(b), sum(b)))
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}

func sum(b []byte) uint64 {
	var h uint64 = 14695981039346656037
	for _, c := range b {
		h = (h ^ uint64(c)) * 1099511628211
	}
	return h
}

// onlyFile returns the one file in dir with the suffix that holds data.
func dataFile(t *testing.T, dir, suffix string) string {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(dir, "*"+suffix))
	var found []string
	for _, f := range files {
		if b, err := os.ReadFile(f); err == nil && !bytes.Equal(b, make([]byte, len(b))) {
			found = append(found, f)
		}
	}
	if len(found) != 1 {
		t.Fatalf("want one %s file with data in %s, found %v", suffix, dir, found)
	}
	return found[0]
}

// wantRefused opens dir and checks that Open fails with target, says how
// to recover, and leaves the directory as it was.
func wantRefused(t *testing.T, dir string, target error, mention string) {
	t.Helper()
	before := dirState(t, dir)
	s, err := badgerstore.Open(badgerstore.DefaultOptions(dir))
	if err == nil {
		n := len(getAll(t, s))
		s.Close()
		t.Fatalf("Open succeeded on the damaged directory (it sees %d keys)", n)
	}
	if !errors.Is(err, target) {
		t.Fatalf("Open: %v; want %v", err, target)
	}
	for _, want := range []string{dir, mention} {
		if !strings.Contains(err.Error(), want) {
			t.Fatalf("Open error does not mention %q: %v", want, err)
		}
	}
	if target == badgerstore.ErrDamaged && !strings.Contains(err.Error(), "restore the directory from a backup") {
		t.Fatalf("Open error does not say how to recover: %v", err)
	}
	if after := dirState(t, dir); after != before {
		t.Fatalf("the refused Open changed the directory:\n%s\n---\n%s", before, after)
	}
}

// TestOpenRefusesMissingManifest: without its MANIFEST Badger would start
// an empty store and delete the tables; Open refuses instead, whether the
// data is in tables or still in the write-ahead log.
func TestOpenRefusesMissingManifest(t *testing.T) {
	t.Run("tables", func(t *testing.T) {
		dir := t.TempDir()
		writeAndClose(t, dir, 200)
		if err := os.Remove(filepath.Join(dir, "MANIFEST")); err != nil {
			t.Fatal(err)
		}
		wantRefused(t, dir, badgerstore.ErrDamaged, "MANIFEST is missing")
	})
	t.Run("log", func(t *testing.T) {
		dir := t.TempDir()
		writeAndKill(t, dir)
		if err := os.Remove(filepath.Join(dir, "MANIFEST")); err != nil {
			t.Fatal(err)
		}
		wantRefused(t, dir, badgerstore.ErrDamaged, "MANIFEST is missing")
	})
}

// TestOpenRefusesDamagedLog: Badger's replay stops at the first bad entry
// of the write-ahead log and truncates it there, dropping every
// acknowledged transaction after it. Open refuses a log with committed
// transactions after a damaged entry, and one that was cut short; a torn
// tail after the last transaction (what a crash leaves) is still accepted.
func TestOpenRefusesDamagedLog(t *testing.T) {
	t.Run("flipped byte", func(t *testing.T) {
		dir := t.TempDir()
		writeAndKill(t, dir)
		wal := dataFile(t, dir, ".mem")
		b, _ := os.ReadFile(wal)
		// Inside the 10th transaction's end marker: 90 acknowledged ones follow.
		at := nthIndex(t, b, []byte("!badger!txn"), 10) + 3
		b[at] ^= 0xff
		if err := os.WriteFile(wal, b, 0o600); err != nil {
			t.Fatal(err)
		}
		wantRefused(t, dir, badgerstore.ErrDamaged, "committed transactions after it")
	})
	t.Run("cut short", func(t *testing.T) {
		dir := t.TempDir()
		writeAndKill(t, dir)
		wal := dataFile(t, dir, ".mem")
		b, _ := os.ReadFile(wal)
		at := nthIndex(t, b, []byte("!badger!txn"), 50) + 3
		if err := os.Truncate(wal, int64(at)); err != nil {
			t.Fatal(err)
		}
		wantRefused(t, dir, badgerstore.ErrDamaged, "cut short")
	})
	t.Run("torn tail accepted", func(t *testing.T) {
		dir := t.TempDir()
		writeAndKill(t, dir)
		wal := dataFile(t, dir, ".mem")
		b, _ := os.ReadFile(wal)
		end := bytes.LastIndex(b, []byte("!badger!txn"))
		end += bytes.IndexFunc(b[end:], func(r rune) bool { return r == 0 }) // past the marker's value
		for i := end + 16; i < end+16+200; i++ {                             // a half-written next entry
			b[i] = byte(i*7) | 1
		}
		if err := os.WriteFile(wal, b, 0o600); err != nil {
			t.Fatal(err)
		}
		s := open(t, badgerstore.DefaultOptions(dir))
		if got := getAll(t, s); len(got) != 200 {
			t.Fatalf("after a torn tail: %d keys, want the 200 acknowledged (100 synced, 100 volatile)", len(got))
		}
	})
}

// nthIndex is the offset of the n-th (1-based) occurrence of sep in b.
func nthIndex(t *testing.T, b, sep []byte, n int) int {
	t.Helper()
	off := 0
	for i := 0; i < n; i++ {
		j := bytes.Index(b[off:], sep)
		if j < 0 {
			t.Fatalf("only %d occurrences of %q", i, sep)
		}
		off += j
		if i < n-1 {
			off += len(sep)
		}
	}
	return off
}

// TestOpenRefusesDamagedTable: a damaged table footer made Badger panic in
// one of its own goroutines (killing the process), and a damaged block was
// only found when read. Open verifies every table first and reports which
// one is damaged.
func TestOpenRefusesDamagedTable(t *testing.T) {
	damage := map[string]func(b []byte){
		"footer": func(b []byte) { copy(b[len(b)-8:], []byte{0xde, 0xad, 0xbe, 0xef, 0xde, 0xad, 0xbe, 0xef}) },
		"block":  func(b []byte) { b[100] ^= 0xff },
	}
	for name, fn := range damage {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			writeAndClose(t, dir, 200)
			sst := dataFile(t, dir, ".sst")
			b, _ := os.ReadFile(sst)
			fn(b)
			if err := os.WriteFile(sst, b, 0o600); err != nil {
				t.Fatal(err)
			}
			wantRefused(t, dir, badgerstore.ErrDamaged, "table "+filepath.Base(sst))
		})
	}
}

// TestOpenRefusesForeignDirectory: a directory with files but no store is
// not turned into one (a mistyped path); an empty one, or one with only
// lost+found (a fresh file system), is.
func TestOpenRefusesForeignDirectory(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("mine"), 0o600); err != nil {
		t.Fatal(err)
	}
	wantRefused(t, dir, badgerstore.ErrNotStore, "notes.txt")

	fresh := t.TempDir()
	if err := os.Mkdir(filepath.Join(fresh, "lost+found"), 0o700); err != nil {
		t.Fatal(err)
	}
	open(t, badgerstore.DefaultOptions(fresh))
}
