package sessions

import (
	"context"
	"errors"
	"runtime/debug"
	"slices"
	"sort"
	"time"

	"go.uber.org/zap"

	"github.com/caddyportal/caddyportal/caddyportal/lifecycle"
	"github.com/caddyportal/caddyportal/caddyportal/spawner"
	"github.com/caddyportal/caddyportal/caddyportal/store"
	"github.com/caddyportal/caddyportal/caddyportal/tokens"
)

// Get returns a session as it is at now (passed deadlines applied). A
// session never stored, or purged, is ErrSessionNotFound; a STOPPED one is
// returned with its state so callers can still find its index URL.
func (s *Service) Get(ctx context.Context, name string) (*Session, error) {
	var sess *Session
	err := s.st.View(ctx, func(tx store.Txn) error {
		var err error
		sess, err = s.load(tx, name)
		return err
	})
	return sess, err
}

func (s *Service) load(tx store.Txn, name string) (*Session, error) {
	v, err := tx.Get(keySession(name))
	if errors.Is(err, store.ErrNotFound) {
		return nil, ErrSessionNotFound
	}
	if err != nil {
		return nil, err
	}
	sess := &Session{}
	if err := unmarshal(v, sess); err != nil {
		return nil, ErrSessionNotFound
	}
	sess.State, sess.Reason = sess.Effective(s.now())
	return sess, nil
}

// mutate runs fn on a live (not STOPPED) session in a read-write
// transaction and writes it back if fn reports a change.
func (s *Service) mutate(ctx context.Context, name string, fn func(sess *Session, now time.Time) (bool, []Event, error)) (*Session, error) {
	var out *Session
	var events []Event
	err := s.st.Update(ctx, func(tx store.Txn) error {
		sess, err := s.load(tx, name)
		if err != nil {
			return err
		}
		out = sess
		if sess.State == lifecycle.Stopped {
			return ErrSessionNotFound
		}
		changed, evs, err := fn(sess, s.now())
		if err != nil || !changed {
			return err
		}
		events = evs
		if err := tx.Set(keySession(name), marshal(sess)); err != nil {
			return err
		}
		return setLiveEntry(tx, sess)
	})
	if err == nil {
		s.emit(events)
	}
	return out, err
}

// Activate checks an activation token and starts the session if it is not
// running yet. Activation can be repeated while the session lives. A
// STOPPING or STOPPED session gives ErrSessionEnded together with the
// session, whose index URL the caller may redirect to.
func (s *Service) Activate(ctx context.Context, name, token string) (*Session, error) {
	s.learnersAt.Store(time.Now().UnixNano())
	sess, err := s.mutate(ctx, name, func(sess *Session, now time.Time) (bool, []Event, error) {
		ok := tokenMatches(sess, token)
		if sess.State == lifecycle.Stopping {
			if !ok {
				return false, nil, ErrBadToken
			}
			return false, nil, ErrSessionEnded
		}
		if !ok || sess.Owner == "" {
			return false, nil, ErrBadToken
		}
		if sess.State == lifecycle.Running {
			return false, nil, nil
		}
		if sess.State == lifecycle.Starting {
			// Its environment is not ready yet: the activation is recorded
			// and the session becomes RUNNING when it is (see readied);
			// until then the gate shows the starting page. It no longer
			// has an activation deadline to meet.
			if !sess.Activated.IsZero() {
				return false, nil, nil
			}
			sess.Activated = now
			sess.Expires = time.Time{}
			return true, nil, nil
		}
		e := s.byEnv[sess.Environment]
		sess.State = lifecycle.Running
		sess.Started = now
		sess.Expires = time.Time{}
		if e != nil {
			sess.Expires = e.Policy.ExpiresAtActivation(now)
		}
		sess.LastActivity = now
		return true, []Event{sessionEvent(EventSessionStarted, sess, now, nil)}, nil
	})
	if errors.Is(err, ErrSessionNotFound) && sess != nil {
		// Only the holder of a link to the ended session learns where it
		// went (reference §2.6: only the owner's browser is redirected).
		if !tokenMatches(sess, token) {
			return nil, ErrSessionNotFound
		}
		return sess, ErrSessionEnded
	}
	return sess, err
}

// tokenMatches checks token against every stored hash, so timing does not
// tell which one matched.
func tokenMatches(sess *Session, token string) bool {
	ok := false
	for _, h := range sess.TokenHashes {
		if tokens.Matches(token, h) {
			ok = true
		}
	}
	return ok
}

// Schedule returns the session and its expiry view (reference §2.7).
func (s *Service) Schedule(ctx context.Context, name string) (*Session, lifecycle.Schedule, error) {
	sess, err := s.Get(ctx, name)
	if err != nil {
		return nil, lifecycle.Schedule{}, err
	}
	if sess.State == lifecycle.Stopped {
		return nil, lifecycle.Schedule{}, ErrSessionNotFound
	}
	return sess, s.policy(sess).Schedule(s.now(), times(sess)), nil
}

// Extend extends the session's expiry when the rules of reference §4.4
// allow it; when they do not, it is not an error and extended is false.
func (s *Service) Extend(ctx context.Context, name string) (*Session, lifecycle.Schedule, bool, error) {
	var extended bool
	sess, err := s.mutate(ctx, name, func(sess *Session, now time.Time) (bool, []Event, error) {
		if sess.Reserved() {
			return false, nil, ErrNotInUse
		}
		var exp time.Time
		exp, extended = s.policy(sess).Extend(now, times(sess))
		if !extended {
			return false, nil, nil
		}
		sess.Expires = exp
		return true, []Event{sessionEvent(EventSessionExtended, sess, now, map[string]any{"expires": lifecycle.Format(exp)})}, nil
	})
	if err != nil {
		return nil, lifecycle.Schedule{}, false, err
	}
	return sess, s.policy(sess).Schedule(s.now(), times(sess)), extended, nil
}

// maxStaffGrants bounds the grants a session keeps (the oldest go).
const maxStaffGrants = 20

// GrantStaff lets staff (a staff member's user name, connecting from
// client) into the dashboard of a learner's session for ttl, or until the
// session expires if sooner, and records it: in the session (the admin
// timeline) and as a Session/StaffAccess event (log, webhooks). A reserve
// or an ended session cannot be granted.
func (s *Service) GrantStaff(ctx context.Context, name, staff, client string, ttl time.Duration) (*Session, StaffGrant, error) {
	var g StaffGrant
	sess, err := s.mutate(ctx, name, func(sess *Session, now time.Time) (bool, []Event, error) {
		if sess.Reserved() {
			return false, nil, ErrNotInUse
		}
		if st, _ := sess.Effective(now); st.Ending() {
			return false, nil, ErrSessionEnded
		}
		until := now.Add(ttl)
		if !sess.Expires.IsZero() && sess.Expires.Before(until) {
			until = sess.Expires
		}
		g = StaffGrant{User: staff, Client: client, At: now, Until: until}
		sess.StaffGrants = append(sess.StaffGrants, g)
		if len(sess.StaffGrants) > maxStaffGrants {
			sess.StaffGrants = sess.StaffGrants[len(sess.StaffGrants)-maxStaffGrants:]
		}
		return true, []Event{sessionEvent(EventSessionStaffAccess, sess, now,
			map[string]any{"staff": staff, "client": client, "until": lifecycle.Format(until)})}, nil
	})
	return sess, g, err
}

// Terminate stops a session: it is STOPPING at once (its dashboard is
// refused) and STOPPED, its slot free, after the stopping grace.
// Terminating a STOPPING session again is not an error.
func (s *Service) Terminate(ctx context.Context, name, reason string) (*Session, error) {
	if reason == "" {
		reason = ReasonTerminated
	}
	sess, err := s.mutate(ctx, name, func(sess *Session, now time.Time) (bool, []Event, error) {
		if sess.Reserved() {
			return false, nil, ErrNotInUse
		}
		if sess.State == lifecycle.Stopping {
			return false, nil, nil
		}
		sess.State = lifecycle.Stopping
		sess.Expires = now
		sess.Stopped = now.Add(s.opts.StopGrace)
		sess.Reason = reason
		return true, []Event{sessionEvent(EventSessionTerminate, sess, now, nil), sessionEvent(EventSessionStopping, sess, now, nil)}, nil
	})
	if err == nil {
		// STOPPING: the dashboard is refused from now on, and so are the
		// streams already open to it.
		s.ended(name)
		// Its environment is stopped now (the dashboard is refused
		// anyway); the session is STOPPED once that is done.
		if sess.Env != nil && sess.EnvOwner == s.replica {
			s.queueStops([]string{name})
		}
	}
	return sess, err
}

// Touch records dashboard activity for idle tracking. It writes at most
// once per minute per session to keep the store quiet.
func (s *Service) Touch(ctx context.Context, name string) error {
	_, err := s.mutate(ctx, name, func(sess *Session, now time.Time) (bool, []Event, error) {
		if now.Sub(sess.LastActivity) < time.Minute {
			return false, nil, nil
		}
		sess.LastActivity = now
		return true, nil, nil
	})
	return err
}

// EnvironmentSessions returns the live sessions of each environment (reserves
// included), keyed by environment name, as they are at now.
func (s *Service) EnvironmentSessions(ctx context.Context) (map[string][]*Session, error) {
	out := map[string][]*Session{}
	err := s.st.View(ctx, func(tx store.Txn) error {
		t := s.viewState(tx)
		for _, e := range s.envs {
			m, err := t.env(e.Name)
			if err != nil {
				return err
			}
			out[e.Name] = sortedSessions(m)
		}
		return nil
	})
	return out, err
}

// LiveUpstreams returns the dashboard addresses of env's sessions not yet
// STOPPED, in name order, skipping those with none yet (a spawned
// environment still starting). It reads the live index alone
// (EachLiveSummary) rather than every live record: the health checker
// lists these every round, and at thousands of live sessions reading their
// records was most of the portal's allocation.
func (s *Service) LiveUpstreams(ctx context.Context, env string) ([]string, error) {
	var out []string
	err := s.EachLiveSummary(ctx, env, func(_ string, ls LiveSummary) {
		if ls.Upstream != "" {
			out = append(out, ls.Upstream)
		}
	})
	return out, err
}

// Usage counts each environment's live sessions as UsageOf does, keyed by
// environment name, from the live index alone (EachLiveSummary): the
// catalogs ask for this on every view, and reading every live record cost
// about 48 ms of CPU per request at 5,000 live sessions.
func (s *Service) Usage(ctx context.Context) (map[string]Usage, error) {
	out := make(map[string]Usage, len(s.envs))
	for _, e := range s.envs {
		out[e.Name] = Usage{}
	}
	err := s.EachLiveSummary(ctx, "", func(env string, ls LiveSummary) {
		u := out[env]
		u.count(!ls.Reserved, ls.State, ls.Queued)
		out[env] = u
	})
	return out, err
}

// UserSessions returns the user's sessions that are neither STOPPING nor
// STOPPED, pending ones included (reference §2.11).
func (s *Service) UserSessions(ctx context.Context, user string) ([]*Session, error) {
	held, err := s.HeldSessions(ctx, user)
	return slices.DeleteFunc(held, func(sess *Session) bool { return sess.State == lifecycle.Stopping }), err
}

// HeldSessions returns the user's sessions not yet STOPPED, in name order:
// STOPPING ones too, which still count against the user's cap. It reads
// the user's own records only.
func (s *Service) HeldSessions(ctx context.Context, user string) ([]*Session, error) {
	var out []*Session
	err := s.st.View(ctx, func(tx store.Txn) error {
		var err error
		out, err = s.viewState(tx).owned(user)
		return err
	})
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, err
}

// GetUser returns a stored user, or ErrUserNotFound.
func (s *Service) GetUser(ctx context.Context, id string) (*User, error) {
	u := &User{}
	err := s.st.View(ctx, func(tx store.Txn) error {
		v, err := tx.Get(keyUser(id))
		if err != nil {
			return err
		}
		return unmarshal(v, u)
	})
	return u, userNotFound(err)
}

// Policy returns the expiry maths of a session's environment.
func (s *Service) policy(sess *Session) lifecycle.Policy {
	if e := s.byEnv[sess.Environment]; e != nil {
		return e.Policy
	}
	return lifecycle.Policy{}
}

func times(sess *Session) lifecycle.Times {
	return lifecycle.Times{State: sess.State, Started: sess.Started, Expires: sess.Expires}
}

func sessionEvent(name string, sess *Session, now time.Time, data map[string]any) Event {
	return Event{Name: name, Time: now, User: sess.Owner, Session: sess.Name, Environment: sess.Environment,
		Workshop: sess.Workshop, Data: data, AnalyticsURL: sess.AnalyticsURL}
}

func sortedSessions(m map[string]*Session) []*Session {
	out := make([]*Session, 0, len(m))
	for _, sess := range m {
		out = append(out, sess)
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].Created.Equal(out[j].Created) {
			return out[i].Created.Before(out[j].Created)
		}
		return out[i].Name < out[j].Name
	})
	return out
}

// Reconcile runs one background pass: sessions whose spawned environment
// died end (environment-lost), passed deadlines and idle timeouts become
// durable STOPPED records, reserves are topped up, removed environments
// drain, and live index entries written by an earlier version are brought
// up to date.
//
// A pass reads the records of the sessions whose live index entry says
// there is something to do, not of every live session: at 5,000 live
// sessions reading them all cost about 50 ms per pass, in a transaction
// that every allocation made meanwhile conflicts with. Every
// fullReconcileEvery-th call (the first included) reads them all, as env
// does, so that an index key whose record went missing is still dropped.
func (s *Service) Reconcile(ctx context.Context) error {
	s.beat(ctx)
	lost := s.retireLost(ctx)
	full := s.reconciles.Add(1)%fullReconcileEvery == 1
	// Each pass makes at most a budget of stops durable; an expiry wave
	// takes several passes.
	for range maxReconcilePasses {
		capped, err := s.reconcilePass(ctx, full)
		if errors.Is(err, store.ErrTooLarge) && s.shrinkFinalize() {
			continue
		}
		if err != nil || !capped {
			return errors.Join(lost, err)
		}
	}
	return lost
}

// maxReconcilePasses bounds one Reconcile; the next tick goes on.
const maxReconcilePasses = 100

// fullReconcileEvery says how often Reconcile reads every live record: a
// minute at the default interval.
const fullReconcileEvery = 12

// reconcilePass is one Reconcile transaction; capped reports that stops
// were left for another pass. full reads every live record rather than
// those the index points at (see Reconcile).
func (s *Service) reconcilePass(ctx context.Context, full bool) (capped bool, err error) {
	err = s.update(ctx, func(t *txState) error {
		tx := t.tx
		defer func() { capped = t.capped }()
		for _, e := range s.envs {
			sp := s.spawnerOf(e)
			var m map[string]*Session
			var err error
			if full {
				m, err = t.env(e.Name)
			} else {
				m, err = t.needing(e.Name, s.passNeeds(e, t.now))
			}
			if err != nil {
				return err
			}
			for _, sess := range sortedSessions(m) {
				if sp != nil {
					if err := s.requeueStarts(t, e, sp, sess); err != nil {
						return err
					}
					if err := s.takeOverStart(t, sess); err != nil {
						return err
					}
				}
				if full {
					if err := s.dropStrandedReserve(t, sess); err != nil {
						return err
					}
				}
				orphaned := idle(e, sess.State, sess.LastActivity, t.now)
				if (orphaned || e.State != EnvRunning && sess.Reserved()) && t.spend() {
					reason := ReasonOrphaned
					if !orphaned {
						reason = ReasonEnvironmentRemoved
					}
					sess.Reason = reason
					if err := t.finalize(sess, reason); err != nil {
						return err
					}
				}
			}
			if err := t.upgradeEntries(); err != nil {
				return err
			}
			switch {
			case e.State == EnvRunning && !s.isLazy(e):
				if err := t.topUp(e, e.Reserved); err != nil {
					return err
				}
			case e.State == EnvStopping:
				c, err := t.count(e.Name)
				if err != nil {
					return err
				}
				if c.Live > 0 {
					continue
				}
				// Drained: the stored record becomes STOPPED, so the next
				// start no longer lists the environment.
				var rec envRecord
				v, err := tx.Get(keyEnv(e.Name))
				if err != nil || unmarshal(v, &rec) != nil || rec.State == EnvStopped {
					continue
				}
				rec.State = EnvStopped
				if err := tx.Set(keyEnv(e.Name), marshal(rec)); err != nil {
					return err
				}
			}
		}
		return nil
	})
	return capped, err
}

// passNeeds says from its index entry whether a reconcile pass at now has
// something to do with a session of e besides applying its deadlines (which
// needing sees to): give back a start no worker holds (requeueStarts), take
// over one of a replica that stopped (takeOverStart), end it as orphaned,
// or end a reserve of an environment being removed.
func (s *Service) passNeeds(e *Environment, now time.Time) func(sn string, le liveEntry) bool {
	spawned := s.spawnerOf(e) != nil
	return func(sn string, le liveEntry) bool {
		return le.State == lifecycle.Starting && spawned && !s.startQ.has(sn) ||
			idle(e, le.State, le.LastActivity, now) || e.State != EnvRunning && !le.Owned
	}
}

// idle reports whether a RUNNING session of e, last active at last, has
// been idle for e's orphaned timeout.
func idle(e *Environment, st lifecycle.State, last, now time.Time) bool {
	return e.Orphaned > 0 && st == lifecycle.Running && !last.IsZero() && !now.Before(last.Add(e.Orphaned))
}

func (s *Service) reconcileLoop() {
	defer s.wg.Done()
	tick := time.NewTicker(s.opts.ReconcileInterval)
	defer tick.Stop()
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-tick.C:
			s.reconcileOnce()
		}
	}
}

func (s *Service) reconcileOnce() {
	defer func() {
		if v := recover(); v != nil {
			s.log.Error("reconcile panicked", zap.Any("panic", v), zap.ByteString("stack", debug.Stack()))
		}
	}()
	if err := s.Reconcile(s.ctx); err != nil && s.ctx.Err() == nil {
		s.log.Warn("reconcile failed", zap.Error(err))
	}
}

// UseOnce records that a one-time value (identified by key, for example a
// ticket nonce) was used; it reports false if it had been used already. The
// record expires at until, after which the value is invalid anyway.
func (s *Service) UseOnce(ctx context.Context, key string, until time.Time) (bool, error) {
	first := false
	err := s.st.Update(ctx, func(tx store.Txn) error {
		k := keyOnce(key)
		_, err := tx.Get(k)
		if err == nil {
			first = false
			return nil
		}
		if !errors.Is(err, store.ErrNotFound) {
			return err
		}
		first = true
		return tx.SetExpiring(k, nil, until)
	})
	return first, err
}

// ConfigPassword returns the live session name with its config password
// (Educates' session config), giving a session created before config
// passwords existed one now.
func (s *Service) ConfigPassword(ctx context.Context, name string) (*Session, error) {
	return s.mutate(ctx, name, func(sess *Session, _ time.Time) (bool, []Event, error) {
		if sess.ConfigPassword != "" {
			return false, nil, nil
		}
		password, err := tokens.New()
		sess.ConfigPassword = password
		return err == nil, nil, err
	})
}

// EnvironmentOf returns the variables the portal gives the environment of
// sess, as KEY=VALUE strings (spawner.Environment): what a spawner passes
// to a spawned environment, and the same values for a workshop whose
// dashboards the portal does not start. They answer the session's
// config/environment.
func (s *Service) EnvironmentOf(sess *Session) ([]string, error) {
	return spawner.Environment(s.specOf(sess))
}

// ReportEvent emits an event a session's dashboard reports (Educates'
// session event route) as one of the session's: it reaches OnEvent, and so
// the analytics webhooks, in order with the session's other events.
func (s *Service) ReportEvent(sess *Session, name string, data map[string]any) {
	s.emit([]Event{sessionEvent(name, sess, s.now(), data)})
}
