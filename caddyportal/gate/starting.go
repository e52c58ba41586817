package gate

import (
	"html/template"
	"net/http"
	"strconv"
	"time"

	"github.com/caddyportal/caddyportal/caddyportal/lifecycle"
	"github.com/caddyportal/caddyportal/caddyportal/sessions"
)

// startingRefresh is how often the starting page reloads itself.
const startingRefresh = 2

// DefaultStartingHold is how long a request for a session whose
// environment is starting waits for it by default. Most process
// environments start well within it, and their learners then go straight
// into the dashboard rather than through a page that reloads only every
// startingRefresh seconds (JupyterHub likewise waits its slow_spawn_timeout
// before it shows its progress page). It is short enough that a learner
// whose start is queued soon sees where it stands.
const DefaultStartingHold = 2 * time.Second

// awaitReady holds a GET or HEAD of a session whose environment is
// starting until it is no longer starting or the hold is over, and returns
// the session as last read. Every change to the session wakes it; a change
// it does not hear of (made by a writer outside this process with no
// watch) is seen at the end of the hold.
func (g *Gate) awaitReady(r *http.Request, sess *sessions.Session) *sessions.Session {
	hold := g.o.StartingHold
	if hold == 0 {
		hold = DefaultStartingHold
	}
	if hold < 0 || sess.State != lifecycle.Starting || r.Method != http.MethodGet && r.Method != http.MethodHead {
		return sess
	}
	timer := time.NewTimer(hold)
	defer timer.Stop()
	for {
		// Taken before the read, so a change right after it still wakes.
		changed := g.svc.Changed(sess.Name)
		cur, err := g.svc.GetCached(r.Context(), sess.Name)
		if err != nil {
			return sess
		}
		if cur.State != lifecycle.Starting {
			return cur
		}
		select {
		case <-changed:
		case <-timer.C:
			return cur
		case <-r.Context().Done():
			return cur
		}
	}
}

// notReady reports whether a session's dashboard may not be proxied to yet:
// its environment is still starting (or it has no address at all). The
// learner is never sent to a dashboard that is not ready.
func notReady(sess *sessions.Session) bool {
	return sess.State == lifecycle.Starting || sess.Upstream == ""
}

// endedMessage tells the learner that their session ended, why (for an
// environment, in the spawner's words, kept in its progress) and how to go
// on.
func endedMessage(sess *sessions.Session) string {
	msg := "This workshop session has ended"
	if why := sessions.EndedBecause(sess); why != "" {
		msg += ": " + why
	}
	return msg + ". Start the workshop again to get a new one."
}

var startingTmpl = template.Must(template.New("starting").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="refresh" content="{{.Refresh}}">
<title>Starting your workshop</title>
<style>body{font-family:system-ui,sans-serif;max-width:36rem;margin:4rem auto;padding:0 1rem;color:#222}
h1{font-size:1.4rem}p{line-height:1.5}.step{color:#555}</style></head>
<body><h1>Starting your workshop</h1>
{{if .Position}}<p>Your workshop is queued at position {{.Position}}: it starts as soon as the ones before it have{{if .Wait}}, in {{.Wait}} at the pace of the last starts{{end}}.</p>
{{else}}<p>Your workshop environment is being prepared.</p>
{{if .Step}}<p class="step">{{.Step}}{{if .Message}}: {{.Message}}{{end}}</p>{{end}}
{{end}}<p>This page reloads itself and opens the workshop once it is ready.</p></body></html>
`))

// serveStarting answers a request for a session whose environment is not
// ready: a page that shows the start's progress (its queue position, else
// its last step) and reloads itself every startingRefresh seconds, with no
// script, until the gate forwards to the ready dashboard. A request other
// than GET or HEAD gets 503 with Retry-After instead: a 200 would tell the
// script that made it that its call succeeded.
func (g *Gate) serveStarting(w http.ResponseWriter, r *http.Request, sess *sessions.Session) {
	hdr := w.Header()
	hdr.Set("Cache-Control", "no-store")
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		hdr.Set("Retry-After", strconv.Itoa(startingRefresh))
		g.metrics.GateRequest(sess.Environment, http.StatusServiceUnavailable)
		jsonRefusal(w, http.StatusServiceUnavailable, "The workshop environment is still starting")
		return
	}
	data := struct {
		Refresh, Position   int
		Wait, Step, Message string
	}{Refresh: startingRefresh}
	var wait time.Duration
	data.Position, wait = g.svc.QueueWait(sess.Name)
	if wait > 0 {
		data.Wait = sessions.AboutWait(wait)
	}
	if p := sess.Progress; p != nil && data.Position == 0 {
		data.Step, data.Message = sessions.StepLine(*p)
	}
	hdr.Set("Content-Type", "text/html; charset=utf-8")
	hdr.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'")
	w.WriteHeader(http.StatusOK)
	g.metrics.GateRequest(sess.Environment, http.StatusOK)
	if r.Method == http.MethodGet {
		_ = startingTmpl.Execute(w, data)
	}
}
