package kvcore

import (
	"strings"
	"time"

	"github.com/caddyportal/caddyportal/caddyportal/store"
)

// Writer does the writes of a backend's transaction once TxnBase has
// checked them: the key is a caller's and the transaction may write.
type Writer interface {
	// Put writes key; expires is in Unix nanoseconds, when expiring.
	Put(key string, value []byte, expiring bool, expires int64) error
	// Remove deletes key; a missing key is not an error.
	Remove(key string) error
}

// TxnBase is the part of store.Txn every backend's transaction shares: the
// checks before each call (its function has not returned, it may write,
// the key is a caller's) and the write methods over the backend's Writer.
// Embed it and set it with NewTxnBase; the backend adds Get and Scan,
// starting them with CheckRead and CheckScan.
type TxnBase struct {
	backend  string
	writable bool
	done     bool
	w        Writer
}

// NewTxnBase returns the base of a transaction of backend (named in
// errors), writable for Update's, whose checked writes go to w.
func NewTxnBase(backend string, writable bool, w Writer) TxnBase {
	return TxnBase{backend: backend, writable: writable, w: w}
}

// End marks the transaction unusable: its function has returned.
func (b *TxnBase) End() { b.done = true }

// Check returns store.ErrTxnDone once End has been called.
func (b *TxnBase) Check() error {
	if b.done {
		return store.ErrTxnDone
	}
	return nil
}

// CheckWrite says whether the transaction may write key: it must still be
// usable and writable, and key a caller's key (store.CheckWriteKey).
func (b *TxnBase) CheckWrite(key string) error {
	if err := b.Check(); err != nil {
		return err
	}
	if !b.writable {
		return store.ErrReadOnly
	}
	return store.CheckWriteKey(key)
}

// CheckRead says whether Get may look key up: store.ErrTxnDone once End
// has been called, store.ErrNotFound for a key no caller can have written
// (see hidden).
func (b *TxnBase) CheckRead(key string) error {
	if err := b.Check(); err != nil {
		return err
	}
	if hidden(key) {
		return store.ErrNotFound
	}
	return nil
}

// CheckScan says whether Scan should visit prefix: not once End has been
// called (err is store.ErrTxnDone), nor for a reserved prefix, which holds
// nothing of the caller's (err is nil).
func (b *TxnBase) CheckScan(prefix string) (visit bool, err error) {
	if err := b.Check(); err != nil {
		return false, err
	}
	return !strings.HasPrefix(prefix, store.ReservedPrefix), nil
}

// Set writes key without expiry, clearing any expiry it had.
func (b *TxnBase) Set(key string, value []byte) error {
	if err := b.CheckWrite(key); err != nil {
		return err
	}
	return b.w.Put(key, value, false, 0)
}

// SetExpiring writes key so that it disappears at expiresAt exactly.
func (b *TxnBase) SetExpiring(key string, value []byte, expiresAt time.Time) error {
	nanos, err := ExpiryNanos(b.backend, key, expiresAt)
	if err != nil {
		return err
	}
	if err := b.CheckWrite(key); err != nil {
		return err
	}
	return b.w.Put(key, value, true, nanos)
}

// Delete removes key.
func (b *TxnBase) Delete(key string) error {
	if err := b.CheckWrite(key); err != nil {
		return err
	}
	return b.w.Remove(key)
}
