// Package oauth issues, checks, rotates and revokes the portal's OAuth2
// bearer tokens (password and refresh grants, reference §1), on any
// store.Store. Tokens are random, stored only as SHA-256 hashes, and expire
// at their exact instant.
//
// Keys: `t/a/<hash>` for access tokens and `t/r/<hash>` for refresh tokens,
// each written with an expiry so the store reclaims them.
package oauth

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/caddyportal/caddyportal/caddyportal/store"
	"github.com/caddyportal/caddyportal/caddyportal/tokens"
)

// ErrInvalid means a token is unknown, expired or revoked.
var ErrInvalid = errors.New("invalid token")

// Principal is who a bearer token belongs to.
type Principal struct {
	User  string `json:"user"`
	Group string `json:"group"`
}

// Grant is a freshly issued token pair.
type Grant struct {
	AccessToken  string
	RefreshToken string
	ExpiresIn    int
}

type record struct {
	Principal
	Expires time.Time `json:"expires"`
	// Access is the hash of the access token a refresh token was issued
	// with, so rotation also retires it.
	Access string `json:"access,omitempty"`
}

// Issuer issues and checks tokens.
type Issuer struct {
	st         store.Store
	accessTTL  time.Duration
	refreshTTL time.Duration
	now        func() time.Time
}

// NewIssuer returns an Issuer; now may be nil for time.Now.
func NewIssuer(st store.Store, accessTTL, refreshTTL time.Duration, now func() time.Time) *Issuer {
	if now == nil {
		now = time.Now
	}
	return &Issuer{st: st, accessTTL: accessTTL, refreshTTL: refreshTTL, now: now}
}

func keyAccess(hash string) string  { return "t/a/" + hash }
func keyRefresh(hash string) string { return "t/r/" + hash }

// Issue creates a new access and refresh token for p.
func (is *Issuer) Issue(ctx context.Context, p Principal) (Grant, error) {
	var g Grant
	err := is.st.Update(ctx, func(tx store.Txn) error {
		var err error
		g, err = is.issue(tx, p)
		return err
	})
	return g, err
}

func (is *Issuer) issue(tx store.Txn, p Principal) (Grant, error) {
	access, err := tokens.New()
	if err != nil {
		return Grant{}, err
	}
	refresh, err := tokens.New()
	if err != nil {
		return Grant{}, err
	}
	now := is.now()
	ah := tokens.Hash(access)
	a := record{Principal: p, Expires: now.Add(is.accessTTL)}
	r := record{Principal: p, Expires: now.Add(is.refreshTTL), Access: ah}
	if err := tx.SetExpiring(keyAccess(ah), mustJSON(a), a.Expires); err != nil {
		return Grant{}, err
	}
	if err := tx.SetExpiring(keyRefresh(tokens.Hash(refresh)), mustJSON(r), r.Expires); err != nil {
		return Grant{}, err
	}
	return Grant{AccessToken: access, RefreshToken: refresh, ExpiresIn: int(is.accessTTL / time.Second)}, nil
}

// Check returns the principal of a valid access token.
func (is *Issuer) Check(ctx context.Context, access string) (Principal, error) {
	if access == "" {
		return Principal{}, ErrInvalid
	}
	var p Principal
	err := is.st.View(ctx, func(tx store.Txn) error {
		rec, err := get(tx, keyAccess(tokens.Hash(access)), is.now())
		p = rec.Principal
		return err
	})
	return p, err
}

// Refresh exchanges a refresh token for a new pair; the old refresh token
// and the access token issued with it stop working (rotation).
func (is *Issuer) Refresh(ctx context.Context, refresh string) (Grant, Principal, error) {
	var g Grant
	var p Principal
	err := is.st.Update(ctx, func(tx store.Txn) error {
		key := keyRefresh(tokens.Hash(refresh))
		rec, err := get(tx, key, is.now())
		if err != nil {
			return err
		}
		p = rec.Principal
		if err := tx.Delete(key); err != nil {
			return err
		}
		if rec.Access != "" {
			if err := tx.Delete(keyAccess(rec.Access)); err != nil {
				return err
			}
		}
		g, err = is.issue(tx, p)
		return err
	})
	return g, p, err
}

// Revoke removes an access or refresh token; unknown tokens are ignored
// (RFC 7009).
func (is *Issuer) Revoke(ctx context.Context, token string) error {
	if token == "" {
		return nil
	}
	h := tokens.Hash(token)
	return is.st.Update(ctx, func(tx store.Txn) error {
		if rec, err := get(tx, keyRefresh(h), is.now()); err == nil && rec.Access != "" {
			if err := tx.Delete(keyAccess(rec.Access)); err != nil {
				return err
			}
		}
		if err := tx.Delete(keyAccess(h)); err != nil {
			return err
		}
		return tx.Delete(keyRefresh(h))
	})
}

func get(tx store.Txn, key string, now time.Time) (record, error) {
	var rec record
	v, err := tx.Get(key)
	if errors.Is(err, store.ErrNotFound) {
		return rec, ErrInvalid
	}
	if err != nil {
		return rec, err
	}
	if err := json.Unmarshal(v, &rec); err != nil || !now.Before(rec.Expires) {
		return rec, ErrInvalid
	}
	return rec, nil
}

func mustJSON(v any) []byte {
	b, _ := json.Marshal(v)
	return b
}
