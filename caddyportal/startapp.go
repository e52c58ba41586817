package caddyportal

import (
	"sync"

	"github.com/caddyserver/caddy/v2"
)

func init() {
	caddy.RegisterModule(new(startApp))
}

// startAppID is the app that starts a config's portals.
const startAppID = "caddyportal"

// startApp starts the portals of a config when Caddy runs that config.
// A portal's Provision only checks and loads, because Caddy provisions
// configs it does not run: `caddy validate` provisions every module and
// cleans up, and a reload whose new config fails to load never runs it. A
// portal started in Provision would, in both, open the store of a portal
// that runs elsewhere, start reserves nobody stops, and stop the
// dashboards it took for strays. Caddy starts the apps of a config it
// runs, after every module of the config was provisioned; the portal
// handlers load this one.
type startApp struct {
	mu     sync.Mutex
	starts []func() error
}

// CaddyModule returns the Caddy module information.
func (*startApp) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  startAppID,
		New: func() caddy.Module { return new(startApp) },
	}
}

// add queues start for when the config runs.
func (a *startApp) add(start func() error) {
	a.mu.Lock()
	a.starts = append(a.starts, start)
	a.mu.Unlock()
}

// Start starts the config's portals in the order they were provisioned.
// The first that fails fails the config (a reload keeps the config that
// runs), and Caddy's cleanup of the failed config stops the portals
// already started.
func (a *startApp) Start() error {
	a.mu.Lock()
	starts := a.starts
	a.mu.Unlock()
	for _, start := range starts {
		if err := start(); err != nil {
			return err
		}
	}
	return nil
}

// Stop does nothing: each portal stops in its handler's Cleanup, which
// Caddy calls for every config it provisioned, run or not.
func (*startApp) Stop() error { return nil }

// Interface guards.
var _ caddy.App = (*startApp)(nil)
