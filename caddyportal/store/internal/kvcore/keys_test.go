package kvcore

import (
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/caddyportal/caddyportal/caddyportal/store"
)

func TestIndexKeyRoundTrip(t *testing.T) {
	instants := []int64{math.MinInt64, -2_000_000_000, -1, 0, 1, 1_700_000_000_000_000_000, math.MaxInt64}
	keys := []string{"", "user/key", "~odd", "a\x00b", "\xff"}
	for _, n := range instants {
		for _, key := range keys {
			k := IndexKey(n, key)
			if !strings.HasPrefix(k, IndexPrefix) || !strings.HasPrefix(k, store.ReservedPrefix) {
				t.Fatalf("IndexKey(%d, %q) = %q, want it under %q (reserved)", n, key, k, IndexPrefix)
			}
			gotN, gotKey, ok := ParseIndexKey(k)
			if !ok || gotN != n || gotKey != key {
				t.Errorf("ParseIndexKey(IndexKey(%d, %q)) = %d, %q, %v", n, key, gotN, gotKey, ok)
			}
			gotN, gotKey, ok = ParseIndexKey([]byte(k))
			if !ok || gotN != n || gotKey != key {
				t.Errorf("ParseIndexKey([]byte(IndexKey(%d, %q))) = %d, %q, %v", n, key, gotN, gotKey, ok)
			}
		}
	}
}

// TestIndexKeySortsByTime: byte order is time order whatever the user keys,
// which is what lets a sweeper stop at the first entry not yet due.
func TestIndexKeySortsByTime(t *testing.T) {
	instants := []int64{math.MinInt64, -1 << 40, -2, -1, 0, 1, 2, 1 << 40, math.MaxInt64}
	var got []string
	for i := len(instants) - 1; i >= 0; i-- {
		// Later instants get smaller user keys, so a codec that let the
		// key decide would sort them wrongly.
		got = append(got, IndexKey(instants[i], string(rune('z'-i))))
	}
	slices.Sort(got)
	for i, k := range got {
		n, _, _ := ParseIndexKey(k)
		if n != instants[i] {
			t.Fatalf("entry %d after sorting expires at %d, want %d", i, n, instants[i])
		}
	}
	// At one instant, the user keys decide.
	if !(IndexKey(5, "a") < IndexKey(5, "b")) {
		t.Error("entries of one instant are not in key order")
	}
}

func TestAppendIndexKeyAppends(t *testing.T) {
	b := AppendIndexKey([]byte("/prefix/"), 42, "k")
	if want := "/prefix/" + IndexKey(42, "k"); string(b) != want {
		t.Fatalf("AppendIndexKey = %q, want %q", b, want)
	}
}

func TestParseIndexKeyRejectsOtherKeys(t *testing.T) {
	for _, k := range []string{"", "~x/", "~x/1234567", "~y/12345678k", "x/12345678k", "user/key"} {
		if _, _, ok := ParseIndexKey(k); ok {
			t.Errorf("ParseIndexKey(%q): ok, want not an index key", k)
		}
	}
}

func TestExpiryNanos(t *testing.T) {
	at := time.Unix(1_700_000_000, 123)
	if n, err := ExpiryNanos("b", "k", at); err != nil || n != at.UnixNano() {
		t.Fatalf("ExpiryNanos(%v) = %d, %v", at, n, err)
	}
	for _, at := range []time.Time{
		time.Date(1600, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(2300, 1, 1, 0, 0, 0, 0, time.UTC),
	} {
		_, err := ExpiryNanos("somestore", "the/key", at)
		if err == nil || !strings.Contains(err.Error(), "somestore") || !strings.Contains(err.Error(), "the/key") {
			t.Errorf("ExpiryNanos(%v) = %v, want an error naming the backend and the key", at, err)
		}
	}
}

func TestHidden(t *testing.T) {
	for key, want := range map[string]bool{"": true, "~": true, "~x/abc": true, "a": false, "a~": false, "\x7f": false} {
		if got := hidden(key); got != want {
			t.Errorf("hidden(%q) = %v, want %v", key, got, want)
		}
	}
}
