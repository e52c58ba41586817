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
	// gen counts drops and clears. A fill read its record before it took
	// the lock to put it; if a change dropped the name in between, the
	// fill holds the record from before the change and must not be kept
	// (it would hide a session's new state for gateCacheTTL: a learner
	// shown the starting page for a second after the dashboard was ready,
	// a terminated session still proxied).
	gen uint64
	// waiters are closed at the next drop of their name, or clear.
	waiters map[string]chan struct{}
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

// generation is the value to pass to put for a record read after it.
func (c *gateCache) generation() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.gen
}

// put keeps sess, read after generation returned gen, unless the cache
// was dropped from or cleared since.
func (c *gateCache) put(sess *Session, now time.Time, gen uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if gen != c.gen {
		return
	}
	if c.entries == nil || len(c.entries) >= gateCacheMax {
		c.entries = map[string]cachedSession{}
	}
	c.entries[sess.Name] = cachedSession{sess: *sess, until: now.Add(gateCacheTTL)}
}

// clear forgets every entry.
func (c *gateCache) clear() {
	c.mu.Lock()
	c.entries = nil
	c.gen++
	for _, ch := range c.waiters {
		close(ch)
	}
	c.waiters = nil
	c.mu.Unlock()
}

func (c *gateCache) drop(name string) {
	c.mu.Lock()
	delete(c.entries, name)
	c.gen++
	if ch, ok := c.waiters[name]; ok {
		close(ch)
		delete(c.waiters, name)
	}
	c.mu.Unlock()
}

// changed returns a channel closed at the next drop of name (or clear).
// A channel nobody waits on any more stays until then: every session
// changes at least once more, when it ends.
func (c *gateCache) changed(name string) <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	ch, ok := c.waiters[name]
	if !ok {
		if c.waiters == nil {
			c.waiters = map[string]chan struct{}{}
		}
		ch = make(chan struct{})
		c.waiters[name] = ch
	}
	return ch
}

// Changed returns a channel closed at the next change to session name that
// this Service makes or hears of (another replica's, through the store's
// watch). It may close for a change to other sessions too, and a change by
// a writer the Service does not hear of never closes it: the caller reads
// the session again and bounds its wait.
func (s *Service) Changed(name string) <-chan struct{} { return s.cache.changed(name) }

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
	gen := s.cache.generation()
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
	s.cache.put(raw, now, gen)
	raw.State, raw.Reason = raw.Effective(now)
	return raw, nil
}
