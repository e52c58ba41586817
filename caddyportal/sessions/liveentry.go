package sessions

import (
	"strconv"
	"strings"
	"time"

	"github.com/caddyportal/caddyportal/caddyportal/lifecycle"
	"github.com/caddyportal/caddyportal/caddyportal/store"
)

// liveEntry is the value of a live index key (l/<env>/<session>): what the
// catalogs and the health checker need of a session, so that they scan the
// index instead of reading and decoding every live record. At 5,000 live
// sessions a catalog that read the records cost about 65 ms of CPU per
// request, and every learner who opens the catalog asks for one.
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
	// StopsAt is when the session becomes STOPPED without another write
	// (Session.stopsAt); zero: not before a write.
	StopsAt time.Time
}

// liveEntryVersion starts an encoded entry. Entries written before the
// index held more than the address are that address alone (or empty),
// which never starts with a control character; those are read from their
// record.
const liveEntryVersion = '\x01'

// entryOf is the live index entry of sess.
func entryOf(sess *Session) liveEntry {
	return liveEntry{Upstream: sess.Upstream, State: sess.State, Owned: !sess.Reserved(),
		Queued:  sess.State == lifecycle.Starting && sess.Progress != nil && sess.Progress.Step == StepQueued,
		StopsAt: sess.stopsAt()}
}

// encode is the stored form: the version, flags, StopsAt in Unix
// nanoseconds, the state and the address, space-separated, the address
// last because nothing bounds what it holds.
func (e liveEntry) encode() []byte {
	flags := byte('0')
	if e.Owned {
		flags |= 1
	}
	if e.Queued {
		flags |= 2
	}
	var at int64
	if !e.StopsAt.IsZero() {
		at = e.StopsAt.UnixNano()
	}
	b := make([]byte, 0, 40+len(e.Upstream))
	b = append(b, liveEntryVersion, flags, ' ')
	b = strconv.AppendInt(b, at, 10)
	b = append(b, ' ')
	b = append(b, e.State...)
	b = append(b, ' ')
	return append(b, e.Upstream...)
}

// decodeEntry parses a stored entry; ok is false for an entry of an
// earlier version, or one that cannot be read, whose record must be read
// instead.
func decodeEntry(v []byte) (e liveEntry, ok bool) {
	if len(v) < 3 || v[0] != liveEntryVersion || v[1]&^3 != '0' || v[2] != ' ' {
		return e, false
	}
	f := strings.SplitN(string(v[3:]), " ", 3)
	if len(f) != 3 {
		return e, false
	}
	at, err := strconv.ParseInt(f[0], 10, 64)
	if err != nil || !lifecycle.State(f[1]).Valid() {
		return e, false
	}
	e = liveEntry{Upstream: f[2], State: lifecycle.State(f[1]), Owned: v[1]&1 != 0, Queued: v[1]&2 != 0}
	if at != 0 {
		e.StopsAt = time.Unix(0, at)
	}
	return e, true
}

// live reports whether the session is not STOPPED at now, as
// Session.Live says of its record.
func (e liveEntry) live(now time.Time) bool {
	return e.State != lifecycle.Stopped && (e.StopsAt.IsZero() || now.Before(e.StopsAt))
}

// stopsAt is the earliest time at which Effective says STOPPED while the
// record is not written again; zero if it never does. A session that holds
// an environment never does (its end makes it STOPPING, and only the stop
// of the environment, a write, makes it STOPPED).
func (s *Session) stopsAt() time.Time {
	if s.holdsEnv() {
		return time.Time{}
	}
	switch {
	case s.State == lifecycle.Stopping:
		if !s.Stopped.IsZero() {
			return s.Stopped
		}
		return s.Expires
	case s.State == lifecycle.Running, s.Pending():
		return s.Expires
	}
	return time.Time{}
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
func (t *txState) eachEntry(env string, fn func(liveEntry)) error {
	prefix := prefixLive(env)
	return t.tx.Scan(prefix, func(k string, v []byte) error {
		e, ok := decodeEntry(v)
		if !ok {
			sess, err := t.session(k[len(prefix):])
			if err != nil || sess == nil {
				return err
			}
			e = entryOf(sess)
		}
		fn(e)
		return nil
	})
}
