package gate

import (
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"strings"
	"time"

	"github.com/caddyportal/caddyportal/caddyportal/lifecycle"
	"github.com/caddyportal/caddyportal/caddyportal/routes"
	"github.com/caddyportal/caddyportal/caddyportal/sessions"
	"go.uber.org/zap"
)

// The session frame: for a workshop with `frame`, the dashboard's entry
// page, opened as a top-level page, is a frame with a slim bar above the
// dashboard. The bar shows the workshop, the time left, a warning before
// the end, Extend when the session can be extended, End session, and who
// of the staff is connected; it reloads itself every barRefresh seconds
// (no script), so the dashboard below is never reloaded. The dashboard is
// the same entry URL loaded as a frame (browsers say so in
// Sec-Fetch-Dest), which the gate proxies as ever. The bar and its Extend
// live under framePrefix in the session's own path space, which the
// portal reserves.
const (
	framePrefix = "/portal-frame/"
	barRefresh  = 15
	// formTokenTTL bounds a bar's forms; the bar reloads long before.
	formTokenTTL = time.Hour
)

// FramePrefix is the part of every session's path space the frame uses;
// a dashboard's own paths must not start with it.
const FramePrefix = framePrefix

var frameTmpl = template.Must(template.New("frame").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{.Title}}</title>
<style>html,body{margin:0;height:100%}body{display:flex;flex-direction:column}
iframe{border:0;width:100%;display:block}#bar{height:44px;flex:none}#dashboard{flex:1}</style></head>
<body><iframe id="bar" src="{{.Base}}portal-frame/bar" title="Session bar"></iframe>
<iframe id="dashboard" src="{{.Base}}" title="Workshop dashboard" allow="clipboard-read; clipboard-write; fullscreen"></iframe></body></html>
`))

var barTmpl = template.Must(template.New("bar").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8">
{{if not .Ended}}<meta http-equiv="refresh" content="{{.Refresh}}">{{end}}
<title>Session</title>
<style>body{margin:0;height:44px;display:flex;align-items:center;gap:.9rem;padding:0 .8rem;background:#1f2937;color:#f9fafb;
font:14px system-ui,sans-serif;overflow:hidden;white-space:nowrap}strong{font-weight:600}
body>*{flex:none}#title,.warn,.staff{flex:0 1 auto;min-width:0;overflow:hidden;text-overflow:ellipsis}#title{min-width:3em}
form{margin:0}button{font:inherit;padding:.25rem .7rem;border-radius:4px;border:1px solid #9ca3af;background:#374151;color:#fff;cursor:pointer}
button.end{background:#991b1b;border-color:#991b1b}.warn{color:#fbbf24;font-weight:600}.staff{color:#93c5fd}
.spacer{flex:1 1 0}a{color:#93c5fd}
@media (max-width:36rem){body{gap:.5rem;padding:0 .5rem;font-size:13px}button{padding:.2rem .45rem}.label{display:none}}</style></head>
<body><strong id="title">{{.Title}}</strong>
{{if .Ended}}<span id="ended" class="warn">This session has ended{{with .Reason}}: {{.}}{{end}}.</span>
<a href="{{.Index}}" target="_top" id="back">Back to the workshops</a>
{{else}}<span id="countdown">{{with .LeftLabel}}<span class="label">{{.}}</span>{{end}}{{.Left}}</span>{{if .Expiring}}<span class="warn" id="expiring">Ends soon: save your work{{if .Extendable}} or extend{{end}}.</span>{{end}}
{{range .Staff}}<span class="staff">Staff connected: {{.}}</span>{{end}}
<span class="spacer"></span>
<a href="{{.Index}}" target="_top" id="workshops">Workshops</a>
{{if .Extendable}}<form method="post" action="extend"><input type="hidden" name="csrf" value="{{.Token}}"><button type="submit" id="extend">Extend</button></form>{{end}}
<form method="post" action="end" target="_top"><input type="hidden" name="csrf" value="{{.Token}}"><button type="submit" class="end" id="end">End session</button></form>
{{end}}</body></html>
`))

// framePolicy is the frame's and the bar's CSP: no script, frames of this
// origin only. No form-action: End session redirects to the session's
// index on another origin, and Chromium applies form-action to the
// redirect too.
const framePolicy = "default-src 'none'; style-src 'unsafe-inline'; frame-src 'self'; frame-ancestors 'self'; base-uri 'none'"

// serveFrame serves the frame's requests of session name, tail being the
// escaped path within the session ("/" is its entry); it reports false for
// a request that is the dashboard's.
func (g *Gate) serveFrame(w http.ResponseWriter, r *http.Request, name, tail string) bool {
	if g.o.Framed == nil {
		return false
	}
	switch {
	case tail == framePrefix+"bar":
		g.serveBar(w, r, name)
	case tail == framePrefix+"extend", tail == framePrefix+"end":
		g.serveFrameAction(w, r, name, strings.TrimPrefix(tail, framePrefix))
	case tail == "/" && r.Method == http.MethodGet && r.Header.Get("Sec-Fetch-Dest") == "document":
		return g.serveFramePage(w, r, name)
	default:
		return false
	}
	return true
}

// base is the session's entry path as the browser sees it.
func (g *Gate) base(name string) string {
	if g.HostMode() {
		return "/"
	}
	return routes.SessionPath(name)
}

func (g *Gate) serveFramePage(w http.ResponseWriter, r *http.Request, name string) bool {
	sess, err := g.svc.GetCached(r.Context(), name)
	if err != nil || !g.o.Framed(sess.Workshop) {
		return false // the dashboard's flow answers, refusals included
	}
	sess, _ = g.admit(w, r, name)
	if sess == nil {
		return true
	}
	writeFramePage(w, http.StatusOK)
	g.metrics.GateRequest(sess.Environment, http.StatusOK)
	_ = frameTmpl.Execute(w, struct{ Title, Base string }{g.titleOf(sess), g.base(name)})
	return true
}

func writeFramePage(w http.ResponseWriter, status int) {
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("Content-Security-Policy", framePolicy)
	w.WriteHeader(status)
}

// barData is what the bar shows.
type barData struct {
	// Reason says why an ended session ended, in the learner's words.
	Title, Left, Index, Reason string
	// LeftLabel introduces Left, except on a phone's narrow bar.
	LeftLabel       string
	Token           string // the forms' CSRF token
	Refresh         int
	Ended, Expiring bool
	Extendable      bool
	Staff           []string
}

// serveBar shows the session's bar to a browser that holds the session
// (its owner, or staff granted access). Unlike the dashboard, it answers
// for an ended session too, with the way back to the index, so the frame
// says the session ended instead of showing the index inside the bar.
func (g *Gate) serveBar(w http.ResponseWriter, r *http.Request, name string) {
	now := g.svc.Now()
	sess, err := g.svc.GetCached(r.Context(), name)
	user, cerr := g.o.Cookies.Verify(r, name, now)
	if err != nil || cerr != nil || !sess.Admits(user, now) {
		g.refusedBecause(r, name, "the frame's bar for a browser that does not hold the session", http.StatusForbidden)
		writeFramePage(w, http.StatusForbidden)
		_ = barTmpl.Execute(w, barData{Title: "Not signed in to this session", Ended: true, Index: g.o.Index})
		return
	}
	d := barData{Title: g.titleOf(sess), Refresh: barRefresh, Index: g.indexOf(sess),
		Token: g.o.Cookies.FormToken(name, user, now.Add(formTokenTTL))}
	st, reason := sess.Effective(now)
	if st.Ending() {
		// In the learner's words, as the catalog says it; a deadline
		// passed but not yet stored counts as stored.
		ended := *sess
		ended.State, ended.Reason = st, reason
		d.Ended, d.Reason = true, sessions.EndedBecause(&ended)
		writeFramePage(w, http.StatusOK)
		_ = barTmpl.Execute(w, d)
		return
	}
	if _, sch, err := g.svc.Schedule(r.Context(), name); err == nil && sch.HasExpiry {
		d.LeftLabel, d.Left = "Time left: ", humanLeft(time.Duration(sch.Countdown)*time.Second)
		d.Expiring, d.Extendable = sch.Expiring, sch.Extendable
	} else if st == lifecycle.Starting {
		d.Left = "Starting…"
	} else {
		d.Left = "No time limit"
	}
	for _, gr := range sess.StaffGrants {
		if now.Before(gr.Until) && gr.User != user {
			d.Staff = append(d.Staff, gr.User)
		}
	}
	writeFramePage(w, http.StatusOK)
	g.metrics.GateRequest(sess.Environment, http.StatusOK)
	_ = barTmpl.Execute(w, d)
}

// serveFrameAction is the bar's Extend and End session: a POST from the
// session's own origin, with the bar's CSRF token, by a browser that
// holds the session. Extend goes back to the bar; End session ends the
// session and takes the window to the index with Educates' notification,
// as the delete link does.
func (g *Gate) serveFrameAction(w http.ResponseWriter, r *http.Request, name, action string) {
	if r.Method != http.MethodPost || !SameOriginNavigation(r) {
		g.refusedBecause(r, name, "a frame action that is not a same-origin POST", http.StatusForbidden)
		page(w, http.StatusForbidden, "Not allowed", "Use the buttons of the session's own page.")
		return
	}
	sess, user := g.admit(w, r, name)
	if sess == nil {
		return
	}
	if !g.o.Cookies.CheckFormToken(r.PostFormValue("csrf"), name, user, g.svc.Now()) {
		g.refusedBecause(r, name, "a frame action without a valid form token", http.StatusForbidden)
		page(w, http.StatusForbidden, "Not allowed", "This form is out of date. Reload the page and try again.")
		return
	}
	if action == "end" {
		if _, err := g.svc.Terminate(r.Context(), name, sessions.ReasonDeleted); err != nil && !errors.Is(err, sessions.ErrSessionNotFound) {
			page(w, http.StatusServiceUnavailable, "Portal unavailable", "The session could not be ended right now. Try again.")
			return
		}
		notify(w, r, g.indexOf(sess), "session-deleted", http.StatusOK, "Session ended", "Your workshop session has ended.")
		return
	}
	if _, _, _, err := g.svc.Extend(r.Context(), name); err != nil {
		g.log.Warn("gate: extending from the frame", zap.String("session", name), zap.Error(err))
	}
	http.Redirect(w, r, "bar", http.StatusSeeOther)
}

// titleOf is the workshop's title for the frame.
func (g *Gate) titleOf(sess *sessions.Session) string {
	if e := g.svc.Environment(sess.Environment); e != nil && e.Workshop.Title != "" {
		return e.Workshop.Title
	}
	return sess.Workshop
}

// humanLeft says a remaining time as a clock, as Educates' dashboard
// does: 52:07, or 1:05:00 past an hour.
func humanLeft(d time.Duration) string {
	if d <= 0 {
		return "0:00"
	}
	sec := int(d.Round(time.Second).Seconds())
	if sec >= 3600 {
		return fmt.Sprintf("%d:%02d:%02d", sec/3600, sec/60%60, sec%60)
	}
	return fmt.Sprintf("%d:%02d", sec/60, sec%60)
}
