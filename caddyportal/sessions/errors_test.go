package sessions_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/caddyportal/caddyportal/caddyportal/sessions"
	"github.com/caddyportal/caddyportal/caddyportal/store"
	"github.com/caddyportal/caddyportal/caddyportal/store/storetest"
)

// TestStoreErrorsInVocabulary: an outage, exhausted conflict retries and a
// passed deadline leave the service as ErrUnavailable, with the store's
// error still the cause and still the text (logs and the admin API show
// it); other store errors are not made outages.
func TestStoreErrorsInVocabulary(t *testing.T) {
	clk := newClock()
	fs := &storetest.Down{Store: openStore(t, clk)}
	svc := newService(t, fs, clk, portal(workshop("lab", 2, 0)))
	ctx := context.Background()
	fs.Views.Store(true)
	fs.Updates.Store(true)
	for _, c := range []struct {
		cause       error
		unavailable bool
	}{
		{fmt.Errorf("%w: etcd: connection refused", store.ErrUnavailable), true},
		{store.ErrConflict, true},
		{context.DeadlineExceeded, true},
		{store.ErrTooLarge, false},
	} {
		fs.Err = c.cause
		for what, err := range map[string]error{
			"Get":         func() error { _, err := svc.Get(ctx, "x"); return err }(),
			"Terminate":   func() error { _, err := svc.Terminate(ctx, "x", ""); return err }(),
			"GetUser":     func() error { _, err := svc.GetUser(ctx, "u"); return err }(),
			"Environment": func() error { _, err := svc.EnvironmentSessions(ctx); return err }(),
		} {
			if errors.Is(err, sessions.ErrUnavailable) != c.unavailable || !errors.Is(err, c.cause) || err.Error() != c.cause.Error() {
				t.Errorf("%s with the store failing %v: %v (ErrUnavailable %v, want %v)", what, c.cause, err,
					errors.Is(err, sessions.ErrUnavailable), c.unavailable)
			}
		}
	}
	if !errors.Is(sessions.ErrClosed, sessions.ErrUnavailable) || sessions.ErrClosed.Error() != "portal is shutting down" {
		t.Errorf("ErrClosed = %v, want an ErrUnavailable saying the portal shuts down", sessions.ErrClosed)
	}
}
