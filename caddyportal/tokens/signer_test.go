package tokens

import (
	"bytes"
	"encoding/base64"
	"errors"
	"strings"
	"testing"
	"time"
)

var (
	testKey = bytes.Repeat([]byte{0x42}, MinKeyLen)
	now     = time.Date(2026, 4, 12, 8, 0, 0, 123_456_789, time.UTC)
)

func newTestSigner(t testing.TB, key []byte) *Signer {
	t.Helper()
	s, err := NewSigner(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestNewSignerKeyLength(t *testing.T) {
	if _, err := NewSigner(make([]byte, MinKeyLen-1)); err == nil {
		t.Error("31-byte key accepted")
	}
	if _, err := NewSigner(nil); err == nil {
		t.Error("nil key accepted")
	}
	if _, err := NewSigner(make([]byte, 64)); err != nil {
		t.Errorf("64-byte key refused: %v", err)
	}
}

func TestSignerCopiesKey(t *testing.T) {
	key := bytes.Clone(testKey)
	s := newTestSigner(t, key)
	v := s.Sign("cookie", []byte("p"), now.Add(time.Hour))
	key[0] ^= 1
	if _, err := s.Verify("cookie", v, now); err != nil {
		t.Fatalf("mutating the caller's key changed the signer: %v", err)
	}
}

func TestRoundTrip(t *testing.T) {
	s := newTestSigner(t, testKey)
	payloads := [][]byte{nil, {}, []byte("demo-w01-s001"), {0, 1, 2, 0xff}, bytes.Repeat([]byte("x"), MaxPayloadLen)}
	for _, p := range payloads {
		v := s.Sign("cookie", p, now.Add(time.Minute))
		if len(v) > MaxValueLen || strings.ContainsAny(v, "=+/;, \"") {
			t.Fatalf("value %q… (len %d) not compact and cookie-safe", v[:min(len(v), 20)], len(v))
		}
		got, err := s.Verify("cookie", v, now)
		if err != nil {
			t.Fatalf("Verify(len %d payload): %v", len(p), err)
		}
		if !bytes.Equal(got, p) {
			t.Fatalf("payload = %q, want %q", got, p)
		}
	}
}

func TestPayloadTooLong(t *testing.T) {
	s := newTestSigner(t, testKey)
	v := s.Sign("cookie", bytes.Repeat([]byte("x"), MaxPayloadLen+1), now.Add(time.Minute))
	if _, err := s.Verify("cookie", v, now); !errors.Is(err, ErrMalformed) {
		t.Fatalf("oversized value: err = %v, want ErrMalformed", err)
	}
}

func TestExpiry(t *testing.T) {
	s := newTestSigner(t, testKey)
	exp := now.Add(30 * time.Second)
	v := s.Sign("ticket", []byte("t"), exp)
	tests := []struct {
		at   time.Time
		want error
	}{
		{exp.Add(-time.Nanosecond), nil},
		{exp, ErrExpired},
		{exp.Add(time.Nanosecond), ErrExpired},
		{exp.Add(24 * time.Hour), ErrExpired},
	}
	for _, tt := range tests {
		_, err := s.Verify("ticket", v, tt.at)
		if !errors.Is(err, tt.want) || (tt.want == nil && err != nil) {
			t.Errorf("at expiry%+v: err = %v, want %v", tt.at.Sub(exp), err, tt.want)
		}
	}
	// Times far from now, in either direction, keep their exact instant.
	for _, e := range []time.Time{{}, time.Unix(0, 0), time.Date(9999, 12, 31, 23, 59, 59, 999_999_999, time.UTC)} {
		_, got, err := s.open("p", s.Sign("p", nil, e))
		if err != nil || !got.Equal(e) {
			t.Errorf("expiry %v round-tripped as %v, %v", e, got, err)
		}
	}
}

// TestTamperEveryByte flips each bit position of each decoded byte (version,
// expiry, payload, MAC) and requires every altered value to be refused.
func TestTamperEveryByte(t *testing.T) {
	s := newTestSigner(t, testKey)
	v := s.Sign("cookie", []byte("demo-w01-s001|learner-42"), now.Add(time.Hour))
	raw, err := base64.RawURLEncoding.DecodeString(v)
	if err != nil {
		t.Fatal(err)
	}
	for i := range raw {
		for bit := range 8 {
			mod := bytes.Clone(raw)
			mod[i] ^= 1 << bit
			_, err := s.Verify("cookie", base64.RawURLEncoding.EncodeToString(mod), now)
			want := ErrBadSignature
			if i == 0 {
				want = ErrMalformed // unknown version
			}
			if !errors.Is(err, want) {
				t.Fatalf("byte %d bit %d flipped: err = %v, want %v", i, bit, err, want)
			}
		}
	}
	// Truncating or extending the decoded value is also refused.
	for _, mod := range [][]byte{raw[:len(raw)-1], append(bytes.Clone(raw), 0)} {
		if _, err := s.Verify("cookie", base64.RawURLEncoding.EncodeToString(mod), now); err == nil {
			t.Errorf("length %d (from %d) accepted", len(mod), len(raw))
		}
	}
}

// TestTamperEveryChar changes each character of the encoded value, which
// also covers the non-canonical trailing bits of the last character.
func TestTamperEveryChar(t *testing.T) {
	s := newTestSigner(t, testKey)
	v := s.Sign("cookie", []byte("abc"), now.Add(time.Hour))
	for i := range len(v) {
		for _, c := range []byte("AB_-9z") {
			if v[i] == c {
				continue
			}
			mod := v[:i] + string(c) + v[i+1:]
			if _, err := s.Verify("cookie", mod, now); err == nil {
				t.Fatalf("char %d changed to %q accepted", i, c)
			}
		}
	}
}

func TestWrongPurposeAndKey(t *testing.T) {
	s := newTestSigner(t, testKey)
	v := s.Sign("cookie", []byte("p"), now.Add(time.Hour))
	for _, purpose := range []string{"ticket", "csrf", "", "Cookie", "cookie\x00"} {
		if _, err := s.Verify(purpose, v, now); !errors.Is(err, ErrBadSignature) {
			t.Errorf("purpose %q: err = %v, want ErrBadSignature", purpose, err)
		}
	}
	other := newTestSigner(t, bytes.Repeat([]byte{0x43}, MinKeyLen))
	if _, err := other.Verify("cookie", v, now); !errors.Is(err, ErrBadSignature) {
		t.Errorf("wrong key: err = %v, want ErrBadSignature", err)
	}
	// Purpose and payload boundaries cannot be shifted: "ab"+"c" and
	// "a"+"bc" sign different messages.
	v1 := s.Sign("ab", []byte("c"), now.Add(time.Hour))
	if _, err := s.Verify("a", v1, now); !errors.Is(err, ErrBadSignature) {
		t.Errorf("shifted purpose: err = %v", err)
	}
}

func TestMalformed(t *testing.T) {
	s := newTestSigner(t, testKey)
	good := s.Sign("cookie", []byte("payload"), now.Add(time.Hour))
	inputs := []string{
		"",
		"x",
		"====",
		strings.Repeat("A", 59),
		strings.Repeat("A", 61),
		good + "=",
		good[:20] + "\n" + good[20:],
		good[:20] + "\r" + good[20:],
		good[:20] + "+" + good[21:],
		good[:20] + "/" + good[21:],
		good[:20] + " " + good[21:],
		good[:20] + "\x00" + good[21:],
		good[:20] + "é" + good[22:],
		strings.Repeat("A", MaxValueLen+1),
		strings.Repeat("\n", MaxValueLen),
	}
	for _, in := range inputs {
		if _, err := s.Verify("cookie", in, now); !errors.Is(err, ErrMalformed) {
			t.Errorf("Verify(%q…): err = %v, want ErrMalformed", in[:min(len(in), 24)], err)
		}
	}
	// A structurally valid value with a zero MAC is a bad signature.
	raw := make([]byte, overhead+3)
	raw[0] = version
	if _, err := s.Verify("cookie", base64.RawURLEncoding.EncodeToString(raw), now); !errors.Is(err, ErrBadSignature) {
		t.Errorf("zero MAC: err = %v, want ErrBadSignature", err)
	}
}

func TestDeriveKey(t *testing.T) {
	secret := []byte("portal secret with enough entropy, really")
	a := DeriveKey(secret, "cookie")
	b := DeriveKey(secret, "ticket")
	if len(a) != 32 || len(b) != 32 {
		t.Fatalf("key lengths %d, %d, want 32", len(a), len(b))
	}
	if bytes.Equal(a, b) {
		t.Fatal("different labels gave the same key")
	}
	if !bytes.Equal(a, DeriveKey(secret, "cookie")) {
		t.Fatal("DeriveKey not deterministic")
	}
	if bytes.Equal(a, DeriveKey([]byte("another secret"), "cookie")) {
		t.Fatal("different secrets gave the same key")
	}
	// Derived keys are usable signer keys and are independent: a value
	// signed under one does not verify under the other.
	sa, sb := newTestSigner(t, a), newTestSigner(t, b)
	v := sa.Sign("x", []byte("p"), now.Add(time.Hour))
	if _, err := sb.Verify("x", v, now); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("cross-key verify: err = %v", err)
	}
}

func TestConcurrentUse(t *testing.T) {
	s := newTestSigner(t, testKey)
	done := make(chan error)
	for i := range 8 {
		go func() {
			p := []byte{byte(i)}
			var err error
			for range 200 {
				v := s.Sign("c", p, now.Add(time.Hour))
				var got []byte
				if got, err = s.Verify("c", v, now); err == nil && !bytes.Equal(got, p) {
					err = errors.New("payload mismatch")
				}
				if err != nil {
					break
				}
			}
			done <- err
		}()
	}
	for range 8 {
		if err := <-done; err != nil {
			t.Error(err)
		}
	}
}

func FuzzVerify(f *testing.F) {
	s := newTestSigner(f, testKey)
	f.Add("cookie", s.Sign("cookie", []byte("demo-w01-s001"), now.Add(time.Hour)))
	f.Add("ticket", s.Sign("ticket", nil, now.Add(time.Minute)))
	f.Add("cookie", s.Sign("cookie", []byte{0, 0xff}, now.Add(-time.Minute)))
	f.Add("cookie", "")
	f.Add("csrf", "AQAAAABp2tDAB1vNFQ")
	f.Add("cookie", strings.Repeat("A", 60))
	f.Add("cookie", "====\n\r")
	f.Fuzz(func(t *testing.T, purpose, value string) {
		payload, err := s.Verify(purpose, value, now)
		switch {
		case err == nil:
		case errors.Is(err, ErrMalformed), errors.Is(err, ErrBadSignature), errors.Is(err, ErrExpired):
			if payload != nil {
				t.Fatalf("payload %q returned with error %v", payload, err)
			}
		default:
			t.Fatalf("unexpected error %v", err)
		}
		// Anything authentic must be canonical: signing its payload and
		// expiry again gives back exactly the same string.
		p, exp, err := s.open(purpose, value)
		if err != nil {
			return
		}
		if again := s.Sign(purpose, p, exp); again != value {
			t.Fatalf("accepted %q re-signs to %q", value, again)
		}
	})
}
