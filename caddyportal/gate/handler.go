package gate

import (
	"net/http"

	"github.com/caddyportal/caddyportal/caddyportal/httperr"
	"github.com/caddyportal/caddyportal/caddyportal/routes"
)

// Handler returns the handler of a gate route matched by routes.Match.
// Dashboard requests get a handler that costs no allocation. In host mode
// a path under routes.SessionPrefix on the portal's host other than the
// delete link is no dashboard's: it answers a JSON 404 like any unknown
// path under the portal's prefixes.
func (g *Gate) Handler(m routes.Route) http.Handler {
	switch m.ID {
	case routes.TLSAsk:
		return http.HandlerFunc(g.ServeAsk)
	case routes.EnvironmentCreate:
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if !g.RefusePortal(w, r, false) {
				g.ServeCreate(w, r, m.Arg)
			}
		})
	case routes.SessionDashboard:
		if g.HostMode() && !isDelete(m.Tail) {
			return http.HandlerFunc(notFound)
		}
		return (*pathHandler)(g)
	}
	return nil
}

// HostHandler is the handler of every request to a session host (host
// mode; see SessionHost).
func (g *Gate) HostHandler() http.Handler { return (*hostHandler)(g) }

// pathHandler serves SessionDashboard routes. It finds the session in the
// request again, which is cheaper than allocating a handler that holds it.
type pathHandler Gate

func (h *pathHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	g := (*Gate)(h)
	m, ok := routes.MatchSession(r)
	if !ok {
		http.NotFound(w, r)
		return
	}
	g.servePath(w, r, m.Arg, m.Tail)
}

// hostHandler serves session hosts.
type hostHandler Gate

func (h *hostHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	g := (*Gate)(h)
	if name, ingress := g.SessionHost(r); name != "" {
		g.ServeSessionHost(w, r, name, ingress)
		return
	}
	http.NotFound(w, r)
}

func isDelete(tail string) bool { return tail == "/delete" || tail == "/delete/" }

// notFound answers a path under the portal's prefixes that nothing serves.
func notFound(w http.ResponseWriter, _ *http.Request) {
	httperr.Write(w, http.StatusNotFound, "Not found")
}
