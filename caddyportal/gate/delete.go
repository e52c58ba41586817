package gate

import (
	"errors"
	"html/template"
	"net/http"

	"github.com/caddyportal/caddyportal/caddyportal/sessions"
)

// ServeDelete ends the session of a signed-in browser and sends it to the
// session's index with a notification (reference §3.2).
func (g *Gate) ServeDelete(w http.ResponseWriter, r *http.Request, name string) {
	sess, _ := g.admit(w, r, name)
	if sess == nil {
		return
	}
	if !SameOriginNavigation(r) {
		// Another site sent the browser here (the cookie is SameSite=Lax,
		// so it goes along with top-level GETs): ask first. The button
		// posts back from this origin, which passes.
		confirmDelete(w)
		return
	}
	if _, err := g.svc.Terminate(r.Context(), name, sessions.ReasonDeleted); err != nil && !errors.Is(err, sessions.ErrSessionNotFound) {
		page(w, http.StatusServiceUnavailable, "Portal unavailable", "The session could not be ended right now. Try again.")
		return
	}
	note := "session-deleted"
	if n := r.URL.Query().Get("notification"); n == "startup-timeout" {
		note = n
	}
	notify(w, r, g.indexOf(sess), note, http.StatusOK, "Session ended", "Your workshop session has ended.")
}

var confirmTmpl = template.Must(template.New("confirm").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>End workshop session?</title>
<style>body{font-family:system-ui,sans-serif;max-width:36rem;margin:4rem auto;padding:0 1rem;color:#222}
h1{font-size:1.4rem}p{line-height:1.5}button{font-size:1rem;padding:.5rem 1rem}</style></head>
<body><h1>End workshop session?</h1><p>Another site sent you to the link that ends this workshop session.
End it only if you meant to: everything in it will be gone.</p>
<form method="post"><button type="submit" id="end">End session</button></form></body></html>
`))

// confirmDelete asks the learner to confirm ending the session. It may
// not be framed, so no other page can trick a click on its button.
func confirmDelete(w http.ResponseWriter) {
	hdr := w.Header()
	hdr.Set("Content-Type", "text/html; charset=utf-8")
	hdr.Set("Cache-Control", "no-store")
	hdr.Set("X-Frame-Options", "DENY")
	hdr.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
	w.WriteHeader(http.StatusOK)
	_ = confirmTmpl.Execute(w, nil)
}
