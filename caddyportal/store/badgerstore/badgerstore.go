// Package badgerstore implements store.Store on an embedded Badger v4
// database, for a portal that runs on one machine.
//
// # Value encoding
//
// Every value is stored with a one-byte header so that an expiry instant can
// travel with the value:
//
//	0x00 <value>                          plain value, never expires
//	0x01 <8-byte big-endian int64> <value> expires at that Unix time in nanoseconds
//
// Get and Scan decode the header and hide a value whose expiry instant is at
// or before Options.Now, so expiry is exact to the nanosecond. Badger's own
// TTL has one-second granularity and follows the wall clock, so an expiring
// entry also gets Badger's ExpiresAt rounded up to the next whole second:
// Badger then hides it no earlier than the store does, and compaction
// reclaims its space even if the sweeper never gets to it.
//
// # Reserved keys
//
// Keys starting with "~" belong to this package. Callers cannot write them,
// Get reports them missing and Scan never visits them. The schema is:
//
//	~x/<8-byte expiry><user key>   expiry index entry, empty value
//
// where <8-byte expiry> is the expiry's Unix nanoseconds as a big-endian
// uint64 with the sign bit flipped, so that byte order is time order. The
// background sweeper walks this index from the start up to Options.Now and
// deletes each user key whose stored expiry still matches, without scanning
// the rest of the database. SetExpiring adds an entry; Set, Delete and a new
// SetExpiring on the same key remove the old one. An entry whose user key is
// gone or carries another expiry is stale and the sweeper just drops it.
//
// # Full disks and damaged directories
//
// Badger writes through sparsely extended mmaps, so a full disk kills the
// process with SIGBUS rather than failing a write. The store therefore
// refuses writes (store.ErrNoSpace, also store.ErrUnavailable) and Open
// while the file system has less than Options.MinFreeSpace free, and keeps
// an allocated reserve file (caddyportal-reserve) that Close gives back
// when the disk is full, so that its final flush has room.
//
// Badger also starts on some damaged directories without a word (no
// MANIFEST: empty; a bad write-ahead log entry: later transactions dropped)
// or panics (a bad table footer). Open first checks the directory, only
// reading it, and fails with ErrDamaged or ErrNotStore instead.
//
// The portal's own key schema is documented with the portal logic, not here.
package badgerstore

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/options"
	"go.uber.org/zap"

	"github.com/caddyportal/caddyportal/caddyportal/store"
	"github.com/caddyportal/caddyportal/caddyportal/store/internal/kvcore"
)

// Default intervals of the background loops.
const (
	DefaultGCInterval    = 10 * time.Minute
	DefaultSweepInterval = 30 * time.Second
)

// maxAttempts bounds how often Update runs fn when commits keep conflicting.
const maxAttempts = 50

// exclusiveAfter is the number of conflicting attempts after which Update
// stops competing and runs its remaining attempts alone (see
// kvcore.Retrier).
const exclusiveAfter = 4

// ErrLocked is wrapped by the error Open returns when another process (or
// another open in this process) holds the database directory.
var ErrLocked = errors.New("store: database directory is locked")

// Options configures Open. Start from DefaultOptions: its zero value is not
// durable, because SyncWrites is false there.
type Options struct {
	// Dir is the database directory. It must be empty when InMemory is set.
	Dir string
	// InMemory keeps everything in memory (for tests); nothing is persisted.
	InMemory bool
	// SyncWrites makes every acknowledged Update survive a process kill and
	// a power loss by syncing the write-ahead log before Update returns.
	// Concurrent commits share one sync. DefaultOptions sets it; Badger
	// ignores it in memory.
	SyncWrites bool
	// Logger receives Badger's messages (its Info level as Debug) and the
	// background loops' errors. Nil discards them.
	Logger *zap.Logger
	// Now is the clock that decides expiry. Nil means time.Now. It should
	// follow the wall clock roughly, because Badger's own TTL (a space
	// reclaim aid only) uses the wall clock.
	Now func() time.Time
	// GCInterval is how often the value-log GC runs. Zero means
	// DefaultGCInterval; negative disables it. It never runs in memory.
	GCInterval time.Duration
	// SweepInterval is how often expired keys are deleted. Zero means
	// DefaultSweepInterval; negative disables the background sweeper (Sweep
	// can still be called).
	SweepInterval time.Duration
	// MinFreeSpace is the free space (bytes) the data directory's file
	// system must keep: below it Update fails with an error wrapping
	// store.ErrNoSpace and store.ErrUnavailable, and Open fails, because
	// Badger would crash with SIGBUS on a full disk (see
	// DefaultMinFreeSpace). Zero means DefaultMinFreeSpace; negative turns
	// the check off. It does not apply in memory.
	MinFreeSpace int64
}

// DefaultOptions returns durable options for a database in dir.
func DefaultOptions(dir string) Options {
	return Options{Dir: dir, SyncWrites: true}
}

// Store is a store.Store backed by Badger. Its methods are safe for
// concurrent use.
type Store struct {
	db  *badger.DB
	log *zap.Logger
	now func() time.Time

	// dir and minFree drive the free-space check of every Update (zero
	// minFree: no check); full remembers that writes are being refused,
	// so that the change is logged once each way.
	dir     string
	minFree int64
	full    atomic.Bool

	// life counts running Update/View/Sweep calls so that Close never
	// closes the database under them (Badger panics when an iterator is
	// created on a closed DB), and owns the background loops.
	life *kvcore.Life
	// retry runs Update's attempts; an Update that has conflicted
	// exclusiveAfter times runs alone, so it cannot conflict again.
	retry *kvcore.Retrier
	// group syncs the logs after commits (nil unless SyncWrites);
	// syncedMem are the memtable logs it synced after they filled up.
	group     *groupSync
	syncedMem map[int64]bool
}

var _ store.Store = (*Store)(nil)

// Open opens (creating if needed) the database described by opts and starts
// its background loops. It refuses, changing nothing, a damaged directory
// (ErrDamaged), a non-empty one without a store (ErrNotStore) and one on a
// file system with less than MinFreeSpace free (store.ErrNoSpace).
func Open(opts Options) (*Store, error) {
	if opts.InMemory && opts.Dir != "" {
		return nil, fmt.Errorf("badgerstore: dir %q must be empty for an in-memory store", opts.Dir)
	}
	if !opts.InMemory && opts.Dir == "" {
		return nil, errors.New("badgerstore: dir is required unless in memory")
	}
	log := opts.Logger
	if log == nil {
		log = zap.NewNop()
	}
	now := opts.Now
	if now == nil {
		now = time.Now
	}

	// The small-memory profile: the defaults cost about 86 MB of heap at
	// open, these about a tenth of that. What remains is mostly memtables
	// and compaction: table builders hold whole tables in memory and new
	// tables stay mapped, so both grow with the bytes compacted. JSON
	// records compress several-fold with Snappy (92 to 27 MB on disk for
	// 100,000 sessions; Badger then needs a block cache), and small
	// memtables and tables keep each flush and compaction small (when
	// records were smaller, they took peak RSS at 100,000 stored sessions
	// from about 150 MB to under 90 MB; today's figures: README, memory).
	// Tables are 256 KB: a compaction runs up to a dozen table builders at
	// once, and with compression a builder holds its table's uncompressed
	// blocks plus a worst-case-sized buffer for each compressed one, about
	// 6 MB for a 1 MB table. At 100,000 stored sessions (records grew to
	// about 400 bytes compressed since) 1 MB tables peaked at 280 MB RSS
	// in the memory scenario, 256 KB ones at 180 MB; a 1,000-learner storm
	// takes about 10% longer (more, smaller compactions).
	// 4 MB memtables take transactions of about 600 KB, room for an
	// allocation batch and for the API's largest session request; values
	// up to 512 KB stay in the tree, which in-memory stores require.
	// The base level is 1 MB instead of Badger's 10 MB: every level-0
	// table spans the whole key space (a session's keys sit under several
	// prefixes), so each level-0 compaction rewrites all of the base level,
	// with a table builder per 256 KB in flight at once. On a store of
	// 100,000 sessions opened right after a burst of writes, that took the
	// peak RSS from about 190 MB to 130 MB; on a settled one from 96-100 to
	// 94-95 MB; a 1,000-learner storm is as fast.
	bopts := badger.DefaultOptions(opts.Dir).
		WithInMemory(opts.InMemory).
		WithSyncWrites(false). // the store syncs, once per group of commits (groupsync.go)
		WithLogger(zapLogger{log.Named("badger")}).
		WithMemTableSize(4 << 20).
		WithValueThreshold(512 << 10).
		WithBaseTableSize(256 << 10).
		WithNumMemtables(2).
		WithNumLevelZeroTables(2).
		WithNumLevelZeroTablesStall(4).
		WithCompression(options.Snappy).
		WithBlockCacheSize(4 << 20).
		WithValueLogFileSize(64 << 20).
		WithNumCompactors(2).
		WithBaseLevelSize(1 << 20)
	if !opts.InMemory {
		if err := checkDir(opts.Dir, bopts); err != nil {
			return nil, err
		}
	}
	minFree := opts.MinFreeSpace
	if minFree == 0 {
		minFree = DefaultMinFreeSpace
	}
	if opts.InMemory {
		minFree = 0
	}
	if minFree > 0 {
		// Opening replays the write-ahead log into new tables and starts a
		// fresh log: on a full disk that is a SIGBUS, not an error.
		if free, err := freeSpace(opts.Dir); err == nil && free < minFree {
			return nil, noSpaceAtOpen(opts.Dir, free, minFree)
		}
	}
	if !opts.InMemory {
		removeEmptyMemtables(opts.Dir)
	}
	db, err := openBadger(bopts)
	if err != nil {
		if !opts.InMemory {
			removeEmptyMemtables(opts.Dir)
		}
		if strings.Contains(err.Error(), "Cannot acquire directory lock") {
			return nil, fmt.Errorf("badgerstore: %w: %q is in use by another process or by a second open "+
				"in this process; to change a running Caddy's configuration use `caddy reload` "+
				"instead of starting a second instance (it checks the new configuration as it loads it "+
				"and keeps the running one if that fails; `caddy validate` checks one without opening "+
				"the store): %w", ErrLocked, opts.Dir, err)
		}
		return nil, fmt.Errorf("badgerstore: opening %q: %w", opts.Dir, err)
	}

	s := &Store{db: db, log: log, now: now, dir: opts.Dir, minFree: minFree, life: kvcore.NewLife(log)}
	if opts.SyncWrites && !opts.InMemory {
		s.syncedMem = map[int64]bool{}
		s.group = newGroupSync(s.syncLogs)
	}
	s.retry = &kvcore.Retrier{Life: s.life, MaxAttempts: maxAttempts, ExclusiveAfter: exclusiveAfter, Pause: pause}
	if minFree > 0 {
		if free, err := freeSpace(opts.Dir); err == nil {
			s.ensureReserveFile(free)
		}
	}

	gcEvery := opts.GCInterval
	if gcEvery == 0 {
		gcEvery = DefaultGCInterval
	}
	if gcEvery > 0 && !opts.InMemory {
		s.life.Every("value log gc", gcEvery, s.runGC)
	}
	sweepEvery := opts.SweepInterval
	if sweepEvery == 0 {
		sweepEvery = DefaultSweepInterval
	}
	if sweepEvery > 0 {
		// checkSpace logs a full disk once; the sweep need not repeat it.
		s.life.SweepEvery(sweepEvery, s.Sweep, store.ErrNoSpace)
	}
	return s, nil
}

// openBadger is badger.Open with a panic (Badger asserts on some damaged
// files) turned into an error wrapping ErrDamaged, so that a damaged store
// stops the start with a message instead of the process.
func openBadger(bopts badger.Options) (db *badger.DB, err error) {
	defer func() {
		if r := recover(); r != nil {
			db, err = nil, fmt.Errorf("%w: Badger panicked reading it: %v%s", ErrDamaged, firstLine(fmt.Sprint(r)), recoverHint)
		}
	}()
	return badger.Open(bopts)
}

// Close stops the background loops, waits for running calls to finish and
// closes the database. Later calls return the first call's result. Close
// must not be called from inside an Update or View function.
func (s *Store) Close() error {
	return s.life.Close(func() error {
		s.releaseReserveFile()
		if err := s.db.Close(); err != nil {
			return fmt.Errorf("badgerstore: closing: %w", err)
		}
		return nil
	})
}

// Flatten merges every level of the store's tree of tables into one,
// pausing background compactions meanwhile. A store written in one burst
// (the benchmark harness seeds 100,000 sessions in under a minute) is left
// with compactions owed, which the next open pays for at once; a store that
// grew over weeks has paid as it went. The harness flattens its seeds so
// that the memory scenario measures the portal, not that debt.
func (s *Store) Flatten() error {
	if err := s.db.Flatten(1); err != nil {
		return fmt.Errorf("badgerstore: flattening: %w", err)
	}
	return nil
}

// Update runs fn in a read-write transaction and commits it. When the commit
// conflicts with a concurrent writer, fn runs again on fresh data after a
// small jittered backoff; after a few conflicts it runs alone, excluding
// other Updates, so it cannot starve. Update returns store.ErrConflict only
// if 50 attempts conflict, which takes writes from outside the store. An
// error from fn discards the transaction and is returned as is. fn must not
// call Update or Close on the same store. On a durable store Update returns
// once a sync round covers the commit, or at once under store.Volatile.
func (s *Store) Update(ctx context.Context, fn func(tx store.Txn) error) error {
	if err := s.life.Enter(ctx); err != nil {
		return err
	}
	defer s.life.Leave()
	if err := s.checkSpace(); err != nil {
		return err
	}
	synced := !store.IsVolatile(ctx)
	return s.retry.Run(ctx, nil, func() error { return s.tryUpdate(fn, synced) })
}

// pause is the wait after the n-th conflict: a jittered backoff while
// attempts compete, none once they run alone (the lock is the queue then).
func pause(n int) time.Duration {
	if n >= exclusiveAfter {
		return 0
	}
	return kvcore.Backoff(n)
}

// tryUpdate runs fn once and commits, and when synced waits for the commit
// to be synced. It returns kvcore.ErrRetry on a commit conflict, which
// Update retries.
func (s *Store) tryUpdate(fn func(tx store.Txn) error, synced bool) error {
	btx := s.db.NewTransaction(true)
	defer btx.Discard()
	tx := newTxn(btx, s.now(), true)
	err := fn(tx)
	tx.End()
	if err == nil {
		err = tx.flush()
	}
	if errors.Is(err, badger.ErrTxnTooBig) {
		// Badger's limit follows the memtable size: callers split the work.
		return fmt.Errorf("badgerstore: %w: %w", store.ErrTooLarge, err)
	}
	if err != nil {
		return err
	}
	if err := btx.Commit(); err != nil {
		if errors.Is(err, badger.ErrConflict) {
			return kvcore.ErrRetry
		}
		if errors.Is(err, badger.ErrTxnTooBig) {
			return fmt.Errorf("badgerstore: %w: %w", store.ErrTooLarge, err)
		}
		return fmt.Errorf("badgerstore: commit: %w", err)
	}
	if tx.wrote && synced && s.group != nil {
		if err := s.group.wait(); err != nil {
			// Committed and readable, but not known to be durable: the
			// caller must not tell anyone it is.
			return fmt.Errorf("badgerstore: syncing the log: %w", err)
		}
	}
	return nil
}

// View runs fn in a read-only transaction on a consistent snapshot.
func (s *Store) View(ctx context.Context, fn func(tx store.Txn) error) error {
	if err := s.life.Enter(ctx); err != nil {
		return err
	}
	defer s.life.Leave()
	btx := s.db.NewTransaction(false)
	defer btx.Discard()
	tx := newTxn(btx, s.now(), false)
	err := fn(tx)
	tx.End()
	return err
}

// runGC rewrites value-log files until Badger finds nothing worth
// rewriting. With the portal's small values the log stays nearly empty, so
// this is normally a single cheap call.
func (s *Store) runGC() {
	for !s.life.Ending() {
		if s.checkSpace() != nil {
			return // rewriting needs space first
		}
		err := s.db.RunValueLogGC(0.5)
		if err == nil {
			continue
		}
		if !errors.Is(err, badger.ErrNoRewrite) && !errors.Is(err, badger.ErrRejected) {
			s.log.Warn("value log gc failed", zap.Error(err))
		}
		return
	}
}

// removeEmptyMemtables deletes zero-length memtable files. Badger creates
// the file of a new memtable before it sizes it; when that fails (disk
// full, file size limit) the empty file stays behind and every later open
// fails with "while opening fid: N err: Create a new file"
// (dgraph-io/badger#2207). An empty memtable file holds no writes, so
// removing it loses nothing; a memtable in use is never empty.
func removeEmptyMemtables(dir string) {
	files, _ := filepath.Glob(filepath.Join(dir, "*.mem"))
	for _, f := range files {
		if fi, err := os.Stat(f); err == nil && fi.Mode().IsRegular() && fi.Size() == 0 {
			_ = os.Remove(f)
		}
	}
}
