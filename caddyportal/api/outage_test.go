package api_test

import (
	"context"
	"fmt"
	"net/http"
	"sync/atomic"
	"testing"

	"github.com/caddyportal/caddyportal/caddyportal/httperr"
	"github.com/caddyportal/caddyportal/caddyportal/store"
)

// downStore fails transactions with err, as a store whose backend cannot
// be reached does: reads while views is set, writes while updates is.
type downStore struct {
	store.Store
	views, updates atomic.Bool
	err            error
}

func (d *downStore) Update(ctx context.Context, fn func(tx store.Txn) error) error {
	if d.updates.Load() {
		return d.err
	}
	return d.Store.Update(ctx, fn)
}

func (d *downStore) View(ctx context.Context, fn func(tx store.Txn) error) error {
	if d.views.Load() {
		return d.err
	}
	return d.Store.View(ctx, fn)
}

// TestStoreOutageIs503: while the store cannot be reached, keeps
// conflicting or does not answer in time, the token check (issuer) and the
// service's answers are a 503 with a Retry-After and the public text,
// never a 403 or the store's message.
func TestStoreOutageIs503(t *testing.T) {
	for _, cause := range []error{
		fmt.Errorf("%w: etcd: connection refused", store.ErrUnavailable),
		store.ErrConflict,
		context.DeadlineExceeded,
	} {
		t.Run(cause.Error(), func(t *testing.T) {
			var ds *downStore
			h := newHarness(t, harnessOpts{wrap: func(st store.Store) store.Store {
				ds = &downStore{Store: st, err: cause}
				return ds
			}})
			check := func(what string, r response) {
				t.Helper()
				if r.status != http.StatusServiceUnavailable || r.header.Get("Retry-After") != "1" ||
					r.json(t)["error"] != httperr.UnavailableMessage {
					t.Errorf("%s while the store is down: %d (Retry-After %q) %s", what, r.status, r.header.Get("Retry-After"), r.body)
				}
			}
			// Writes fail: the token check passes, the service's request
			// does not.
			ds.updates.Store(true)
			check("session request", h.get("/workshops/environment/demo-w01/request/?user=alice", h.robot))
			// Reads fail too: the token check itself cannot be made.
			ds.views.Store(true)
			check("token check", h.get("/workshops/catalog/environments/", h.robot))
		})
	}
}
