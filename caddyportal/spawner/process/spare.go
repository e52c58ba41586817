package process

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// spareDirName is the directory under the state directory that keeps the
// blanked state files and output pipes of stopped environments.
const spareDirName = "spare"

// maxSpares bounds how many files of each kind are kept: more than a class
// of environments needs, and each is an inode with no data.
const maxSpares = 1024

// maxStateSize bounds a state file kept as a spare (a record is a few
// hundred bytes).
const maxStateSize = 64 << 10

// Kinds of spare files, by the suffix their session's file has.
const (
	spareState = ".json"
	sparePipe  = ".out"
)

// spares recycles the state files and output pipes of stopped environments
// for later starts, by rename, instead of removing them and creating new
// ones. Creating a file costs a new inode, and on ext4 without a journal
// (these machines) allocating one skips, one by one, every inode of the
// group freed in the last minutes (recently_deleted): after a class ended a
// create cost 100-600 µs of CPU, a rename 15-20 µs, and a start created
// three. The session's own directory is never recycled: its owner,
// permissions and attributes are the previous learner's to change.
//
// A spare holds no record (a state file's bytes are overwritten with
// spaces before it is put back, which List reads as the empty file a
// create leaves; a pipe is put back only when nothing holds it open, and
// a pipe nobody holds keeps no data), so a file taken for a session and
// left unwritten by a portal killed at that instant reads as an empty
// one. Several Spawner values (a config reload) may share the directory:
// a rename is atomic, so a spare goes to one taker only, and each value
// knows the spares it found at New or put back itself.
type spares struct {
	dir string

	mu    sync.Mutex
	off   bool                // renames without replacing are unsupported here
	names map[string][]string // by kind: file names in dir, most recent last
}

// newSpares makes dir and lists what earlier runs left in it.
func newSpares(dir string) (*spares, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	sp := &spares{dir: dir, names: map[string][]string{}}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	for _, e := range entries {
		name := e.Name()
		for _, kind := range []string{spareState, sparePipe} {
			if base, ok := strings.CutSuffix(name, kind); ok && sessionName.MatchString(base) && len(sp.names[kind]) < maxSpares {
				sp.names[kind] = append(sp.names[kind], name)
			}
		}
	}
	return sp, nil
}

// take moves a spare of kind to path, which must not exist, and says
// whether it did; false means the caller creates path itself. An existing
// path is an error (os.ErrExist), as O_EXCL would report it.
func (sp *spares) take(kind, path string) (bool, error) {
	for {
		sp.mu.Lock()
		list := sp.names[kind]
		if sp.off || len(list) == 0 {
			sp.mu.Unlock()
			return false, nil
		}
		name := list[len(list)-1]
		sp.names[kind] = list[:len(list)-1]
		sp.mu.Unlock()
		err := unix.Renameat2(unix.AT_FDCWD, filepath.Join(sp.dir, name), unix.AT_FDCWD, path, unix.RENAME_NOREPLACE)
		switch {
		case err == nil:
			return true, nil
		case errors.Is(err, syscall.ENOENT):
			// Taken by another Spawner value sharing the directory.
			continue
		case errors.Is(err, syscall.EEXIST):
			sp.add(kind, name)
			return false, &os.PathError{Op: "rename", Path: path, Err: os.ErrExist}
		default:
			// EINVAL: a file system without RENAME_NOREPLACE; create
			// files from now on.
			sp.mu.Lock()
			sp.off = true
			sp.mu.Unlock()
			return false, nil
		}
	}
}

// put moves the file at path, named <session><kind>, into the spares, or
// removes it when it cannot be kept. A state file is blanked first, so a
// portal killed between the two steps leaves what List reads as an empty
// state file, which Stop removes. A missing path is no error.
func (sp *spares) put(kind, path string) error {
	sp.mu.Lock()
	keep := !sp.off && len(sp.names[kind]) < maxSpares
	sp.mu.Unlock()
	if keep && kind == spareState {
		keep = blank(path) == nil
	}
	if keep {
		name := filepath.Base(path)
		err := unix.Renameat2(unix.AT_FDCWD, path, unix.AT_FDCWD, filepath.Join(sp.dir, name), unix.RENAME_NOREPLACE)
		if err == nil {
			sp.add(kind, name)
			return nil
		}
	}
	if err := os.Remove(path); err != nil && !os.IsNotExist(err) {
		return err
	}
	return nil
}

// blank overwrites the state file at path with spaces in place. Not a
// truncation: ext4 (auto_da_alloc) writes a file truncated to zero and
// written again out to disk when it is closed, which made a start wait for
// the disk.
func blank(path string) error {
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	if fi.Size() > maxStateSize {
		return errors.New("state file too large to keep")
	}
	_, err = f.WriteAt(bytes.Repeat([]byte(" "), int(fi.Size())), 0)
	return err
}

func (sp *spares) add(kind, name string) {
	sp.mu.Lock()
	sp.names[kind] = append(sp.names[kind], name)
	sp.mu.Unlock()
}
