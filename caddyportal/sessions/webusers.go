package sessions

// This file holds what the web pages (package webui) need from the store
// beyond the REST API's needs: creating web-registered users, finding them
// by email, and listing users and sessions for the admin pages.

import (
	"context"
	"errors"
	"sort"
	"strings"
	"time"

	"github.com/caddyportal/caddyportal/caddyportal/store"
)

// ErrUserExists is returned by CreateUser when the id or the email is taken.
var ErrUserExists = errors.New("a user with this id or email already exists")

// CreateUser stores a new user and, when it has an email, the email index,
// in one transaction: two sign-ups racing for one email cannot both win. An
// empty ID gets a random one; Created defaults to the service clock. It
// returns the stored user, or ErrUserExists.
func (s *Service) CreateUser(ctx context.Context, u User) (*User, error) {
	if u.ID == "" {
		id, err := newUserID()
		if err != nil {
			return nil, err
		}
		u.ID = id
	}
	if u.Created.IsZero() {
		u.Created = s.now()
	}
	cfg := s.cfg
	// The robot and admin names are reserved: a web user with one of them
	// would be confused with those accounts in tokens and pages.
	if u.ID == cfg.Robot.Username || cfg.Admin != nil && u.ID == cfg.Admin.Username {
		return nil, ErrUserExists
	}
	err := s.st.Update(ctx, func(tx store.Txn) error {
		if _, err := tx.Get(keyUser(u.ID)); err == nil {
			return ErrUserExists
		} else if !errors.Is(err, store.ErrNotFound) {
			return err
		}
		if u.Email != "" {
			if _, err := tx.Get(keyUserEmail(u.Email)); err == nil {
				return ErrUserExists
			} else if !errors.Is(err, store.ErrNotFound) {
				return err
			}
			if err := tx.Set(keyUserEmail(u.Email), []byte(u.ID)); err != nil {
				return err
			}
		}
		return tx.Set(keyUser(u.ID), marshal(u))
	})
	if err != nil {
		return nil, err
	}
	s.emit([]Event{{Name: EventUserCreate, Time: u.Created, User: u.ID}})
	return &u, nil
}

// SetPassword replaces the password hash of a user who signed up on the web
// pages: the admin's way to let back in a learner who forgot their
// password. Logins made with the old password end with it (they are bound
// to the hash). A user without a web password (made by the REST API, or
// anonymous) has none to replace and gets ErrUserNotFound, as an unknown
// id does.
func (s *Service) SetPassword(ctx context.Context, id, hash string) error {
	if hash == "" {
		return errors.New("sessions: SetPassword needs a password hash")
	}
	err := s.st.Update(ctx, func(tx store.Txn) error {
		v, err := tx.Get(keyUser(id))
		if err != nil {
			return err
		}
		u := &User{}
		if err := unmarshal(v, u); err != nil {
			return err
		}
		if u.PasswordHash == "" {
			return store.ErrNotFound
		}
		u.PasswordHash = hash
		return tx.Set(keyUser(id), marshal(u))
	})
	return userNotFound(err)
}

// FindUserByEmail returns the user registered with email (case-insensitive),
// or ErrUserNotFound, as GetUser does.
func (s *Service) FindUserByEmail(ctx context.Context, email string) (*User, error) {
	u := &User{}
	err := s.st.View(ctx, func(tx store.Txn) error {
		id, err := tx.Get(keyUserEmail(email))
		if err != nil {
			return err
		}
		v, err := tx.Get(keyUser(string(id)))
		if err != nil {
			return err
		}
		return unmarshal(v, u)
	})
	if err != nil {
		return nil, userNotFound(err)
	}
	return u, nil
}

// UserEmails maps the id of every user with an email address (from a
// learner's sign-up, or the front end's request) to that address, from one scan of the users: what
// lists of sessions show and filter their owners by.
func (s *Service) UserEmails(ctx context.Context) (map[string]string, error) {
	users, err := s.Users(ctx)
	if err != nil {
		return nil, err
	}
	emails := make(map[string]string, len(users))
	for _, u := range users {
		if u.Email != "" {
			emails[u.ID] = u.Email
		}
	}
	return emails, nil
}

// OwnerEmail is the email address of the user owner, if they have one: it
// only labels a session in a list, so a user who cannot be read (or none,
// for a reserve) gives "" rather than an error.
func (s *Service) OwnerEmail(ctx context.Context, owner string) string {
	if owner == "" {
		return ""
	}
	if u, err := s.GetUser(ctx, owner); err == nil {
		return u.Email
	}
	return ""
}

// OwnersNamed returns the ids of the users a filter names: who itself, as
// an id, and, when who is an email address, every user with that address
// in any case (learners who signed up, and front ends' users whose request
// gave it). Instructors know learners by address, front ends by id. Only
// an address costs a scan of the users.
func (s *Service) OwnersNamed(ctx context.Context, who string) (map[string]bool, error) {
	ids := map[string]bool{who: true}
	if !strings.Contains(who, "@") {
		return ids, nil
	}
	users, err := s.Users(ctx)
	if err != nil {
		return nil, err
	}
	for _, u := range users {
		if strings.EqualFold(u.Email, who) {
			ids[u.ID] = true
		}
	}
	return ids, nil
}

// Users returns every stored user, oldest first (ties by id). Corrupt
// records are skipped so one bad value cannot hide the rest.
func (s *Service) Users(ctx context.Context) ([]*User, error) {
	var out []*User
	err := s.st.View(ctx, func(tx store.Txn) error {
		out = nil
		return tx.Scan(prefixUser, func(_ string, v []byte) error {
			u := &User{}
			if unmarshal(v, u) == nil {
				out = append(out, u)
			}
			return nil
		})
	})
	sort.Slice(out, func(i, j int) bool {
		if !out[i].Created.Equal(out[j].Created) {
			return out[i].Created.Before(out[j].Created)
		}
		return out[i].ID < out[j].ID
	})
	return out, err
}

// EachLiveSession calls fn, as EachSession does, with every session not
// yet finalized STOPPED (reserves included): those the environments' live
// indexes hold, and only those are read. Every session whose state, with
// passed deadlines applied, is not STOPPED is among them, so the admin list
// of active sessions reads the 5,000 live records of a busy portal, not
// the 100,000 it keeps.
func (s *Service) EachLiveSession(ctx context.Context, fn func(*Session)) error {
	return s.st.View(ctx, func(tx store.Txn) error { return s.viewState(tx).eachLive(fn) })
}

// eachLive is EachLiveSession inside t's transaction.
func (t *txState) eachLive(fn func(*Session)) error {
	for _, e := range t.s.envs {
		live, err := t.scanLive(e.Name)
		if err != nil {
			return err
		}
		for _, sess := range live {
			sess.State, sess.Reason = sess.Effective(t.now)
			fn(sess)
		}
	}
	return nil
}

// CountSessions counts the stored session records, live and STOPPED,
// without decoding them.
func (s *Service) CountSessions(ctx context.Context) (int, error) {
	n := 0
	err := s.st.View(ctx, func(tx store.Txn) error {
		n = 0
		return tx.Scan(prefixSession, func(string, []byte) error {
			n++
			return nil
		})
	})
	return n, err
}

// EachSession calls fn with every stored session record, live ones and
// STOPPED ones still within the retention period, with passed deadlines
// applied (as Get does), in no particular order and without holding them:
// the admin pages keep what they show, not 100,000 decoded records. fn runs
// inside one read transaction (a View runs once), so it must not call the
// service.
func (s *Service) EachSession(ctx context.Context, fn func(*Session)) error {
	return s.st.View(ctx, func(tx store.Txn) error { return eachRecord(tx, s.now(), fn) })
}

// eachRecord is EachSession inside tx, deadlines applied at now.
func eachRecord(tx store.Txn, now time.Time, fn func(*Session)) error {
	return tx.Scan(prefixSession, func(_ string, v []byte) error {
		sess := &Session{}
		if unmarshal(v, sess) != nil {
			return nil // one bad value must not hide the rest
		}
		sess.State, sess.Reason = sess.Effective(now)
		fn(sess)
		return nil
	})
}
