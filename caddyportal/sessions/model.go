// Package sessions allocates workshop sessions to users and runs their
// lifecycle, on any store.Store. It does not import Caddy.
//
// # Key schema
//
// All state lives under the keys listed in keys.go, the one place that
// defines the store's key space (the OAuth tokens' prefix included).
//
// Deadlines are stored in the records and checked on every read: a pending
// session past its activation deadline, or a running one past its expiry, is
// treated as STOPPED from that instant on, whether or not a background pass
// has written that yet. Background passes only make it durable and reclaim
// space.
package sessions

import (
	"encoding/json"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/caddyportal/caddyportal/caddyportal/lifecycle"
	"github.com/caddyportal/caddyportal/caddyportal/spawner"
	"github.com/caddyportal/caddyportal/caddyportal/tokens"
)

// User groups. REST-created users are "anonymous" as in Educates.
const (
	GroupAnonymous  = "anonymous"
	GroupRegistered = "registered"
	GroupStaff      = "staff"
	GroupRobot      = "robot"
)

// User is a portal user.
type User struct {
	ID        string    `json:"id"`
	Email     string    `json:"email,omitempty"`
	FirstName string    `json:"first_name,omitempty"`
	LastName  string    `json:"last_name,omitempty"`
	Group     string    `json:"group"`
	Created   time.Time `json:"created"`
	// PasswordHash is set for users who registered through the web pages.
	PasswordHash string `json:"password_hash,omitempty"`
	// Expires is when the record of an anonymous user who holds no live
	// session is purged: the retention period after their last session
	// stopped, or after they were created if they never got one (Educates
	// deletes such users after 36 h). Zero while they hold a session.
	Expires time.Time `json:"expires,omitzero"`
}

// Reasons a session ends with (Session.Reason): what the admin pages, the
// admin API, the metrics and the webhooks show, and what the catalog
// explains to the learner.
const (
	// ReasonTerminated: ended through the REST API or by an admin.
	ReasonTerminated = "terminated"
	// ReasonDeleted: ended by its learner (the delete link, End session).
	ReasonDeleted = "deleted"
	// ReasonExpired: its time, extensions included, was up.
	ReasonExpired = "expired"
	// ReasonActivationTimeout: handed out but never activated in time.
	ReasonActivationTimeout = "activation-timeout"
	// ReasonOrphaned: unused for the workshop's `orphaned` time.
	ReasonOrphaned = "orphaned"
	// ReasonEvicted: a reserve that gave way to a request under the
	// portal's maximum.
	ReasonEvicted = "evicted"
	// ReasonUnhealthy: its fixed dashboard failed its health checks.
	ReasonUnhealthy = "unhealthy"
	// ReasonEnvironmentRemoved: its workshop left the config.
	ReasonEnvironmentRemoved = "environment-removed"
	// ReasonStartFailed: its environment did not start or become ready.
	ReasonStartFailed = "start-failed"
	// ReasonStartInterrupted: the portal stopped while its environment
	// started, and the next start found nothing ready.
	ReasonStartInterrupted = "start-interrupted"
	// ReasonEnvironmentLost: its environment stopped while it ran.
	ReasonEnvironmentLost = "environment-lost"
)

// EndedBecause says in a learner's words why sess ended, as a clause ("it
// reached its time limit"), with the spawner's own words for an
// environment that stopped or did not start; "" when the learner ended it
// themselves or it has not ended. The pages and the gate's refusals show
// it to the session's owner.
func EndedBecause(sess *Session) string {
	if !sess.State.Ending() {
		return ""
	}
	detail := ""
	if p := sess.Progress; p != nil && p.Message != "" {
		detail = ": " + strings.TrimSuffix(p.Message, ".")
	}
	switch sess.Reason {
	case ReasonExpired:
		return "it reached its time limit"
	case ReasonOrphaned:
		return "it was left unused for too long"
	case ReasonTerminated:
		return "it was ended by an instructor or the training site"
	case ReasonUnhealthy:
		return "its dashboard stopped answering"
	case ReasonEvicted:
		return "the portal needed its place for another session"
	case ReasonEnvironmentRemoved:
		return "its workshop was removed from this portal"
	case ReasonEnvironmentLost:
		return "its environment stopped" + detail
	case ReasonStartFailed, ReasonStartInterrupted:
		return "its environment could not be started" + detail
	}
	return ""
}

// StartFailed says the session ended because its environment did not
// start or become ready: what Educates' clients are told with
// notification=startup-timeout.
func (s *Session) StartFailed() bool {
	return s.Reason == ReasonStartFailed || s.Reason == ReasonStartInterrupted
}

// Param is a request parameter passed to the workshop.
type Param struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// Session is one workshop session.
type Session struct {
	Name        string          `json:"name"`
	Environment string          `json:"environment"`
	Workshop    string          `json:"workshop"`
	State       lifecycle.State `json:"state"`
	Owner       string          `json:"owner,omitempty"`
	// TokenHashes are hashes of the activation tokens handed out for this
	// session; the tokens themselves are never stored. Since links are
	// stable there is one; a record from before may hold earlier ones.
	TokenHashes []string `json:"token_hashes,omitempty"`
	// LinkSeed is drawn from crypto/rand when the session is allocated;
	// with the portal's link key it derives the session's activation token
	// again on every reacquire (see linkToken), so the same link is
	// returned without storing the token.
	LinkSeed string `json:"link_seed,omitempty"`
	// ConfigPassword is Educates' per-session config password, drawn from
	// crypto/rand when the session is created: the config route hands it
	// to the robot, staff or owner, and the gate serves the session's
	// config/<type> to whoever presents it. Kept in clear because it is
	// returned in clear; compared in constant time (ConfigPasswordMatches).
	ConfigPassword string    `json:"config_password,omitempty"`
	IndexURL       string    `json:"index_url,omitempty"`
	AnalyticsURL   string    `json:"analytics_url,omitempty"`
	Params         []Param   `json:"params,omitempty"`
	Slot           int       `json:"slot"`
	Upstream       string    `json:"upstream"`
	Created        time.Time `json:"created"`
	Allocated      time.Time `json:"allocated,omitzero"`
	Started        time.Time `json:"started,omitzero"`
	// Expires is the activation deadline while pending and the expiry while
	// running; terminate sets it to the instant of termination.
	Expires time.Time `json:"expires,omitzero"`
	// Stopped is when the session becomes (or became) STOPPED; while
	// STOPPING it is the end of the stopping grace.
	Stopped      time.Time `json:"stopped,omitzero"`
	LastActivity time.Time `json:"last_activity,omitzero"`
	// Reason says why the session stopped: one of the Reason constants.
	Reason string `json:"reason,omitempty"`

	// The fields below are set only for a workshop with a spawner.

	// Env is the session's started environment; its Addr is also the
	// Upstream, so the gate proxies to it like to any dashboard. While Env
	// is set the session is never STOPPED (see Effective): the environment
	// is stopped first, then Env is cleared and the session finalized in
	// one transaction.
	Env *spawner.Env `json:"env,omitempty"`
	// Spawning is set while a start of the environment is under way (the
	// backend may already have created something that Env does not name
	// yet): it holds the session's place like Env does.
	Spawning bool `json:"spawning,omitempty"`
	// SpawningSince is when the start under way was claimed: a claim
	// older than any start may take belongs to a worker that is gone (a
	// config reload's old service closed mid-start), and is given back.
	SpawningSince time.Time `json:"spawning_since,omitzero"`
	// EnvOwner is the replica that starts, stops and reconciles the
	// session's environment.
	EnvOwner string `json:"env_owner,omitempty"`
	// EnvNetwork is the network the owner dialled its environment's
	// address in (procfs.NetworkID): a loopback address means something
	// only there, so no other replica dials it.
	EnvNetwork string `json:"env_network,omitempty"`
	// Progress is the last step of the start, for the starting page; for
	// a session that ended start-failed or environment-lost, step
	// StepFailed and why, for the page that says it ended.
	Progress *spawner.Progress `json:"progress,omitempty"`
	// Activated is when a session still STARTING was activated: it
	// becomes RUNNING, with its expiry counted from then, once ready.
	Activated time.Time `json:"activated,omitzero"`
	// ClientSecretHash is the hash of the secret of the session's own
	// OAuth client (its id is the session name), given to an environment
	// whose dashboard logs the learner in through the portal.
	ClientSecretHash string `json:"client_secret_hash,omitempty"`
	// StaffGrants are the staff members who opened the session's
	// dashboard, each until a time (the newest last).
	StaffGrants []StaffGrant `json:"staff_grants,omitempty"`
}

// StaffGrant lets a staff member into a learner's dashboard for a while.
type StaffGrant struct {
	User   string    `json:"user"`
	Client string    `json:"client,omitempty"` // the address it was granted from
	At     time.Time `json:"at"`
	Until  time.Time `json:"until"`
}

// Admits reports whether user may use s's dashboard at now: its owner, or a
// staff member holding a grant of s. The gate's one rule of who enters.
func (s *Session) Admits(user string, now time.Time) bool {
	return user == s.Owner || s.StaffAllowed(user, now)
}

// StaffAllowed reports whether user holds a staff grant of s valid at now.
func (s *Session) StaffAllowed(user string, now time.Time) bool {
	for _, g := range s.StaffGrants {
		if g.User == user && now.Before(g.Until) {
			return true
		}
	}
	return false
}

// holdsEnv reports whether the session has, or may have, a started
// environment that must be stopped before the session is STOPPED.
func (s *Session) holdsEnv() bool { return s.Env != nil || s.Spawning }

// SharedDashboard reports whether the session's dashboard is a slot of a
// workshop's fixed upstream list, which serves the next session once this
// one ends (a template or spawned dashboard is the session's alone).
func (s *Session) SharedDashboard() bool { return s.Slot >= 0 }

// Reserved reports whether the session is an unowned spare.
func (s *Session) Reserved() bool { return s.Owner == "" }

// EndedAt is when a session that ended stopped counting for the admin
// overview: its stop time, or its expiry on a record without one. Not the
// later of the two: a record finalized by an earlier version after a failed
// start kept the deadline it no longer had, hours ahead, and the ended
// index, kept by this instant's hour, is read only up to the current hour.
func (s *Session) EndedAt() time.Time {
	if s.Stopped.IsZero() {
		return s.Expires
	}
	return s.Stopped
}

// spare reports whether the session is a reserve ready to hand out.
func (s *Session) spare() bool { return s.Reserved() && s.State == lifecycle.Waiting }

// Usage is how an environment's live sessions are used, as the catalog and
// the operator views report it.
type Usage struct {
	// Allocated counts sessions with an owner.
	Allocated int
	// Available counts reserves ready to be handed out.
	Available int
	// Live counts every live session, reserves included.
	Live int
	// Starting counts sessions whose environment is starting, queued ones
	// included.
	Starting int
	// Queued counts sessions waiting for a free start.
	Queued int
}

// UsageOf counts the live sessions of one environment.
func UsageOf(live []*Session) Usage {
	var u Usage
	for _, s := range live {
		u.count(!s.Reserved(), s.State, s.State == lifecycle.Starting && s.Progress != nil && s.Progress.Step == StepQueued)
	}
	return u
}

// count adds one live session to u.
func (u *Usage) count(owned bool, st lifecycle.State, queued bool) {
	u.Live++
	if st == lifecycle.Starting {
		u.Starting++
	}
	switch {
	case owned:
		u.Allocated++
	case st == lifecycle.Waiting:
		u.Available++
	}
	if queued {
		u.Queued++
	}
}

// StartedAt is the session's start as Educates reports it: when it was
// activated, or for a pending session (allocated, not yet activated) when
// it was allocated, since Educates sets `started` on allocation too
// (mark_as_pending) and its clients read a pending session's age from it.
// Zero for a reserve.
func (s *Session) StartedAt() time.Time {
	if s.Started.IsZero() && !s.Reserved() {
		return s.Allocated
	}
	return s.Started
}

// ConfigPasswordMatches reports, in constant time, whether password is the
// session's config password; a session without one matches nothing.
func (s *Session) ConfigPasswordMatches(password string) bool {
	return s.ConfigPassword != "" && tokens.Equal(password, s.ConfigPassword)
}

// Pending reports whether the session is allocated but not yet activated.
func (s *Session) Pending() bool {
	return s.Owner != "" && (s.State == lifecycle.Starting || s.State == lifecycle.Waiting)
}

// Effective returns the state the session is in at now, applying deadlines
// that have passed but not been written yet, and the reason for a stop. A
// session that holds an environment is STOPPING, not STOPPED, when its end
// has come: it keeps its place (capacity counts it) until the environment
// is stopped, so nothing of it is alive once its place is free.
func (s *Session) Effective(now time.Time) (lifecycle.State, string) {
	st, reason := s.deadlines(now)
	if st == lifecycle.Stopped && s.State != lifecycle.Stopped && s.holdsEnv() {
		return lifecycle.Stopping, reason
	}
	return st, reason
}

// deadlines is Effective without the hold of an environment: the state the
// session would be in if it had none.
func (s *Session) deadlines(now time.Time) (lifecycle.State, string) {
	switch s.State {
	case lifecycle.Stopped:
		return s.State, s.Reason
	case lifecycle.Stopping:
		at := s.Stopped
		if at.IsZero() {
			at = s.Expires
		}
		if !at.IsZero() && !now.Before(at) {
			return lifecycle.Stopped, s.Reason
		}
		return s.State, s.Reason
	}
	if s.Expires.IsZero() || now.Before(s.Expires) {
		return s.State, s.Reason
	}
	switch {
	case s.State == lifecycle.Running:
		return lifecycle.Stopped, ReasonExpired
	case s.Pending():
		return lifecycle.Stopped, ReasonActivationTimeout
	}
	return s.State, s.Reason
}

// Live reports whether the session is not STOPPED at now.
func (s *Session) Live(now time.Time) bool {
	st, _ := s.Effective(now)
	return st != lifecycle.Stopped
}

// Environment states.
const (
	EnvRunning  = "RUNNING"
	EnvStopping = "STOPPING"
	EnvStopped  = "STOPPED"
)

// envRecord is the stored part of an environment: the mapping from a
// workshop to its stable environment name, which must not change when the
// configuration is reordered.
type envRecord struct {
	Name     string    `json:"name"`
	Workshop string    `json:"workshop"`
	Number   int       `json:"number"`
	State    string    `json:"state"`
	Created  time.Time `json:"created"`
}

func marshal(v any) []byte            { b, _ := json.Marshal(v); return b }
func unmarshal(b []byte, v any) error { return json.Unmarshal(b, v) }

// envCount is the stored counters of an environment (key c/<env>).
type envCount struct {
	// Live is how many sessions the live index holds: the live ones plus
	// any whose deadline passed and that no pass has finalized yet, so it
	// never undercounts.
	Live int `json:"live"`
	// Reserves are the names of unowned WAITING sessions, oldest first.
	Reserves []string `json:"reserves,omitempty"`
	// Starting are the names of unowned STARTING sessions (reserves whose
	// environment is not ready yet), oldest first: reserves to be, so
	// topping up does not start more than wanted.
	Starting []string `json:"starting,omitempty"`
	dirty    bool
}

// enter counts a session that just entered the live index.
func (c *envCount) enter(sess *Session) {
	c.Live++
	switch {
	case sess.spare():
		c.Reserves = append(c.Reserves, sess.Name)
	case sess.startingSpare():
		c.Starting = append(c.Starting, sess.Name)
	}
	c.dirty = true
}

// startingSpare reports whether the session is a reserve whose environment
// is not ready yet.
func (s *Session) startingSpare() bool { return s.Reserved() && s.State == lifecycle.Starting }

// ready moves a reserve whose environment became ready from Starting to
// Reserves.
func (c *envCount) ready(name string) {
	c.dropReserve(name)
	c.Reserves = append(c.Reserves, name)
	c.dirty = true
}

// leave uncounts a session that just left the live index.
func (c *envCount) leave(name string) {
	c.Live--
	c.dropReserve(name)
	c.dirty = true
}

// dropReserve removes name from the reserves, ready or starting, if it is
// there.
func (c *envCount) dropReserve(name string) {
	if i := slices.Index(c.Reserves, name); i >= 0 {
		c.Reserves = slices.Delete(c.Reserves, i, i+1)
		c.dirty = true
	}
	if i := slices.Index(c.Starting, name); i >= 0 {
		c.Starting = slices.Delete(c.Starting, i, i+1)
		c.dirty = true
	}
}

// ValidUserID reports whether id may name a user: valid UTF-8 without
// control characters (nor line or paragraph separators). A user id travels
// in newline-separated signed payloads (dashboard cookies, host-mode
// tickets), log lines and headers to the dashboard (X-Portal-User), where
// such characters would split or end it: a user named so could never reach
// their dashboard. The empty id (a new anonymous user) is valid.
func ValidUserID(id string) bool { return plainText(id) }

// ValidName reports whether name may be a user's first or last name: the
// same rule as ValidUserID. Names are stored as JSON, shown on the admin's
// users page and matched by its search: invalid UTF-8 would be stored
// changed (JSON turns it into U+FFFD) and a control character would be
// searched for and shown as nothing, so both are refused where they enter.
func ValidName(name string) bool { return plainText(name) }

// plainText reports whether s is valid UTF-8 without control characters
// or line and paragraph separators.
func plainText(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if unicode.IsControl(r) || r == '\u2028' || r == '\u2029' {
			return false
		}
	}
	return true
}
