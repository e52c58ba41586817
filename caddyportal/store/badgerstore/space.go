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

// noSpace is the error of a refused write or open: it names the directory,
// the free space and the reserve, so the log line says what to do.
func noSpace(dir string, free, reserve int64) error {
	return fmt.Errorf("badgerstore: %w: %w: the file system of %q has %s free, less than the %s "+
		"the store keeps in reserve; free some space there (writes resume by themselves)",
		store.ErrUnavailable, store.ErrNoSpace, dir, bytesString(free), bytesString(reserve))
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
