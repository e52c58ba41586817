package sessions

import (
	"context"
	"sync"
	"time"

	"github.com/caddyportal/caddyportal/caddyportal/store"
)

// gateCacheTTL bounds how stale a cached session may be when another writer
// (another replica, or the other config during a reload overlap) changed
// it. Changes made through this Service drop the entry at once.
const gateCacheTTL = time.Second

// gateCacheMax bounds the cache; past it, the cache starts over.
const gateCacheMax = 100000

// gateCache keeps recently read session records so the gate does not read
// and decode the record on every proxied request.
type gateCache struct {
	mu      sync.Mutex
	entries map[string]cachedSession
}

type cachedSession struct {
	sess  Session
	until time.Time
}

func (c *gateCache) get(name string, now time.Time) (Session, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries[name]
	if !ok || !now.Before(e.until) {
		return Session{}, false
	}
	return e.sess, true
}

func (c *gateCache) put(sess *Session, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.entries == nil || len(c.entries) >= gateCacheMax {
		c.entries = map[string]cachedSession{}
	}
	c.entries[sess.Name] = cachedSession{sess: *sess, until: now.Add(gateCacheTTL)}
}

// clear forgets every entry.
func (c *gateCache) clear() {
	c.mu.Lock()
	c.entries = nil
	c.mu.Unlock()
}

func (c *gateCache) drop(name string) {
	c.mu.Lock()
	delete(c.entries, name)
	c.mu.Unlock()
}

// GetCached is Get for the gate's hot path: it may answer from a copy read
// up to a second ago (changes made through this Service are seen at once),
// but deadlines are still applied at the exact instant. The returned
// session is a copy the caller may keep.
func (s *Service) GetCached(ctx context.Context, name string) (*Session, error) {
	now := s.now()
	if sess, ok := s.cache.get(name, now); ok {
		sess.State, sess.Reason = sess.Effective(now)
		return &sess, nil
	}
	var raw *Session
	err := s.st.View(ctx, func(tx store.Txn) error {
		v, err := tx.Get(keySession(name))
		if err != nil {
			return err
		}
		raw = &Session{}
		return unmarshal(v, raw)
	})
	if err != nil {
		return s.Get(ctx, name) // uniform errors for missing or broken records
	}
	s.cache.put(raw, now)
	raw.State, raw.Reason = raw.Effective(now)
	return raw, nil
}
