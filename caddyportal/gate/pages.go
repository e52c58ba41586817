package gate

import (
	"net/http"

	"go.uber.org/zap"

	"github.com/caddyportal/caddyportal/caddyportal/httperr"
	"github.com/caddyportal/caddyportal/caddyportal/redirects"
)

// notify redirects to target with a notification, or shows a page when
// there is nowhere to go. It returns the status it sent.
func notify(w http.ResponseWriter, r *http.Request, target, note string, status int, title, msg string) int {
	if target == "" {
		return page(w, status, title, msg)
	}
	if r.Header.Get("Sec-Fetch-Dest") == "iframe" {
		// The dashboard's frame (the session frame's, or a front end's):
		// the index would open inside it, and refuse to be asked by the
		// dashboard's page. The page says what happened and leads the
		// whole window there.
		return linkPage(w, status, title, msg, redirects.WithNotification(target, note))
	}
	http.Redirect(w, r, redirects.WithNotification(target, note), http.StatusFound)
	return http.StatusFound
}

// jsonRefusal answers a request that is not a browser navigation (a HEAD or
// POST to a start link, a dashboard page's call to the REST API) with the
// REST API's {"error": ...} body, written by the same writer.
func jsonRefusal(w http.ResponseWriter, status int, msg string) { httperr.Write(w, status, msg) }

// page writes a small, clear HTML page for browser-facing refusals and
// returns its status.
func page(w http.ResponseWriter, status int, title, msg string) int {
	return linkPage(w, status, title, msg, "")
}

// linkPage is page with a link (if not "") that opens in the whole window.
func linkPage(w http.ResponseWriter, status int, title, msg, link string) int {
	httperr.WritePage(w, status, title, msg, link)
	return status
}

// refuseInitiator answers a request that the page which made it may not
// make (see Origins): a JSON error for the REST API, a page otherwise.
func (g *Gate) refuseInitiator(w http.ResponseWriter, r *http.Request, err error, api bool) {
	g.log.Debug("gate: refused a request by the page that made it", zap.String("path", r.URL.Path),
		zap.String("referer", r.Header.Get("Referer")), zap.String("origin", r.Header.Get("Origin")),
		zap.String("sec_fetch_site", r.Header.Get("Sec-Fetch-Site")), zap.Error(err))
	const msg = "This request was made by a page that may not make it: another workshop dashboard cannot reach this address."
	if api {
		jsonRefusal(w, http.StatusForbidden, "Request made by a workshop dashboard page is not permitted")
		return
	}
	_ = page(w, http.StatusForbidden, "Request refused", msg)
}

// RefusePortal refuses, in path mode, a request for the portal's pages or
// API made in the background by a dashboard page (Origins.CheckPortal) and
// reports whether it did. api selects the REST API's JSON refusal.
func (g *Gate) RefusePortal(w http.ResponseWriter, r *http.Request, api bool) bool {
	if g.HostMode() {
		return false
	}
	if err := g.o.Origins.CheckPortal(r); err != nil {
		g.refuseInitiator(w, r, err, api)
		return true
	}
	return false
}
