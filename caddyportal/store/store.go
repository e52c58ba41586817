// Package store defines the small transactional key-value interface that the
// portal's state lives behind. Badger (package badgerstore) implements it for
// one machine; an etcd backend can implement it with the same semantics for
// several replicas.
//
// Semantics every implementation must provide:
//
//   - Update runs fn in a serializable read-modify-write transaction. If the
//     commit conflicts with another transaction that wrote a key fn read, the
//     whole fn is run again on fresh data (a bounded number of times), so fn
//     must have no side effects outside the transaction.
//   - Update returns only after the write is durable to the degree the
//     backend was configured for (Badger: synced to disk when SyncWrites),
//     unless its context is Volatile.
//   - View runs fn on a consistent snapshot.
//   - Keys starting with "~" are reserved for the implementation (for
//     example an expiry index) and are never passed to callers.
//   - Keys are strings; Scan visits keys with a prefix in ascending byte
//     order.
package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
)

// ReservedPrefix starts every key that belongs to the implementation.
const ReservedPrefix = "~"

// ErrReservedKey is returned by writes of a key starting with ReservedPrefix.
var ErrReservedKey = errors.New("store: keys starting with \"~\" are reserved")

// ErrEmptyKey is returned by writes of the empty key.
var ErrEmptyKey = errors.New("store: empty key")

// ErrReadOnly is returned by writes inside View.
var ErrReadOnly = errors.New("store: write in a read-only transaction")

// CheckWriteKey says whether a caller may write key, the same way in every
// backend (they once differed: etcd refused the empty key, Badger took it).
func CheckWriteKey(key string) error {
	if key == "" {
		return ErrEmptyKey
	}
	if strings.HasPrefix(key, ReservedPrefix) {
		return fmt.Errorf("%w: %q", ErrReservedKey, key)
	}
	return nil
}

// ErrClosed is returned by a store's calls after its Close has begun.
var ErrClosed = errors.New("store: closed")

// ErrTxnDone is returned when a Txn is used after its function returned.
var ErrTxnDone = errors.New("store: transaction used after its function returned")

// ErrNotFound is returned by Txn.Get for a missing key.
var ErrNotFound = errors.New("store: key not found")

// ErrConflict is returned by Update when fn kept conflicting with other
// writers after all retries.
var ErrConflict = errors.New("store: transaction conflict, retries exhausted")

// ErrTooLarge is returned by Update when one transaction writes or reads
// more than the backend accepts at once (etcd's --max-txn-ops); callers
// that batch work split the batch and try again.
var ErrTooLarge = errors.New("store: transaction too large")

// ErrUnavailable wraps errors that mean the backend cannot be reached now
// (for example etcd is down); callers answer 503 and try again later.
var ErrUnavailable = errors.New("store: backend unavailable")

// ErrNoSpace is wrapped, together with ErrUnavailable, by the error of a
// write refused because the backend's disk is (almost) full: callers answer
// 503 like for any outage, and the write succeeds again once space is
// freed, without a restart.
var ErrNoSpace = errors.New("store: no space left for writes")

// volatileKey marks a Volatile context.
type volatileKey struct{}

// Volatile returns ctx marked so that an Update under it may return once its
// write is committed, before it is synced to disk: every later transaction
// sees it and a crash of the process does not lose it (Badger's log is in
// the page cache by then), but a power loss or kernel crash may. It is for
// records of things that such a loss ends anyway, such as the processes and
// containers of a session's environment and the steps of their start, which
// happen too often to wait for the disk each time. The next Update that is
// not volatile makes it durable as well. Backends whose writes are always
// durable (etcd) ignore the mark.
func Volatile(ctx context.Context) context.Context {
	return context.WithValue(ctx, volatileKey{}, true)
}

// IsVolatile reports whether ctx was marked by Volatile.
func IsVolatile(ctx context.Context) bool {
	v, _ := ctx.Value(volatileKey{}).(bool)
	return v
}

// Store is a transactional key-value store.
type Store interface {
	// Update runs fn in a read-write transaction, retrying on conflict.
	Update(ctx context.Context, fn func(tx Txn) error) error
	// View runs fn in a read-only transaction.
	View(ctx context.Context, fn func(tx Txn) error) error
	// Close releases the store. It is safe to call more than once.
	Close() error
}

// Txn is one transaction. It must not be used after fn returns.
type Txn interface {
	// Get returns the value of key, or ErrNotFound.
	Get(key string) ([]byte, error)
	// Set writes key. Set in a View transaction returns an error.
	Set(key string, value []byte) error
	// SetExpiring writes key with an expiry instant: from that instant on
	// (exactly, not rounded to seconds) Get and Scan no longer see it, and
	// the store's background sweeper reclaims it.
	SetExpiring(key string, value []byte, expiresAt time.Time) error
	// Delete removes key; deleting a missing key is not an error.
	Delete(key string) error
	// Scan calls fn for each key with the prefix, in ascending order, until
	// fn returns an error (returned by Scan) or the keys run out.
	Scan(prefix string, fn func(key string, value []byte) error) error
}

// Watcher is implemented by stores that several processes share (etcd), so
// that caches kept by one process can drop what another one changed.
type Watcher interface {
	// Watch calls fn with the key of every change under prefix made by
	// anyone, until ctx ends; it blocks until then and re-establishes the
	// watch by itself after errors. fn("") means changes may have been
	// missed (the watch just started, or resumed after history was
	// compacted): drop everything cached under prefix.
	Watch(ctx context.Context, prefix string, fn func(key string))
}

// Current is implemented by a Watcher that can prove how up to date its
// watch is. A process cut off from the others (a network partition) hears
// of nothing they change, yet may still hold what it admitted earlier (an
// open WebSocket of a session another process has ended); with this it can
// tell that it no longer knows.
type Current interface {
	// CurrentAsOf returns the latest instant t, on this process's clock,
	// such that every change committed by anyone before t has been passed
	// to this store's Watch subscribers (their fn called or queued); zero
	// until the first proof. It advances every fraction of a second while
	// the store is reachable and stops while it is not.
	CurrentAsOf() time.Time
}
