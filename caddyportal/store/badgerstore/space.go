package badgerstore

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"

	"go.uber.org/zap"

	"github.com/caddyportal/caddyportal/caddyportal/store"
)

// DefaultMinFreeSpace is the free space below which the store refuses
// writes (and Open refuses to start). Badger writes its write-ahead log,
// its new tables and its compactions through memory-mapped files that it
// first extends sparsely; when the file system cannot back a page of such
// a mapping the kernel kills the process with SIGBUS instead of returning
// ENOSPC. So the store stops writing while there is still room for what a
// write may set off: a memtable flush (a few MB with 4 MB memtables) and
// the compactions after it (at most some tens of MB for a portal's data).
const DefaultMinFreeSpace = 64 << 20

// reserveFileName is a file the store keeps in its directory, allocated
// but unused, and reserveFileSize its size. Closing flushes the memtable
// (at most a few MB) into a new table through a sparse mmap: when another
// program has filled the disk meanwhile, that flush would crash the
// process. Close deletes the file first in that case, so the flush has
// room; Open and the return of free space recreate it.
const (
	reserveFileName = "caddyportal-reserve"
	reserveFileSize = 16 << 20
)

// ensureReserveFile creates the reserve file when it is missing and the
// disk has room for it on top of the free-space reserve. Failing to is not
// an error: the store works without it (only a close on a full disk is at
// risk), so it is logged.
func (s *Store) ensureReserveFile(free int64) {
	path := filepath.Join(s.dir, reserveFileName)
	if fi, err := os.Stat(path); err == nil && fi.Size() == reserveFileSize {
		return
	}
	if free < s.minFree+reserveFileSize {
		return
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err == nil {
		// Allocated, not sparse: only real blocks can be given back.
		err = syscall.Fallocate(int(f.Fd()), 0, 0, reserveFileSize)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}
	if err != nil {
		_ = os.Remove(path)
		s.log.Warn("cannot allocate the reserve file that lets a close on a full disk flush",
			zap.String("file", path), zap.Error(err))
	}
}

// releaseReserveFile deletes the reserve file when the disk is below the
// free-space reserve, before Close flushes.
func (s *Store) releaseReserveFile() {
	if s.minFree <= 0 {
		return
	}
	if free, err := freeSpace(s.dir); err != nil || free >= s.minFree {
		return
	}
	path := filepath.Join(s.dir, reserveFileName)
	if err := os.Remove(path); err == nil {
		s.log.Warn("data directory is almost full: released the reserve file so that closing can flush",
			zap.String("file", path))
	}
}

// freeSpace returns the bytes an unprivileged writer may still use on the
// file system holding path, or on that of its nearest existing parent when
// path does not exist yet (Badger creates it).
func freeSpace(path string) (int64, error) {
	for {
		var fs syscall.Statfs_t
		err := syscall.Statfs(path, &fs)
		if err == nil {
			return int64(fs.Bavail) * int64(fs.Bsize), nil
		}
		parent := filepath.Dir(path)
		if !errors.Is(err, syscall.ENOENT) || parent == path {
			return 0, &os.PathError{Op: "statfs", Path: path, Err: err}
		}
		path = parent
	}
}

// noSpace is the error of a refused write: it names the directory, the
// free space and the reserve, so the log line says what to do.
func noSpace(dir string, free, reserve int64) error {
	return fmt.Errorf("badgerstore: %w: %w: the file system of %q has %s free, less than the %s "+
		"the store keeps in reserve (min_free_space); free some space there and writes resume by themselves",
		store.ErrUnavailable, store.ErrNoSpace, dir, bytesString(free), bytesString(reserve))
}

// noSpaceAtOpen is the error of a refused Open.
func noSpaceAtOpen(dir string, free, reserve int64) error {
	return fmt.Errorf("badgerstore: cannot open %q: %w: its file system has %s free, less than the %s "+
		"the store keeps in reserve (min_free_space), and starting on a full disk would crash; "+
		"free some space there and start again",
		dir, store.ErrNoSpace, bytesString(free), bytesString(reserve))
}

// checkSpace refuses a write when the data directory's file system is
// below the reserve. It logs once when writes stop and once when they
// resume, not for every refused request (the HTTP layer logs those).
func (s *Store) checkSpace() error {
	if s.minFree <= 0 {
		return nil
	}
	free, err := freeSpace(s.dir)
	if err != nil {
		// Not knowing is no reason to refuse: Badger reports real errors.
		return nil
	}
	if free < s.minFree {
		if !s.full.Swap(true) {
			s.log.Error("data directory is almost full: refusing writes until space is freed",
				zap.String("dir", s.dir), zap.Int64("free_bytes", free), zap.Int64("reserve_bytes", s.minFree))
		}
		return noSpace(s.dir, free, s.minFree)
	}
	if s.full.Swap(false) {
		s.log.Info("data directory has space again: writes resume",
			zap.String("dir", s.dir), zap.Int64("free_bytes", free))
		s.ensureReserveFile(free)
	}
	return nil
}

// bytesString formats n in binary units for messages.
func bytesString(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit && exp < 4; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTP"[exp])
}
