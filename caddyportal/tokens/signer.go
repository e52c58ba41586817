package tokens

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"sync"
	"time"
)

// Errors returned by Verify. They are distinct so callers can log why a
// value was refused; a client should get the same answer for all of them.
var (
	// ErrMalformed means the value is not a well-formed signed value.
	ErrMalformed = errors.New("malformed signed value")
	// ErrBadSignature means the value was not signed by this key for this
	// purpose, or was altered.
	ErrBadSignature = errors.New("bad signature")
	// ErrExpired means the value was genuine but its expiry has passed.
	ErrExpired = errors.New("signed value expired")
)

// MinKeyLen is the smallest signing key NewSigner accepts, the HMAC-SHA256
// block of security (256 bits).
const MinKeyLen = 32

// MaxValueLen is the longest encoded value Verify looks at; anything longer
// is refused before decoding so a hostile cookie costs nothing. 4 KiB is
// also the size browsers guarantee for one cookie.
const MaxValueLen = 4096

// Layout of a decoded value:
//
//	version(1) | expiry seconds (8, big-endian, signed) | expiry nanoseconds (4) | payload | HMAC-SHA256 (32)
//
// The expiry keeps full precision so a value expires exactly at the instant
// the caller asked for.
const (
	version    = 1
	headerLen  = 1 + 8 + 4
	macLen     = sha256.Size
	overhead   = headerLen + macLen
	nanosInSec = 1_000_000_000
)

// MaxPayloadLen is the largest payload whose signed value still fits in
// MaxValueLen; Sign does not refuse bigger payloads, but Verify will.
const MaxPayloadLen = MaxValueLen/4*3 - overhead

// encoding is unpadded base64url: safe in cookies, query strings and paths.
// Strict mode refuses non-zero trailing bits, so each payload has exactly
// one accepted encoding.
var encoding = base64.RawURLEncoding.Strict()

// macDomain separates these MACs from any other use of a derived key.
const macDomain = "caddyportal signed value v1\x00"

// Signer signs and verifies short values with one HMAC-SHA256 key. It is
// safe for concurrent use.
type Signer struct {
	key []byte
	// macs reuses HMAC states: the gate verifies a cookie on every
	// dashboard request, and a fresh HMAC costs several allocations.
	macs sync.Pool
}

// NewSigner returns a Signer for key, which must be at least MinKeyLen
// bytes. The key is copied.
func NewSigner(key []byte) (*Signer, error) {
	if len(key) < MinKeyLen {
		return nil, fmt.Errorf("signing key must be at least %d bytes, got %d", MinKeyLen, len(key))
	}
	sg := &Signer{key: append([]byte(nil), key...)}
	sg.macs.New = func() any { return hmac.New(sha256.New, sg.key) }
	return sg, nil
}

// Sign returns payload signed for purpose and valid until expires, as an
// unpadded base64url string. The purpose ("cookie", "ticket", "csrf", ...) is
// covered by the MAC but not stored, so a value signed for one purpose never
// verifies for another. The payload is visible to whoever holds the value:
// it is authenticated, not encrypted.
func (s *Signer) Sign(purpose string, payload []byte, expires time.Time) string {
	raw := make([]byte, headerLen, overhead+len(payload))
	raw[0] = version
	binary.BigEndian.PutUint64(raw[1:9], uint64(expires.Unix()))
	binary.BigEndian.PutUint32(raw[9:13], uint32(expires.Nanosecond()))
	raw = append(raw, payload...)
	raw = append(raw, s.mac(purpose, raw)...)
	return encoding.EncodeToString(raw)
}

// Verify checks value for purpose at now and returns its payload. It
// returns ErrMalformed for anything that is not a canonical signed value,
// ErrBadSignature when the MAC does not match (wrong key, wrong purpose,
// any altered byte), and ErrExpired when now is at or after the expiry. The
// MAC is checked before the expiry, so a forged expiry is a bad signature.
func (s *Signer) Verify(purpose, value string, now time.Time) ([]byte, error) {
	payload, expires, err := s.open(purpose, value)
	if err != nil {
		return nil, err
	}
	if !now.Before(expires) {
		return nil, ErrExpired
	}
	return payload, nil
}

// Open authenticates value for purpose like Verify but leaves the clock
// to the caller: it returns the payload and the expiry, for callers that
// remember verified values and check the expiry on each use.
func (s *Signer) Open(purpose, value string) ([]byte, time.Time, error) {
	return s.open(purpose, value)
}

// open decodes and authenticates value, returning its payload and expiry
// without looking at the clock.
func (s *Signer) open(purpose, value string) ([]byte, time.Time, error) {
	if len(value) > MaxValueLen || len(value) < encoding.EncodedLen(overhead) {
		return nil, time.Time{}, ErrMalformed
	}
	// The decoder skips CR and LF even in strict mode; refusing every byte
	// outside the alphabet keeps the encoding canonical.
	for i := 0; i < len(value); i++ {
		if !isBase64URL(value[i]) {
			return nil, time.Time{}, ErrMalformed
		}
	}
	raw, err := encoding.DecodeString(value)
	if err != nil || len(raw) < overhead || raw[0] != version {
		return nil, time.Time{}, ErrMalformed
	}
	body, sum := raw[:len(raw)-macLen], raw[len(raw)-macLen:]
	if !hmac.Equal(sum, s.mac(purpose, body)) {
		return nil, time.Time{}, ErrBadSignature
	}
	// Only values this key signed get here, and Sign never writes an
	// out-of-range nanosecond field; the check keeps open total anyway.
	nsec := binary.BigEndian.Uint32(body[9:13])
	if nsec >= nanosInSec {
		return nil, time.Time{}, ErrMalformed
	}
	expires := time.Unix(int64(binary.BigEndian.Uint64(body[1:9])), int64(nsec))
	payload := append([]byte(nil), body[headerLen:]...)
	return payload, expires, nil
}

// mac computes HMAC-SHA256 over the domain, the length-prefixed purpose and
// the body. The length prefix keeps purpose and body unambiguous: no choice
// of purpose can shift bytes into the body or back.
func (s *Signer) mac(purpose string, body []byte) []byte {
	m := s.macs.Get().(hash.Hash)
	defer s.macs.Put(m)
	m.Reset()
	m.Write([]byte(macDomain))
	var n [8]byte
	binary.BigEndian.PutUint64(n[:], uint64(len(purpose)))
	m.Write(n[:])
	m.Write([]byte(purpose))
	m.Write(body)
	return m.Sum(nil)
}

// isBase64URL reports whether c is in the base64url alphabet.
func isBase64URL(c byte) bool {
	return 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_'
}

// kdfDomain separates key derivation from every other HMAC use of the
// portal secret.
const kdfDomain = "caddyportal key derivation v1\x00"

// DeriveKey returns a 32-byte key for label derived from secret with
// HMAC-SHA256, so one configured portal secret yields independent keys for
// cookies, tickets and CSRF tokens: learning one derived key reveals
// neither the secret nor any other label's key. It works like the expand
// step of HKDF (RFC 5869) with the secret as the keying material, so it adds
// no strength to a weak secret: the secret itself must be random.
func DeriveKey(secret []byte, label string) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(kdfDomain))
	m.Write([]byte(label))
	return m.Sum(nil)
}
