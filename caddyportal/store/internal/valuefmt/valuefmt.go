// Package valuefmt is the stored value format the store backends share: a
// one-byte header, for expiring values the expiry instant, then the value.
// Expiry lives in the value rather than in the backend's own TTL because
// both Badger's and etcd's TTLs count whole seconds, and the store
// contract needs expiry exact to the instant.
package valuefmt

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"
)

// Value headers.
const (
	hdrPlain    byte = 0x00
	hdrExpiring byte = 0x01
)

// Record is a decoded stored value.
type Record struct {
	Value    []byte
	Expiring bool
	Expires  int64 // Unix nanoseconds, when Expiring
}

// Encode returns the stored form of value; it copies value.
func Encode(value []byte, expiring bool, expires int64) []byte {
	if !expiring {
		buf := make([]byte, 1+len(value))
		buf[0] = hdrPlain
		copy(buf[1:], value)
		return buf
	}
	buf := make([]byte, 9+len(value))
	buf[0] = hdrExpiring
	binary.BigEndian.PutUint64(buf[1:9], uint64(expires))
	copy(buf[9:], value)
	return buf
}

// Decode parses a stored value; errors name the backend.
func Decode(backend string, raw []byte) (Record, error) {
	if len(raw) == 0 {
		return Record{}, errors.New(backend + ": corrupt value: empty")
	}
	switch raw[0] {
	case hdrPlain:
		return Record{Value: raw[1:]}, nil
	case hdrExpiring:
		if len(raw) < 9 {
			return Record{}, errors.New(backend + ": corrupt value: short expiry header")
		}
		return Record{Value: raw[9:], Expiring: true, Expires: int64(binary.BigEndian.Uint64(raw[1:9]))}, nil
	default:
		return Record{}, fmt.Errorf("%s: corrupt value: unknown header %#x", backend, raw[0])
	}
}

// ExpiredAt reports whether r is gone at now: an expiry instant is the
// first instant at which the key is no longer visible.
func (r Record) ExpiredAt(now time.Time) bool {
	return r.Expiring && r.Expires <= now.UnixNano()
}
