// Package adminapi serves the portal's JSON endpoints for operators on
// Caddy's admin API (by default localhost:2019): list environments and
// sessions, terminate and extend sessions. It does not import Caddy; the
// glue mounts Handler under the admin route prefix.
//
// Routes, below the prefix (default /portal/):
//
//	GET  /                                  {"portals": [names]}
//	GET  /<portal>/environments/            environments with capacity and use
//	GET  /<portal>/sessions/[?environment=&state=&user=&replica=]
//	                                        live sessions (reserves included);
//	                                        user is an id or an email address,
//	                                        replica the one that runs them
//	GET  /<portal>/sessions/<session>/      one session, STOPPED ones too
//	POST /<portal>/sessions/<session>/terminate/
//	POST /<portal>/sessions/<session>/extend/
//	GET  /<portal>/replicas/                this replica and the others the
//	                                        store knows, with what waits for them
//	POST /<portal>/replicas/<replica>/release/
//	                                        ends the sessions of a replica gone
//	                                        for good (409 while it runs)
//
// Errors are JSON {"error": "..."} with a 4xx status (503 when the store
// cannot be reached). The admin API has no authentication of its own:
// Caddy's admin listener is the boundary (loopback by default).
package adminapi

import (
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/caddyportal/caddyportal/caddyportal/httperr"
	"github.com/caddyportal/caddyportal/caddyportal/lifecycle"
	"github.com/caddyportal/caddyportal/caddyportal/sessions"
	"github.com/caddyportal/caddyportal/caddyportal/spawner"
)

// Portals finds the running portals by name.
type Portals interface {
	// Names lists the running portals, sorted.
	Names() []string
	// Service returns the portal's service, or nil.
	Service(name string) *sessions.Service
}

// Handler serves the routes below prefix.
type Handler struct {
	prefix  string
	portals Portals
}

// New returns the handler for routes below prefix (e.g. "/portal/").
func New(prefix string, portals Portals) *Handler {
	if !strings.HasSuffix(prefix, "/") {
		prefix += "/"
	}
	return &Handler{prefix: prefix, portals: portals}
}

// EnvironmentJSON is one environment in the environments listing.
type EnvironmentJSON struct {
	Name      string `json:"name"`
	Workshop  string `json:"workshop"`
	State     string `json:"state"`
	Capacity  int    `json:"capacity"`
	Reserved  int    `json:"reserved"`
	Allocated int    `json:"allocated"`
	Available int    `json:"available"`
}

// SessionJSON is a session as operators see it.
type SessionJSON struct {
	Name        string          `json:"name"`
	Environment string          `json:"environment"`
	Workshop    string          `json:"workshop"`
	State       lifecycle.State `json:"state"`
	Reason      string          `json:"reason,omitempty"`
	Owner       string          `json:"owner,omitempty"`
	// OwnerEmail is the owner's email address, when the portal has one (a
	// learner's sign-up, or the front end's request that gave it).
	OwnerEmail   string         `json:"owner_email,omitempty"`
	Slot         int            `json:"slot"`
	Upstream     string         `json:"upstream"`
	Created      lifecycle.Time `json:"created"`
	Started      lifecycle.Time `json:"started,omitzero"`
	Expires      lifecycle.Time `json:"expires,omitzero"`
	LastActivity lifecycle.Time `json:"last_activity,omitzero"`
	Extended     *bool          `json:"extended,omitempty"`

	// The fields below are set only for a workshop with a spawner.

	// Progress is where the start of the session's environment stands, or
	// why it failed (step "failed").
	Progress *spawner.Progress `json:"progress,omitempty"`
	// QueuePosition is the session's place in this replica's start queue
	// while its progress is "queued".
	QueuePosition int `json:"queue_position,omitempty"`
	// QueueWait estimates, in whole seconds, how long it waits there, at
	// the pace the last starts ended (absent without such a pace).
	QueueWait int `json:"queue_wait,omitempty"`
	// Replica runs the environment: only it stops and reconciles it.
	Replica string `json:"replica,omitempty"`
	// Env is the spawner's record of the running environment: its dial
	// address and the backend's own state (a process's PID, a container's
	// ID), as kept in the session.
	Env *spawner.Env `json:"env,omitempty"`
}

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rest, ok := strings.CutPrefix(r.URL.Path, h.prefix)
	if !ok {
		writeError(w, http.StatusNotFound, "not a portal admin route")
		return
	}
	parts := strings.FieldsFunc(rest, func(c rune) bool { return c == '/' })
	if len(parts) == 0 {
		if allow(w, r, http.MethodGet) {
			writeJSON(w, http.StatusOK, map[string]any{"portals": nonNil(h.portals.Names())})
		}
		return
	}
	svc := h.portals.Service(parts[0])
	if svc == nil {
		writeError(w, http.StatusNotFound, "no running portal named "+parts[0])
		return
	}
	switch {
	case len(parts) == 2 && parts[1] == "environments":
		if allow(w, r, http.MethodGet) {
			h.environments(w, r, svc)
		}
	case len(parts) == 2 && parts[1] == "sessions":
		if allow(w, r, http.MethodGet) {
			h.sessions(w, r, svc)
		}
	case len(parts) == 3 && parts[1] == "sessions":
		if allow(w, r, http.MethodGet) {
			h.session(w, r, svc, parts[2])
		}
	case len(parts) == 4 && parts[1] == "sessions" && (parts[3] == "terminate" || parts[3] == "extend"):
		if allow(w, r, http.MethodPost) {
			h.act(w, r, svc, parts[2], parts[3])
		}
	case len(parts) == 2 && parts[1] == "replicas":
		if allow(w, r, http.MethodGet) {
			h.replicas(w, r, svc)
		}
	case len(parts) == 4 && parts[1] == "replicas" && parts[3] == "release":
		if allow(w, r, http.MethodPost) {
			h.release(w, r, svc, parts[2])
		}
	default:
		writeError(w, http.StatusNotFound, "unknown portal admin route "+r.URL.Path)
	}
}

func (h *Handler) environments(w http.ResponseWriter, r *http.Request, svc *sessions.Service) {
	all, err := svc.Usage(r.Context())
	if err != nil {
		fail(w, err)
		return
	}
	out := []EnvironmentJSON{}
	for _, e := range svc.Environments() {
		use := all[e.Name]
		out = append(out, EnvironmentJSON{Name: e.Name, Workshop: e.Workshop.Name, State: e.State,
			Capacity: e.Capacity, Reserved: e.Reserved, Allocated: use.Allocated, Available: use.Available})
	}
	writeJSON(w, http.StatusOK, out)
}

func (h *Handler) sessions(w http.ResponseWriter, r *http.Request, svc *sessions.Service) {
	q := r.URL.Query()
	env, state, user, replica := q.Get("environment"), q.Get("state"), q.Get("user"), q.Get("replica")
	if env != "" && svc.Environment(env) == nil {
		writeError(w, http.StatusNotFound, "no environment named "+env)
		return
	}
	if _, ok := lifecycle.ParseState(state); state != "" && !ok {
		// A misspelt filter would list nothing, as if no session matched.
		names := make([]string, len(lifecycle.States))
		for i, st := range lifecycle.States {
			names[i] = strings.ToLower(string(st))
		}
		writeError(w, http.StatusBadRequest, fmt.Sprintf("unknown state %q; use one of %s", state, strings.Join(names, ", ")))
		return
	}
	all, err := svc.EnvironmentSessions(r.Context())
	if err != nil {
		fail(w, err)
		return
	}
	emails, err := svc.UserEmails(r.Context())
	if err != nil {
		fail(w, err)
		return
	}
	var owners map[string]bool
	if user != "" {
		if owners, err = svc.OwnersNamed(r.Context(), user); err != nil {
			fail(w, err)
			return
		}
	}
	now := svc.Now()
	out := []SessionJSON{}
	for name, list := range all {
		if env != "" && name != env {
			continue
		}
		for _, s := range list {
			sj := sessionJSON(svc, s, now, emails[s.Owner])
			if state != "" && !strings.EqualFold(string(sj.State), state) || user != "" && !owners[s.Owner] ||
				replica != "" && s.EnvOwner != replica {
				continue
			}
			out = append(out, sj)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	writeJSON(w, http.StatusOK, out)
}

func (h *Handler) session(w http.ResponseWriter, r *http.Request, svc *sessions.Service, name string) {
	s, err := svc.Get(r.Context(), name)
	if err != nil {
		fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, sessionJSON(svc, s, svc.Now(), svc.OwnerEmail(r.Context(), s.Owner)))
}

func (h *Handler) act(w http.ResponseWriter, r *http.Request, svc *sessions.Service, name, action string) {
	var (
		s        *sessions.Session
		extended bool
		err      error
	)
	if action == "terminate" {
		s, err = svc.Terminate(r.Context(), name, sessions.ReasonTerminated)
	} else {
		s, _, extended, err = svc.Extend(r.Context(), name)
	}
	if errors.Is(err, sessions.ErrSessionNotFound) {
		if _, gerr := svc.Get(r.Context(), name); gerr == nil {
			writeError(w, http.StatusConflict, "session "+name+" has already ended")
			return
		}
	}
	if err != nil {
		fail(w, err)
		return
	}
	sj := sessionJSON(svc, s, svc.Now(), svc.OwnerEmail(r.Context(), s.Owner))
	if action == "extend" {
		sj.Extended = &extended
	}
	writeJSON(w, http.StatusOK, sj)
}

// ReplicaJSON is a replica in the replicas listing (sessions.ReplicaStatus).
type ReplicaJSON struct {
	Name string `json:"name"`
	// This is the replica answering.
	This bool `json:"this,omitempty"`
	// LastBeat is when it last began a reconcile pass (stores replicas
	// share only).
	LastBeat lifecycle.Time `json:"last_beat,omitzero"`
	// Silent: another replica that has not reported for 30 s or more.
	Silent bool `json:"silent"`
	// The live sessions that wait for it.
	Running  int `json:"running"`
	Reserves int `json:"reserves"`
	Starting int `json:"starting"`
	Stopping int `json:"stopping"`
}

// ReleasedJSON answers a release.
type ReleasedJSON struct {
	Replica   string `json:"replica"`
	Ended     int    `json:"ended"`
	Restarted int    `json:"restarted"`
}

func (h *Handler) replicas(w http.ResponseWriter, r *http.Request, svc *sessions.Service) {
	list, err := svc.Replicas(r.Context())
	if err != nil {
		fail(w, err)
		return
	}
	out := make([]ReplicaJSON, 0, len(list))
	for _, rs := range list {
		out = append(out, ReplicaJSON{Name: rs.Name, This: rs.This, LastBeat: lifecycle.Time(rs.LastBeat), Silent: rs.Silent,
			Running: rs.Running, Reserves: rs.Reserves, Starting: rs.Starting, Stopping: rs.Stopping})
	}
	writeJSON(w, http.StatusOK, out)
}

func (h *Handler) release(w http.ResponseWriter, r *http.Request, svc *sessions.Service, name string) {
	done, err := svc.ReleaseReplica(r.Context(), name)
	switch {
	case errors.Is(err, sessions.ErrReplicaNotFound):
		writeError(w, http.StatusNotFound, "no replica named "+name+" owns a live session or reported within the last day")
	case errors.Is(err, sessions.ErrReplicaRunning):
		writeError(w, http.StatusConflict, "replica "+name+" is running (it is the one answering, or it reported within the last 30 s): "+
			"only a replica that is gone for good may be released")
	case err != nil:
		fail(w, err)
	default:
		writeJSON(w, http.StatusOK, ReleasedJSON{Replica: name, Ended: done.Ended, Restarted: done.Restarted})
	}
}

func sessionJSON(svc *sessions.Service, s *sessions.Session, now time.Time, ownerEmail string) SessionJSON {
	state, reason := s.Effective(now)
	out := SessionJSON{Name: s.Name, Environment: s.Environment, Workshop: s.Workshop, State: state,
		Reason: reason, Owner: s.Owner, OwnerEmail: ownerEmail, Slot: s.Slot, Upstream: s.Upstream, Created: lifecycle.Time(s.Created),
		Started: lifecycle.Time(s.Started), Expires: lifecycle.Time(s.Expires),
		LastActivity: lifecycle.Time(s.LastActivity), Progress: s.Progress,
		Replica: s.EnvOwner, Env: s.Env}
	position, wait := svc.QueuedAt(s)
	out.QueuePosition, out.QueueWait = position, sessions.WaitSeconds(wait)
	return out
}

// fail answers a service error with httperr's status: a missing session is
// 404, an action the session's state does not allow 409, and anything else
// 503 (operators see the cause's text, unlike the public faces' clients).
func fail(w http.ResponseWriter, err error) {
	switch status := httperr.Status(err); status {
	case http.StatusNotFound:
		writeError(w, status, "session not found")
	case http.StatusConflict:
		writeError(w, status, err.Error())
	default:
		writeError(w, http.StatusServiceUnavailable, "portal state is unavailable: "+err.Error())
	}
}

func allow(w http.ResponseWriter, r *http.Request, method string) bool {
	if r.Method == method {
		return true
	}
	w.Header().Set("Allow", method)
	writeError(w, http.StatusMethodNotAllowed, "method "+r.Method+" not allowed; use "+method)
	return false
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// writeJSON and writeError write the same JSON as the REST API (httperr).
var (
	writeJSON  = httperr.WriteJSON
	writeError = httperr.Write
)
