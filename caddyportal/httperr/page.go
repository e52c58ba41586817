package httperr

import (
	"html/template"
	"net/http"
)

// Navigation reports whether a browser said r is a top-level navigation (a
// link followed, an address typed, a redirect, a form): its answer
// replaces a whole tab, so a person reads it, and a refusal is a page
// (WritePage) rather than the REST API's JSON. The page that started it
// cannot read that answer unless it holds the window, which the gate's
// checks of who made a request rely on (gate.CheckPathDashboard).
func Navigation(r *http.Request) bool {
	return r.Header.Get("Sec-Fetch-Mode") == "navigate" &&
		(r.Header.Get("Sec-Fetch-Dest") == "document" || r.Header.Get("Sec-Fetch-Dest") == "")
}

var pageTmpl = template.Must(template.New("page").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{.Title}}</title>
<style>body{font-family:system-ui,sans-serif;max-width:36rem;margin:4rem auto;padding:0 1rem;color:#222}
h1{font-size:1.4rem}p{line-height:1.5}.code{color:#888}</style></head>
<body><h1>{{.Title}}</h1><p>{{.Message}}</p>{{with .Link}}<p><a href="{{.}}" target="_top" id="back">Back to the workshops</a></p>{{end}}<p class="code">HTTP {{.Status}}</p></body></html>
`))

// WritePage writes a small HTML page that says what went wrong, for a
// refusal a person reads, with a link (if not "") back to the workshops
// that opens in the whole window.
func WritePage(w http.ResponseWriter, status int, title, msg, link string) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = pageTmpl.Execute(w, struct {
		Title, Message, Link string
		Status               int
	}{title, msg, link, status})
}
