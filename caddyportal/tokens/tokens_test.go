package tokens

import (
	"strings"
	"testing"
)

func TestNew(t *testing.T) {
	const draws = 20000
	seen := make(map[string]bool, draws)
	var counts [256]int
	for range draws {
		tok, err := New()
		if err != nil {
			t.Fatal(err)
		}
		if len(tok) != Length {
			t.Fatalf("len(%q) = %d, want %d", tok, len(tok), Length)
		}
		for i := 0; i < len(tok); i++ {
			if !strings.ContainsRune(alphabet, rune(tok[i])) {
				t.Fatalf("token %q has non-alphanumeric byte %q", tok, tok[i])
			}
			counts[tok[i]]++
		}
		if seen[tok] {
			t.Fatalf("duplicate token %q", tok)
		}
		seen[tok] = true
	}
	// Every character must appear, and none wildly more than the others: a
	// modulo-biased generator would give the first 8 characters 5/4 of the
	// share of the rest. Expected per character: 20000*32/62 ≈ 10323, with a
	// standard deviation near 100, so these bounds never fail by chance.
	expected := draws * Length / len(alphabet)
	for i := 0; i < len(alphabet); i++ {
		c := counts[alphabet[i]]
		if c < expected*9/10 || c > expected*11/10 {
			t.Errorf("character %q drawn %d times, want about %d", alphabet[i], c, expected)
		}
	}
}

func TestRejectAbove(t *testing.T) {
	if rejectAbove != 248 || rejectAbove%len(alphabet) != 0 || len(alphabet) != 62 {
		t.Fatalf("rejectAbove = %d, alphabet %d chars", rejectAbove, len(alphabet))
	}
}

func TestHash(t *testing.T) {
	// SHA-256("abc") from FIPS 180-2.
	const want = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
	if got := Hash("abc"); got != want {
		t.Fatalf("Hash(abc) = %s, want %s", got, want)
	}
	if Hash("abd") == want {
		t.Fatal("Hash does not tell abc from abd")
	}
}

func TestMatches(t *testing.T) {
	tok, err := New()
	if err != nil {
		t.Fatal(err)
	}
	h := Hash(tok)
	tests := []struct {
		name        string
		token, hash string
		want        bool
	}{
		{"right token", tok, h, true},
		{"other token", tok[:Length-1] + "x", h, tok[Length-1] == 'x'},
		{"empty token", "", h, false},
		{"token as its own hash", tok, tok, false},
		{"truncated hash", tok, h[:63], false},
		{"uppercase hash", tok, strings.ToUpper(h), strings.ToUpper(h) == h},
		{"empty hash", tok, "", false},
	}
	for _, tt := range tests {
		if got := Matches(tt.token, tt.hash); got != tt.want {
			t.Errorf("%s: Matches = %v, want %v", tt.name, got, tt.want)
		}
	}
}

func TestEqual(t *testing.T) {
	tests := []struct {
		a, b string
		want bool
	}{
		{"", "", true},
		{"abc", "abc", true},
		{"abc", "abd", false},
		{"abc", "ab", false},
		{"ab", "abc", false},
		{"", "a", false},
	}
	for _, tt := range tests {
		if got := Equal(tt.a, tt.b); got != tt.want {
			t.Errorf("Equal(%q, %q) = %v, want %v", tt.a, tt.b, got, tt.want)
		}
	}
}
