package sessions

import (
	"bytes"
	"slices"
	"sync"
)

// decodeCacheMax bounds the cache; past it, it starts over.
const decodeCacheMax = 1 << 17

// decodeCache keeps decoded session records keyed by name together with
// the exact bytes they were decoded from. Capacity decisions read every
// live record of an environment in each allocation transaction; decoding
// the JSON dominated that once thousands were live, while comparing the
// stored bytes with the cached ones is cheap. A record whose bytes differ
// in any way is decoded again, so the cache can never return stale data.
type decodeCache struct {
	mu      sync.Mutex
	entries map[string]decodedSession
}

type decodedSession struct {
	raw  []byte
	sess Session
}

// decode returns a session the caller may modify.
func (c *decodeCache) decode(name string, raw []byte) (*Session, error) {
	c.mu.Lock()
	e, ok := c.entries[name]
	c.mu.Unlock()
	if ok && bytes.Equal(e.raw, raw) {
		return e.sess.clone(), nil
	}
	var sess Session
	if err := unmarshal(raw, &sess); err != nil {
		return nil, err
	}
	c.mu.Lock()
	if c.entries == nil || len(c.entries) >= decodeCacheMax {
		c.entries = map[string]decodedSession{}
	}
	c.entries[name] = decodedSession{raw: bytes.Clone(raw), sess: *sess.clone()}
	c.mu.Unlock()
	return &sess, nil
}

// clone copies s deeply enough that changing the copy never changes s.
func (s *Session) clone() *Session {
	c := *s
	c.TokenHashes = slices.Clone(s.TokenHashes)
	c.Params = slices.Clone(s.Params)
	return &c
}
