package caddyportal

import (
	"net/http"
	"slices"
	"sync"

	"github.com/caddyserver/caddy/v2"

	"github.com/caddyportal/caddyportal/caddyportal/adminapi"
	"github.com/caddyportal/caddyportal/caddyportal/sessions"
)

func init() {
	caddy.RegisterModule(AdminAPI{})
}

// running holds the provisioned portals by name, so the admin API (a
// separate module with no reference to any handler) can find them. During
// a reload the new config's portal is provisioned before the old one is
// cleaned up; the newest registration serves.
var running = caddy.NewUsagePool()

// runningPortal is the pool entry of one portal name.
type runningPortal struct {
	mu   sync.Mutex
	svcs []*sessions.Service
}

// Destruct is called when the last config with this portal is gone.
func (*runningPortal) Destruct() error { return nil }

// register makes svc the portal name's serving service. Each call must be
// matched by one unregister with the entry it returns.
func register(name string, svc *sessions.Service) *runningPortal {
	v, _, _ := running.LoadOrNew(name, func() (caddy.Destructor, error) { return &runningPortal{}, nil })
	p := v.(*runningPortal)
	p.mu.Lock()
	p.svcs = append(p.svcs, svc)
	p.mu.Unlock()
	return p
}

// unregister undoes register; last says no service serves the name now.
func unregister(name string, p *runningPortal, svc *sessions.Service) (last bool) {
	p.mu.Lock()
	p.svcs = slices.DeleteFunc(p.svcs, func(s *sessions.Service) bool { return s == svc })
	last = len(p.svcs) == 0
	p.mu.Unlock()
	_, _ = running.Delete(name)
	return last
}

// runningPortals adapts the pool to adminapi.Portals.
type runningPortals struct{}

func (runningPortals) Names() []string {
	var names []string
	running.Range(func(k, v any) bool {
		p := v.(*runningPortal)
		p.mu.Lock()
		if len(p.svcs) > 0 {
			names = append(names, k.(string))
		}
		p.mu.Unlock()
		return true
	})
	slices.Sort(names)
	return names
}

func (runningPortals) Service(name string) *sessions.Service {
	var svc *sessions.Service
	running.Range(func(k, v any) bool {
		if k.(string) != name {
			return true
		}
		p := v.(*runningPortal)
		p.mu.Lock()
		if n := len(p.svcs); n > 0 {
			svc = p.svcs[n-1]
		}
		p.mu.Unlock()
		return false
	})
	return svc
}

// AdminAPI adds the portal's JSON endpoints to Caddy's admin API, under
// /portal/: list environments and sessions, terminate and extend sessions
// (see package adminapi for the routes). They are as private as Caddy's
// admin listener, loopback-only by default.
type AdminAPI struct{}

// CaddyModule returns the Caddy module information.
func (AdminAPI) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "admin.api.portal",
		New: func() caddy.Module { return new(AdminAPI) },
	}
}

// Routes returns the admin routes.
func (AdminAPI) Routes() []caddy.AdminRoute {
	h := adminapi.New("/portal/", runningPortals{})
	return []caddy.AdminRoute{{
		Pattern: "/portal/",
		Handler: caddy.AdminHandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
			h.ServeHTTP(w, r)
			return nil
		}),
	}}
}

var _ caddy.AdminRouter = AdminAPI{}
