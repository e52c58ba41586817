package process

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"go.uber.org/zap"
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

// Kinds of spare files, by the suffix their session's file has (a
// session directory has none: its spares are named with one).
const (
	spareState = ".json"
	sparePipe  = ".out"
	spareDir   = ".dir"
)

// spareKinds lists the kinds of spares.
var spareKinds = []string{spareState, sparePipe, spareDir}

// spares recycles the state files and output pipes of stopped environments
// for later starts, by rename, instead of removing them and creating new
// ones. Creating a file costs a new inode, and on ext4 without a journal
// (these machines) allocating one skips, one by one, every inode of the
// group freed in the last minutes (recently_deleted): after a class ended a
// create cost 100-600 µs of CPU, a rename 15-20 µs, and a start created
// three. A session's own directory is never recycled (its owner,
// permissions and attributes are the previous learner's to change, and a
// process that escaped a stop could still hold it as its working
// directory): spare directories are new ones, made ahead (see prepare).
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

	mu     sync.Mutex
	off    bool                // renames without replacing are unsupported here
	names  map[string][]string // by kind: file names in dir, most recent last
	target int                 // prepare's count of each kind, to which renew keeps directories
	seq    atomic.Uint64       // numbers the spares this value makes
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
		for _, kind := range spareKinds {
			if kind == spareDir && !e.IsDir() {
				continue
			}
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

// prepare creates, in the background, spares of each kind until the
// directory holds n of it (at most maxSpares) as far as this value knows,
// so that the first class after the portal starts renames files rather
// than creating them; later classes reuse the state files and pipes
// earlier ones put back, and Stop makes a new directory for each one it
// removes (see renew). It counts only once, at the beginning: spares taken
// meanwhile are not replaced, or a class starting at once would compete
// with it. It returns a function that stops the preparation and waits for
// it to end.
func (sp *spares) prepare(n int, log *zap.Logger) (stop func()) {
	n = max(0, min(n, maxSpares))
	sp.mu.Lock()
	sp.target = n
	need := map[string]int{}
	short := false
	if !sp.off {
		for _, kind := range spareKinds {
			need[kind] = n - len(sp.names[kind])
			short = short || need[kind] > 0
		}
	}
	sp.mu.Unlock()
	if !short {
		return func() {}
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		made, err := sp.create(ctx, need)
		if err != nil {
			log.Warn("preparing spares; starts make their own files", zap.Int("prepared", made), zap.Error(err))
			return
		}
		log.Debug("prepared spare state files, output pipes and session directories", zap.Int("prepared", made))
	}()
	return func() {
		cancel()
		<-done
	}
}

// create makes need[kind] new spares of each kind in the directory and
// returns how many it made.
func (sp *spares) create(ctx context.Context, need map[string]int) (int, error) {
	made := 0
	for more := true; more; {
		more = false
		for _, kind := range spareKinds {
			if need[kind] <= 0 {
				continue
			}
			if ctx.Err() != nil {
				return made, nil
			}
			if err := sp.make(kind); err != nil {
				return made, err
			}
			need[kind]--
			made++
			more = more || need[kind] > 0
		}
	}
	return made, nil
}

// renew makes a new spare of kind when fewer than prepare's target are
// kept: Stop calls it for the session directory it removed, which is
// never kept, so that the next class finds as many made ahead as the first.
func (sp *spares) renew(kind string) error {
	sp.mu.Lock()
	short := !sp.off && len(sp.names[kind]) < sp.target
	sp.mu.Unlock()
	if !short {
		return nil
	}
	return sp.make(kind)
}

// make creates one new spare of kind: an empty state file (which reads as
// a blanked one), a pipe nobody opened (which holds no data), or an empty
// directory (0700, as a session's is made).
func (sp *spares) make(kind string) error {
	// A name unlike any other's, matching what newSpares lists.
	name := "new-" + strconv.FormatInt(time.Now().UnixNano(), 36) + "-" + strconv.FormatUint(sp.seq.Add(1), 36) + kind
	path := filepath.Join(sp.dir, name)
	var err error
	switch kind {
	case spareState:
		var fd int
		if fd, err = unix.Open(path, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_CLOEXEC, 0o600); err == nil {
			err = unix.Close(fd)
		}
	case sparePipe:
		err = unix.Mkfifo(path, 0o600)
	default:
		err = unix.Mkdir(path, 0o700)
	}
	if err != nil {
		return &os.PathError{Op: "create", Path: path, Err: err}
	}
	sp.add(kind, name)
	return nil
}
