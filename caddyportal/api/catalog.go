package api

import (
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"regexp"
	"strings"
	"time"

	"github.com/caddyportal/caddyportal/caddyportal/config"
	"github.com/caddyportal/caddyportal/caddyportal/lifecycle"
	"github.com/caddyportal/caddyportal/caddyportal/sessions"
)

// portalJSON is the catalog's portal object (reference §2.2).
type portalJSON struct {
	Name       string            `json:"name"`
	Labels     map[string]string `json:"labels"`
	UID        string            `json:"uid"`
	Generation int               `json:"generation"`
	URL        string            `json:"url"`
	Sessions   portalSessions    `json:"sessions"`
}

type portalSessions struct {
	Maximum    int `json:"maximum"`
	Registered int `json:"registered"`
	Anonymous  int `json:"anonymous"`
	Allocated  int `json:"allocated"`
}

// workshopJSON is the catalog's workshop object. Resource is omitted by the
// status route (which reports the resource name as name, as Educates does).
type workshopJSON struct {
	Name        string            `json:"name"`
	ID          string            `json:"id"`
	Resource    string            `json:"resource,omitempty"`
	Title       string            `json:"title"`
	Description string            `json:"description"`
	Vendor      string            `json:"vendor"`
	Authors     []string          `json:"authors"`
	Difficulty  string            `json:"difficulty"`
	Duration    string            `json:"duration"`
	Tags        []string          `json:"tags"`
	Labels      map[string]string `json:"labels"`
	Logo        string            `json:"logo"`
	URL         string            `json:"url"`
}

// sessionItemJSON is a session in catalog and status listings.
type sessionItemJSON struct {
	Name      string          `json:"name"`
	State     lifecycle.State `json:"state"`
	Namespace string          `json:"namespace"`
	User      string          `json:"user"`
	Started   lifecycle.Time  `json:"started"`
	expiryJSON
}

// expiryJSON holds the keys that listings send only when a session has an
// expiry (reference §2.2, §2.11); embedded, they come last.
type expiryJSON struct {
	Expires    *lifecycle.Time `json:"expires,omitempty"`
	Countdown  *int            `json:"countdown,omitempty"`
	Extendable *bool           `json:"extendable,omitempty"`
}

// expiry returns the expiry keys of s at now under its environment's
// policy; all are omitted when s has no expiry.
func expiry(pol lifecycle.Policy, s *sessions.Session, now time.Time) expiryJSON {
	if s.Expires.IsZero() {
		return expiryJSON{}
	}
	sch := pol.Schedule(now, lifecycle.Times{State: s.State, Started: s.Started, Expires: s.Expires})
	exp := lifecycle.Time(s.Expires)
	return expiryJSON{Expires: &exp, Countdown: &sch.Countdown, Extendable: &sch.Extendable}
}

// environmentJSON is an environment in catalog and status responses.
type environmentJSON struct {
	Name      string             `json:"name"`
	State     string             `json:"state"`
	Workshop  workshopJSON       `json:"workshop"`
	Sessions  *[]sessionItemJSON `json:"sessions,omitempty"`
	Duration  int                `json:"duration"`
	Capacity  int                `json:"capacity"`
	Reserved  int                `json:"reserved"`
	Allocated int                `json:"allocated"`
	Available int                `json:"available"`
}

// catalogEnvironmentJSON is environmentJSON in the key order of the catalog
// route, where `sessions` comes last (reference §2.2); the status route
// puts it after `workshop` (§2.4).
type catalogEnvironmentJSON struct {
	Name      string             `json:"name"`
	State     string             `json:"state"`
	Workshop  workshopJSON       `json:"workshop"`
	Duration  int                `json:"duration"`
	Capacity  int                `json:"capacity"`
	Reserved  int                `json:"reserved"`
	Allocated int                `json:"allocated"`
	Available int                `json:"available"`
	Sessions  *[]sessionItemJSON `json:"sessions,omitempty"`
}

// envSummaryJSON is the environment inside /catalog/workshops/ items.
type envSummaryJSON struct {
	Name      string `json:"name"`
	State     string `json:"state"`
	Duration  int    `json:"duration"`
	Capacity  int    `json:"capacity"`
	Reserved  int    `json:"reserved"`
	Allocated int    `json:"allocated"`
	Available int    `json:"available"`
}

type workshopItemJSON struct {
	workshopJSON
	Environment envSummaryJSON `json:"environment"`
}

// catalogAccess decides what a catalog caller may see. ok is false when the
// response (403) has been written.
func (a *API) catalogAccess(w http.ResponseWriter, r *http.Request) (robot bool, ok bool) {
	p, err := a.bearer(r)
	if err == nil && p.Session != "" {
		err = errSessionScoped
	}
	if err == nil {
		return isRobot(p) || isStaff(p), true
	}
	if r.Header.Get("Authorization") == "" && a.cfg.Catalog == config.CatalogPublic {
		return false, true
	}
	a.fail(w, http.StatusForbidden, "Authentication credentials were not provided or are invalid", err)
	return false, false
}

var labelKeyRE = regexp.MustCompile(`^labels\[(\w+)\]$`)

// catalogEnvironments serves /workshops/catalog/environments/.
func (a *API) catalogEnvironments(w http.ResponseWriter, r *http.Request, _ string) {
	robot, ok := a.catalogAccess(w, r)
	if !ok {
		return
	}
	q, ok := query(w, r)
	if !ok {
		return
	}
	withSessions := robot && truthy(q.Get("sessions"))
	states := map[string]bool{}
	if robot {
		for _, s := range q["state"] {
			switch st := strings.ToUpper(strings.TrimSpace(s)); st {
			case "STARTING", sessions.EnvRunning, sessions.EnvStopping, sessions.EnvStopped:
				states[st] = true
			}
		}
	}
	if len(states) == 0 {
		states[sessions.EnvRunning] = true
	}
	names := q["name"]
	labels := map[string]string{}
	for k, v := range q {
		if m := labelKeyRE.FindStringSubmatch(k); m != nil {
			labels[m[1]] = v[len(v)-1]
		}
	}
	use, all, ok := a.usage(w, r, withSessions)
	if !ok {
		return
	}
	envs := []catalogEnvironmentJSON{}
	for _, e := range a.svc.Environments() {
		if !states[e.State] || !nameMatches(e, names) || !labelsMatch(e, labels) {
			continue
		}
		ej := a.environment(e, use[e.Name], all[e.Name], withSessions, true)
		envs = append(envs, catalogEnvironmentJSON{Name: ej.Name, State: ej.State, Workshop: ej.Workshop,
			Duration: ej.Duration, Capacity: ej.Capacity, Reserved: ej.Reserved, Allocated: ej.Allocated,
			Available: ej.Available, Sessions: ej.Sessions})
	}
	writeJSON(w, http.StatusOK, struct {
		Portal       portalJSON               `json:"portal"`
		Environments []catalogEnvironmentJSON `json:"environments"`
	}{a.portal(r, use), envs})
}

// catalogWorkshops serves /workshops/catalog/workshops/: running
// environments in configuration order.
func (a *API) catalogWorkshops(w http.ResponseWriter, r *http.Request, _ string) {
	if _, ok := a.catalogAccess(w, r); !ok {
		return
	}
	use, _, ok := a.usage(w, r, false)
	if !ok {
		return
	}
	items := []workshopItemJSON{}
	for _, e := range a.svc.Environments() {
		if e.State != sessions.EnvRunning {
			continue
		}
		ej := a.environment(e, use[e.Name], nil, false, true)
		items = append(items, workshopItemJSON{workshopJSON: ej.Workshop, Environment: envSummaryJSON{
			Name: ej.Name, State: ej.State, Duration: ej.Duration, Capacity: ej.Capacity,
			Reserved: ej.Reserved, Allocated: ej.Allocated, Available: ej.Available}})
	}
	writeJSON(w, http.StatusOK, struct {
		Portal    portalJSON         `json:"portal"`
		Workshops []workshopItemJSON `json:"workshops"`
	}{a.portal(r, use), items})
}

// environmentStatus serves /workshops/environment/<env>/status/.
func (a *API) environmentStatus(w http.ResponseWriter, r *http.Request, env string) {
	p, _ := principal(r)
	if !isRobot(p) && !isStaff(p) {
		writeError(w, http.StatusForbidden, "Status requests not permitted")
		return
	}
	q, ok := query(w, r)
	if !ok {
		return
	}
	e := a.svc.Environment(env)
	if e == nil {
		writeError(w, http.StatusForbidden, "Environment does not exist")
		return
	}
	withSessions := truthy(q.Get("sessions"))
	use, all, ok := a.usage(w, r, withSessions)
	if !ok {
		return
	}
	writeJSON(w, http.StatusOK, a.environment(e, use[e.Name], all[e.Name], withSessions, false))
}

func (a *API) portal(r *http.Request, use map[string]sessions.Usage) portalJSON {
	allocated := 0
	for _, u := range use {
		allocated += u.Allocated
	}
	s := a.cfg.Sessions
	return portalJSON{Name: a.cfg.Name, Labels: map[string]string{}, UID: a.opts.PortalUID, Generation: 1,
		URL: a.selfOrigin(r), Sessions: portalSessions{Maximum: s.Maximum, Registered: s.Registered,
			Anonymous: s.Anonymous, Allocated: allocated}}
}

// environment builds the JSON of one environment from its usage, and with
// withSessions its session list from live (its live sessions). catalog
// selects the catalog form (workshop name is the alias, resource present).
func (a *API) environment(e *sessions.Environment, use sessions.Usage, live []*sessions.Session, withSessions, catalog bool) environmentJSON {
	ws := e.Workshop
	wj := workshopJSON{Name: ws.Name, ID: workshopID(ws.Name), Title: ws.Title, Description: ws.Description,
		Vendor: ws.Vendor, Authors: nonNil(ws.Authors), Difficulty: ws.Difficulty, Duration: ws.Duration,
		Tags: nonNil(ws.Tags), Labels: ws.Labels, Logo: ws.Logo, URL: ws.URL}
	if wj.Labels == nil {
		wj.Labels = map[string]string{}
	}
	if catalog {
		wj.Name, wj.Resource = ws.PublishedName(), ws.Name
	}
	ej := environmentJSON{Name: e.Name, State: e.State, Workshop: wj, Duration: int(e.Expires.Seconds()),
		Allocated: use.Allocated, Available: use.Available}
	if e.State == sessions.EnvRunning {
		ej.Capacity, ej.Reserved = e.Capacity, e.Reserved
	}
	if !withSessions {
		return ej
	}
	now := now(a)
	items := []sessionItemJSON{}
	for _, s := range live {
		if !s.Reserved() {
			items = append(items, sessionItemJSON{Name: s.Name, State: s.State, Namespace: s.Name, User: s.Owner,
				Started: lifecycle.Time(s.StartedAt()), expiryJSON: expiry(e.Policy, s, now)})
		}
	}
	ej.Sessions = &items
	return ej
}

// usage reads what environments() builds from: each environment's usage,
// and with withSessions its live sessions, counted from those so that the
// counts and the list agree; without, only the live index is read.
func (a *API) usage(w http.ResponseWriter, r *http.Request, withSessions bool) (map[string]sessions.Usage, map[string][]*sessions.Session, bool) {
	if !withSessions {
		use, err := a.svc.Usage(r.Context())
		if err != nil {
			a.unavailable(w, err)
			return nil, nil, false
		}
		return use, nil, true
	}
	all, err := a.svc.EnvironmentSessions(r.Context())
	if err != nil {
		a.unavailable(w, err)
		return nil, nil, false
	}
	use := make(map[string]sessions.Usage, len(all))
	for env, list := range all {
		use[env] = sessions.UsageOf(list)
	}
	return use, all, true
}

// nameMatches implements the repeatable name= filter; it matches the
// resource name or the alias (Educates only matched the former).
func nameMatches(e *sessions.Environment, names []string) bool {
	if len(names) == 0 {
		return true
	}
	for _, n := range names {
		if n == e.Workshop.Name || e.Workshop.Alias != "" && n == e.Workshop.Alias {
			return true
		}
	}
	return false
}

func labelsMatch(e *sessions.Environment, want map[string]string) bool {
	for k, v := range want {
		if got, ok := e.Workshop.Labels[k]; !ok || got != v {
			return false
		}
	}
	return true
}

// workshopID is a stable id for older hubs that group by workshop.id.
func workshopID(name string) string {
	sum := sha256.Sum256([]byte("workshop:" + name))
	return hex.EncodeToString(sum[:16])
}

func truthy(s string) bool {
	return strings.EqualFold(s, "true") || s == "1"
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
