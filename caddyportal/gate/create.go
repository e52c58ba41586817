package gate

import (
	"errors"
	"net/http"
	"time"

	"github.com/caddyportal/caddyportal/caddyportal/loginlimit"
	"github.com/caddyportal/caddyportal/caddyportal/sessions"
	"go.uber.org/zap"
)

// Limits on anonymous session starts per client address: CreateBurst at
// once, then one every CreateEvery. A classroom behind one NAT address can
// start together; one client cannot take every place.
const (
	CreateBurst = 20
	CreateEvery = 15 * time.Second
)

// ServeCreate is the anonymous-mode start link of workshop environment
// env: it creates an anonymous user and session and takes the browser
// straight to the dashboard.
func (g *Gate) ServeCreate(w http.ResponseWriter, r *http.Request, env string) {
	if !g.o.Anonymous {
		page(w, http.StatusForbidden, "Not available", "This portal does not offer anonymous workshop sessions.")
		return
	}
	// Only a GET, the browser following the start link, starts a
	// session: a HEAD from a link checker or a POST from another site's
	// form must not take a place.
	if r.Method != http.MethodGet {
		w.Header().Set("Allow", "GET")
		jsonRefusal(w, http.StatusMethodNotAllowed, "Method \""+r.Method+"\" not allowed")
		return
	}
	if g.o.Creates != nil {
		if wait := g.o.Creates.Allow(g.o.ClientIP(r)); wait > 0 {
			w.Header().Set("Retry-After", loginlimit.RetryAfter(wait))
			page(w, http.StatusTooManyRequests, "Too many workshop starts",
				"Too many workshop sessions were started from your network. Wait "+loginlimit.RetryAfter(wait)+" seconds and try again.")
			return
		}
	}
	index := r.URL.Query().Get("index_url")
	if index == "" || g.o.Redirects == nil || g.o.Redirects.Check(index, "") != nil {
		index = g.o.Index
	}
	e := g.svc.Environment(env)
	if e == nil || e.State != sessions.EnvRunning {
		g.svc.RefuseUnknownEnvironment(env)
		notify(w, r, index, "workshop-invalid", http.StatusNotFound, "Unknown workshop", "There is no such workshop.")
		return
	}
	req := sessions.Request{Environment: env, Group: sessions.GroupAnonymous, IndexURL: index}
	if g.o.AnonymousLogins != nil {
		req.User = g.o.AnonymousLogins.AnonymousUser(r)
	}
	res, err := g.svc.RequestSession(r.Context(), req)
	switch {
	case errors.Is(err, sessions.ErrSessionLimit):
		notify(w, r, index, "session-unavailable", http.StatusServiceUnavailable, "Session limit reached",
			"You already have as many workshop sessions as you may have at once. End yours before you start another workshop.")
		return
	case err != nil:
		notify(w, r, index, "session-unavailable", http.StatusServiceUnavailable, "No session available",
			"All workshop sessions are in use. Try again later.")
		return
	}
	if g.o.AnonymousLogins != nil && req.User == "" {
		if err := g.o.AnonymousLogins.RememberAnonymous(w, r, res.Session.Owner); err != nil {
			g.log.Warn("gate: remembering an anonymous learner", zap.Error(err))
		}
	}
	sess, err := g.svc.Activate(r.Context(), res.Session.Name, res.Token)
	if err != nil {
		notify(w, r, index, "session-unavailable", http.StatusServiceUnavailable, "No session available",
			"The workshop session could not be started. Try again later.")
		return
	}
	target, err := g.Activated(w, r, sess)
	if err != nil {
		page(w, http.StatusServiceUnavailable, "Portal unavailable", "Try again in a moment.")
		return
	}
	http.Redirect(w, r, target, http.StatusFound)
}
