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

// bucket is the record of r/<hash>: a token bucket every replica sharing
// the store takes from.
type bucket struct {
	Tokens float64   `json:"tokens"`
	At     time.Time `json:"at"`
}

// TakeToken takes a token from key's bucket, which holds burst tokens and
// gains one every every: 0 if it took one, else how long until there is
// one (taking none, and writing nothing). It implements
// loginlimit.SharedRate.
func (s *Service) TakeToken(ctx context.Context, key string, burst int, every time.Duration) (time.Duration, error) {
	if burst < 1 || every <= 0 {
		return 0, errors.New("sessions: a token bucket needs a burst and a refill period")
	}
	var wait time.Duration
	err := s.st.Update(ctx, func(tx store.Txn) error {
		wait = 0
		now := s.now()
		b := bucket{Tokens: float64(burst), At: now}
		v, err := tx.Get(keyBucket(key))
		switch {
		case errors.Is(err, store.ErrNotFound):
		case err != nil:
			return err
		default:
			var stored bucket
			if json.Unmarshal(v, &stored) == nil && !stored.At.IsZero() {
				b = stored
			}
		}
		if d := now.Sub(b.At); d > 0 {
			b.Tokens = min(float64(burst), b.Tokens+float64(d)/float64(every))
			b.At = now
		}
		if b.Tokens < 1 {
			wait = time.Duration((1 - b.Tokens) * float64(every))
			return nil
		}
		b.Tokens--
		raw, err := json.Marshal(b)
		if err != nil {
			return err
		}
		// Forgotten once it would be full again.
		full := now.Add(time.Duration((float64(burst) - b.Tokens) * float64(every)))
		return tx.SetExpiring(keyBucket(key), raw, full)
	})
	return wait, err
}
