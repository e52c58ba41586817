package oauth

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"time"

	"github.com/caddyportal/caddyportal/caddyportal/store"
	"github.com/caddyportal/caddyportal/caddyportal/tokens"
)

// CodeTTL is how long an authorization code may be redeemed: the
// dashboard exchanges it at once, so a minute is plenty (RFC 6749 4.1.2
// recommends at most ten).
const CodeTTL = time.Minute

// CodeGrant is what an authorization code stands for: the learner's
// consent, given by opening the session's dashboard, that the session's
// dashboard may act for them on that session.
type CodeGrant struct {
	Session     string `json:"session"`
	User        string `json:"user"`
	Group       string `json:"group"`
	RedirectURI string `json:"redirect_uri"`
	// Challenge and Method are the PKCE code challenge (RFC 7636), when
	// the client sent one; Method is "S256" or "plain".
	Challenge string    `json:"challenge,omitempty"`
	Method    string    `json:"method,omitempty"`
	Expires   time.Time `json:"expires"`
}

// NewCode stores an authorization code for g, valid for CodeTTL and once.
// Like tokens, only its hash is stored.
func (is *Issuer) NewCode(ctx context.Context, g CodeGrant) (string, error) {
	code, err := tokens.New()
	if err != nil {
		return "", err
	}
	g.Expires = is.now().Add(CodeTTL)
	err = is.st.Update(ctx, func(tx store.Txn) error {
		return tx.SetExpiring(keyCode(tokens.Hash(code)), mustJSON(g), g.Expires)
	})
	return code, err
}

// Redeem uses up code and returns its grant: ErrInvalid when the code is
// unknown, expired or used, or when check refuses the grant (a code shown
// to the wrong client is spent all the same, as RFC 6749 4.1.2 asks).
func (is *Issuer) Redeem(ctx context.Context, code string, check func(CodeGrant) bool) (CodeGrant, error) {
	var g CodeGrant
	ok := false
	err := is.st.Update(ctx, func(tx store.Txn) error {
		key := keyCode(tokens.Hash(code))
		v, err := tx.Get(key)
		if err != nil {
			if errors.Is(err, store.ErrNotFound) {
				return nil
			}
			return err
		}
		if err := tx.Delete(key); err != nil {
			return err
		}
		ok = json.Unmarshal(v, &g) == nil && is.now().Before(g.Expires)
		return nil
	})
	if err != nil {
		return CodeGrant{}, err
	}
	if !ok || !check(g) {
		return CodeGrant{}, ErrInvalid
	}
	return g, nil
}

// VerifyPKCE reports whether verifier answers the challenge of g (RFC
// 7636 4.6); a grant without a challenge needs no verifier.
func VerifyPKCE(g CodeGrant, verifier string) bool {
	switch g.Method {
	case "":
		return g.Challenge == ""
	case "plain":
		return verifier != "" && tokens.Equal(verifier, g.Challenge)
	case "S256":
		sum := sha256.Sum256([]byte(verifier))
		return verifier != "" && tokens.Equal(base64.RawURLEncoding.EncodeToString(sum[:]), g.Challenge)
	}
	return false
}
