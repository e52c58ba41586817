package webui

import (
	"bytes"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/caddyportal/caddyportal/caddyportal/routes"
	"github.com/caddyportal/caddyportal/caddyportal/sessions"
)

//go:embed templates/*.html
var templateFS embed.FS

// pageTemplate is one page: the base layout with that page's "content".
type pageTemplate = template.Template

// pageNames are the page templates; each defines "content" for base.html.
var pageNames = []string{"error", "login", "logout", "signup", "catalog", "access", "overview", "sessions", "session", "users", "bulk", "release"}

var funcs = template.FuncMap{
	// when formats an instant for people: UTC, to the second.
	"when": func(t time.Time) string {
		if t.IsZero() {
			return "—"
		}
		return t.UTC().Format("2006-01-02 15:04:05 UTC")
	},
	// clock is the short form used in tables.
	"clock": func(t time.Time) string {
		if t.IsZero() {
			return "—"
		}
		return t.UTC().Format("Jan 2 15:04:05")
	},
	// counted is "1 <one>" or "<n> <many>".
	"counted": counted,
	// releasePath is the form target that releases a replica.
	"releasePath": routes.AdminReleasePath,
	// endedBecause is why a session ended as its learner is told it.
	"endedBecause": sessions.EndedBecause,
	"seconds":      func(n int) string { return (time.Duration(n) * time.Second).String() },
	"dur": func(d time.Duration) string {
		if d == 0 {
			return "unlimited"
		}
		// "1h30m" reads better than Go's "1h30m0s".
		s := d.String()
		if strings.HasSuffix(s, "m0s") {
			s = strings.TrimSuffix(s, "0s")
		}
		if strings.HasSuffix(s, "h0m") {
			s = strings.TrimSuffix(s, "0m")
		}
		return s
	},
	"capOrNone": func(n int) string {
		if n == 0 {
			return "no cap"
		}
		return fmt.Sprint(n)
	},
}

func loadTemplates() (map[string]*pageTemplate, error) {
	out := map[string]*pageTemplate{}
	for _, name := range pageNames {
		t, err := template.New("base.html").Funcs(funcs).ParseFS(templateFS, "templates/base.html", "templates/"+name+".html")
		if err != nil {
			return nil, fmt.Errorf("template %s: %w", name, err)
		}
		out[name] = t
	}
	return out, nil
}

// view is what every page template gets: the layout's fields and the
// page's own Data.
type view struct {
	Title   string
	Who     string
	Admin   bool
	Learner bool
	// CSRF is the form token of the current login (or visitor) state.
	CSRF string
	// Signup shows the sign-up link (registration one-step).
	Signup bool
	Notice string
	Error  string
	Status int
	// Refresh, when not 0, reloads the page after this many seconds
	// (pages carry no scripts).
	Refresh int
	Data    any
}

// render writes page name with status. The page is rendered into a buffer
// first so a template failure becomes a clean error page, never half a
// page with a 200.
func (u *UI) render(w http.ResponseWriter, r *http.Request, status int, name string, id identity, v view) {
	v.Status = status
	v.Admin, v.Learner = id.admin(), id.learner()
	switch {
	case v.Admin:
		v.Who = id.User
	case v.Learner && id.Learner != nil:
		v.Who = id.Learner.Email
	}
	if v.CSRF == "" && (v.Admin || v.Learner || id.anonymous()) {
		v.CSRF = u.csrfToken(id)
	}
	v.Signup = u.learnersMayLogin() && !v.Admin && !v.Learner
	var buf bytes.Buffer
	if err := u.pages[name].Execute(&buf, v); err != nil {
		u.log.Error("webui: rendering page", zap.String("page", name), zap.Error(err))
		buf.Reset()
		status = http.StatusServiceUnavailable
		_ = u.pages["error"].Execute(&buf, view{Title: "Page unavailable", Error: "This page cannot be shown right now. Try again in a moment.", Status: status})
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	if r.Method != http.MethodHead {
		_, _ = w.Write(buf.Bytes())
	}
}

// fail writes a readable error page with status.
func (u *UI) fail(w http.ResponseWriter, r *http.Request, status int, title, msg string) {
	u.render(w, r, status, "error", u.current(r), view{Title: title, Error: msg})
}

// unavailable answers a backend failure (store down, shutting down) with a
// 503 page and logs it; bad input never comes here.
func (u *UI) unavailable(w http.ResponseWriter, r *http.Request, err error) {
	u.log.Warn("webui: backend failure", zap.String("path", r.URL.Path), zap.Error(err))
	w.Header().Set("Retry-After", "1")
	u.fail(w, r, http.StatusServiceUnavailable, "Portal unavailable", "The portal cannot answer right now. Try again in a moment.")
}

// isNotFound says err is the service's "no such user".
func isNotFound(err error) bool { return errors.Is(err, sessions.ErrUserNotFound) }
