package storetest

import (
	"context"
	"sync/atomic"

	"github.com/caddyportal/caddyportal/caddyportal/store"
)

// Down wraps a store whose backend can be switched off: while Views (or
// Updates) is set, View (or Update) fails with Err without running fn, as
// a store whose backend cannot be reached does. Tests of what callers
// answer during an outage use it; set Err before switching.
type Down struct {
	store.Store
	Views, Updates atomic.Bool
	Err            error
}

// Update fails with Err while Updates is set.
func (d *Down) Update(ctx context.Context, fn func(tx store.Txn) error) error {
	if d.Updates.Load() {
		return d.Err
	}
	return d.Store.Update(ctx, fn)
}

// View fails with Err while Views is set.
func (d *Down) View(ctx context.Context, fn func(tx store.Txn) error) error {
	if d.Views.Load() {
		return d.Err
	}
	return d.Store.View(ctx, fn)
}
