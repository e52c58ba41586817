package kvcore

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/caddyportal/caddyportal/caddyportal/store"
)

// puts records the writes that reach the backend.
type puts []string

func (p *puts) Remove(key string) error {
	*p = append(*p, "-"+key)
	return nil
}

func (p *puts) Put(key string, value []byte, expiring bool, expires int64) error {
	w := key + "=" + string(value)
	if expiring {
		w += "@" + time.Unix(0, expires).UTC().Format(time.RFC3339Nano)
	}
	*p = append(*p, w)
	return nil
}

func TestTxnBaseWrites(t *testing.T) {
	var got puts
	b := NewTxnBase("somestore", true, &got)
	at := time.Date(2030, 1, 2, 3, 4, 5, 6, time.UTC)
	if err := b.Set("a", []byte("1")); err != nil {
		t.Fatal(err)
	}
	if err := b.SetExpiring("b", []byte("2"), at); err != nil {
		t.Fatal(err)
	}
	if err := b.Delete("a"); err != nil {
		t.Fatal(err)
	}
	if want := (puts{"a=1", "b=2@2030-01-02T03:04:05.000000006Z", "-a"}); !slices.Equal(got, want) {
		t.Fatalf("backend got %q, want %q", got, want)
	}
}

// TestTxnBaseRefuses: a refused write never reaches the backend.
func TestTxnBaseRefuses(t *testing.T) {
	var got puts
	rw := NewTxnBase("somestore", true, &got)
	ro := NewTxnBase("somestore", false, &got)
	done := NewTxnBase("somestore", true, &got)
	done.End()
	soon := time.Now().Add(time.Hour)
	for _, tc := range []struct {
		name  string
		write func() error
		want  error
	}{
		{"empty key", func() error { return rw.Set("", nil) }, store.ErrEmptyKey},
		{"reserved key", func() error { return rw.SetExpiring("~x/k", nil, soon) }, store.ErrReservedKey},
		{"read-only Set", func() error { return ro.Set("k", nil) }, store.ErrReadOnly},
		{"read-only SetExpiring", func() error { return ro.SetExpiring("k", nil, soon) }, store.ErrReadOnly},
		{"read-only Delete", func() error { return ro.Delete("k") }, store.ErrReadOnly},
		{"reserved Delete", func() error { return rw.Delete("~x/k") }, store.ErrReservedKey},
		{"read-only CheckWrite", func() error { return ro.CheckWrite("k") }, store.ErrReadOnly},
		{"Set after End", func() error { return done.Set("k", nil) }, store.ErrTxnDone},
		{"Check after End", done.Check, store.ErrTxnDone},
		{"CheckWrite after End", func() error { return done.CheckWrite("k") }, store.ErrTxnDone},
		{"expiry out of range", func() error { return rw.SetExpiring("k", nil, time.Date(2300, 1, 1, 0, 0, 0, 0, time.UTC)) }, nil},
	} {
		err := tc.write()
		if err == nil || tc.want != nil && !errors.Is(err, tc.want) {
			t.Errorf("%s = %v, want %v", tc.name, err, tc.want)
		}
	}
	if len(got) != 0 {
		t.Fatalf("refused writes reached the backend: %q", got)
	}
	if err := ro.Check(); err != nil {
		t.Fatalf("Check of a usable read-only transaction = %v", err)
	}
}

func TestTxnBaseReadChecks(t *testing.T) {
	b := NewTxnBase("somestore", false, nil)
	for key, want := range map[string]error{"k": nil, "": store.ErrNotFound, "~x/k": store.ErrNotFound} {
		if err := b.CheckRead(key); err != want {
			t.Errorf("CheckRead(%q) = %v, want %v", key, err, want)
		}
	}
	for prefix, want := range map[string]bool{"": true, "s/": true, "~": false, "~x/": false} {
		if visit, err := b.CheckScan(prefix); visit != want || err != nil {
			t.Errorf("CheckScan(%q) = %v, %v; want %v, nil", prefix, visit, err, want)
		}
	}
	b.End()
	if err := b.CheckRead("k"); err != store.ErrTxnDone {
		t.Errorf("CheckRead after End = %v, want store.ErrTxnDone", err)
	}
	if visit, err := b.CheckScan("s/"); visit || err != store.ErrTxnDone {
		t.Errorf("CheckScan after End = %v, %v; want false, store.ErrTxnDone", visit, err)
	}
}
