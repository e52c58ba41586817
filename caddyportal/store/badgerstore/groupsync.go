package badgerstore

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
)

// Group commit. Badger's own SyncWrites syncs the write-ahead log once per
// transaction, one transaction after another, even when its writer
// goroutine applies many at once: 50 learners activating at once waited
// about 10 ms each, behind 49 syncs of 0.2 ms in a row. The store opens
// Badger without SyncWrites instead, and after each commit that wrote
// something waits for a sync round that started after the commit: the
// commits of one moment share one sync. What an Update acknowledges is as
// durable as before; what differs is that another transaction may read a
// commit a sync round (well under a millisecond) before its writer's Update
// returns, as with any writer that has not returned yet.

// groupSync runs sync rounds for the commits waiting on them, one round at
// a time.
type groupSync struct {
	round func() error // one sync round

	mu      sync.Mutex
	cond    *sync.Cond
	running bool
	waiting int    // callers waiting for a round to finish
	started uint64 // rounds started
	done    uint64 // rounds finished
	failed  uint64 // the last round that failed, 0 for none
	err     error  // its error
}

func newGroupSync(round func() error) *groupSync {
	g := &groupSync{round: round}
	g.cond = sync.NewCond(&g.mu)
	return g
}

// wait returns once a sync round that started after wait was called has
// finished, so that everything committed before the call is durable. A
// round under way when it is called may have missed the caller's commit,
// so the round after it counts. It returns the error of a failed round
// (conservatively, of any failed round since the one it needed).
func (g *groupSync) wait() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	need := g.started + 1
	for g.done < need {
		if g.running {
			g.waiting++
			g.cond.Wait()
			g.waiting--
			continue
		}
		g.running = true
		g.started++
		round := g.started
		g.mu.Unlock()
		err := g.round()
		g.mu.Lock()
		g.running = false
		g.done = round
		if err != nil {
			g.failed, g.err = round, err
		}
		g.cond.Broadcast()
	}
	if g.failed >= need && g.failed != 0 {
		return g.err
	}
	return nil
}

// memFileExt is the name ending of Badger's memtable logs (NNNNN.mem).
const memFileExt = ".mem"

// syncLogs is one sync round: it makes every commit so far durable. Badger's
// Sync syncs the current memtable's log and the value log. A memtable that
// filled up after a commit is no longer the current one, and Badger leaves
// its log unsynced until it flushes the memtable to a table (which it
// syncs), so every older memtable log is synced here too, once: Badger
// creates the next log and switches to it under one lock, so a log that is
// not the newest in the directory takes no more writes. Rounds never run
// at once (groupSync), so synced needs no lock.
func (s *Store) syncLogs() error {
	if err := s.db.Sync(); err != nil {
		return err
	}
	ents, err := os.ReadDir(s.dir)
	if err != nil {
		return err
	}
	names := map[int64]string{}
	newest := int64(-1)
	for _, e := range ents {
		name := e.Name()
		if !strings.HasSuffix(name, memFileExt) {
			continue
		}
		if fid, err := strconv.ParseInt(strings.TrimSuffix(name, memFileExt), 10, 64); err == nil {
			names[fid] = name
			newest = max(newest, fid)
		}
	}
	for fid, name := range names {
		if fid == newest || s.syncedMem[fid] {
			continue
		}
		if err := syncFile(filepath.Join(s.dir, name)); err != nil {
			return err
		}
		s.syncedMem[fid] = true
	}
	for fid := range s.syncedMem {
		if _, ok := names[fid]; !ok {
			delete(s.syncedMem, fid) // flushed to a table and removed
		}
	}
	return nil
}

// syncFile fsyncs the file at path; one Badger removed meanwhile (flushed
// to a table, which Badger synced) needs nothing.
func syncFile(path string) error {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}
