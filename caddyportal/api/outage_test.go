package api_test

import (
	"context"
	"fmt"
	"net/http"
	"testing"

	"github.com/caddyportal/caddyportal/caddyportal/httperr"
	"github.com/caddyportal/caddyportal/caddyportal/store"
	"github.com/caddyportal/caddyportal/caddyportal/store/storetest"
)

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
			var ds *storetest.Down
			h := newHarness(t, harnessOpts{wrap: func(st store.Store) store.Store {
				ds = &storetest.Down{Store: st, Err: cause}
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
			ds.Updates.Store(true)
			check("session request", h.get("/workshops/environment/demo-w01/request/?user=alice", h.robot))
			// Reads fail too: the token check itself cannot be made.
			ds.Views.Store(true)
			check("token check", h.get("/workshops/catalog/environments/", h.robot))
		})
	}
}
