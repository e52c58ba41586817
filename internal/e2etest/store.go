package e2etest

import (
	"context"
	"encoding/json"
	"path/filepath"
	"testing"

	"github.com/caddyportal/caddyportal/caddyportal/sessions"
	"github.com/caddyportal/caddyportal/caddyportal/store"
	"github.com/caddyportal/caddyportal/caddyportal/store/badgerstore"
)

// OpenStore opens the Badger directory of a portal with data in dir after
// the server stopped, to check what was really written. It is closed at
// the end of the test.
func OpenStore(t testing.TB, dir string) *badgerstore.Store {
	t.Helper()
	st, err := badgerstore.Open(badgerstore.DefaultOptions(filepath.Join(dir, "badger")))
	if err != nil {
		t.Fatalf("reopening the store after stop: %v", err)
	}
	t.Cleanup(func() { _ = st.Close() })
	return st
}

// StoredSessions reads every session record in st, by name, as the
// portal wrote it.
func StoredSessions(t testing.TB, st store.Store) map[string]sessions.Session {
	t.Helper()
	out := map[string]sessions.Session{}
	err := st.View(context.Background(), func(tx store.Txn) error {
		return tx.Scan("s/", func(_ string, v []byte) error {
			var s sessions.Session
			if err := json.Unmarshal(v, &s); err != nil {
				return err
			}
			out[s.Name] = s
			return nil
		})
	})
	if err != nil {
		t.Fatalf("reading the stored sessions: %v", err)
	}
	return out
}
