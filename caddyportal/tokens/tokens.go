// Package tokens generates, hashes and compares the portal's secrets
// (access, refresh and activation tokens) and signs the short values the
// portal hands to browsers (dashboard cookies, one-time tickets, CSRF
// tokens). Tokens are stored only as hashes and every comparison of secret
// material is constant-time.
package tokens

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"fmt"
)

// alphabet is base62: tokens travel in query strings (activation links),
// headers and JSON, and alphanumerics need no escaping in any of them.
const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"

// Length is the number of characters in a token from New: 32 base62
// characters carry 32*log2(62) ≈ 190 bits, well above the 128-bit minimum.
const Length = 32

// rejectAbove is the largest multiple of len(alphabet) that fits in a byte
// (4*62 = 248). Bytes at or above it are discarded so every character is
// equally likely; plain modulo would favour the first 8 characters.
const rejectAbove = 256 - 256%len(alphabet)

// New returns a fresh random token of Length base62 characters drawn from
// crypto/rand.
func New() (string, error) {
	out := make([]byte, 0, Length)
	// About 3% of bytes are rejected, so a buffer with some headroom
	// almost always suffices in one read.
	buf := make([]byte, Length+Length/4)
	for len(out) < Length {
		if _, err := rand.Read(buf); err != nil {
			return "", fmt.Errorf("reading random bytes: %w", err)
		}
		for _, b := range buf {
			if int(b) >= rejectAbove {
				continue
			}
			out = append(out, alphabet[int(b)%len(alphabet)])
			if len(out) == Length {
				break
			}
		}
	}
	return string(out), nil
}

// Hash returns the lowercase hex SHA-256 of token, the form in which tokens
// are stored. A fast unsalted hash is right here, unlike for passwords:
// tokens carry at least 128 bits of entropy, so neither brute force nor
// precomputed tables are feasible, and a deterministic hash lets the store
// look a token up by its hash directly.
func Hash(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

// Equal reports whether a and b are equal in time that depends only on
// their lengths, never on where they first differ. Strings of different
// lengths are unequal; only the lengths leak, which for hashes and tokens
// of fixed size is public anyway.
func Equal(a, b string) bool {
	return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1
}

// Matches reports whether token hashes to the stored hash, comparing in
// constant time.
func Matches(token, hash string) bool {
	return Equal(Hash(token), hash)
}
