// Package oauth issues, checks, rotates and revokes the portal's OAuth2
// bearer tokens (password and refresh grants, reference §1), on any
// store.Store. Tokens are random, stored only as SHA-256 hashes, and expire
// at their exact instant.
//
// An Issuer made with BindTo binds every token to the credential its
// principal logged in with, as the web pages bind their login cookies:
// when the password changes in the config, the tokens issued under the old
// one stop working and cannot be refreshed.
//
// Keys: `t/a/<hash>` for access tokens and `t/r/<hash>` for refresh tokens,
// each written with an expiry so the store reclaims them. The prefix is
// sessions.TokenPrefix: the store's key schema is defined in one place.
package oauth

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/caddyportal/caddyportal/caddyportal/sessions"
	"github.com/caddyportal/caddyportal/caddyportal/store"
	"github.com/caddyportal/caddyportal/caddyportal/tokens"
)

// ErrInvalid means a token is unknown, expired or revoked.
var ErrInvalid = errors.New("invalid token")

// Principal is who a bearer token belongs to.
type Principal struct {
	User  string `json:"user"`
	Group string `json:"group"`
	// Session, when set, limits the token to that session's own routes:
	// it was issued to the session's dashboard (an Educates workshop
	// gateway) by the authorization-code grant, on the learner's behalf.
	Session string `json:"session,omitempty"`
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
	// Credential is the fingerprint of the credential the token was
	// issued under (see BindTo); "" without binding.
	Credential string `json:"credential,omitempty"`
}

// Issuer issues and checks tokens.
type Issuer struct {
	st         store.Store
	accessTTL  time.Duration
	refreshTTL time.Duration
	now        func() time.Time
	credential func(Principal) string
}

// Option configures an Issuer.
type Option func(*Issuer)

// BindTo binds tokens to credentials: credential returns a fingerprint of
// the credential p currently logs in with (never the credential itself:
// it is stored with each token), or "" if p can no longer log in. A token
// is valid only while the fingerprint it was issued with is still the
// current one, so changing a password ends the tokens issued under the old
// one, refresh tokens included. Tokens stored without a fingerprint (by a
// version before binding) are refused too: they cannot be tied to a
// credential, and refreshing them would bind them to the new one.
func BindTo(credential func(p Principal) string) Option {
	return func(is *Issuer) { is.credential = credential }
}

// NewIssuer returns an Issuer; now may be nil for time.Now.
func NewIssuer(st store.Store, accessTTL, refreshTTL time.Duration, now func() time.Time, opts ...Option) *Issuer {
	if now == nil {
		now = time.Now
	}
	is := &Issuer{st: st, accessTTL: accessTTL, refreshTTL: refreshTTL, now: now}
	for _, o := range opts {
		o(is)
	}
	return is
}

// currentCredential is p's credential fingerprint now; ok is false if p
// cannot be issued tokens (binding is on and p has no credential).
func (is *Issuer) currentCredential(p Principal) (string, bool) {
	if is.credential == nil {
		return "", true
	}
	c := is.credential(p)
	return c, c != ""
}

func keyAccess(hash string) string  { return sessions.TokenPrefix + "a/" + hash }
func keyRefresh(hash string) string { return sessions.TokenPrefix + "r/" + hash }
func keyCode(hash string) string    { return sessions.TokenPrefix + "c/" + hash }

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
	cred, ok := is.currentCredential(p)
	if !ok {
		return Grant{}, ErrInvalid
	}
	now := is.now()
	ah := tokens.Hash(access)
	a := record{Principal: p, Expires: now.Add(is.accessTTL), Credential: cred}
	r := record{Principal: p, Expires: now.Add(is.refreshTTL), Access: ah, Credential: cred}
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
		rec, err := is.get(tx, keyAccess(tokens.Hash(access)))
		p = rec.Principal
		return err
	})
	return p, err
}

// Refresh exchanges a refresh token for a new pair; the old refresh token
// and the access token issued with it stop working (rotation).
func (is *Issuer) Refresh(ctx context.Context, refresh string) (Grant, Principal, error) {
	return is.RefreshIf(ctx, refresh, nil)
}

// RefreshIf is Refresh for a refresh token whose principal allow accepts
// (nil accepts any); one it refuses is ErrInvalid and stays as it was.
func (is *Issuer) RefreshIf(ctx context.Context, refresh string, allow func(Principal) bool) (Grant, Principal, error) {
	var g Grant
	var p Principal
	err := is.st.Update(ctx, func(tx store.Txn) error {
		key := keyRefresh(tokens.Hash(refresh))
		rec, err := is.get(tx, key)
		if err != nil {
			return err
		}
		if allow != nil && !allow(rec.Principal) {
			return ErrInvalid
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
// (RFC 7009). Anyone may call it, so an unknown token costs a read only,
// never a durable write.
func (is *Issuer) Revoke(ctx context.Context, token string) error {
	if token == "" {
		return nil
	}
	h := tokens.Hash(token)
	found := false
	err := is.st.View(ctx, func(tx store.Txn) error {
		for _, k := range []string{keyAccess(h), keyRefresh(h)} {
			_, err := tx.Get(k)
			if err == nil {
				found = true
				return nil
			}
			if !errors.Is(err, store.ErrNotFound) {
				return err
			}
		}
		return nil
	})
	if err != nil || !found {
		return err
	}
	return is.st.Update(ctx, func(tx store.Txn) error {
		// Revoking a refresh token also retires the access token issued
		// with it, whether or not the pair is still valid.
		if v, err := tx.Get(keyRefresh(h)); err == nil {
			var rec record
			if json.Unmarshal(v, &rec) == nil && rec.Access != "" {
				if err := tx.Delete(keyAccess(rec.Access)); err != nil {
					return err
				}
			}
		} else if !errors.Is(err, store.ErrNotFound) {
			return err
		}
		if err := tx.Delete(keyAccess(h)); err != nil {
			return err
		}
		return tx.Delete(keyRefresh(h))
	})
}

// get reads a token record: ErrInvalid if it is missing, expired or bound
// to a credential that is no longer current.
func (is *Issuer) get(tx store.Txn, key string) (record, error) {
	var rec record
	v, err := tx.Get(key)
	if errors.Is(err, store.ErrNotFound) {
		return rec, ErrInvalid
	}
	if err != nil {
		return rec, err
	}
	if err := json.Unmarshal(v, &rec); err != nil || !is.now().Before(rec.Expires) {
		return rec, ErrInvalid
	}
	if cred, ok := is.currentCredential(rec.Principal); !ok || !tokens.Equal(cred, rec.Credential) {
		return rec, ErrInvalid
	}
	return rec, nil
}

func mustJSON(v any) []byte {
	b, _ := json.Marshal(v)
	return b
}
