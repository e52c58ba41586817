package kvcore

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/caddyportal/caddyportal/caddyportal/store"
)

// IndexPrefix starts the expiry index entries, inside the reserved key
// space. An entry is
//
//	~x/<8-byte expiry><user key>   (empty value)
//
// where <8-byte expiry> is the Unix nanoseconds as a big-endian uint64 with
// the sign bit flipped, so that byte order is time order and a sweeper can
// walk the due entries from the start of the index.
const IndexPrefix = store.ReservedPrefix + "x/"

// Expiry instants must fit int64 Unix nanoseconds (years 1678 to 2262).
var (
	minExpiry = time.Unix(0, math.MinInt64)
	maxExpiry = time.Unix(0, math.MaxInt64)
)

// ExpiryNanos returns at as Unix nanoseconds, or an error naming backend
// and key when at does not fit.
func ExpiryNanos(backend, key string, at time.Time) (int64, error) {
	if at.Before(minExpiry) || at.After(maxExpiry) {
		return 0, fmt.Errorf("%s: expiry %v of %q is out of range", backend, at, key)
	}
	return at.UnixNano(), nil
}

// AppendIndexKey appends the expiry index key of key expiring at nanos to b.
func AppendIndexKey(b []byte, nanos int64, key string) []byte {
	b = slices.Grow(b, len(IndexPrefix)+8+len(key))
	b = append(b, IndexPrefix...)
	u := uint64(nanos) ^ (1 << 63)
	for shift := 56; shift >= 0; shift -= 8 {
		b = append(b, byte(u>>shift))
	}
	return append(b, key...)
}

// IndexKey returns the expiry index key of key expiring at nanos.
func IndexKey(nanos int64, key string) string {
	return string(AppendIndexKey(nil, nanos, key))
}

// ParseIndexKey is the inverse of IndexKey; ok is false for a key that is
// not an index entry.
func ParseIndexKey[K ~string | ~[]byte](k K) (nanos int64, key string, ok bool) {
	if len(k) < len(IndexPrefix)+8 || string(k[:len(IndexPrefix)]) != IndexPrefix {
		return 0, "", false
	}
	rest := k[len(IndexPrefix):]
	var u uint64
	for i := range 8 {
		u = u<<8 | uint64(rest[i])
	}
	return int64(u ^ (1 << 63)), string(rest[8:]), true
}

// hidden reports whether key is one that no caller can have written: the
// empty key and the reserved ones. Get reports them missing and Scan of a
// reserved prefix visits nothing.
func hidden(key string) bool {
	return key == "" || strings.HasPrefix(key, store.ReservedPrefix)
}
