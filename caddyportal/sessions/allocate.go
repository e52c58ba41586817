package sessions

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"errors"
	"fmt"
	"math/big"
	"runtime/debug"
	"slices"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/caddyportal/caddyportal/caddyportal/lifecycle"
	"github.com/caddyportal/caddyportal/caddyportal/store"
	"github.com/caddyportal/caddyportal/caddyportal/tokens"
)

// maxTokensPerSession bounds how many activation token hashes one session
// keeps: a session's link is stable (handOut), so only records from before
// stable links hold more than one.
const maxTokensPerSession = 8

// Request asks for a session in an environment (reference §2.5).
type Request struct {
	Environment string
	// User is the portal user id; empty creates a new random user.
	User      string
	Email     string
	FirstName string
	LastName  string
	// Group of a user created by this request; default anonymous.
	// GroupStaff, with the admin's user name, is the admin trying a
	// workshop from the web pages; nothing else may ask for it.
	Group        string
	IndexURL     string
	AnalyticsURL string
	// Timeout is the activation window; nil means the portal default, and
	// 0 means the workshop duration (no deadline if that is unlimited).
	Timeout *time.Duration
	// Session, when set, makes the request reacquire-only.
	Session string
	// Params are the request's parameters, kept in the session record. A
	// spawned environment gets them as variables only when it starts for
	// this request, not when a reserve started ahead is handed out
	// (Result.StartedAhead).
	Params []Param
	// NoToken creates a session that needs no activation link (web flows);
	// it starts RUNNING at once.
	NoToken bool
}

// Result is an allocated (or reacquired) session and its activation token,
// the same on every reacquire of the same allocation.
type Result struct {
	Session *Session
	User    string
	Token   string
	// StartedAhead says the request was given a reserve of a spawned
	// workshop whose environment had been started (or had begun to start)
	// before the request: that environment did not get the request's
	// parameters.
	StartedAhead bool
}

type allocReq struct {
	req  Request
	done chan allocRes
}

type allocRes struct {
	res Result
	err error
}

// RequestSession allocates a session or returns the user's existing one.
// Requests are committed in batches: one durable write serves every request
// that arrived while the previous batch was being written.
func (s *Service) RequestSession(ctx context.Context, req Request) (Result, error) {
	s.learnersAt.Store(time.Now().UnixNano())
	res, err := s.requestSession(ctx, req)
	if err != nil && s.opts.OnRequestFailed != nil {
		s.opts.OnRequestFailed(req.Environment, err)
	}
	if err == nil && res.StartedAhead && len(req.Params) > 0 {
		// Not the learner's fault, and the session is good otherwise:
		// the operator is told, once per such request.
		s.log.Warn("request parameters not passed to the environment: it was started ahead as a reserve "+
			"(a workshop whose environments need request parameters should have reserved 0)",
			zap.String("session", res.Session.Name), zap.String("environment", req.Environment),
			zap.Int("parameters", len(req.Params)))
	}
	return res, err
}

// RefuseUnknownEnvironment reports, as RequestSession would, a session
// request that a caller refused itself because env names no environment
// it serves (an unknown name or alias, a removed workshop).
func (s *Service) RefuseUnknownEnvironment(env string) {
	if s.opts.OnRequestFailed != nil {
		s.opts.OnRequestFailed(env, ErrNoEnvironment)
	}
}

func (s *Service) requestSession(ctx context.Context, req Request) (Result, error) {
	if s.byEnv[req.Environment] == nil {
		return Result{}, ErrNoEnvironment
	}
	r := &allocReq{req: req, done: make(chan allocRes, 1)}
	select {
	case s.reqs <- r:
	case <-ctx.Done():
		return Result{}, ctx.Err()
	case <-s.ctx.Done():
		return Result{}, ErrClosed
	}
	select {
	case out := <-r.done:
		return out.res, out.err
	case <-ctx.Done():
		return Result{}, ctx.Err()
	case <-s.ctx.Done():
		// Closed: the queue is buffered, so the send above may have won
		// the race with Close and nobody will read it. Wait for the loop to
		// stop; a batch it was running has answered by then.
		s.wg.Wait()
		select {
		case out := <-r.done:
			return out.res, out.err
		default:
			return Result{}, ErrClosed
		}
	}
}

func (s *Service) allocLoop() {
	defer s.wg.Done()
	for {
		var first *allocReq
		select {
		case first = <-s.reqs:
		case <-s.ctx.Done():
			s.drainClosed()
			return
		}
		batch := []*allocReq{first}
		limit := s.opts.MaxBatch
		if c := int(s.batchCap.Load()); c > 0 && c < limit {
			limit = c
		}
	fill:
		for len(batch) < limit {
			select {
			case r := <-s.reqs:
				batch = append(batch, r)
			default:
				break fill
			}
		}
		s.runBatch(batch)
	}
}

func (s *Service) drainClosed() {
	for {
		select {
		case r := <-s.reqs:
			r.done <- allocRes{err: ErrClosed}
		default:
			return
		}
	}
}

func (s *Service) runBatch(batch []*allocReq) {
	defer func() {
		if v := recover(); v != nil {
			s.log.Error("session allocation panicked", zap.Any("panic", v), zap.ByteString("stack", debug.Stack()))
			for _, r := range batch {
				select {
				case r.done <- allocRes{err: fmt.Errorf("internal error")}:
				default:
				}
			}
		}
	}()
	results := make([]allocRes, len(batch))
	err := s.update(s.ctx, func(t *txState) error {
		for i, r := range batch {
			res, err := t.allocate(r.req)
			if err != nil && !isRequestError(err) {
				return err // a store failure aborts the whole batch
			}
			results[i] = allocRes{res: res, err: err}
		}
		return nil
	})
	if errors.Is(err, store.ErrTooLarge) && len(batch) == 1 && s.shrinkFinalize() {
		// One request alone is too large: the stops it makes durable on
		// the way are what weigh; allow fewer per transaction and retry.
		s.runBatch(batch)
		return
	}
	if errors.Is(err, store.ErrTooLarge) && len(batch) > 1 {
		// The store cannot take this many requests in one transaction
		// (etcd's --max-txn-ops): keep later batches below this size and
		// run this one in halves.
		half := len(batch) / 2
		s.batchCap.Store(int64(half))
		s.log.Debug("allocation batch too large for the store, splitting", zap.Int("size", len(batch)))
		s.runBatch(batch[:half])
		s.runBatch(batch[half:])
		return
	}
	if err != nil {
		for i := range results {
			results[i] = allocRes{err: err}
		}
	}
	for i, r := range batch {
		if results[i].res.Session != nil {
			s.cache.drop(results[i].res.Session.Name)
		}
		r.done <- results[i]
	}
}

func isRequestError(err error) bool {
	return errors.Is(err, ErrNoSession) || errors.Is(err, ErrCannotReacquire) ||
		errors.Is(err, ErrUserNotPermitted) || errors.Is(err, ErrNoEnvironment)
}

// allocate implements the allocation algorithm of reference §2.5 inside the
// batch transaction.
func (t *txState) allocate(req Request) (Result, error) {
	e := t.s.byEnv[req.Environment]
	if e == nil {
		return Result{}, ErrNoEnvironment
	}
	user, created, err := t.user(req)
	if err != nil {
		return Result{}, err
	}
	var owned []*Session
	if !created {
		// A user created just now owns nothing: a session's owner record
		// exists as long as the session does (holdUser), so no scan is
		// needed. In a batch transaction a scan sorts every write made so
		// far, which made a class of new users quadratic in its size.
		if owned, err = t.owned(user.ID); err != nil {
			return Result{}, err
		}
	}
	deadline := t.activationDeadline(e, req.Timeout)

	// 1. The user's existing session in this environment.
	for _, sess := range owned {
		if sess.Environment != e.Name || sess.State == lifecycle.Stopping {
			continue
		}
		if req.Session != "" && req.Session != sess.Name {
			return Result{}, ErrNoSession
		}
		if len(sess.TokenHashes) == 0 {
			return Result{}, ErrCannotReacquire
		}
		if sess.Pending() && sess.Activated.IsZero() {
			// (An activated session still starting has no deadline to
			// renew: it becomes RUNNING when ready.)
			sess.Expires = deadline
		}
		if err := t.holdUser(user); err != nil {
			return Result{}, err
		}
		return t.handOut(sess, user.ID, req)
	}
	// 2. Reacquire-only.
	if req.Session != "" {
		return Result{}, ErrNoSession
	}
	// 3. Per-user cap: every session the user owns that is not STOPPED,
	// one still stopping included, as Educates counts it.
	if limit := t.s.SessionLimit(user.Group); limit > 0 && len(owned) >= limit {
		return Result{}, ErrSessionLimit
	}
	// A removed (STOPPING) environment has capacity 0: it only hands back
	// existing sessions, never one of its leftover reserves.
	if e.State != EnvRunning {
		return Result{}, ErrNoSession
	}
	t.s.markActive(e)
	// 4. A reserve ready to hand out (oldest first).
	reserve, err := t.takeReserve(e)
	if err != nil {
		return Result{}, err
	}
	if reserve == nil {
		// 5. Create on demand, within capacity and the portal maximum.
		room, err := t.underCapacity(e)
		if err == nil && room {
			if room, err = t.underMaximum(); err == nil && !room {
				// Full only because of the portal maximum: the oldest
				// reserve anywhere gives way.
				room, err = t.evictOldestReserve()
			}
		}
		if err != nil {
			return Result{}, err // a store failure, not "no session"
		}
		if !room {
			// Full, but a reserve may still be starting: the request
			// takes it rather than being refused because starts are busy.
			if reserve, err = t.takeStarting(e); err != nil {
				return Result{}, err
			}
			if reserve == nil {
				return Result{}, ErrNoSession
			}
		} else {
			if reserve, err = t.newSession(e, ""); err != nil {
				return Result{}, err
			}
			// Made for this request, it is nobody's spare.
			t.counts[e.Name].dropReserve(reserve.Name)
		}
	}
	reserve.Owner = user.ID
	reserve.Allocated = t.now
	reserve.IndexURL = req.IndexURL
	reserve.AnalyticsURL = req.AnalyticsURL
	reserve.Params = req.Params
	reserve.Expires = deadline
	if req.NoToken && reserve.State == lifecycle.Starting {
		// Its environment is not ready: it is activated now and becomes
		// RUNNING, its expiry counted from then, once ready.
		reserve.Activated = t.now
		reserve.Expires = time.Time{}
	} else if req.NoToken {
		reserve.State = lifecycle.Running
		reserve.Started = t.now
		reserve.Expires = e.Policy.ExpiresAtActivation(t.now)
		reserve.LastActivity = t.now
	}
	if err := t.holdUser(user); err != nil {
		return Result{}, err
	}
	// A start reads the session record when it begins, so a reserve still
	// queued starts with this request's parameters; one begun already
	// cannot take them any more.
	startedAhead := t.s.spawnerOf(e) != nil && (reserve.Env != nil || reserve.Spawning)
	res, err := t.handOut(reserve, user.ID, req)
	if err != nil {
		return Result{}, err
	}
	res.StartedAhead = startedAhead
	t.event(EventSessionPending, reserve, nil)
	// Replace the reserve that was taken.
	return res, t.topUp(e, e.Reserved)
}

// handOut gives the caller sess's activation token and writes sess.
//
// The token is the session's one link, the same on every reacquire (as in
// Educates, whose clients hand the URL out again and expect earlier copies
// to keep working): derived from the portal's link key and a random seed
// drawn once per allocation (see linkToken), so it need not be stored
// anywhere readable. Only its hash is stored and compared, as before.
func (t *txState) handOut(sess *Session, user string, req Request) (Result, error) {
	var tok string
	if !req.NoToken {
		if sess.LinkSeed == "" {
			seed, err := tokens.New()
			if err != nil {
				return Result{}, err
			}
			sess.LinkSeed = seed
		}
		tok = linkToken(t.s.linkKey, sess.Name, sess.LinkSeed)
		if h := tokens.Hash(tok); !slices.Contains(sess.TokenHashes, h) {
			// First hand-out, or a record from before stable links whose
			// earlier tokens stay valid beside it.
			sess.TokenHashes = append(sess.TokenHashes, h)
			if n := len(sess.TokenHashes); n > maxTokensPerSession {
				sess.TokenHashes = sess.TokenHashes[n-maxTokensPerSession:]
			}
		}
	}
	if req.AnalyticsURL != "" {
		sess.AnalyticsURL = req.AnalyticsURL
	}
	if err := t.put(sess); err != nil {
		return Result{}, err
	}
	cp := *sess
	return Result{Session: &cp, User: user, Token: tok}, nil
}

// linkToken derives the activation token of session name from its seed:
// HMAC-SHA256 under key, written as tokens.Length base62 characters
// (about 190 of its 256 bits, as many as a token from tokens.New carries).
// Knowing a token tells nothing of another session's, and the seed alone,
// which the record holds, does not give the token without the key.
func linkToken(key []byte, name, seed string) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte("activation link\x00"))
	m.Write([]byte(name))
	m.Write([]byte{0})
	m.Write([]byte(seed))
	digits := new(big.Int).SetBytes(m.Sum(nil)).Text(62)
	if len(digits) < tokens.Length {
		digits = strings.Repeat("0", tokens.Length-len(digits)) + digits
	}
	return digits[len(digits)-tokens.Length:]
}

func (t *txState) activationDeadline(e *Environment, timeout *time.Duration) time.Time {
	d := t.s.cfg.ActivationTimeout.D()
	if timeout != nil {
		d = *timeout
	}
	if d == 0 {
		d = e.Expires
	}
	if d == 0 {
		return time.Time{}
	}
	return t.now.Add(d)
}

// user loads or creates the request's user and applies the details it
// carries (Educates ignores them for existing users; reference §7.2 #9).
// created says the user had no record before.
func (t *txState) user(req Request) (_ *User, created bool, _ error) {
	id := req.User
	if !ValidUserID(id) || !ValidName(req.FirstName) || !ValidName(req.LastName) {
		// The API refuses these first with a clearer message; this holds
		// for every door.
		return nil, false, ErrUserNotPermitted
	}
	if id == "" {
		var err error
		if id, err = newUserID(); err != nil {
			return nil, false, err
		}
	}
	cfg := t.s.cfg
	// The robot never owns a session; the admin only when trying a
	// workshop from the web pages (Group staff, which no REST request
	// can set): a front end cannot pose as the admin.
	staffTry := req.Group == GroupStaff && cfg.Admin != nil && id == cfg.Admin.Username
	if id == cfg.Robot.Username || cfg.Admin != nil && id == cfg.Admin.Username && !staffTry {
		return nil, false, ErrUserNotPermitted
	}
	u := &User{}
	v, err := t.tx.Get(keyUser(id))
	switch {
	case errors.Is(err, store.ErrNotFound):
		group := req.Group
		if group == "" {
			group = GroupAnonymous
		}
		u = &User{ID: id, Group: group, Created: t.now}
		if group == GroupAnonymous {
			// Purged unless a session is handed to them (holdUser).
			u.Expires = t.now.Add(t.s.cfg.Retention.D())
		}
		t.events = append(t.events, Event{Name: EventUserCreate, Time: t.now, User: id})
	case err != nil:
		return nil, false, err
	default:
		if err := unmarshal(v, u); err != nil {
			return nil, false, err
		}
		if u.Group == GroupRobot || u.Group == GroupStaff && !staffTry {
			return nil, false, ErrUserNotPermitted
		}
	}
	created = errors.Is(err, store.ErrNotFound)
	changed := created
	for _, f := range []struct {
		dst *string
		src string
	}{{&u.Email, req.Email}, {&u.FirstName, req.FirstName}, {&u.LastName, req.LastName}} {
		if f.src != "" && *f.dst != f.src {
			*f.dst = f.src
			changed = true
		}
	}
	if changed {
		if err := t.putUser(u); err != nil {
			return nil, false, err
		}
	}
	return u, created, nil
}

// putUser writes a user record, expiring at its purge instant if it has one.
func (t *txState) putUser(u *User) error {
	if u.Expires.IsZero() {
		return t.tx.Set(keyUser(u.ID), marshal(u))
	}
	return t.tx.SetExpiring(keyUser(u.ID), marshal(u), u.Expires)
}

// holdUser keeps a user who is handed a session from being purged.
func (t *txState) holdUser(u *User) error {
	if u.Expires.IsZero() {
		return nil
	}
	u.Expires = time.Time{}
	return t.putUser(u)
}

// errHeld stops the scan in releaseUser at the first session found.
var errHeld = errors.New("user holds a session")

// releaseUser schedules the purge of an anonymous user whose last live
// session just stopped at stoppedAt: the retention period later, when the
// session record goes too.
func (t *txState) releaseUser(id string, stoppedAt time.Time) error {
	v, err := t.tx.Get(keyUser(id))
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	u := &User{}
	if unmarshal(v, u) != nil || u.Group != GroupAnonymous {
		return nil
	}
	err = t.tx.Scan(prefixOwned(id), func(string, []byte) error { return errHeld })
	if errors.Is(err, errHeld) {
		return nil
	}
	if err != nil {
		return err
	}
	u.Expires = stoppedAt.Add(t.s.cfg.Retention.D())
	return t.putUser(u)
}

// owned returns the user's live sessions, finalizing passed deadlines. It
// reads only the user's own records, whatever else is live.
func (t *txState) owned(user string) ([]*Session, error) {
	names, err := t.namesUnder(prefixOwned(user))
	if err != nil {
		return nil, err
	}
	var stale []string
	var out []*Session
	for _, name := range names {
		sess, err := t.session(name)
		if err != nil {
			return nil, err
		}
		if sess == nil || sess.Owner != user || sess.State == lifecycle.Stopped {
			stale = append(stale, keyOwned(user, name))
			continue
		}
		st, reason := sess.Effective(t.now)
		if st == lifecycle.Stopping && sess.State != lifecycle.Stopping && sess.holdsEnv() {
			// Ended, its environment still running: STOPPING from now
			// on, never handed back (see retire).
			if err := t.retire(sess, reason); err != nil {
				return nil, err
			}
		}
		if st == lifecycle.Stopped {
			if t.spend() {
				if err := t.finalize(sess, reason); err != nil {
					return nil, err
				}
			}
			continue
		}
		out = append(out, sess)
	}
	if err := t.dropStale(stale); err != nil {
		return nil, err
	}
	return out, nil
}

// SessionLimit is how many sessions a user of group may have at once, 0 for
// no limit (staff and the robot).
func (s *Service) SessionLimit(group string) int {
	switch group {
	case GroupStaff, GroupRobot:
		return 0
	case GroupRegistered:
		return s.cfg.Sessions.Registered
	default:
		return s.cfg.Sessions.Anonymous
	}
}

func (s *Service) markActive(e *Environment) {
	s.mu.Lock()
	e.Lazy = false
	s.mu.Unlock()
}

func (s *Service) isLazy(e *Environment) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return e.Lazy
}

// topUpKnown tops up the reserves of every running environment once New
// has settled them. A restarted or reloaded portal creates initial reserves
// only for environments new to the store (createInitial; those already
// hold at least `reserved`, so here they need nothing); without this the
// others' warm pools stayed as the previous process left them (empty after
// a restart that ended them) until the first reconcile pass,
// ReconcileInterval later, and every learner meanwhile waited for a cold
// start.
func (s *Service) topUpKnown(ctx context.Context) error {
	var known []*Environment
	for _, e := range s.envs {
		if e.State == EnvRunning && e.Reserved > 0 && !s.isLazy(e) {
			known = append(known, e)
		}
	}
	if len(known) == 0 {
		return nil
	}
	return s.update(ctx, func(t *txState) error {
		for _, e := range known {
			if err := t.topUp(e, e.Reserved); err != nil {
				return err
			}
		}
		return nil
	})
}

// createInitial creates an environment's initial reserves.
func (s *Service) createInitial(ctx context.Context, e *Environment) error {
	return s.update(ctx, func(t *txState) error { return t.topUp(e, e.Initial) })
}
