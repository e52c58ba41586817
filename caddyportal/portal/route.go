package portal

import (
	"net/http"

	"github.com/caddyportal/caddyportal/caddyportal/routes"
)

// Route returns the handler for r, or nil when r is not the portal's (the
// host passes it on). A session host in host mode belongs to its
// dashboard entirely: its paths may look like portal routes but are the
// dashboard's own. Everything else goes through the route table.
func (p *Portal) Route(r *http.Request) http.Handler {
	if name, _ := p.gate.SessionHost(r); name != "" {
		return p.gate.HostHandler()
	}
	m, ok := routes.Match(r)
	if !ok {
		return nil
	}
	switch m.ID.Face() {
	case routes.API:
		return guarded{p, p.api.Handler(m), true}
	case routes.Pages:
		if h := p.ui.Handler(m, r); h != nil {
			return guarded{p, h, false}
		}
		return nil
	}
	return p.gate.Handler(m)
}

// guarded serves the REST API or the pages, except to a dashboard page's
// background request in path mode (gate.RefusePortal).
type guarded struct {
	p    *Portal
	h    http.Handler
	json bool
}

func (g guarded) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if g.p.gate.RefusePortal(w, r, g.json) {
		return
	}
	g.h.ServeHTTP(w, r)
}
