package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/mail"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/caddyportal/caddyportal/caddyportal/config"
	"github.com/caddyportal/caddyportal/caddyportal/httperr"
	"github.com/caddyportal/caddyportal/caddyportal/lifecycle"
	"github.com/caddyportal/caddyportal/caddyportal/redirects"
	"github.com/caddyportal/caddyportal/caddyportal/routes"
	"github.com/caddyportal/caddyportal/caddyportal/sessions"
	"github.com/caddyportal/caddyportal/caddyportal/spawner"
)

// msgInvalidUserID answers a user id that sessions.ValidUserID refuses:
// invalid UTF-8 (which a client sends as percent-escapes) is refused as
// much as a control character is, and the learner's front end should say
// which rule the id broke.
const msgInvalidUserID = "Invalid user id: it must be valid UTF-8 without control characters"

// msgInvalidName answers a first or last name that sessions.ValidName
// refuses, by the same rules.
const msgInvalidName = "Invalid name: first_name and last_name must be valid UTF-8 without control characters"

// requestResponse is the session request response, keys in the order of
// reference §2.5.
type requestResponse struct {
	Name        string `json:"name"`
	Session     string `json:"session"`
	User        string `json:"user"`
	URL         string `json:"url"`
	Namespace   string `json:"namespace"`
	Workshop    string `json:"workshop"`
	Environment string `json:"environment"`
}

// request serves /workshops/environment/<env>/request/ on GET and POST.
func (a *API) request(w http.ResponseWriter, r *http.Request, env string) {
	p, _ := principal(r)
	if !isRobot(p) && !isStaff(p) {
		writeError(w, http.StatusForbidden, "Session requests not permitted")
		return
	}
	e := a.resolveEnvironment(env)
	if e == nil {
		a.svc.RefuseUnknownEnvironment(env)
		writeError(w, http.StatusForbidden, "Environment does not exist")
		return
	}
	q, ok := query(w, r)
	if !ok {
		return
	}
	params, status, msg := readParameters(w, r)
	if status != 0 {
		writeError(w, status, msg)
		return
	}
	if e.Workshop.Spawned() {
		// A spawned environment gets the parameters as environment
		// variables: refuse one it could not take now, not when the
		// start fails later.
		for _, p := range params {
			if err := spawner.ValidParameter(p.Name, p.Value); err != nil {
				writeError(w, http.StatusBadRequest, "Invalid parameter: "+err.Error())
				return
			}
		}
	}
	req := sessions.Request{Environment: e.Name, User: q.Get("user"), Session: q.Get("session"), Params: params}
	req.IndexURL = first(q, "index_url", "redirect_url")
	if req.IndexURL == "" {
		req.IndexURL = a.cfg.Index
	}
	if req.IndexURL == "" {
		writeError(w, http.StatusBadRequest, "Need redirect URL for workshop index")
		return
	}
	if err := a.redirect.Check(req.IndexURL, a.selfOrigin(r)); err != nil {
		writeError(w, http.StatusBadRequest, "Redirect URL for workshop index is not allowed: "+err.Error())
		return
	}
	if req.Email = q.Get("email"); req.Email != "" {
		if addr, err := mail.ParseAddress(req.Email); err != nil || addr.Address != req.Email {
			writeError(w, http.StatusBadRequest, "Invalid email address provided")
			return
		}
	}
	req.FirstName, req.LastName = first(q, "first_name", "firstname"), first(q, "last_name", "lastname")
	if t := q.Get("timeout"); t != "" {
		n, err := strconv.Atoi(t)
		if err != nil || n < 0 || n > 10*365*24*3600 {
			writeError(w, http.StatusBadRequest, "Invalid timeout value, expected whole seconds")
			return
		}
		d := time.Duration(n) * time.Second
		req.Timeout = &d
	}
	if req.AnalyticsURL = q.Get("analytics_url"); req.AnalyticsURL != "" {
		// The same rule as the portal's own webhook: absolute http(s), no
		// credentials, so the dispatcher never refuses it later.
		if config.ValidateWebhookURL(req.AnalyticsURL) != nil {
			writeError(w, http.StatusBadRequest, "Invalid analytics URL provided")
			return
		}
		if check := a.opts.CheckAnalyticsURL; check != nil {
			if err := check(req.AnalyticsURL); err != nil {
				writeError(w, http.StatusBadRequest, "Analytics URL is not allowed: "+err.Error())
				return
			}
		}
	}
	if !sessions.ValidUserID(req.User) {
		writeError(w, http.StatusBadRequest, msgInvalidUserID)
		return
	}
	if !sessions.ValidName(req.FirstName) || !sessions.ValidName(req.LastName) {
		writeError(w, http.StatusBadRequest, msgInvalidName)
		return
	}
	for _, v := range []string{req.User, req.Email, req.FirstName, req.LastName, req.Session} {
		if len(v) > 256 {
			writeError(w, http.StatusBadRequest, "Request parameter too long")
			return
		}
	}
	res, err := a.svc.RequestSession(r.Context(), req)
	if err != nil {
		a.serviceError(w, err)
		return
	}
	s := res.Session
	// token first, as Educates writes it.
	query := "token=" + url.QueryEscape(res.Token) + "&index_url=" + url.QueryEscape(req.IndexURL)
	writeJSON(w, http.StatusOK, requestResponse{Name: s.Name, Session: s.Name, User: res.User,
		URL: routes.ActivatePath(s.Name) + "?" + query, Namespace: s.Name,
		Workshop: s.Workshop, Environment: s.Environment})
}

// resolveEnvironment finds an environment by name, or a running one by
// workshop name or alias (the documented form, reference §7.2 #4).
func (a *API) resolveEnvironment(name string) *sessions.Environment {
	if e := a.svc.Environment(name); e != nil {
		return e
	}
	for _, e := range a.svc.Environments() {
		if e.State == sessions.EnvRunning && (e.Workshop.Name == name || e.Workshop.Alias != "" && e.Workshop.Alias == name) {
			return e
		}
	}
	return nil
}

// readParameters reads the optional JSON body {"parameters": [...]}, on any
// method. It returns a status and message when the body is refused.
func readParameters(w http.ResponseWriter, r *http.Request) ([]sessions.Param, int, string) {
	if r.Body == nil {
		return nil, 0, ""
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBodyBytes))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return nil, http.StatusRequestEntityTooLarge, "Request payload too large"
		}
		return nil, http.StatusBadRequest, "Invalid JSON request payload"
	}
	body = bytes.TrimSpace(body)
	if len(body) == 0 {
		return nil, 0, ""
	}
	// json.Valid refuses trailing data such as `{}}`, which the decoder's
	// More check below lets through.
	if !json.Valid(body) {
		return nil, http.StatusBadRequest, "Invalid JSON request payload"
	}
	var raw any
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	if err := dec.Decode(&raw); err != nil || dec.More() {
		return nil, http.StatusBadRequest, "Invalid JSON request payload"
	}
	const malformed = "Malformed JSON request payload"
	obj, ok := raw.(map[string]any)
	if !ok {
		return nil, http.StatusBadRequest, malformed
	}
	list, present := obj["parameters"]
	if !present || list == nil {
		return nil, 0, ""
	}
	items, ok := list.([]any)
	if !ok || len(items) > maxParameters {
		return nil, http.StatusBadRequest, malformed
	}
	var params []sessions.Param
	for _, it := range items {
		m, ok := it.(map[string]any)
		if !ok {
			return nil, http.StatusBadRequest, malformed
		}
		name, ok := m["name"].(string)
		if !ok || name == "" {
			return nil, http.StatusBadRequest, malformed
		}
		value := ""
		if v, present := m["value"]; present {
			if value, ok = v.(string); !ok {
				return nil, http.StatusBadRequest, malformed
			}
		}
		params = append(params, sessions.Param{Name: name, Value: value})
	}
	return params, 0, ""
}

func first(q url.Values, keys ...string) string {
	for _, k := range keys {
		if v := q.Get(k); v != "" {
			return v
		}
	}
	return ""
}

// activate serves /workshops/session/<s>/activate/?token=.
func (a *API) activate(w http.ResponseWriter, r *http.Request, name string) {
	q, ok := query(w, r)
	if !ok {
		return
	}
	token := q.Get("token")
	if token == "" {
		a.refuseLink(w, r, http.StatusBadRequest, "No access token supplied", linkBroken)
		return
	}
	sess, err := a.svc.Activate(r.Context(), name, token)
	switch {
	case errors.Is(err, sessions.ErrSessionEnded):
		index := a.cfg.Index
		if sess != nil && sess.IndexURL != "" {
			index = sess.IndexURL
		}
		if index == "" {
			a.refuseLink(w, r, http.StatusBadRequest, "Invalid session name supplied", linkEnded)
			return
		}
		// What the gate tells a browser of the session (see gate.refuseEnded).
		note := "session-deleted"
		if sess != nil && sess.StartFailed() {
			note = "startup-timeout"
		}
		http.Redirect(w, r, redirects.WithNotification(index, note), http.StatusFound)
		return
	case errors.Is(err, sessions.ErrSessionNotFound):
		a.refuseLink(w, r, http.StatusBadRequest, "Invalid session name supplied", linkEnded)
		return
	case errors.Is(err, sessions.ErrBadToken):
		a.refuseLink(w, r, httperr.Status(err), httperr.Message(err), linkBroken)
		return
	case err != nil:
		a.serviceError(w, err)
		return
	}
	target, err := a.opts.OnActivate(w, r, sess)
	if err != nil {
		a.unavailable(w, err)
		return
	}
	http.Redirect(w, r, target, http.StatusFound)
}

// What a learner who followed an activation link that does not work is
// told: a title and a message.
var (
	linkBroken = [2]string{"This workshop link does not work",
		"The link is incomplete or has been changed. Open the workshop again from the page that gave you the link."}
	linkEnded = [2]string{"This workshop session has ended",
		"The link is for a workshop session that has ended. Start the workshop again for a new session."}
)

// refuseLink refuses an activation: with Educates' JSON error (status,
// msg) for a client, with a page a learner reads (page: its title and
// message) and a way back for a browser that followed the link.
func (a *API) refuseLink(w http.ResponseWriter, r *http.Request, status int, msg string, page [2]string) {
	if !httperr.Navigation(r) {
		writeError(w, status, msg)
		return
	}
	httperr.WritePage(w, status, page[0], page[1], a.indexLink())
}

// indexLink is where a page the REST API shows a learner leads back to:
// the portal's index, or its own root.
func (a *API) indexLink() string {
	if a.cfg.Index != "" {
		return a.cfg.Index
	}
	return "/"
}

// sessionFor loads a session for a protected session route and checks that
// the caller is a robot, staff or the owner. ok is false when the response
// has been written.
func (a *API) sessionFor(w http.ResponseWriter, r *http.Request, name string) (*sessions.Session, bool) {
	return a.sessionOf(w, r, name, false)
}

// sessionOf is sessionFor, also finding a STOPPED session (until it is
// purged) when stopped is set.
func (a *API) sessionOf(w http.ResponseWriter, r *http.Request, name string, stopped bool) (*sessions.Session, bool) {
	sess, err := a.svc.Get(r.Context(), name)
	if errors.Is(err, sessions.ErrSessionNotFound) || err == nil && sess.State == lifecycle.Stopped && !stopped {
		writeError(w, http.StatusNotFound, "Session not found")
		return nil, false
	}
	if err != nil {
		a.unavailable(w, err)
		return nil, false
	}
	p, _ := principal(r)
	if !isRobot(p) && !isStaff(p) && (sess.Owner == "" || p.User != sess.Owner) {
		writeError(w, http.StatusForbidden, "Access to session not permitted")
		return nil, false
	}
	return sess, true
}

// scheduleJSON is the schedule/extend response (reference §2.7, §2.8).
type scheduleJSON struct {
	Status     lifecycle.State `json:"status"`
	Started    lifecycle.Time  `json:"started"`
	Expires    lifecycle.Time  `json:"expires"`
	Extended   *bool           `json:"extended,omitempty"`
	Expiring   bool            `json:"expiring"`
	Countdown  *int            `json:"countdown,omitempty"`
	Extendable *bool           `json:"extendable,omitempty"`
}

func scheduleBody(sess *sessions.Session, sch lifecycle.Schedule, extended *bool) scheduleJSON {
	out := scheduleJSON{Status: sess.State, Started: lifecycle.Time(sess.StartedAt()), Expires: lifecycle.Time(sess.Expires),
		Extended: extended, Expiring: sch.Expiring}
	if sch.HasExpiry {
		out.Countdown, out.Extendable = &sch.Countdown, &sch.Extendable
	}
	return out
}

func (a *API) schedule(w http.ResponseWriter, r *http.Request, name string) {
	if _, ok := a.sessionFor(w, r, name); !ok {
		return
	}
	sess, sch, err := a.svc.Schedule(r.Context(), name)
	if a.sessionError(w, err) {
		return
	}
	writeJSON(w, http.StatusOK, scheduleBody(sess, sch, nil))
}

// progressJSON is the progress route's answer: where a session's
// environment is on its way to ready (not an Educates route; it is the
// REST face of the learner's starting page).
type progressJSON struct {
	Name  string          `json:"name"`
	State lifecycle.State `json:"state"`
	// Ready says the dashboard answers: the learner can be sent in.
	Ready bool `json:"ready"`
	// Position is the place in the start queue, 0 when not waiting.
	Position int `json:"position"`
	// Wait estimates, in whole seconds, how long a queued session waits
	// for its start to begin, at the pace the last starts ended; absent
	// when not queued or without such a pace.
	Wait    int    `json:"wait,omitempty"`
	Step    string `json:"step,omitempty"`
	Message string `json:"message,omitempty"`
	Reason  string `json:"reason,omitempty"`
}

// progressEvery is how often a progress stream looks at its session, and
// progressFor bounds one stream (a client reconnects for more).
const (
	progressEvery = 250 * time.Millisecond
	progressFor   = 10 * time.Minute
)

// progress answers where the session's environment is: queued (with its
// place), starting (with the last step), ready, or ended (with why). A
// client that accepts text/event-stream gets each change as an event
// until the session is ready or ended, as JupyterHub streams a spawn's
// progress. Unlike Educates' session routes it answers for an ended
// session too, until the record is purged: why it ended (a failed start,
// an environment that died and the spawner's words for it) is what a
// client asks this route for.
func (a *API) progress(w http.ResponseWriter, r *http.Request, name string) {
	sess, ok := a.sessionOf(w, r, name, true)
	if !ok {
		return
	}
	if !strings.Contains(r.Header.Get("Accept"), "text/event-stream") {
		writeJSON(w, http.StatusOK, a.progressOf(sess))
		return
	}
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	deadline := time.NewTimer(progressFor)
	defer deadline.Stop()
	var last []byte
	for {
		p := a.progressOf(sess)
		if b, err := json.Marshal(p); err == nil && !bytes.Equal(b, last) {
			last = b
			if _, err := fmt.Fprintf(w, "data: %s\n\n", b); err != nil {
				return
			}
			_ = rc.Flush()
		}
		if p.Ready || p.State == lifecycle.Stopped {
			return
		}
		select {
		case <-r.Context().Done():
			return
		case <-deadline.C:
			return
		case <-time.After(progressEvery):
		}
		next, err := a.svc.Get(r.Context(), name)
		if err != nil {
			return // gone or unreadable: the client asks again
		}
		sess = next
	}
}

// progressOf is the progress of sess now.
func (a *API) progressOf(sess *sessions.Session) progressJSON {
	st, reason := sess.Effective(a.svc.Now())
	out := progressJSON{Name: sess.Name, State: st, Reason: reason,
		Ready: (st == lifecycle.Waiting || st == lifecycle.Running) && sess.Upstream != ""}
	var wait time.Duration
	out.Position, wait = a.svc.QueuedAt(sess)
	out.Wait = sessions.WaitSeconds(wait)
	if p := sess.Progress; p != nil {
		out.Step, out.Message = p.Step, p.Message
	}
	return out
}

func (a *API) extend(w http.ResponseWriter, r *http.Request, name string) {
	if _, ok := a.sessionFor(w, r, name); !ok {
		return
	}
	sess, sch, extended, err := a.svc.Extend(r.Context(), name)
	if a.sessionError(w, err) {
		return
	}
	writeJSON(w, http.StatusOK, scheduleBody(sess, sch, &extended))
}

func (a *API) terminate(w http.ResponseWriter, r *http.Request, name string) {
	if _, ok := a.sessionFor(w, r, name); !ok {
		return
	}
	sess, err := a.svc.Terminate(r.Context(), name, "")
	if a.sessionError(w, err) {
		return
	}
	writeJSON(w, http.StatusOK, struct {
		Started lifecycle.Time `json:"started"`
		Expires lifecycle.Time `json:"expires"`
	}{lifecycle.Time(sess.StartedAt()), lifecycle.Time(sess.Expires)})
}

func (a *API) authorize(w http.ResponseWriter, r *http.Request, name string) {
	sess, ok := a.sessionFor(w, r, name)
	if !ok {
		return
	}
	if sess.Reserved() {
		writeError(w, http.StatusBadRequest, sessions.ErrNotInUse.Error())
		return
	}
	p, _ := principal(r)
	writeJSON(w, http.StatusOK, struct {
		Owner string `json:"owner"`
		User  string `json:"user"`
		Staff bool   `json:"staff"`
	}{sess.Owner, p.User, isStaff(p)})
}

// sessionError writes the response for a session action error and reports
// whether it did.
func (a *API) sessionError(w http.ResponseWriter, err error) bool {
	if err == nil {
		return false
	}
	a.serviceError(w, err)
	return true
}

// userSessionJSON is an entry of /workshops/user/<u>/sessions/ (no state).
type userSessionJSON struct {
	Name        string         `json:"name"`
	Namespace   string         `json:"namespace"`
	Workshop    string         `json:"workshop"`
	Environment string         `json:"environment"`
	Started     lifecycle.Time `json:"started"`
	expiryJSON
}

func (a *API) userSessions(w http.ResponseWriter, r *http.Request, user string) {
	p, _ := principal(r)
	if !isRobot(p) && !isStaff(p) {
		writeError(w, http.StatusForbidden, "Session requests not permitted")
		return
	}
	if !sessions.ValidUserID(user) {
		writeError(w, http.StatusBadRequest, msgInvalidUserID)
		return
	}
	list, err := a.svc.UserSessions(r.Context(), user)
	if err != nil {
		a.unavailable(w, err)
		return
	}
	now := now(a)
	out := []userSessionJSON{}
	for _, s := range list {
		var pol lifecycle.Policy
		if e := a.svc.Environment(s.Environment); e != nil {
			pol = e.Policy
		}
		out = append(out, userSessionJSON{Name: s.Name, Namespace: s.Name, Workshop: s.Workshop,
			Environment: s.Environment, Started: lifecycle.Time(s.StartedAt()), expiryJSON: expiry(pol, s, now)})
	}
	writeJSON(w, http.StatusOK, struct {
		User     string            `json:"user"`
		Sessions []userSessionJSON `json:"sessions"`
	}{user, out})
}

// configJSON is the session config response (reference §2.10).
type configJSON struct {
	URL      string `json:"url"`
	Password string `json:"password"`
}

// config serves /workshops/session/<s>/config/: the session's URL, under
// which the gate serves config/<type>?token=<password>, and the password.
func (a *API) config(w http.ResponseWriter, r *http.Request, name string) {
	if _, ok := a.sessionFor(w, r, name); !ok {
		return
	}
	sess, err := a.svc.ConfigPassword(r.Context(), name)
	if errors.Is(err, sessions.ErrSessionNotFound) {
		writeError(w, http.StatusNotFound, "Session not found")
		return
	}
	if a.sessionError(w, err) {
		return
	}
	writeJSON(w, http.StatusOK, configJSON{URL: a.sessionURL(r, sess.Name), Password: sess.ConfigPassword})
}

// sessionURL is the session's dashboard URL without a trailing slash, as
// Educates gives it: <scheme>://<session>.<domain> in host mode, the
// session's path on the portal's origin in path mode.
func (a *API) sessionURL(r *http.Request, name string) string {
	origin := a.selfOrigin(r)
	if a.cfg.Dashboards.Mode == config.DashboardsHost {
		scheme, _, _ := strings.Cut(origin, "://")
		return scheme + "://" + name + "." + a.cfg.Dashboards.Domain
	}
	return origin + strings.TrimSuffix(routes.SessionPath(name), "/")
}

// maxEventBytes bounds a dashboard's analytics event: it is queued in
// memory and posted to every analytics webhook.
const maxEventBytes = 64 << 10

// portalEventPrefixes name the events the portal itself emits: a dashboard
// may not post them, since the portal's metrics and its receivers would
// take them for state changes (Educates' dashboards send Workshop/,
// Action/ and Terminal/ events).
var portalEventPrefixes = []string{sessions.EventSessionPrefix, sessions.EventUserPrefix, sessions.EventEnvironmentPrefix}

// event serves POST /workshops/session/<s>/event/ with
// {"event": {"name": ..., "data": {...}}}: the event goes to the analytics
// webhooks (the portal's and the session's analytics_url) as one of the
// session's, in order with its other events.
func (a *API) event(w http.ResponseWriter, r *http.Request, name string) {
	sess, err := a.svc.Get(r.Context(), name)
	if errors.Is(err, sessions.ErrSessionNotFound) || err == nil && sess.State == lifecycle.Stopped {
		writeError(w, http.StatusNotFound, "Session not found")
		return
	}
	if err != nil {
		a.unavailable(w, err)
		return
	}
	// Educates answers this before it checks who asks.
	if sess.Reserved() {
		writeError(w, http.StatusBadRequest, "Session was never allocated")
		return
	}
	if _, ok := a.sessionFor(w, r, name); !ok {
		return
	}
	const noData = "No event data provided"
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		writeError(w, http.StatusBadRequest, noData)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxEventBytes))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			writeError(w, http.StatusRequestEntityTooLarge, "Request payload too large")
			return
		}
		writeError(w, http.StatusBadRequest, "Invalid JSON request payload")
		return
	}
	var msg struct {
		Event *struct {
			Name json.RawMessage `json:"name"`
			Data json.RawMessage `json:"data"`
		} `json:"event"`
	}
	if !json.Valid(body) {
		writeError(w, http.StatusBadRequest, "Invalid JSON request payload")
		return
	}
	if err := json.Unmarshal(body, &msg); err != nil {
		writeError(w, http.StatusBadRequest, "Malformed JSON request payload")
		return
	}
	var ev string
	if msg.Event != nil && len(msg.Event.Name) > 0 && string(msg.Event.Name) != "null" {
		if err := json.Unmarshal(msg.Event.Name, &ev); err != nil {
			writeError(w, http.StatusBadRequest, "Malformed JSON request payload")
			return
		}
	}
	if ev == "" {
		writeError(w, http.StatusBadRequest, noData)
		return
	}
	if len(ev) > 256 || !sessions.ValidUserID(ev) {
		writeError(w, http.StatusBadRequest, "Invalid event name")
		return
	}
	for _, p := range portalEventPrefixes {
		if strings.HasPrefix(ev, p) {
			writeError(w, http.StatusBadRequest, "Event name reserved for the portal: "+ev)
			return
		}
	}
	var data map[string]any
	if d := msg.Event.Data; len(d) > 0 && string(d) != "null" {
		if err := json.Unmarshal(d, &data); err != nil {
			writeError(w, http.StatusBadRequest, "Malformed JSON request payload")
			return
		}
	}
	a.svc.ReportEvent(sess, ev, data)
	writeJSON(w, http.StatusOK, struct{}{})
}

// notFound answers a path under the portal's own prefixes that no route
// serves: a page for a browser that navigated there (a mistyped address).
func (a *API) notFound(w http.ResponseWriter, r *http.Request) {
	if httperr.Navigation(r) {
		httperr.WritePage(w, http.StatusNotFound, "Page not found", "There is no page at this address of the training portal.", a.indexLink())
		return
	}
	w.Header().Set("Access-Control-Allow-Origin", "*")
	writeError(w, http.StatusNotFound, "Not found")
}
