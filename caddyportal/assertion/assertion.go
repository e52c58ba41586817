// Package assertion signs the short-lived identity assertion the gate adds
// to every request it proxies (the X-Portal-Assertion header, a JWT), and
// publishes the public keys that verify it (a JWKS), so a dashboard on a
// network it does not trust can check that a request came through the
// portal and for whom. Pomerium's X-Pomerium-Jwt-Assertion and Teleport's
// Teleport-Jwt-Assertion are the models.
//
// Keys are ECDSA P-256 (ES256, which every JWT library verifies), kept in
// the store so every replica signs with the same key and publishes the
// same set. A new key is made every Rotate; the previous ones stay
// published until no assertion they signed can still be valid.
package assertion

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"strings"
	"sync"
	"time"

	"github.com/caddyportal/caddyportal/caddyportal/store"
)

// Header is the request header the gate puts the assertion in. Clients
// cannot send it: the gate removes every X-Portal- header a client sends.
const Header = "X-Portal-Assertion"

// TTL is how long an assertion is valid; Reuse is how long the gate sends
// the same one for a session and user before signing a new one, so
// signing costs nothing per request.
const (
	TTL   = 2 * time.Minute
	Reuse = time.Minute
)

// DefaultRotate is how often a new signing key is made.
const DefaultRotate = 24 * time.Hour

// reload is how often a signer rereads the key set, to pick up another
// replica's rotation.
const reload = time.Minute

// Claims are what an assertion says.
type Claims struct {
	Issuer      string `json:"iss"`         // the portal's URL
	Audience    string `json:"aud"`         // the session's name: an assertion for one session is not one for another
	Subject     string `json:"sub"`         // the learner (the session's owner)
	Session     string `json:"session"`     // the session, again, for readers that ignore aud
	Workshop    string `json:"workshop"`    // the workshop's name
	Environment string `json:"environment"` // the workshop environment's name
	IssuedAt    int64  `json:"iat"`
	Expires     int64  `json:"exp"`
}

// key is one signing key as stored.
type key struct {
	ID      string    `json:"kid"`
	Created time.Time `json:"created"`
	Private []byte    `json:"private"` // PKCS#8 DER
	priv    *ecdsa.PrivateKey
}

// Signer signs assertions and publishes its keys. It is safe for concurrent
// use.
type Signer struct {
	st       store.Store
	storeKey string
	now      func() time.Time
	rotate   time.Duration
	mu       sync.Mutex
	keys     []*key // newest first
	readAt   time.Time
	cache    map[string]cached
}

type cached struct {
	token string
	until time.Time
}

// maxCache bounds the per-session cache; it is cleared when full.
const maxCache = 10000

// New returns a signer that keeps its keys under storeKey in st. rotate 0
// means DefaultRotate; now nil means time.Now.
func New(st store.Store, storeKey string, rotate time.Duration, now func() time.Time) *Signer {
	if rotate <= 0 {
		rotate = DefaultRotate
	}
	if now == nil {
		now = time.Now
	}
	return &Signer{st: st, storeKey: storeKey, now: now, rotate: rotate, cache: map[string]cached{}}
}

// Assert returns an assertion of c, filling in its times: the one already
// signed for the same session and user while it has at least TTL-Reuse
// left, else a new one.
func (s *Signer) Assert(ctx context.Context, c Claims) (string, error) {
	now := s.now()
	id := c.Audience + "\x00" + c.Subject + "\x00" + c.Workshop
	s.mu.Lock()
	if hit, ok := s.cache[id]; ok && now.Before(hit.until) {
		s.mu.Unlock()
		return hit.token, nil
	}
	s.mu.Unlock()
	k, err := s.current(ctx)
	if err != nil {
		return "", err
	}
	c.IssuedAt, c.Expires = now.Unix(), now.Add(TTL).Unix()
	tok, err := sign(k, c)
	if err != nil {
		return "", err
	}
	s.mu.Lock()
	if len(s.cache) >= maxCache {
		clear(s.cache)
	}
	s.cache[id] = cached{token: tok, until: now.Add(Reuse)}
	s.mu.Unlock()
	return tok, nil
}

// JWKS returns the JSON Web Key Set of every published key (RFC 7517).
func (s *Signer) JWKS(ctx context.Context) ([]byte, error) {
	if _, err := s.current(ctx); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	type jwk struct {
		Kty string `json:"kty"`
		Crv string `json:"crv"`
		X   string `json:"x"`
		Y   string `json:"y"`
		Kid string `json:"kid"`
		Use string `json:"use"`
		Alg string `json:"alg"`
	}
	set := struct {
		Keys []jwk `json:"keys"`
	}{Keys: []jwk{}}
	for _, k := range s.keys {
		// 0x04 || X || Y, each coordinate the 32 bytes RFC 7518 wants.
		pub, err := k.priv.PublicKey.Bytes()
		if err != nil {
			return nil, fmt.Errorf("assertion: key %s: %w", k.ID, err)
		}
		set.Keys = append(set.Keys, jwk{Kty: "EC", Crv: "P-256", X: b64(pub[1:33]), Y: b64(pub[33:]),
			Kid: k.ID, Use: "sig", Alg: "ES256"})
	}
	return json.Marshal(set)
}

// current returns the signing key, reading the set from the store at most
// once per reload and rotating it when the newest key is older than
// rotate.
func (s *Signer) current(ctx context.Context) (*key, error) {
	now := s.now()
	s.mu.Lock()
	if len(s.keys) > 0 && now.Sub(s.readAt) < reload && now.Sub(s.keys[0].Created) < s.rotate {
		k := s.keys[0]
		s.mu.Unlock()
		return k, nil
	}
	s.mu.Unlock()
	var keys []*key
	err := s.st.Update(ctx, func(tx store.Txn) error {
		keys = nil
		raw, err := tx.Get(s.storeKey)
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return err
		}
		if err == nil {
			if err := json.Unmarshal(raw, &keys); err != nil {
				return fmt.Errorf("assertion keys: %w", err)
			}
		}
		changed := false
		if len(keys) == 0 || now.Sub(keys[0].Created) >= s.rotate {
			k, err := newKey(now)
			if err != nil {
				return err
			}
			keys = append([]*key{k}, keys...)
			changed = true
		}
		// A key retired from signing stays published while an assertion
		// it signed can still be valid (and a reader's cache of the set
		// may be a little old).
		for len(keys) > 1 && now.Sub(keys[len(keys)-1].Created) >= s.rotate+2*TTL+reload {
			keys = keys[:len(keys)-1]
			changed = true
		}
		if !changed {
			return nil
		}
		b, err := json.Marshal(keys)
		if err != nil {
			return err
		}
		return tx.Set(s.storeKey, b)
	})
	if err != nil {
		return nil, err
	}
	for _, k := range keys {
		p, err := x509.ParsePKCS8PrivateKey(k.Private)
		ek, ok := p.(*ecdsa.PrivateKey)
		if err != nil || !ok {
			return nil, fmt.Errorf("assertion key %s is not an ECDSA key", k.ID)
		}
		k.priv = ek
	}
	s.mu.Lock()
	if len(s.keys) == 0 || s.keys[0].ID != keys[0].ID {
		clear(s.cache) // signed with a key about to leave the set one day
	}
	s.keys, s.readAt = keys, now
	s.mu.Unlock()
	return keys[0], nil
}

func newKey(now time.Time) (*key, error) {
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return nil, err
	}
	pub, err := x509.MarshalPKIXPublicKey(&priv.PublicKey)
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(pub)
	return &key{ID: b64(sum[:12]), Created: now.UTC(), Private: der}, nil
}

func sign(k *key, c Claims) (string, error) {
	header, err := json.Marshal(map[string]string{"alg": "ES256", "typ": "JWT", "kid": k.ID})
	if err != nil {
		return "", err
	}
	payload, err := json.Marshal(c)
	if err != nil {
		return "", err
	}
	input := b64(header) + "." + b64(payload)
	digest := sha256.Sum256([]byte(input))
	r, sv, err := ecdsa.Sign(rand.Reader, k.priv, digest[:])
	if err != nil {
		return "", err
	}
	return input + "." + b64(append(pad32(r), pad32(sv)...)), nil
}

// Verify checks an assertion against a JWKS (as JWKS returns it): its
// signature by one of the set's keys, that it is unexpired at now, and
// that its audience is audience. Dashboards written in Go can use it; any
// JWT library that knows ES256 and JWKS does the same.
func Verify(token string, jwks []byte, audience string, now time.Time) (Claims, error) {
	var c Claims
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return c, errors.New("assertion: not a JWT")
	}
	var header struct{ Alg, Kid string }
	if err := decode(parts[0], &header); err != nil || header.Alg != "ES256" {
		return c, errors.New("assertion: not an ES256 JWT")
	}
	var set struct {
		Keys []struct{ Kty, Crv, X, Y, Kid string } `json:"keys"`
	}
	if err := json.Unmarshal(jwks, &set); err != nil {
		return c, fmt.Errorf("assertion: JWKS: %w", err)
	}
	var pub *ecdsa.PublicKey
	for _, k := range set.Keys {
		if k.Kid != header.Kid || k.Kty != "EC" || k.Crv != "P-256" {
			continue
		}
		x, errX := base64.RawURLEncoding.DecodeString(k.X)
		y, errY := base64.RawURLEncoding.DecodeString(k.Y)
		if errX != nil || errY != nil || len(x) != 32 || len(y) != 32 {
			return c, fmt.Errorf("assertion: JWKS key %q: coordinates are not 32-byte base64url (RFC 7518 §6.2.1)", k.Kid)
		}
		// Parsing checks the point is on the curve, so a made-up key is
		// refused by name rather than failing every signature.
		p, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), append(append([]byte{4}, x...), y...))
		if err != nil {
			return c, fmt.Errorf("assertion: JWKS key %q: %w", k.Kid, err)
		}
		pub = p
		break
	}
	if pub == nil {
		return c, errors.New("assertion: signed by a key the JWKS does not hold")
	}
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil || len(sig) != 64 {
		return c, errors.New("assertion: bad signature")
	}
	digest := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	if !ecdsa.Verify(pub, digest[:], new(big.Int).SetBytes(sig[:32]), new(big.Int).SetBytes(sig[32:])) {
		return c, errors.New("assertion: bad signature")
	}
	if err := decode(parts[1], &c); err != nil {
		return c, errors.New("assertion: bad claims")
	}
	if now.Unix() >= c.Expires {
		return c, errors.New("assertion: expired")
	}
	if c.Audience != audience {
		return c, fmt.Errorf("assertion: for %q, not %q", c.Audience, audience)
	}
	return c, nil
}

func decode(s string, v any) error {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, v)
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

// pad32 is a P-256 integer as the 32 big-endian bytes JOSE wants.
func pad32(n *big.Int) []byte {
	out := make([]byte, 32)
	return n.FillBytes(out)
}
