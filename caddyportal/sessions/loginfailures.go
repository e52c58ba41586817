package sessions

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/caddyportal/caddyportal/caddyportal/store"
)

// loginFailures is the record of f/<hash>: failed logins of one account or
// client address that every replica sharing the store counts.
type loginFailures struct {
	Count int       `json:"count"`
	Last  time.Time `json:"last"`
}

// SharedStore reports whether other processes (replicas) use the store
// too, so that what one counts in memory the others do not see.
func (s *Service) SharedStore() bool { return s.shared }

// LoginFailures returns how many failed logins are recorded for key (a
// login limiter's key: an account or a client address) within window of
// now, and when the last was. It implements loginlimit.Shared.
func (s *Service) LoginFailures(ctx context.Context, key string, window time.Duration) (int, time.Time, error) {
	var f loginFailures
	err := s.st.View(ctx, func(tx store.Txn) error {
		var err error
		f, err = readFailures(tx, key)
		return err
	})
	if err != nil || !s.now().Before(f.Last.Add(window)) {
		return 0, time.Time{}, err
	}
	return f.Count, f.Last, nil
}

// AddLoginFailure records one more failed login for key, forgotten window
// after it (or restarting the count when the last was longer ago).
func (s *Service) AddLoginFailure(ctx context.Context, key string, window time.Duration) error {
	return s.st.Update(ctx, func(tx store.Txn) error {
		f, err := readFailures(tx, key)
		if err != nil {
			return err
		}
		now := s.now()
		if !now.Before(f.Last.Add(window)) {
			f.Count = 0
		}
		f.Count++
		f.Last = now
		b, err := json.Marshal(f)
		if err != nil {
			return err
		}
		return tx.SetExpiring(keyFailures(key), b, now.Add(window))
	})
}

// ClearLoginFailures forgets key's failed logins (a successful login to an
// account).
func (s *Service) ClearLoginFailures(ctx context.Context, key string) error {
	return s.st.Update(ctx, func(tx store.Txn) error {
		err := tx.Delete(keyFailures(key))
		if errors.Is(err, store.ErrNotFound) {
			return nil
		}
		return err
	})
}

func readFailures(tx store.Txn, key string) (loginFailures, error) {
	var f loginFailures
	v, err := tx.Get(keyFailures(key))
	if errors.Is(err, store.ErrNotFound) {
		return f, nil
	}
	if err != nil {
		return f, err
	}
	if json.Unmarshal(v, &f) != nil {
		return loginFailures{}, nil // unreadable: count afresh
	}
	return f, nil
}
