package webui

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/caddyportal/caddyportal/caddyportal/health"
	"github.com/caddyportal/caddyportal/caddyportal/httperr"
	"github.com/caddyportal/caddyportal/caddyportal/lifecycle"
	"github.com/caddyportal/caddyportal/caddyportal/routes"
	"github.com/caddyportal/caddyportal/caddyportal/sessions"
	"go.uber.org/zap"
)

// requireAdmin returns the admin identity, or sends a browser that is not
// signed in to the login page (GET) and refuses anyone else: a learner
// sent to the login page would be sent straight back, in a loop.
func (u *UI) requireAdmin(w http.ResponseWriter, r *http.Request) (identity, bool) {
	id := u.current(r)
	if id.admin() {
		return id, true
	}
	if id.learner() {
		u.fail(w, r, http.StatusForbidden, "Administrators only",
			"You are signed in as a learner. To open this page, sign out and sign in as the portal administrator.")
		return identity{}, false
	}
	if r.Method == http.MethodPost {
		u.fail(w, r, http.StatusForbidden, "Administrators only", "Sign in as the portal administrator to do this.")
		return identity{}, false
	}
	next := r.URL.Path
	if r.URL.RawQuery != "" {
		next += "?" + r.URL.RawQuery
	}
	http.Redirect(w, r, routes.LoginPath+"?next="+url.QueryEscape(next), http.StatusFound)
	return identity{}, false
}

// envRow is an environment on the overview page.
type envRow struct {
	Name, Workshop, Title, State string
	Capacity, Reserved           int
	Allocated, Available, Live   int
	// Starting counts sessions whose environment is starting, Queued
	// those of them still waiting for a free start.
	Starting, Queued                    int
	Expires, Overtime, Deadline, Orphan time.Duration
}

// problem is a session whose environment failed, for the overview.
type problem struct {
	At                           time.Time
	Session, Environment, Reason string
	Message                      string
}

// problemReasons are the endings the overview lists as problems.
var problemReasons = map[string]bool{sessions.ReasonStartFailed: true, sessions.ReasonStartInterrupted: true,
	sessions.ReasonEnvironmentLost: true}

type overviewData struct {
	Envs                           []envRow
	Maximum, Registered, Anonymous int
	Allocated, Live                int
	Registration, Catalog          string
	Chart                          chart
	Upstreams                      []health.Status
	// Problems are the last hours' failed starts and lost environments,
	// newest first.
	Problems []problem
	// Replicas are this replica and the others the store knows, listed
	// when there is more than this one.
	Replicas []replicaRow
	// Stranded are the silent replicas that live sessions wait for: the
	// overview says so at its top.
	Stranded []replicaRow
}

// replicaRow is a replica on the overview.
type replicaRow struct {
	sessions.ReplicaStatus
	// Ago is how long ago it last reported, to the second; "" when not
	// known.
	Ago string
}

// Waiting says what waits for the replica: "1 learner's session and 2
// ended sessions".
func (r replicaRow) Waiting() string {
	var parts []string
	for _, c := range []struct {
		n         int
		one, many string
	}{{r.Running, "learner's session", "learners' sessions"}, {r.Reserves, "reserve", "reserves"},
		{r.Starting, "session starting", "sessions starting"}, {r.Stopping, "ended session", "ended sessions"}} {
		if c.n > 0 {
			parts = append(parts, counted(c.n, c.one, c.many))
		}
	}
	switch len(parts) {
	case 0:
		return "nothing"
	case 1:
		return parts[0]
	}
	return strings.Join(parts[:len(parts)-1], ", ") + " and " + parts[len(parts)-1]
}

// counted is "1 one" or "n many".
func counted(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return strconv.Itoa(n) + " " + many
}

// replicaRows reads the replicas for the overview.
func (u *UI) replicaRows(r *http.Request, now time.Time) (all, stranded []replicaRow, err error) {
	list, err := u.svc.Replicas(r.Context())
	if err != nil || len(list) < 2 {
		return nil, nil, err
	}
	for _, rs := range list {
		row := replicaRow{ReplicaStatus: rs}
		if !rs.LastBeat.IsZero() {
			// Clocks of replicas may disagree by a little: never "-2s ago".
			row.Ago = max(now.Sub(rs.LastBeat), 0).Truncate(time.Second).String()
		}
		all = append(all, row)
		if rs.Stranded() {
			stranded = append(stranded, row)
		}
	}
	return all, stranded, nil
}

func (u *UI) overview(w http.ResponseWriter, r *http.Request, _ string) {
	id, ok := u.requireAdmin(w, r)
	if !ok {
		return
	}
	usage, err := u.svc.Usage(r.Context())
	if err != nil {
		u.unavailable(w, r, err)
		return
	}
	// The chart and the problems cover the last 6 hours: a session that
	// ended before then is not kept (most of what a busy portal stores).
	now := u.svc.Now()
	since := now.Add(-6 * time.Hour)
	var recent []*sessions.Session
	err = u.svc.EachRecent(r.Context(), since, func(s *sessions.Session) {
		if s.State.Ending() && s.EndedAt().Before(since) {
			return
		}
		recent = append(recent, s)
	})
	if err != nil {
		u.unavailable(w, r, err)
		return
	}
	d := overviewData{Maximum: u.cfg.Sessions.Maximum, Registered: u.cfg.Sessions.Registered,
		Anonymous: u.cfg.Sessions.Anonymous, Registration: u.cfg.Registration, Catalog: u.cfg.Catalog}
	for _, e := range u.svc.Environments() {
		if e.State == sessions.EnvStopped {
			continue
		}
		row := envRow{Name: e.Name, Workshop: e.Workshop.Name, Title: e.Workshop.Title, State: e.State,
			Capacity: e.Capacity, Reserved: e.Reserved, Expires: e.Expires, Overtime: e.Overtime,
			Deadline: e.Deadline, Orphan: e.Orphaned}
		use := usage[e.Name]
		row.Live, row.Allocated, row.Available, row.Starting, row.Queued = use.Live, use.Allocated, use.Available, use.Starting, use.Queued
		d.Allocated += row.Allocated
		d.Live += row.Live
		d.Envs = append(d.Envs, row)
	}
	d.Chart = sessionChart(recent, now, now.Sub(since), 12)
	d.Problems = problems(recent, since, 20)
	if d.Replicas, d.Stranded, err = u.replicaRows(r, now); err != nil {
		u.unavailable(w, r, err)
		return
	}
	if u.health != nil {
		d.Upstreams = u.health()
	}
	u.render(w, r, http.StatusOK, "overview", id, view{Title: "Portal overview", Notice: releasedNotice(r.URL.Query()), Data: d})
}

// problems lists the sessions that ended since since because their
// environment failed, newest first, at most max.
func problems(all []*sessions.Session, since time.Time, max int) []problem {
	var out []problem
	for _, s := range all {
		if !problemReasons[s.Reason] || s.EndedAt().Before(since) {
			continue
		}
		p := problem{At: s.EndedAt(), Session: s.Name, Environment: s.Environment, Reason: s.Reason}
		if s.Progress != nil {
			p.Message = s.Progress.Message
		}
		out = append(out, p)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].At.After(out[j].At) })
	if len(out) > max {
		out = out[:max]
	}
	return out
}

// sessionRow is a session in the sessions list.
type sessionRow struct {
	Name, Environment, Workshop, Owner, Reason string
	// OwnerEmail is the owner's email address, when they have one: what
	// an instructor knows a learner by, where Owner is an id.
	OwnerEmail string
	// Step is where a STARTING session's start stands.
	Step                      string
	State                     lifecycle.State
	Created, Started, Expires time.Time
	// actionable: a bulk action would touch it (a learner's session that
	// has not ended).
	actionable bool
}

type sessionsData struct {
	// Rows are the page's sessions (Pager says which of the matching).
	Rows []sessionRow
	// Filters as given, for the form. Replica keeps the sessions whose
	// environment that replica started (the overview links there).
	Env, State, User, Replica string
	Envs                      []string
	States                    []string
	// Total counts the stored sessions, matching or not.
	Total int
	Pager pager
	// Actionable counts the matching sessions, on every page, a bulk
	// action would touch (learners' sessions that have not ended).
	Actionable int
}

// pageRows is how many rows a page of the admin lists shows. Unpaged, a
// portal with 100,000 stored sessions answered 35 MB for its users and
// 43 MB for all its sessions, and its RSS went to 400 MB.
const pageRows = 100

// pager places one page of a long list: rows From to To (counting from 1)
// of Of, with links to the pages before and after ("" at either end).
type pager struct {
	From, To, Of int
	Prev, Next   string
}

// Paged reports whether the list is longer than a page.
func (p pager) Paged() bool { return p.Of > pageRows }

// paginate returns the half-open range of the rows of the page q asks for
// (page=N, from 1; past the last page, the last) out of n, and its pager,
// whose links keep q's other parameters. ok is false, and a 400 page sent,
// when page is not a positive number.
func (u *UI) paginate(w http.ResponseWriter, r *http.Request, n int, q url.Values, path string) (lo, hi int, p pager, ok bool) {
	pages := max(1, (n+pageRows-1)/pageRows)
	page := 1
	if v := q.Get("page"); v != "" {
		var err error
		if page, err = strconv.Atoi(v); err != nil || page < 1 {
			u.fail(w, r, http.StatusBadRequest, "Bad request", "The page number must be a positive whole number.")
			return 0, 0, p, false
		}
	}
	page = min(page, pages)
	lo, hi = (page-1)*pageRows, min(page*pageRows, n)
	p = pager{From: min(lo+1, n), To: hi, Of: n}
	link := func(to int) string {
		v := url.Values{}
		for k, vs := range q {
			// Not the form's token, nor a notice of what was just done.
			if k != "page" && k != "csrf" && k != "notice" {
				v[k] = vs
			}
		}
		if to > 1 {
			v.Set("page", strconv.Itoa(to))
		}
		if len(v) == 0 {
			return path
		}
		return path + "?" + v.Encode()
	}
	if page > 1 {
		p.Prev = link(page - 1)
	}
	if page < pages {
		p.Next = link(page + 1)
	}
	return lo, hi, p, true
}

// stateFilters are the state filter's choices: "active" (the default)
// hides sessions that are ending or ended.
var stateFilters = []string{"active", "all", "STARTING", "WAITING", "RUNNING", "STOPPING", "STOPPED"}

func (u *UI) sessionsPage(w http.ResponseWriter, r *http.Request, _ string) {
	id, ok := u.requireAdmin(w, r)
	if !ok {
		return
	}
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		u.fail(w, r, http.StatusBadRequest, "Bad request", "The filter in the address is malformed.")
		return
	}
	d, _, ok := u.filtered(w, r, q)
	if !ok {
		return
	}
	u.render(w, r, http.StatusOK, "sessions", id, view{Title: "Sessions", Notice: bulkNotice(q), Data: d})
}

// filtered applies the sessions list's filters in q (environment, state,
// user: an id, or an email address in any case) and returns the page's
// data and the names of the matching sessions a bulk action would touch
// (learners' sessions that have not ended, on every page); a bad filter is
// answered with a 400 page (ok false).
func (u *UI) filtered(w http.ResponseWriter, r *http.Request, q url.Values) (sessionsData, []string, bool) {
	d := sessionsData{Env: q.Get("environment"), State: q.Get("state"), User: q.Get("user"), Replica: q.Get("replica"),
		States: stateFilters}
	if d.State == "" {
		d.State = "active"
	}
	var want lifecycle.State
	switch d.State {
	case "active", "all":
	default:
		st, ok := lifecycle.ParseState(d.State)
		if !ok {
			u.fail(w, r, http.StatusBadRequest, "Bad request", "Unknown session state in the filter.")
			return d, nil, false
		}
		want, d.State = st, string(st)
	}
	if len(d.User) > 256 || len(d.Env) > 128 || len(d.Replica) > 253 {
		u.fail(w, r, http.StatusBadRequest, "Bad request", "The filter is too long.")
		return d, nil, false
	}
	for _, e := range u.svc.Environments() {
		d.Envs = append(d.Envs, e.Name)
	}
	var owners map[string]bool
	var err error
	if d.User != "" {
		if owners, err = u.svc.OwnersNamed(r.Context(), d.User); err != nil {
			u.unavailable(w, r, err)
			return d, nil, false
		}
	}
	if d.Total, err = u.svc.CountSessions(r.Context()); err != nil {
		u.unavailable(w, r, err)
		return d, nil, false
	}
	// Every filter but "all" and STOPPED shows only sessions the live
	// indexes hold: the 5,000 live ones of a busy portal, not the 100,000
	// records it keeps. A user's sessions are read from that user's
	// indexes, whatever the state; only theirs, so the match below need
	// not check the owner.
	each := u.svc.EachLiveSession
	switch {
	case d.User != "":
		each = func(ctx context.Context, fn func(*sessions.Session)) error {
			return u.svc.EachSessionOf(ctx, slices.Collect(maps.Keys(owners)), fn)
		}
	case d.State == "all" || want == lifecycle.Stopped:
		each = u.svc.EachSession
	}
	// Only a row of each matching session is kept, not the record: with
	// 100,000 stored, the records held the portal's RSS over 300 MB.
	var match []sessionRow
	err = each(r.Context(), func(s *sessions.Session) {
		switch {
		case d.Env != "" && s.Environment != d.Env,
			d.Replica != "" && s.EnvOwner != d.Replica,
			d.State == "active" && s.State.Ending(),
			want != "" && s.State != want:
			return
		}
		row := sessionRow{Name: s.Name, Environment: s.Environment, Workshop: s.Workshop,
			Owner: s.Owner, Reason: s.Reason, State: s.State, Created: s.Created, Started: s.Started, Expires: s.Expires}
		if s.State == lifecycle.Starting && s.Progress != nil {
			row.Step = sessions.StepTitle(s.Progress.Step)
		}
		row.actionable = !s.State.Ending() && !s.Reserved()
		match = append(match, row)
	})
	if err != nil {
		u.unavailable(w, r, err)
		return d, nil, false
	}
	// Newest first: the admin usually looks for what just happened.
	sort.Slice(match, func(i, j int) bool {
		if !match[i].Created.Equal(match[j].Created) {
			return match[i].Created.After(match[j].Created)
		}
		return match[i].Name > match[j].Name
	})
	var actionable []string
	for _, row := range match {
		if row.actionable {
			actionable = append(actionable, row.Name)
		}
	}
	d.Actionable = len(actionable)
	lo, hi, pg, ok := u.paginate(w, r, len(match), q, routes.AdminSessionsPath)
	if !ok {
		return d, nil, false
	}
	d.Pager, d.Rows = pg, match[lo:hi]
	// Owners by email, what an instructor knows a learner by: read for
	// the page's rows only, not for every user of a busy portal.
	for i, row := range d.Rows {
		d.Rows[i].OwnerEmail = u.svc.OwnerEmail(r.Context(), row.Owner)
	}
	return d, actionable, true
}

// bulkData is the bulk action's confirmation page.
type bulkData struct {
	sessionsData
	Action string
	// Names are every session the action covers; the form carries them
	// all, and the page lists the first bulkListed.
	Names []string
}

// bulkListed bounds the names the confirmation page shows: a filter may
// match thousands.
const bulkListed = 100

// Listed is the head of Names the page shows, and More how many follow.
func (d bulkData) Listed() []string { return d.Names[:min(len(d.Names), bulkListed)] }

// More is how many of Names the page does not show.
func (d bulkData) More() int { return len(d.Names) - len(d.Listed()) }

// bulk terminates or extends every learner's session the sessions list's
// filter matches: a first POST shows what would be done and asks to
// confirm; the confirmed POST does it, one session at a time, each with
// its own event (log and webhooks) as if ended or extended by hand. It
// covers only the sessions the confirmation named that the filter still
// matches: a learner who started a session meanwhile was not shown to the
// admin, so it is not ended with the others.
func (u *UI) bulk(w http.ResponseWriter, r *http.Request, _ string) {
	if !u.action(w, r) {
		return
	}
	action := r.PostFormValue("action")
	if action != "terminate" && action != "extend" {
		u.fail(w, r, http.StatusBadRequest, "Bad request", "Unknown action: terminate or extend.")
		return
	}
	d, names, ok := u.filtered(w, r, r.PostForm)
	if !ok {
		return
	}
	if r.PostFormValue("confirm") != "yes" {
		u.render(w, r, http.StatusOK, "bulk", u.current(r), view{Title: "Confirm", Data: bulkData{sessionsData: d, Action: action, Names: names}})
		return
	}
	confirmed := map[string]bool{}
	for _, n := range r.PostForm["name"] {
		confirmed[n] = true
	}
	done := 0
	for _, name := range names {
		if !confirmed[name] {
			continue
		}
		var err error
		extended := true
		if action == "terminate" {
			_, err = u.svc.Terminate(r.Context(), name, "")
		} else {
			_, _, extended, err = u.svc.Extend(r.Context(), name)
		}
		if err != nil {
			u.log.Warn("webui: bulk "+action, zap.String("session", name), zap.Error(err))
			continue
		}
		if extended {
			done++
		}
	}
	u.log.Info("webui: bulk "+action, zap.String("admin", u.current(r).User), zap.Int("sessions", done),
		zap.String("environment", d.Env), zap.String("state", d.State), zap.String("user", d.User), zap.String("replica", d.Replica))
	// Back to the list as it was filtered, with the notice.
	back := url.Values{"notice": {"bulk-" + action}, "done": {strconv.Itoa(done)}, "of": {strconv.Itoa(len(confirmed))}}
	for k, v := range map[string]string{"environment": d.Env, "state": d.State, "user": d.User, "replica": d.Replica} {
		if v != "" {
			back.Set(k, v)
		}
	}
	http.Redirect(w, r, routes.AdminSessionsPath+"?"+back.Encode(), http.StatusSeeOther)
}

// notices are the fixed messages that actions pass back by code, so the
// address bar cannot inject text into a page.
var notices = map[string]string{
	"terminated":     "The session was terminated.",
	"bulk-terminate": "The sessions were terminated (each is recorded in the log and sent to the webhooks).",
	"bulk-extend":    "The sessions that could be extended were extended.",
	"extended":       "The session was extended.",
	"not-extended":   "The session was not extended: it can only be extended shortly before it expires, and not past its deadline.",
	"password-set":   "The learner's password was changed. Give them the new one: their earlier sign-ins have ended.",
	"session-ending": "Your last workshop session is still ending. You can start the next one in a few seconds: this page reloads itself.",
	"session-limit":  "You already have as many workshop sessions as you may have at once. Resume yours below, or end it with its End session button before you start another workshop.",
	"signed-up":      "If this email address was new, your account has been created. Sign in with your email address and password.",
	// Educates' notifications (reference §3.2), which the catalog shows
	// when it is where the portal sends a browser back.
	"workshop-invalid":    "There is no such workshop on this portal.",
	"session-unavailable": "No session of this workshop is available: all are in use, or you have reached your limit of sessions. Try again later.",
	"session-deleted":     "Your workshop session has ended. Start the workshop again for a new session.",
	"startup-timeout":     "Your workshop environment could not be started in time. Start the workshop again to get a new one.",
	"session-invalid":     "That workshop link is no longer valid: the session it belonged to has ended or does not exist. Start the workshop again.",
}

func notice(code string) string { return notices[code] }

// bulkNotice is the sessions list's notice: after a bulk action, how many
// of the sessions its confirmation listed it terminated or extended (the
// counts are numbers, so the address bar still cannot inject text); else
// the notice q names.
func bulkNotice(q url.Values) string {
	code := q.Get("notice")
	done, err1 := strconv.Atoi(q.Get("done"))
	of, err2 := strconv.Atoi(q.Get("of"))
	if err1 != nil || err2 != nil || done < 0 || done > of {
		return notice(code)
	}
	switch code {
	case "bulk-terminate":
		text := fmt.Sprintf("%d of the %d sessions listed were terminated (each is recorded in the log and sent to the webhooks).", done, of)
		if done < of {
			text += " The others had ended meanwhile or could not be ended; the log says which."
		}
		return text
	case "bulk-extend":
		text := fmt.Sprintf("%d of the %d sessions listed were extended.", done, of)
		if done < of {
			text += " The others could not be: a session can only be extended shortly before it expires, and not past its deadline."
		}
		return text
	}
	return notice(code)
}

// knownNotification is the Educates notification q carries when it is one
// with a message here, else "": a made-up one is passed on nowhere.
func knownNotification(q url.Values) string {
	if n := q.Get("notification"); notice(n) != "" {
		return n
	}
	return ""
}

// event is one entry of a session's timeline.
type event struct {
	At   time.Time
	What string
}

type sessionData struct {
	S         *sessions.Session
	Env       *envView
	Timeline  []event
	Schedule  lifecycle.Schedule
	Countdown string
	Live      bool
	CanAct    bool
	CanOpen   bool
	Owner     *sessions.User
}

func (u *UI) sessionPage(w http.ResponseWriter, r *http.Request, name string) {
	id, ok := u.requireAdmin(w, r)
	if !ok {
		return
	}
	s, err := u.svc.Get(r.Context(), name)
	if errors.Is(err, sessions.ErrSessionNotFound) {
		u.fail(w, r, http.StatusNotFound, "Session not found", "There is no session named "+name+" (it may have been purged).")
		return
	}
	if err != nil {
		u.unavailable(w, r, err)
		return
	}
	d := sessionData{S: s, Env: u.envOf(s), Live: !s.State.Ending(), CanAct: !s.State.Ending() && !s.Reserved(),
		CanOpen: u.openAs != nil}
	owner := s.Owner
	if s.Owner != "" {
		if usr, err := u.svc.GetUser(r.Context(), s.Owner); err == nil {
			d.Owner = usr
			if usr.Email != "" {
				owner = usr.Email // what an instructor knows a learner by
			}
		}
	}
	d.Timeline = timeline(s, owner)
	if d.Live {
		if e := u.svc.Environment(s.Environment); e != nil {
			d.Schedule = e.Policy.Schedule(u.svc.Now(), lifecycle.Times{State: s.State, Started: s.Started, Expires: s.Expires})
		}
		if d.Schedule.HasExpiry {
			d.Countdown = (time.Duration(d.Schedule.Countdown) * time.Second).String()
		}
	}
	q := r.URL.Query()
	u.render(w, r, http.StatusOK, "session", id, view{Title: "Session " + s.Name, Notice: notice(q.Get("notice")), Data: d})
}

// envView is what the admin's session page shows of a session's own
// environment (a workshop with a spawner): where its start stands or why
// it failed, which replica runs it, and what the spawner recorded of it
// (a PID, a container), so an instructor can tell why a learner waits and
// an operator can find the process.
type envView struct {
	// Label heads the step: "Start", or "Ended" for an environment that
	// stopped while its session ran (its start had succeeded).
	Label         string
	Step, Message string
	// Position is the session's place in the start queue, 0 when it is
	// not queued here, and Wait about how long it waits there ("" when
	// there is no recent pace to tell).
	Position int
	Wait     string
	Replica  string
	Details  []envDetail
}

// envDetail is one field of the spawner's record of an environment.
type envDetail struct{ Name, Value string }

// envOf describes s's environment, or returns nil for a session of a
// workshop without a spawner.
func (u *UI) envOf(s *sessions.Session) *envView {
	if s.Env == nil && !s.Spawning && s.Progress == nil && s.EnvOwner == "" {
		return nil
	}
	v := &envView{Label: "Start", Replica: s.EnvOwner}
	if p := s.Progress; p != nil {
		v.Step, v.Message = sessions.StepLine(*p)
	}
	var wait time.Duration
	if v.Position, wait = u.svc.QueuedAt(s); wait > 0 {
		v.Wait = sessions.AboutWait(wait)
	}
	if s.Reason == sessions.ReasonEnvironmentLost {
		// Its progress says "failed" with why, for the learner's page; the
		// start had not failed: the environment died after it.
		v.Label, v.Step = "Ended", "Stopped while running"
	}
	if s.Env != nil {
		for _, d := range envDetails(s.Env.State) {
			// The card already names the replica.
			if strings.EqualFold(d.Name, "replica") && d.Value == v.Replica {
				continue
			}
			v.Details = append(v.Details, d)
		}
	}
	return v
}

// envDetails lists the top-level fields of a spawner's opaque record of an
// environment, sorted by name, leaving out empty ones. The record belongs
// to the backend, so nothing here knows its fields: a record that is not a
// JSON object is shown whole.
func envDetails(state json.RawMessage) []envDetail {
	if len(state) == 0 {
		return nil
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(state, &fields); err != nil {
		return []envDetail{{Name: "record", Value: string(state)}}
	}
	out := make([]envDetail, 0, len(fields))
	for name, raw := range fields {
		var str string
		value := string(raw)
		if json.Unmarshal(raw, &str) == nil {
			value = str
		}
		switch value {
		case "", "0", "null", "false", "{}", "[]":
			continue
		}
		out = append(out, envDetail{Name: name, Value: value})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// timeline derives a session's history from the instants its record
// keeps; owner names the session's owner.
func timeline(s *sessions.Session, owner string) []event {
	var out []event
	add := func(t time.Time, what string) {
		if !t.IsZero() {
			out = append(out, event{t, what})
		}
	}
	add(s.Created, "Created (as a reserve)")
	if s.Owner != "" {
		add(s.Allocated, "Allocated to "+owner)
	}
	if !s.Activated.IsZero() && !s.Activated.Equal(s.Started) {
		add(s.Activated, "Activated while its environment was starting")
		add(s.Started, "Environment ready, dashboard running")
	} else {
		add(s.Started, "Activated, dashboard running")
	}
	for _, g := range s.StaffGrants {
		from := ""
		if g.Client != "" {
			from = " from " + g.Client
		}
		add(g.At, "Staff access: "+g.User+from+" until "+g.Until.UTC().Format(time.RFC3339))
	}
	if !s.LastActivity.IsZero() && !s.LastActivity.Equal(s.Started) {
		add(s.LastActivity, "Last dashboard activity")
	}
	switch s.State {
	case lifecycle.Stopping:
		add(s.Expires, "Terminated ("+s.Reason+")")
		add(s.Stopped, "Stops (end of the stopping grace)")
	case lifecycle.Stopped:
		add(s.Stopped, "Stopped ("+s.Reason+")")
	default:
		if s.Pending() {
			add(s.Expires, "Activation deadline")
		} else {
			add(s.Expires, "Expires")
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].At.Before(out[j].At) })
	return out
}

// action checks an admin POST: admin login first, then the CSRF token.
func (u *UI) action(w http.ResponseWriter, r *http.Request) bool {
	id, ok := u.requireAdmin(w, r)
	if !ok {
		return false
	}
	if !u.csrfOK(r, id) {
		u.csrfFail(w, r)
		return false
	}
	return true
}

func (u *UI) terminate(w http.ResponseWriter, r *http.Request, name string) {
	if !u.action(w, r) {
		return
	}
	_, err := u.svc.Terminate(r.Context(), name, "")
	if u.actionError(w, r, err) {
		return
	}
	http.Redirect(w, r, routes.AdminSessionsPath+"?notice=terminated", http.StatusSeeOther)
}

func (u *UI) extend(w http.ResponseWriter, r *http.Request, name string) {
	if !u.action(w, r) {
		return
	}
	_, _, extended, err := u.svc.Extend(r.Context(), name)
	if u.actionError(w, r, err) {
		return
	}
	code := "extended"
	if !extended {
		code = "not-extended"
	}
	http.Redirect(w, r, routes.AdminSessionPath(name)+"?notice="+code, http.StatusSeeOther)
}

// defaultStaffGrant is how long the admin may use a learner's dashboard
// after opening it.
const defaultStaffGrant = time.Hour

// open is staff access: the admin opens a learner's dashboard. The
// session records the grant (who, from where, until when: its timeline
// shows it), an event goes to the log and the webhooks, and the gate
// lets the admin in until the grant ends; the dashboard sees the admin's
// name in X-Portal-User.
func (u *UI) open(w http.ResponseWriter, r *http.Request, name string) {
	if !u.action(w, r) {
		return
	}
	if u.openAs == nil {
		u.fail(w, r, http.StatusNotFound, "Not available", "Staff access to learners' dashboards is off on this portal.")
		return
	}
	ttl := u.staffGrant
	if ttl <= 0 {
		ttl = defaultStaffGrant
	}
	staff := u.current(r).User
	sess, g, err := u.svc.GrantStaff(r.Context(), name, staff, u.clientIP(r), ttl)
	if u.actionError(w, r, err) {
		return
	}
	u.log.Info("staff access granted", zap.String("session", name), zap.String("staff", staff),
		zap.String("owner", sess.Owner), zap.String("client", g.Client), zap.Time("until", g.Until))
	target, err := u.openAs(w, r, sess, staff)
	if err != nil {
		u.unavailable(w, r, err)
		return
	}
	http.Redirect(w, r, target, http.StatusSeeOther)
}

// release releases the sessions of a replica gone for good: a first POST
// (the overview's button) says what would end and asks to confirm; the
// confirmed POST does it.
func (u *UI) release(w http.ResponseWriter, r *http.Request, name string) {
	if !u.action(w, r) {
		return
	}
	if r.PostFormValue("confirm") != "yes" {
		list, err := u.svc.Replicas(r.Context())
		if err != nil {
			u.unavailable(w, r, err)
			return
		}
		for _, rs := range list {
			if rs.Name != name {
				continue
			}
			if !rs.Silent {
				u.releaseError(w, r, name, sessions.ErrReplicaRunning)
				return
			}
			u.render(w, r, http.StatusOK, "release", u.current(r), view{Title: "Release replica " + name, Data: replicaRow{ReplicaStatus: rs}})
			return
		}
		u.releaseError(w, r, name, sessions.ErrReplicaNotFound)
		return
	}
	done, err := u.svc.ReleaseReplica(r.Context(), name)
	if err != nil {
		u.releaseError(w, r, name, err)
		return
	}
	u.log.Warn("webui: released a replica's sessions", zap.String("admin", u.current(r).User), zap.String("replica", name),
		zap.Int("ended", done.Ended), zap.Int("restarted", done.Restarted))
	back := url.Values{"notice": {"replica-released"}, "ended": {strconv.Itoa(done.Ended)}, "restarted": {strconv.Itoa(done.Restarted)}}
	http.Redirect(w, r, routes.AdminPath+"?"+back.Encode(), http.StatusSeeOther)
}

func (u *UI) releaseError(w http.ResponseWriter, r *http.Request, name string, err error) {
	switch {
	case errors.Is(err, sessions.ErrReplicaRunning):
		u.fail(w, r, http.StatusConflict, "Replica still running",
			"Replica "+name+" is the one answering, or it reported within the last 30 seconds. Only a replica that is gone for good can be released.")
	case errors.Is(err, sessions.ErrReplicaNotFound):
		u.fail(w, r, http.StatusNotFound, "Replica not found", "No live session waits for replica "+name+", and it has not reported within the last day.")
	default:
		u.unavailable(w, r, err)
	}
}

// releasedNotice is the overview's notice after a release, with its counts
// (numbers, so the address bar cannot inject text), else the notice q
// names.
func releasedNotice(q url.Values) string {
	ended, err1 := strconv.Atoi(q.Get("ended"))
	restarted, err2 := strconv.Atoi(q.Get("restarted"))
	if q.Get("notice") != "replica-released" || err1 != nil || err2 != nil || ended < 0 || restarted < 0 {
		return notice(q.Get("notice"))
	}
	text := "The replica was released: " + counted(ended, "of its sessions ended and its place is free.", "of its sessions ended and their places are free.")
	if restarted > 0 {
		text += " " + counted(restarted, "session it had not started yet is being started by this replica.", "sessions it had not started yet are being started by this replica.")
	}
	return text
}

// actionError writes the page for a failed session action and reports
// whether it did.
func (u *UI) actionError(w http.ResponseWriter, r *http.Request, err error) bool {
	switch {
	case err == nil:
		return false
	case errors.Is(err, sessions.ErrSessionNotFound):
		u.fail(w, r, httperr.Status(err), "Session not found", "The session does not exist or has already stopped.")
	case errors.Is(err, sessions.ErrNotInUse):
		u.fail(w, r, httperr.Status(err), "Session not in use", "This session is a reserve that nobody uses; there is nothing to do.")
	default:
		u.unavailable(w, r, err)
	}
	return true
}

// userRow is a user on the users page.
type userRow struct {
	ID, Email, FirstName, LastName, Group string
	Created                               time.Time
	Live                                  []string
	Total                                 int
	// Password says the user signed up on the web; the hash itself is
	// never handed to a template.
	Password bool
}

func (u *UI) usersPage(w http.ResponseWriter, r *http.Request, _ string) {
	id, ok := u.requireAdmin(w, r)
	if !ok {
		return
	}
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil || len(q.Get("q")) > 256 {
		u.fail(w, r, http.StatusBadRequest, "Bad request", "The search in the address is malformed or too long.")
		return
	}
	users, err := u.svc.Users(r.Context())
	if err != nil {
		u.unavailable(w, r, err)
		return
	}
	d := usersData{Query: q.Get("q"), Total: len(users)}
	var match []*sessions.User
	// Newest first, as the sessions: recent sign-ups are on the first page.
	for _, usr := range slices.Backward(users) {
		if userMatches(usr, d.Query) {
			match = append(match, usr)
		}
	}
	lo, hi, pg, ok := u.paginate(w, r, len(match), q, routes.AdminUsersPath)
	if !ok {
		return
	}
	d.Pager = pg
	rows := map[string]*userRow{} // the page's users, by id
	for _, usr := range match[lo:hi] {
		d.Rows = append(d.Rows, userRow{ID: usr.ID, Email: usr.Email, FirstName: usr.FirstName, LastName: usr.LastName,
			Group: usr.Group, Created: usr.Created, Password: usr.PasswordHash != ""})
	}
	for i := range d.Rows {
		rows[d.Rows[i].ID] = &d.Rows[i]
	}
	// Only the page's users' sessions are read and counted, not every
	// record kept; EachSessionOf returns none of anyone else.
	err = u.svc.EachSessionOf(r.Context(), slices.Collect(maps.Keys(rows)), func(s *sessions.Session) {
		row := rows[s.Owner]
		row.Total++
		if !s.State.Ending() {
			row.Live = append(row.Live, s.Name)
		}
	})
	if err != nil {
		u.unavailable(w, r, err)
		return
	}
	for _, row := range rows {
		slices.Sort(row.Live)
	}
	u.render(w, r, http.StatusOK, "users", id, view{Title: "Users", Notice: notice(q.Get("notice")), Data: d})
}

// usersData is the users page: one page of the users the search matches.
type usersData struct {
	Rows []userRow
	// Query is the search as given; Total counts every user.
	Query string
	Total int
	Pager pager
}

// userMatches reports whether the users page's search q finds usr: a part
// of their id, email address or name, in any case; "" finds everyone.
func userMatches(usr *sessions.User, q string) bool {
	if q == "" {
		return true
	}
	q = strings.ToLower(q)
	for _, field := range []string{usr.ID, usr.Email, usr.FirstName + " " + usr.LastName} {
		if strings.Contains(strings.ToLower(field), q) {
			return true
		}
	}
	return false
}

// setPassword is the users page's Set password form: the admin gives a
// learner who forgot their password a new one (there is no email to send
// a reset link with). Only users who signed up on the web have a password.
func (u *UI) setPassword(w http.ResponseWriter, r *http.Request, _ string) {
	if !u.action(w, r) {
		return
	}
	user, pw := r.PostFormValue("user"), r.PostFormValue("password")
	if len(pw) < minPassword || len(pw) > maxPassword {
		u.fail(w, r, http.StatusBadRequest, "Password not set", passwordRule)
		return
	}
	hash, err := hashPassword(pw, u.cost)
	if err != nil {
		u.unavailable(w, r, err)
		return
	}
	switch err := u.svc.SetPassword(r.Context(), user, string(hash)); {
	case isNotFound(err):
		u.fail(w, r, http.StatusNotFound, "No such learner", "There is no learner with a web sign-up and that id.")
		return
	case err != nil:
		u.unavailable(w, r, err)
		return
	}
	u.log.Info("webui: admin set a learner's password", zap.String("admin", u.current(r).User), zap.String("user", user))
	http.Redirect(w, r, routes.AdminUsersPath+"?notice=password-set", http.StatusSeeOther)
}
