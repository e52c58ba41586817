package sessions

// This file is the service's error vocabulary: the faces (api, webui,
// adminapi, the gate) decide statuses on these errors only and never look at
// the store's. Store failures are wrapped into it where they leave the
// service (see vocabStore), keeping the store's error as the cause so logs
// still say what happened.

import (
	"context"
	"errors"
	"fmt"

	"github.com/caddyportal/caddyportal/caddyportal/store"
)

// Errors returned by the service. The texts of the first eight are the
// Educates training portal's, which the REST API answers verbatim.
var (
	ErrNoEnvironment    = errors.New("Environment does not exist")
	ErrNoSession        = errors.New("No session available")
	ErrCannotReacquire  = errors.New("Cannot be reacquired")
	ErrUserNotPermitted = errors.New("Session requests not permitted for user")
	ErrSessionNotFound  = errors.New("Session not found")
	ErrSessionEnded     = errors.New("Session has ended")
	ErrNotInUse         = errors.New("Session is not currently in use")
	ErrBadToken         = errors.New("Invalid access token for session")

	// ErrUnavailable means the portal's state cannot be read or written
	// now: the store is unreachable, kept conflicting after its retries,
	// or did not answer before the request's deadline. Trying again later
	// may succeed; the faces answer 503 with a Retry-After.
	ErrUnavailable = errors.New("portal state is unavailable")

	// ErrBadClient means a session's OAuth client gave a wrong secret.
	ErrBadClient = errors.New("invalid client credentials")

	// ErrSessionLimit is the refusal of a new session to a user who already
	// has as many as their group may have at once (`sessions registered N`
	// or `anonymous N`). It is an ErrNoSession, which is all the REST API
	// says (Educates does not tell the two apart); the portal's own pages
	// and metrics do, since the learner can do something about it.
	ErrSessionLimit = fmt.Errorf("%w: the user has as many sessions as they may have at once", ErrNoSession)

	// ErrUserNotFound is returned by GetUser and FindUserByEmail for a user
	// that is not stored.
	ErrUserNotFound = errors.New("user not found")

	// ErrClosed is returned by requests made while the service shuts
	// down. It is an ErrUnavailable: another replica, or this one after a
	// reload, may answer.
	ErrClosed error = &vocabError{kind: ErrUnavailable, cause: errors.New("portal is shutting down")}
)

// vocabError is an error of another package named in the service's
// vocabulary: errors.Is matches both kind and cause. Its text is the
// cause's, so what logs and the admin API print is unchanged by the
// wrapping.
type vocabError struct{ kind, cause error }

func (e *vocabError) Error() string   { return e.cause.Error() }
func (e *vocabError) Unwrap() []error { return []error{e.kind, e.cause} }

// vocabulary names a store error in the service's vocabulary: outages,
// exhausted conflict retries and passed deadlines become ErrUnavailable;
// any other error is returned as it is.
func vocabulary(err error) error {
	var v *vocabError
	switch {
	case err == nil, errors.As(err, &v):
		return err
	case errors.Is(err, store.ErrUnavailable), errors.Is(err, store.ErrConflict),
		errors.Is(err, context.DeadlineExceeded):
		return &vocabError{kind: ErrUnavailable, cause: err}
	}
	return err
}

// userNotFound turns the store's ErrNotFound for a user key into
// ErrUserNotFound, keeping the cause.
func userNotFound(err error) error {
	if errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("%w: %w", ErrUserNotFound, err)
	}
	return err
}

// vocabStore is a store whose Update and View errors are in the service's
// vocabulary (see vocabulary). Errors inside a transaction, which the
// service's own code handles, are unchanged.
type vocabStore struct{ store.Store }

// WrapStore returns st with its errors in the service's vocabulary. The
// service wraps its own store; give the result also to the other
// components whose errors reach the faces (the OAuth issuer), so that a
// store outage is ErrUnavailable wherever it surfaces.
func WrapStore(st store.Store) store.Store {
	if _, ok := st.(vocabStore); ok {
		return st
	}
	return vocabStore{st}
}

// Update runs fn in a read-write transaction.
func (v vocabStore) Update(ctx context.Context, fn func(tx store.Txn) error) error {
	return vocabulary(v.Store.Update(ctx, fn))
}

// View runs fn in a read-only transaction.
func (v vocabStore) View(ctx context.Context, fn func(tx store.Txn) error) error {
	return vocabulary(v.Store.View(ctx, fn))
}

// unwrapStore is the store behind WrapStore, whose optional interfaces
// (store.Watcher) the wrapper hides.
func unwrapStore(st store.Store) store.Store {
	if v, ok := st.(vocabStore); ok {
		return v.Store
	}
	return st
}
