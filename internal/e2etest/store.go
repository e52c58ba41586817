package e2etest

import (
	"context"
	"encoding/json"
	"path/filepath"
	"testing"

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

// StoredSession is the part of a stored session record the tests check.
type StoredSession struct {
	Name        string `json:"name"`
	Environment string `json:"environment"`
	State       string `json:"state"`
	Owner       string `json:"owner"`
	Slot        int    `json:"slot"`
	Upstream    string `json:"upstream"`
}

// StoredSessions reads every session record in st, by name.
func StoredSessions(t testing.TB, st store.Store) map[string]StoredSession {
	t.Helper()
	out := map[string]StoredSession{}
	err := st.View(context.Background(), func(tx store.Txn) error {
		return tx.Scan("s/", func(_ string, v []byte) error {
			var s StoredSession
			if err := json.Unmarshal(v, &s); err != nil {
				return err
			}
			out[s.Name] = s
			return nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}
