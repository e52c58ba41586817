package sessions

import (
	"context"
	"strings"

	"github.com/caddyportal/caddyportal/caddyportal/store"
)

// EachSessionOf calls fn, as EachSession does, with every stored session
// record of the given owners: their sessions not yet STOPPED (the owner
// index) and their STOPPED ones still kept (the history index). It reads
// those records only, so the admin pages' per-user counts and a user's
// sessions list do not read the 100,000 records a busy portal keeps. A
// store that held records before this version wrote the history index is
// read whole (EachSession filtered by owner) until those records have
// expired.
func (s *Service) EachSessionOf(ctx context.Context, owners []string, fn func(*Session)) error {
	return s.st.View(ctx, func(tx store.Txn) error {
		t := s.viewState(tx)
		covered, err := t.historyCovers()
		if err != nil {
			return err
		}
		if !covered {
			want := map[string]bool{}
			for _, o := range owners {
				want[o] = true
			}
			return eachRecord(tx, t.now, func(sess *Session) {
				if sess.Owner != "" && want[sess.Owner] {
					fn(sess)
				}
			})
		}
		seen := map[string]bool{}
		for _, owner := range owners {
			live, err := t.namesUnder(prefixOwned(owner))
			if err != nil {
				return err
			}
			ended, err := t.namesUnder(prefixHistoryOf(owner))
			if err != nil {
				return err
			}
			for _, name := range append(live, ended...) {
				if seen[name] {
					continue
				}
				seen[name] = true
				sess, err := t.session(name)
				if err != nil {
					return err
				}
				// The record decides: a key whose record is gone or
				// belongs to someone else is skipped.
				if sess == nil || sess.Owner != owner {
					continue
				}
				sess.State, sess.Reason = sess.Effective(t.now)
				fn(sess)
			}
		}
		return nil
	})
}

// namesUnder returns the session names that an index's keys under prefix
// end in (o/<user>/, h/<user>/), in key order.
func (t *txState) namesUnder(prefix string) ([]string, error) {
	var names []string
	err := t.tx.Scan(prefix, func(k string, _ []byte) error {
		names = append(names, strings.TrimPrefix(k, prefix))
		return nil
	})
	return names, err
}

// historyCovers reports whether the history index holds every kept STOPPED
// session with an owner: the store wrote it from its first session on, or
// every record finalized before it began has expired since. Records are
// kept for the retention period; one kept longer under an earlier, longer
// retention is missed until it expires.
func (t *txState) historyCovers() (bool, error) {
	from, ok, err := t.indexedSince(keyHistorySince)
	return ok && !t.now.Before(from.Add(t.s.cfg.Retention.D())), err
}
