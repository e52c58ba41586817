package sessions

import (
	"context"
	"strconv"
	"strings"
	"time"

	"github.com/caddyportal/caddyportal/caddyportal/lifecycle"
	"github.com/caddyportal/caddyportal/caddyportal/store"
)

// liveEntry is the value of a live index key (l/<env>/<session>): what the
// catalogs, the metrics and the health checker need of a session, so that
// they scan the index instead of reading and decoding every live record.
// At 5,000 live sessions a catalog that read the records cost about 48 ms
// of CPU per request, and every learner who opens the catalog asks for one.
//
// Every write of a live session's record writes its entry in the same
// transaction, so the entry never says something the record does not.
type liveEntry struct {
	// Upstream is the session's dashboard address, empty until known.
	Upstream string
	// State is the stored state, deadlines not applied.
	State lifecycle.State
	// Owned says the session has an owner (it is not a reserve).
	Owned bool
	// Queued says the session waits for a free start.
	Queued bool
	// HoldsEnv says an environment runs or is being started for it.
	HoldsEnv bool
	// Expires and Stopped are the record's deadlines.
	Expires, Stopped time.Time
	// Created orders reserves (oldest first); LastActivity is the idle
	// clock's start.
	Created, LastActivity time.Time
}

// liveEntryVersion starts an encoded entry. Entries written by earlier
// versions are read from their record: the address alone (or empty),
// which never starts with a control character, and version 1, which had
// no Created or LastActivity.
const liveEntryVersion = '\x02'

// Flags of an encoded entry, added to '0'.
const (
	entryOwned = 1 << iota
	entryQueued
	entryHoldsEnv
)

// entryOf is the live index entry of sess.
func entryOf(sess *Session) liveEntry {
	return liveEntry{Upstream: sess.Upstream, State: sess.State, Owned: !sess.Reserved(),
		Queued:   sess.State == lifecycle.Starting && sess.Progress != nil && sess.Progress.Step == StepQueued,
		HoldsEnv: sess.holdsEnv(), Expires: sess.Expires, Stopped: sess.Stopped, Created: sess.Created,
		LastActivity: sess.LastActivity}
}

// effective is the session's state at now, as Session.Effective says of
// its record: it is computed by Effective itself, from the fields of the
// record the entry keeps, so that the rules live in one place.
func (e liveEntry) effective(now time.Time) lifecycle.State {
	sess := Session{State: e.State, Expires: e.Expires, Stopped: e.Stopped, Spawning: e.HoldsEnv}
	if e.Owned {
		sess.Owner = "-"
	}
	st, _ := sess.Effective(now)
	return st
}

// encode is the stored form: the version, the flags, the times in Unix
// nanoseconds (0 for none), the state and the address, space-separated,
// the address last because nothing bounds what it holds.
func (e liveEntry) encode() []byte {
	flags := byte('0')
	for _, f := range []struct {
		set  bool
		flag byte
	}{{e.Owned, entryOwned}, {e.Queued, entryQueued}, {e.HoldsEnv, entryHoldsEnv}} {
		if f.set {
			flags += f.flag
		}
	}
	b := make([]byte, 0, 64+len(e.Upstream))
	b = append(b, liveEntryVersion, flags)
	for _, t := range e.times() {
		var at int64
		if !t.IsZero() {
			at = t.UnixNano()
		}
		b = append(b, ' ')
		b = strconv.AppendInt(b, at, 10)
	}
	b = append(b, ' ')
	b = append(b, e.State...)
	b = append(b, ' ')
	return append(b, e.Upstream...)
}

// decodeEntry parses a stored entry; ok is false for an entry of an
// earlier version, or one that cannot be read, whose record must be read
// instead.
func decodeEntry(v []byte) (e liveEntry, ok bool) {
	const allFlags = entryOwned | entryQueued | entryHoldsEnv
	if len(v) < 3 || v[0] != liveEntryVersion || v[1] < '0' || v[1] > '0'+allFlags || v[2] != ' ' {
		return e, false
	}
	// The fields, split by hand: catalogs decode thousands of entries a
	// view, and SplitN's slice was one allocation of each.
	var f [entryTimes + 2]string
	rest := string(v[3:])
	for i := range len(f) - 1 {
		sp := strings.IndexByte(rest, ' ')
		if sp < 0 {
			return e, false
		}
		f[i], rest = rest[:sp], rest[sp+1:]
	}
	f[len(f)-1] = rest
	if !lifecycle.State(f[entryTimes]).Valid() {
		return e, false
	}
	var at [entryTimes]time.Time
	for i := range at {
		n, err := strconv.ParseInt(f[i], 10, 64)
		if err != nil {
			return e, false
		}
		if n != 0 {
			at[i] = time.Unix(0, n)
		}
	}
	flags := v[1] - '0'
	return liveEntry{Upstream: f[entryTimes+1], State: lifecycle.State(f[entryTimes]), Owned: flags&entryOwned != 0,
		Queued: flags&entryQueued != 0, HoldsEnv: flags&entryHoldsEnv != 0,
		Expires: at[0], Stopped: at[1], Created: at[2], LastActivity: at[3]}, true
}

// entryTimes is how many times an encoded entry holds, in times' order.
const entryTimes = 4

// times are the entry's times in their stored order.
func (e liveEntry) times() [entryTimes]time.Time {
	return [entryTimes]time.Time{e.Expires, e.Stopped, e.Created, e.LastActivity}
}

// setLiveEntry writes the live index entry of sess, which tx has just
// written: every write of a live record goes with one, in the same
// transaction. A STOPPED session has none (finalize deletes it).
func setLiveEntry(tx store.Txn, sess *Session) error {
	if sess.State == lifecycle.Stopped {
		return nil
	}
	return tx.Set(keyLive(sess.Environment, sess.Name), entryOf(sess).encode())
}

// eachEntry calls fn with every live index entry of env, in name order.
// An entry of an earlier version is made from its session's record, and a
// key whose record is gone is skipped.
func (t *txState) eachEntry(env string, fn func(name string, e liveEntry)) error {
	prefix := prefixLive(env)
	return t.tx.Scan(prefix, func(k string, v []byte) error {
		name := k[len(prefix):]
		e, ok := decodeEntry(v)
		if !ok {
			sess, err := t.session(name)
			if err != nil || sess == nil {
				return err
			}
			e = entryOf(sess)
		}
		fn(name, e)
		return nil
	})
}

// LiveSummary is what the live index says of a session not yet STOPPED.
type LiveSummary struct {
	Name string
	// State is the session's state at the service's clock, deadlines
	// applied (Session.Effective).
	State lifecycle.State
	// Reserved says it has no owner.
	Reserved bool
	// Queued says it waits for a free start.
	Queued bool
	// Upstream is its dashboard address, empty until known.
	Upstream string
}

// EachLiveSummary calls fn with every session of env (every environment
// when env is "") whose state at the service's clock is not STOPPED, from
// the live index alone (liveEntry), in name order within an environment:
// what counts and lists of live sessions need without their records.
func (s *Service) EachLiveSummary(ctx context.Context, env string, fn func(env string, ls LiveSummary)) error {
	return s.st.View(ctx, func(tx store.Txn) error {
		t := s.viewState(tx)
		for _, e := range s.envs {
			if env != "" && e.Name != env {
				continue
			}
			err := t.eachEntry(e.Name, func(name string, le liveEntry) {
				if st := le.effective(t.now); st != lifecycle.Stopped {
					fn(e.Name, LiveSummary{Name: name, State: st, Reserved: !le.Owned, Queued: le.Queued, Upstream: le.Upstream})
				}
			})
			if err != nil {
				return err
			}
		}
		return nil
	})
}
