// Package tmpfs makes a real full disk for tests: a small tmpfs of its own
// and a file that fills it to the last byte. A full disk cannot be faked
// for Badger's memory-mapped files, and filling the machine's disk is not
// an option. Mounting needs root (CI runs as root).
package tmpfs

import (
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// Mount mounts a tmpfs of size (for example "96m") on dir, creating dir if
// needed, and unmounts it when the test ends. The error is returned, not
// fatal, so that a test can fall back when mounting is not permitted (see
// NotPermitted); MountOrSkip skips instead.
func Mount(t testing.TB, dir, size string) error {
	t.Helper()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size="+size+",mode=0700"); err != nil {
		return err
	}
	t.Cleanup(func() {
		if err := syscall.Unmount(dir, syscall.MNT_DETACH); err != nil {
			t.Errorf("unmount %s: %v", dir, err)
		}
	})
	return nil
}

// MountOrSkip is Mount that skips the test where mounting is not permitted
// and fails it on any other error.
func MountOrSkip(t testing.TB, dir, size string) {
	t.Helper()
	err := Mount(t, dir, size)
	if NotPermitted(err) {
		t.Skipf("a full disk needs a file system of its own: mounting a tmpfs is not permitted here (%v); run as root", err)
	}
	if err != nil {
		t.Fatalf("mount tmpfs: %v", err)
	}
}

// NotPermitted reports whether err says the operation is not permitted
// here (for example mount in an unprivileged container).
func NotPermitted(err error) bool {
	return errors.Is(err, syscall.EPERM) || errors.Is(err, syscall.EACCES)
}

// Fill writes a file into dir until its file system is full, to the last
// byte, and returns the file's path; removing it frees the space again.
func Fill(t testing.TB, dir string) string {
	t.Helper()
	filler := filepath.Join(dir, "filler")
	f, err := os.Create(filler)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	// Large chunks fill quickly; small ones then take the last blocks a
	// large write could not use.
	for _, size := range []int{64 << 10, 512} {
		chunk := make([]byte, size)
		for {
			if _, err := f.Write(chunk); err != nil {
				if !errors.Is(err, syscall.ENOSPC) {
					t.Fatalf("filling %s: %v", dir, err)
				}
				break
			}
		}
	}
	var fs syscall.Statfs_t
	if err := syscall.Statfs(dir, &fs); err != nil || fs.Bavail != 0 {
		t.Fatalf("file system not full: %d blocks free (%v)", fs.Bavail, err)
	}
	return filler
}
