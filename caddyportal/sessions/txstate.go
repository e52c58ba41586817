package sessions

import (
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/caddyportal/caddyportal/caddyportal/lifecycle"
	"github.com/caddyportal/caddyportal/caddyportal/store"
)

// txState is one attempt of a transaction that may change capacity. It caches
// each environment's live sessions so a batch of requests reads them once,
// and collects events to emit after the commit.
type txState struct {
	s      *Service
	tx     store.Txn
	now    time.Time
	live   map[string]map[string]*Session // env → name → live session
	events []Event
	// readOnly states (View transactions) apply passed deadlines to what
	// they return but leave writing them to the next read-write pass.
	readOnly bool
	// finalizeLeft is how many more passed deadlines this transaction may
	// make durable; capped is set when some were left for a later pass.
	// A wave of thousands of sessions expiring together would otherwise
	// make one transaction larger than the store accepts, and every
	// allocation would fail on it.
	finalizeLeft int
	capped       bool
}

func (s *Service) viewState(tx store.Txn) *txState {
	return &txState{s: s, tx: tx, now: s.now(), live: map[string]map[string]*Session{}, readOnly: true}
}

func (s *Service) newTxState(tx store.Txn) (*txState, error) {
	t := &txState{s: s, tx: tx, now: s.now(), live: map[string]map[string]*Session{},
		finalizeLeft: int(s.finalizeCap.Load())}
	// Read and bump the allocation generation: any two capacity-changing
	// transactions now conflict, which makes scanned ranges safe.
	v, err := tx.Get(keyAlloc)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return nil, err
	}
	if err := tx.Set(keyAlloc, []byte(strconv.Itoa(parseInt(v)+1))); err != nil {
		return nil, err
	}
	return t, nil
}

// env returns the live sessions of an environment, finalizing (writing as
// STOPPED) the ones whose deadline has passed.
func (t *txState) env(name string) (map[string]*Session, error) {
	if m, ok := t.live[name]; ok {
		return m, nil
	}
	m := map[string]*Session{}
	var stale []string
	err := t.tx.Scan(prefixLive(name), func(k string, _ []byte) error {
		sn := strings.TrimPrefix(k, prefixLive(name))
		v, err := t.tx.Get(keySession(sn))
		if errors.Is(err, store.ErrNotFound) {
			stale = append(stale, k)
			return nil
		}
		if err != nil {
			return err
		}
		sess, err := t.s.decoded.decode(sn, v)
		if err != nil {
			stale = append(stale, k)
			return nil
		}
		m[sn] = sess
		return nil
	})
	if err != nil {
		return nil, err
	}
	if err := t.dropStale(stale); err != nil {
		return nil, err
	}
	for sn, sess := range m {
		if st, reason := sess.Effective(t.now); st == lifecycle.Stopped {
			delete(m, sn)
			if !t.spend() {
				continue // already STOPPED for every reader; a later pass writes it
			}
			if err := t.finalize(sess, reason); err != nil {
				return nil, err
			}
		}
	}
	t.live[name] = m
	return m, nil
}

// spend takes one finalization from the transaction's budget; false means
// the budget is used up and the caller should leave the session for a
// later pass. Read-only states write nothing and never run out.
func (t *txState) spend() bool {
	if t.readOnly {
		return true
	}
	if t.finalizeLeft <= 0 {
		t.capped = true
		return false
	}
	t.finalizeLeft--
	return true
}

// dropStale deletes index keys whose session record is gone or broken;
// read-only passes leave them for the next read-write one.
func (t *txState) dropStale(keys []string) error {
	if t.readOnly {
		return nil
	}
	for _, k := range keys {
		if err := t.tx.Delete(k); err != nil {
			return err
		}
	}
	return nil
}

// finalize makes a stop durable: the record becomes STOPPED, leaves the
// indexes, and expires after the retention period.
func (t *txState) finalize(sess *Session, reason string) error {
	stoppedAt := t.now
	if !sess.Expires.IsZero() && sess.Expires.Before(t.now) {
		stoppedAt = sess.Expires
	}
	if sess.State == lifecycle.Stopping && !sess.Stopped.IsZero() && sess.Stopped.Before(t.now) {
		stoppedAt = sess.Stopped
	}
	sess.State = lifecycle.Stopped
	sess.Stopped = stoppedAt
	if sess.Reason == "" {
		sess.Reason = reason
	}
	if m, ok := t.live[sess.Environment]; ok {
		delete(m, sess.Name)
	}
	if t.readOnly {
		return nil
	}
	if err := t.tx.Delete(keyLive(sess.Environment, sess.Name)); err != nil {
		return err
	}
	if sess.Owner != "" {
		if err := t.tx.Delete(keyOwned(sess.Owner, sess.Name)); err != nil {
			return err
		}
	}
	retain := stoppedAt.Add(t.s.cfg.Retention.D())
	if err := t.tx.SetExpiring(keySession(sess.Name), marshal(sess), retain); err != nil {
		return err
	}
	name := "Session/Deleted"
	var data map[string]any
	switch sess.Reason {
	case "expired":
		name = "Session/Expired"
	case "orphaned":
		name = "Session/Orphaned"
	default:
		// Deleted covers several causes (terminated, evicted, environment
		// removed…): the reason lets receivers and metrics tell them apart.
		data = map[string]any{"reason": sess.Reason}
	}
	t.event(name, sess, data)
	return nil
}

// put writes a live session and keeps the cache and indexes in step.
func (t *txState) put(sess *Session) error {
	if m, ok := t.live[sess.Environment]; ok {
		m[sess.Name] = sess
	}
	if err := t.tx.Set(keySession(sess.Name), marshal(sess)); err != nil {
		return err
	}
	if err := t.tx.Set(keyLive(sess.Environment, sess.Name), nil); err != nil {
		return err
	}
	if sess.Owner != "" {
		return t.tx.Set(keyOwned(sess.Owner, sess.Name), nil)
	}
	return nil
}

// totalLive counts live sessions across all environments.
func (t *txState) totalLive() (int, error) {
	n := 0
	for _, e := range t.s.envs {
		m, err := t.env(e.Name)
		if err != nil {
			return 0, err
		}
		n += len(m)
	}
	return n, nil
}

// newSession creates a live session in env with the next name and a free
// slot; owner may be empty for a reserve. The caller checked capacity.
func (t *txState) newSession(e *Environment, owner string) (*Session, error) {
	m, err := t.env(e.Name)
	if err != nil {
		return nil, err
	}
	slot, upstream := -1, ""
	if tmpl, ok := e.Workshop.Template(); ok {
		upstream = tmpl // completed below, once the name is known
	} else {
		used := map[int]bool{}
		for _, sess := range m {
			used[sess.Slot] = true
		}
		for i := range e.Workshop.Upstreams {
			if !used[i] {
				slot = i
				break
			}
		}
		if slot < 0 {
			return nil, ErrNoSession
		}
		upstream = e.Workshop.Upstreams[slot]
	}
	v, err := t.tx.Get(keySeq(e.Name))
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return nil, err
	}
	n := parseInt(v) + 1
	if err := t.tx.Set(keySeq(e.Name), []byte(strconv.Itoa(n))); err != nil {
		return nil, err
	}
	name := sessionName(e.Name, n)
	if slot < 0 {
		upstream = strings.ReplaceAll(upstream, "{session}", name)
	}
	sess := &Session{Name: name, Environment: e.Name, Workshop: e.Workshop.Name, State: lifecycle.Waiting,
		Owner: owner, Slot: slot, Upstream: upstream, Created: t.now}
	if err := t.put(sess); err != nil {
		return nil, err
	}
	t.event("Session/Created", sess, nil)
	return sess, nil
}

// evictOldestReserve stops the oldest unowned session portal-wide to make
// room under the portal maximum. It reports whether one was found.
func (t *txState) evictOldestReserve() (bool, error) {
	var oldest *Session
	for _, e := range t.s.envs {
		m, err := t.env(e.Name)
		if err != nil {
			return false, err
		}
		for _, sess := range m {
			if sess.Reserved() && (oldest == nil || sess.Created.Before(oldest.Created) ||
				sess.Created.Equal(oldest.Created) && sess.Name < oldest.Name) {
				oldest = sess
			}
		}
	}
	if oldest == nil {
		return false, nil
	}
	oldest.Reason = "evicted"
	return true, t.finalize(oldest, "evicted")
}

// topUp creates reserves in e up to its reserved count, within the
// environment capacity and the portal maximum.
func (t *txState) topUp(e *Environment, want int) error {
	if e.State != EnvRunning {
		return nil
	}
	m, err := t.env(e.Name)
	if err != nil {
		return err
	}
	have := 0
	for _, sess := range m {
		if sess.Reserved() {
			have++
		}
	}
	for ; have < want && len(m) < e.Capacity; have++ {
		if maxSessions := t.s.cfg.Sessions.Maximum; maxSessions > 0 {
			total, err := t.totalLive()
			if err != nil {
				return err
			}
			if total >= maxSessions {
				return nil
			}
		}
		if _, err := t.newSession(e, ""); err != nil {
			if errors.Is(err, ErrNoSession) {
				return nil
			}
			return err
		}
	}
	return nil
}

func (t *txState) event(name string, sess *Session, data map[string]any) {
	t.events = append(t.events, Event{Name: name, Time: t.now, User: sess.Owner, Session: sess.Name,
		Environment: sess.Environment, Workshop: sess.Workshop, Data: data, AnalyticsURL: sess.AnalyticsURL})
}
