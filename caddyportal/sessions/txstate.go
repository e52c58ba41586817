package sessions

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/caddyportal/caddyportal/caddyportal/lifecycle"
	"github.com/caddyportal/caddyportal/caddyportal/store"
	"github.com/caddyportal/caddyportal/caddyportal/tokens"
)

// txState is one attempt of a transaction that may change capacity. It
// keeps what the transaction read (session records, environment counters,
// and the whole live set of an environment when it had to be read) so a
// batch of requests reads each once, and collects events to emit after the
// commit. Counters it changed are written by flush.
type txState struct {
	s    *Service
	tx   store.Txn
	now  time.Time
	live map[string]map[string]*Session // env → name → live session
	// loaded holds every session record this transaction has read, so
	// each is one object however it was reached.
	loaded map[string]*Session
	// counts holds the environments' counters this transaction has read.
	counts map[string]*envCount
	// oldEntries are live sessions whose index entry was written by an
	// earlier version, as scanLive found them, for the write pass to
	// bring up to date (upgradeEntries).
	oldEntries []*Session
	events     []Event
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
	// starts and stops are the sessions whose environment this
	// transaction asks to start or stop: the service queues them once the
	// commit succeeded (the spawner is never called inside a transaction).
	starts, stops []string
	// startingPut are the sessions this transaction wrote as STARTING:
	// the start queue learns which of them are reserves (see startKinds).
	startingPut []string
	// beats caches which replicas are beating (takeOverStart).
	beats map[string]bool
}

func (s *Service) viewState(tx store.Txn) *txState {
	t := s.blankState(tx)
	t.readOnly = true
	return t
}

func (s *Service) blankState(tx store.Txn) *txState {
	return &txState{s: s, tx: tx, now: s.now(), live: map[string]map[string]*Session{},
		loaded: map[string]*Session{}, counts: map[string]*envCount{}}
}

func (s *Service) newTxState(tx store.Txn) (*txState, error) {
	t := s.blankState(tx)
	t.finalizeLeft = int(s.finalizeCap.Load())
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

// update runs fn in a transaction that may change capacity, writes the
// counters fn changed, and emits fn's events once the commit succeeded.
func (s *Service) update(ctx context.Context, fn func(t *txState) error) error {
	var events []Event
	var starts, stops, spares, taken []string
	err := s.st.Update(ctx, func(tx store.Txn) error {
		t, err := s.newTxState(tx)
		if err != nil {
			return err
		}
		if err := fn(t); err != nil {
			return err
		}
		if err := t.flush(); err != nil {
			return err
		}
		events, starts, stops = t.events, t.starts, t.stops
		spares, taken = t.startKinds()
		return nil
	})
	if err == nil {
		s.emit(events)
		s.queueStops(stops)
		s.queueStarts(starts, spares, taken)
	}
	return err
}

// env returns the live sessions of an environment, finalizing (writing as
// STOPPED) the ones whose deadline has passed. It reads every live record:
// allocation only comes here when the environment's counters say it is
// full, and background passes do.
func (t *txState) env(name string) (map[string]*Session, error) {
	if m, ok := t.live[name]; ok {
		return m, nil
	}
	m, err := t.scanLive(name)
	if err != nil {
		return nil, err
	}
	if err := t.settle(m); err != nil {
		return nil, err
	}
	t.live[name] = m
	return m, nil
}

// settle applies passed deadlines to the live sessions in m: a session
// whose end came while its environment runs is retired, one that is
// STOPPED now is finalized (within the budget) and taken out of m.
func (t *txState) settle(m map[string]*Session) error {
	for sn, sess := range m {
		st, reason := sess.Effective(t.now)
		if st == lifecycle.Stopping && sess.holdsEnv() {
			// Its end came but its environment still runs: it keeps its
			// place until the environment is stopped.
			if err := t.retire(sess, reason); err != nil {
				return err
			}
			continue
		}
		if st == lifecycle.Stopped {
			// Its slot is free for this transaction from here on, whether
			// or not the stop is written now: its streams end first.
			t.s.ended(sn)
			delete(m, sn)
			if !t.spend() {
				continue // already STOPPED for every reader; a later pass writes it
			}
			if err := t.finalize(sess, reason); err != nil {
				return err
			}
		}
	}
	return nil
}

// needing returns the live sessions of an environment whose index entry
// says the pass must look at them (need), with passed deadlines applied as
// env applies them, reading those records only; the counters are recounted
// from the entries, as scanLive recounts them from the records. Sessions
// whose deadline has passed are always read. It falls back to env when an
// entry of an earlier version makes the index not enough. What it returns
// is not the whole live set, so it is not kept for env.
func (t *txState) needing(name string, need func(sn string, e liveEntry) bool) (map[string]*Session, error) {
	if m, ok := t.live[name]; ok {
		return m, nil
	}
	type named struct {
		name    string
		created time.Time
	}
	var pick []string
	var reserves, starting []named
	live, legacy := 0, false
	prefix := prefixLive(name)
	err := t.tx.Scan(prefix, func(k string, v []byte) error {
		e, ok := decodeEntry(v)
		if !ok {
			legacy = true
			return nil
		}
		sn := strings.TrimPrefix(k, prefix)
		live++
		switch {
		case !e.Owned && e.State == lifecycle.Waiting:
			reserves = append(reserves, named{sn, e.Created})
		case !e.Owned && e.State == lifecycle.Starting:
			starting = append(starting, named{sn, e.Created})
		}
		if st := e.effective(t.now); st == lifecycle.Stopped || st == lifecycle.Stopping && e.HoldsEnv || need(sn, e) {
			pick = append(pick, sn)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if legacy {
		return t.env(name)
	}
	// The order scanLive counts in (sortedSessions): oldest first.
	older := func(a, b named) int {
		if c := a.created.Compare(b.created); c != 0 {
			return c
		}
		return strings.Compare(a.name, b.name)
	}
	slices.SortFunc(reserves, older)
	slices.SortFunc(starting, older)
	c := t.recount(name, live)
	for _, r := range reserves {
		c.Reserves = append(c.Reserves, r.name)
	}
	for _, r := range starting {
		c.Starting = append(c.Starting, r.name)
	}
	m := map[string]*Session{}
	var stale []string
	for _, sn := range pick {
		sess, err := t.session(sn)
		if err != nil {
			return nil, err
		}
		if sess == nil {
			stale = append(stale, keyLive(name, sn))
			c.leave(sn)
			continue
		}
		m[sn] = sess
	}
	if err := t.dropStale(stale); err != nil {
		return nil, err
	}
	return m, t.settle(m)
}

// scanLive reads the live index of an environment and every record it
// lists, dropping index keys whose record is gone, and recounts the
// environment's counters from what it found. It finalizes nothing, so
// that finalize can call it (through count) before a session leaves the
// index and count that session exactly once.
func (t *txState) scanLive(name string) (map[string]*Session, error) {
	m := map[string]*Session{}
	var stale []string
	var old []*Session
	indexed := 0
	err := t.tx.Scan(prefixLive(name), func(k string, v []byte) error {
		sn := strings.TrimPrefix(k, prefixLive(name))
		sess, err := t.session(sn)
		if err != nil {
			return err
		}
		if sess == nil {
			stale = append(stale, k)
			return nil
		}
		indexed++
		if sess.State != lifecycle.Stopped { // finalized earlier in this transaction
			m[sn] = sess
			if _, ok := decodeEntry(v); !ok {
				old = append(old, sess)
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if err := t.dropStale(stale); err != nil {
		return nil, err
	}
	t.oldEntries = append(t.oldEntries, old...)
	c := t.recount(name, indexed)
	for _, sess := range sortedSessions(m) {
		switch {
		case sess.spare():
			c.Reserves = append(c.Reserves, sess.Name)
		case sess.startingSpare():
			c.Starting = append(c.Starting, sess.Name)
		}
	}
	return m, nil
}

// recount starts env's counters afresh at live sessions and no reserves,
// in place, so callers holding the counters see the result.
func (t *txState) recount(env string, live int) *envCount {
	c := t.counts[env]
	if c == nil {
		c = &envCount{}
		t.counts[env] = c
	}
	*c = envCount{Live: live, dirty: true}
	return c
}

// session returns a session record as this transaction sees it, or nil if
// it is gone or unreadable.
func (t *txState) session(name string) (*Session, error) {
	if sess, ok := t.loaded[name]; ok {
		return sess, nil
	}
	v, err := t.tx.Get(keySession(name))
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	sess := &Session{}
	if unmarshal(v, sess) != nil {
		return nil, nil
	}
	t.loaded[name] = sess
	return sess, nil
}

// count returns the counters of an environment, rebuilding them from the
// live index when they are missing (a store written before they existed)
// or unreadable.
func (t *txState) count(env string) (*envCount, error) {
	if c, ok := t.counts[env]; ok {
		return c, nil
	}
	v, err := t.tx.Get(keyCount(env))
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return nil, err
	}
	if err == nil {
		c := &envCount{}
		if unmarshal(v, c) == nil && c.Live >= 0 {
			t.counts[env] = c
			return c, nil
		}
	}
	if _, err := t.scanLive(env); err != nil {
		return nil, err
	}
	return t.counts[env], nil
}

// flush writes the counters this transaction changed.
func (t *txState) flush() error {
	if t.readOnly {
		return nil
	}
	for env, c := range t.counts {
		if !c.dirty {
			continue
		}
		if err := t.tx.Set(keyCount(env), marshal(c)); err != nil {
			return err
		}
	}
	return nil
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

// quiet reports whether a pool slot is held after its session stopped
// without a grace (see keyQuiet); only shared stores hold slots so.
func (t *txState) quiet(env string, slot int) (bool, error) {
	if !t.s.shared {
		return false, nil
	}
	_, err := t.tx.Get(keyQuiet(env, slot))
	if errors.Is(err, store.ErrNotFound) {
		return false, nil
	}
	return err == nil, err
}

// finalize makes a stop durable: the record becomes STOPPED, leaves the
// indexes, and expires after the retention period. A session that holds an
// environment is retired instead (STOPPING until its environment is
// stopped): finalize never frees the place of a running environment.
func (t *txState) finalize(sess *Session, reason string) error {
	if sess.holdsEnv() {
		return t.retire(sess, reason)
	}
	var c *envCount
	if !t.readOnly {
		// Read the counters while sess is still in the live index: if they
		// have to be rebuilt, the rebuild counts it, and the decrement
		// below takes it out once.
		var err error
		if c, err = t.count(sess.Environment); err != nil {
			return err
		}
	}
	t.s.ended(sess.Name)
	if t.s.shared && !t.readOnly && sess.Slot >= 0 && sess.State != lifecycle.Stopping {
		// No STOPPING grace gave the other replicas time to close this
		// session's streams: hold its slot for as long (see keyQuiet).
		if err := t.tx.SetExpiring(keyQuiet(sess.Environment, sess.Slot), []byte(sess.Name), t.now.Add(t.s.opts.StopGrace)); err != nil {
			return err
		}
	}
	stoppedAt := t.now
	if !sess.Expires.IsZero() && sess.Expires.Before(t.now) {
		stoppedAt = sess.Expires
	}
	if sess.State == lifecycle.Stopping && !sess.Stopped.IsZero() && sess.Stopped.Before(t.now) {
		stoppedAt = sess.Stopped
	}
	sess.State = lifecycle.Stopped
	sess.Stopped = stoppedAt
	if sess.Expires.After(stoppedAt) {
		// It ended before its deadline (a failed start in a long
		// activation window): the record says when it ended, as retire
		// and Terminate leave theirs, not a deadline that no longer holds
		// (the admin pages show it as the session's expiry).
		sess.Expires = stoppedAt
	}
	if sess.Reason == "" {
		sess.Reason = reason
	}
	// The record is kept for the retention period (history, the admin
	// pages), but nothing may use its credentials any more: the config
	// password (stored in clear), the secret of the session's OAuth
	// client and the seed of its link go. The hashes of its activation
	// tokens stay, so the owner's old link still gets the page that says
	// where the session went.
	sess.ConfigPassword, sess.ClientSecretHash, sess.LinkSeed = "", "", ""
	if m, ok := t.live[sess.Environment]; ok {
		delete(m, sess.Name)
	}
	if t.readOnly {
		return nil
	}
	if err := t.tx.Delete(keyLive(sess.Environment, sess.Name)); err != nil {
		return err
	}
	c.leave(sess.Name)
	if sess.Owner != "" {
		if err := t.tx.Delete(keyOwned(sess.Owner, sess.Name)); err != nil {
			return err
		}
		if err := t.releaseUser(sess.Owner, stoppedAt); err != nil {
			return err
		}
	}
	retain := stoppedAt.Add(t.s.cfg.Retention.D())
	if err := t.tx.SetExpiring(keySession(sess.Name), marshal(sess), retain); err != nil {
		return err
	}
	if err := t.indexEnded(sess, retain); err != nil {
		return err
	}
	if sess.Owner != "" && retain.After(t.now) {
		if err := t.tx.SetExpiring(keyHistory(sess.Owner, sess.Name), nil, retain); err != nil {
			return err
		}
	}
	name := EventSessionDeleted
	var data map[string]any
	switch sess.Reason {
	case ReasonExpired:
		name = EventSessionExpired
	case ReasonOrphaned:
		name = EventSessionOrphaned
	default:
		// Deleted covers several causes (terminated, evicted, environment
		// removed…): the reason lets receivers and metrics tell them apart.
		data = map[string]any{"reason": sess.Reason}
	}
	t.event(name, sess, data)
	return nil
}

// startKinds says, as the transaction left them, which of the sessions it
// wrote as STARTING are reserves (spares) and which belong to a learner
// (taken).
func (t *txState) startKinds() (spares, taken []string) {
	for _, name := range t.startingPut {
		sess := t.loaded[name]
		switch {
		case sess == nil || sess.State != lifecycle.Starting:
		case sess.Reserved():
			spares = append(spares, name)
		default:
			taken = append(taken, name)
		}
	}
	return spares, taken
}

// put writes a live session and keeps the cache and indexes in step.
func (t *txState) put(sess *Session) error {
	if sess.State == lifecycle.Starting {
		t.startingPut = append(t.startingPut, sess.Name)
	}
	if m, ok := t.live[sess.Environment]; ok {
		m[sess.Name] = sess
	}
	t.loaded[sess.Name] = sess
	if err := t.tx.Set(keySession(sess.Name), marshal(sess)); err != nil {
		return err
	}
	if err := setLiveEntry(t.tx, sess); err != nil {
		return err
	}
	if sess.Owner != "" {
		return t.tx.Set(keyOwned(sess.Owner, sess.Name), nil)
	}
	return nil
}

// totalLive counts live sessions across all environments from their
// counters. The count includes sessions whose deadline has passed but
// that are not finalized yet, so it is never below the true number.
func (t *txState) totalLive() (int, error) {
	n := 0
	for _, e := range t.s.envs {
		c, err := t.count(e.Name)
		if err != nil {
			return 0, err
		}
		n += c.Live
	}
	return n, nil
}

// exactTotalLive reads every environment's live sessions, finalizing
// passed deadlines, and counts what is left: the slow path for when the
// counters say the portal maximum is reached.
func (t *txState) exactTotalLive() (int, error) {
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

// underCapacity reports whether e can take one more live session. It
// trusts the counters while they leave room, and reads the live sessions
// only when they say full, since passed deadlines not yet finalized may
// free places.
func (t *txState) underCapacity(e *Environment) (bool, error) {
	c, err := t.count(e.Name)
	if err != nil || c.Live < e.Capacity {
		return err == nil, err
	}
	m, err := t.env(e.Name)
	return err == nil && len(m) < e.Capacity, err
}

// underMaximum reports whether the portal can take one more live session,
// in the same way as underCapacity.
func (t *txState) underMaximum() (bool, error) {
	maxSessions := t.s.cfg.Sessions.Maximum
	if maxSessions <= 0 {
		return true, nil
	}
	total, err := t.totalLive()
	if err != nil || total < maxSessions {
		return err == nil, err
	}
	total, err = t.exactTotalLive()
	return err == nil && total < maxSessions, err
}

// newSession creates a live session in env with the next name and a free
// slot; owner may be empty for a reserve. The caller checked capacity.
func (t *txState) newSession(e *Environment, owner string) (*Session, error) {
	slot, upstream := -1, ""
	spawned := t.s.spawnerOf(e) != nil
	if spawned {
		// Its environment is started after the commit; until then it has
		// no upstream and the gate shows the starting page.
	} else if tmpl, ok := e.Workshop.Template(); ok {
		upstream = tmpl // completed below, once the name is known
	} else {
		// A fixed list of upstreams bounds the live sessions, so reading
		// them all to find a free slot stays cheap.
		m, err := t.env(e.Name)
		if err != nil {
			return nil, err
		}
		used := map[int]bool{}
		for _, sess := range m {
			used[sess.Slot] = true
		}
		// A dashboard that refuses connections would give its learner a
		// 502: skip it while its probe fails.
		for i, u := range e.Workshop.Upstreams {
			if used[i] || !t.s.healthy(u) {
				continue
			}
			quiet, err := t.quiet(e.Name, i)
			if err != nil {
				return nil, err
			}
			if !quiet {
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
	password, err := tokens.New()
	if err != nil {
		return nil, err
	}
	sess := &Session{Name: name, Environment: e.Name, Workshop: e.Workshop.Name, State: lifecycle.Waiting,
		Owner: owner, Slot: slot, Upstream: upstream, Created: t.now, ConfigPassword: password}
	if spawned {
		sess.State = lifecycle.Starting
		sess.EnvOwner, sess.EnvNetwork = t.s.replica, t.s.opts.Network
		sess.Progress = queued()
		t.starts = append(t.starts, name)
	}
	// Read the counters before the session enters the live index (see
	// finalize).
	c, err := t.count(e.Name)
	if err != nil {
		return nil, err
	}
	if err := t.put(sess); err != nil {
		return nil, err
	}
	c.enter(sess)
	t.event(EventSessionCreated, sess, nil)
	return sess, nil
}

// evictOldestReserve stops the oldest unowned session portal-wide to make
// room under the portal maximum. It reports whether room was made. A
// reserve whose environment runs keeps its place until that is stopped, so
// reserves without one are evicted first; when only such reserves are
// left, the oldest is retired (room comes once its environment is stopped)
// and the request finds no room now.
func (t *txState) evictOldestReserve() (bool, error) {
	var oldest, oldestHeld *Session
	older := func(a, b *Session) bool {
		return b == nil || a.Created.Before(b.Created) || a.Created.Equal(b.Created) && a.Name < b.Name
	}
	for _, e := range t.s.envs {
		m, err := t.env(e.Name)
		if err != nil {
			return false, err
		}
		for _, sess := range m {
			switch {
			case !sess.Reserved() || sess.State == lifecycle.Stopping:
			case sess.holdsEnv():
				if older(sess, oldestHeld) {
					oldestHeld = sess
				}
			case older(sess, oldest):
				oldest = sess
			}
		}
	}
	if oldest == nil {
		if oldestHeld != nil {
			oldestHeld.Reason = ReasonEvicted
			return false, t.retire(oldestHeld, ReasonEvicted)
		}
		return false, nil
	}
	oldest.Reason = ReasonEvicted
	return true, t.finalize(oldest, ReasonEvicted)
}

// topUp creates reserves in e up to its reserved count, within the
// environment capacity and the portal maximum.
func (t *txState) topUp(e *Environment, want int) error {
	if e.State != EnvRunning {
		return nil
	}
	c, err := t.count(e.Name)
	if err != nil {
		return err
	}
	if t.s.spawnerOf(e) != nil && t.s.backingOff(e.Name, t.now) {
		// Its last reserve start failed: the reconcile loop tries again
		// once the backoff has passed, never in a tight loop.
		return nil
	}
	for len(c.Reserves)+len(c.Starting) < want {
		ok, err := t.underCapacity(e)
		if err == nil && ok {
			ok, err = t.underMaximum()
		}
		if err != nil || !ok {
			return err
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

// takeReserve returns the oldest reserve of e that is ready to hand out
// and takes it off the counters' list, or nil if there is none. Names on
// the list that are no longer such a reserve are dropped on the way.
func (t *txState) takeReserve(e *Environment) (*Session, error) {
	c, err := t.count(e.Name)
	if err != nil {
		return nil, err
	}
	for len(c.Reserves) > 0 {
		name := c.Reserves[0]
		c.dropReserve(name)
		sess, err := t.session(name)
		if err != nil {
			return nil, err
		}
		if sess != nil && sess.Environment == e.Name && sess.spare() && sess.Live(t.now) && sess.State != lifecycle.Stopping {
			// A spawned environment was probed ready by its spawner; the
			// health checker does not know its address.
			if sess.Env == nil && !t.s.healthy(sess.Upstream) {
				// Its dashboard is down: retire it, which frees its place
				// for a reserve on a healthy slot.
				sess.Reason = ReasonUnhealthy
				if err := t.finalize(sess, ReasonUnhealthy); err != nil {
					return nil, err
				}
				continue
			}
			return sess, nil
		}
	}
	return nil, nil
}

// takeStarting returns the oldest reserve of e whose environment is still
// starting and takes it off the counters, or nil. A request that finds no
// ready reserve and no room takes one of these rather than being refused:
// it becomes the requester's session and is ready as soon as the reserve
// would have been.
func (t *txState) takeStarting(e *Environment) (*Session, error) {
	c, err := t.count(e.Name)
	if err != nil {
		return nil, err
	}
	for len(c.Starting) > 0 {
		name := c.Starting[0]
		c.dropReserve(name)
		sess, err := t.session(name)
		if err != nil {
			return nil, err
		}
		if sess != nil && sess.Environment == e.Name && sess.startingSpare() {
			if st, _ := sess.Effective(t.now); st == lifecycle.Starting {
				return sess, nil
			}
		}
	}
	return nil, nil
}

// retire ends a session that holds an environment: it becomes STOPPING
// with its reason (its place still counted) and the owner replica is asked
// to stop the environment; finalize runs once that is done (see
// Service.stopOne). Retiring a STOPPING session again only asks again.
func (t *txState) retire(sess *Session, reason string) error {
	t.s.ended(sess.Name)
	if sess.EnvOwner == t.s.replica && sess.Env != nil {
		t.stops = append(t.stops, sess.Name)
	}
	if sess.State == lifecycle.Stopping && sess.Reason != "" {
		return nil // already durable
	}
	if sess.Reason == "" {
		sess.Reason = reason
	}
	if sess.State != lifecycle.Stopping {
		sess.State = lifecycle.Stopping
		if sess.Expires.IsZero() || sess.Expires.After(t.now) {
			sess.Expires = t.now
		}
		sess.Stopped = sess.Expires
	}
	if t.readOnly {
		// Readers see it STOPPING; the next read-write pass writes it.
		return nil
	}
	c, err := t.count(sess.Environment)
	if err != nil {
		return err
	}
	c.dropReserve(sess.Name)
	return t.put(sess)
}

// upgradeEntries rewrites the index entries written by an earlier version
// that scanLive found, as far as the finalize budget goes (one write each;
// the pass is capped and runs again for the rest): the first write passes
// after an upgrade bring the index up to date, so its readers stop reading
// these records. Only the reconcile pass calls it, so that no request's
// transaction spends its budget on them.
func (t *txState) upgradeEntries() error {
	for len(t.oldEntries) > 0 {
		sess := t.oldEntries[0]
		if sess.State != lifecycle.Stopped {
			if !t.spend() {
				return nil
			}
			if err := setLiveEntry(t.tx, sess); err != nil {
				return err
			}
		}
		t.oldEntries = t.oldEntries[1:]
	}
	return nil
}
