package sessions

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/caddyportal/caddyportal/caddyportal/lifecycle"
	"github.com/caddyportal/caddyportal/caddyportal/spawner"
	"github.com/caddyportal/caddyportal/caddyportal/store"
)

// endedKept is how long the ended index (e/) holds a session after it
// stopped counting: EachRecent answers windows up to this long from the
// index.
const endedKept = 24 * time.Hour

// prefixEndedHour starts the ended-index keys of one hour (Unix hours,
// zero-padded): a window reads the hours it spans and no others.
func prefixEndedHour(hour int64) string { return fmt.Sprintf("%s%010d/", prefixEnded, hour) }

func unixHour(t time.Time) int64 { return t.Unix() / 3600 }

// endedSummary is the value of an ended-index key: what the admin overview
// shows of a session that ended (its chart and its list of problems), so
// that it reads no record of one.
type endedSummary struct {
	Environment string    `json:"e"`
	Workshop    string    `json:"w"`
	Owner       string    `json:"o,omitempty"`
	Created     time.Time `json:"c"`
	Allocated   time.Time `json:"a,omitzero"`
	Expires     time.Time `json:"x,omitzero"`
	Stopped     time.Time `json:"s"`
	Reason      string    `json:"r,omitempty"`
	// Message is the last progress message (why a start failed).
	Message string `json:"m,omitempty"`
}

// session is the STOPPED session the summary describes, with only the
// summary's fields set.
func (e endedSummary) session(name string) *Session {
	sess := &Session{Name: name, Environment: e.Environment, Workshop: e.Workshop, Owner: e.Owner,
		State: lifecycle.Stopped, Created: e.Created, Allocated: e.Allocated, Expires: e.Expires,
		Stopped: e.Stopped, Reason: e.Reason}
	if e.Message != "" {
		sess.Progress = &spawner.Progress{Message: e.Message}
	}
	return sess
}

// indexEnded writes the ended-index key of sess, which finalize has just
// made STOPPED with its record kept until retain. The key goes with the
// record if that goes first.
func (t *txState) indexEnded(sess *Session, retain time.Time) error {
	at := sess.EndedAt()
	until := at.Add(endedKept)
	if retain.Before(until) {
		until = retain
	}
	if !until.After(t.now) {
		return nil
	}
	sum := endedSummary{Environment: sess.Environment, Workshop: sess.Workshop, Owner: sess.Owner,
		Created: sess.Created, Allocated: sess.Allocated, Expires: sess.Expires, Stopped: sess.Stopped, Reason: sess.Reason}
	if sess.Progress != nil {
		sum.Message = sess.Progress.Message
	}
	return t.tx.SetExpiring(prefixEndedHour(unixHour(at))+sess.Name, marshal(sum), until)
}

// markIndexes records, in a store that does not have them yet, that the
// ended index (e/, marked by ended-since) and the history index (h/,
// history-since) are written from now on: their readers trust them for
// what ended later. A store without any session record yet (a new portal)
// has had them all along.
func markIndexes(tx store.Txn, now time.Time) error {
	from := int64(-1) // not looked for yet
	for _, key := range []string{keyEndedSince, keyHistorySince} {
		_, err := tx.Get(key)
		if err == nil {
			continue
		}
		if !errors.Is(err, store.ErrNotFound) {
			return err
		}
		if from < 0 {
			from = 0
			err := tx.Scan(prefixSession, func(string, []byte) error { return errSessionFound })
			switch {
			case errors.Is(err, errSessionFound):
				from = now.UnixNano()
			case err != nil:
				return err
			}
		}
		if err := tx.Set(key, []byte(strconv.FormatInt(from, 10))); err != nil {
			return err
		}
	}
	return nil
}

// errSessionFound ends markIndexes' scan at the first record.
var errSessionFound = errors.New("a session record exists")

// endedCovers reports whether the ended index holds every session that
// stopped counting at since or later.
func (t *txState) endedCovers(since time.Time) (bool, error) {
	if since.Before(t.now.Add(-endedKept)) {
		return false, nil
	}
	from, ok, err := t.indexedSince(keyEndedSince)
	return ok && !from.After(since), err
}

// indexedSince returns when the store began to write the index that marker
// (ended-since, history-since) stands for: the Unix epoch for a store that
// has had it from its first session on, and false when it has not begun.
func (t *txState) indexedSince(marker string) (time.Time, bool, error) {
	v, err := t.tx.Get(marker)
	if errors.Is(err, store.ErrNotFound) {
		return time.Time{}, false, nil
	}
	if err != nil {
		return time.Time{}, false, err
	}
	from, err := strconv.ParseInt(string(v), 10, 64)
	if err != nil {
		return time.Time{}, false, nil
	}
	return time.Unix(0, from), true, nil
}

// EachRecent calls fn with every session that is not STOPPED or that
// stopped (or would have expired) at since or later, and possibly others,
// deadlines applied as EachSession applies them. It reads the live
// sessions' records and, for the ended ones, the ended index's summary of
// each (endedSummary: the record's name, environment, workshop, owner,
// times, reason and last progress message; nothing else is set), not every
// record kept: the admin overview's last hours at a portal that keeps
// 100,000 records. A window the index does not cover (longer than
// endedKept, or from before this version wrote it) reads every record, as
// EachSession does.
func (s *Service) EachRecent(ctx context.Context, since time.Time, fn func(*Session)) error {
	return s.st.View(ctx, func(tx store.Txn) error {
		t := s.viewState(tx)
		covered, err := t.endedCovers(since)
		if err != nil {
			return err
		}
		if !covered {
			return eachRecord(tx, t.now, fn)
		}
		if err := t.eachLive(fn); err != nil {
			return err
		}
		for h := unixHour(since); h <= unixHour(t.now); h++ {
			prefix := prefixEndedHour(h)
			err := tx.Scan(prefix, func(k string, v []byte) error {
				var sum endedSummary
				if unmarshal(v, &sum) != nil {
					return nil // one bad value must not hide the rest
				}
				if sess := sum.session(strings.TrimPrefix(k, prefix)); !sess.EndedAt().Before(since) {
					fn(sess)
				}
				return nil
			})
			if err != nil {
				return err
			}
		}
		return nil
	})
}
