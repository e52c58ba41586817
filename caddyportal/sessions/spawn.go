package sessions

// This file runs the environments of workshops that have a spawner: the
// start queue (at most Options.Starts at once, FIFO), the stop queue, the
// reconciliation after a restart, and the check at each reconcile pass that
// environments still run. The spawner is only ever called
// outside transactions; each step's outcome is written in a transaction of
// its own, which re-reads the session and copes with whatever happened to
// it meanwhile (terminated, expired, handed to a user).
//
// A spawned session's life:
//
//	STARTING, queued (Progress "queued") → Spawning (the backend's Start runs)
//	→ Env stored (Upstream = Env.Addr) → readiness probes → WAITING (a reserve,
//	or a pending session) or RUNNING (activated while it started)
//	... → its end (terminate, expiry, orphaned, eviction, start failure, or
//	its environment found gone by a reconcile pass: environment-lost):
//	STOPPING while Env is set → the owner replica's Stop → Env cleared and
//	the session finalized (STOPPED, place free) in one transaction.
//
// The writes of a start (the claim, the stored Env, progress steps, ready)
// are volatile (store.Volatile): they do not wait for the disk, which
// would hold each start's slot for three syncs. A kill -9 of the portal
// loses none of them; a power loss may lose the last of them, and takes
// the environments they describe with it: after such a restart the
// session is found queued again, or with an environment that is gone
// (environment-lost), and the reconciliation removes whatever is left of
// it, as after any crash mid-start. Allocations, activations, failures and
// ends are synced as always.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/caddyportal/caddyportal/caddyportal/config"
	"github.com/caddyportal/caddyportal/caddyportal/lifecycle"
	"github.com/caddyportal/caddyportal/caddyportal/spawner"
	"github.com/caddyportal/caddyportal/caddyportal/store"
	"github.com/caddyportal/caddyportal/caddyportal/tokens"
)

// StepQueued is the progress step of a session waiting for a free start
// (its page shows its position, see QueuePosition); StepFailed is the step
// of a start that failed or of an environment that was lost, with why.
const (
	StepQueued = "queued"
	StepFailed = "failed"
)

// queued is the progress of a session waiting in the start queue: new,
// or its start given back.
func queued() *spawner.Progress {
	return &spawner.Progress{Step: StepQueued, Message: "waiting for a free start"}
}

// StepLine is how a progress step reads for people: its title and the
// backend's message, left out when it only repeats the title (the
// readiness wait's "waiting for the dashboard").
func StepLine(p spawner.Progress) (title, message string) {
	title, message = StepTitle(p.Step), p.Message
	if strings.EqualFold(title, message) {
		message = ""
	}
	return title, message
}

// StepTitle names a progress step for people (the learner's starting page,
// the admin's session page); a step a backend added is shown as it is.
func StepTitle(step string) string {
	switch step {
	case StepQueued:
		return "Queued"
	case spawner.StepStarting:
		return "Starting"
	case spawner.StepStarted:
		return "Started"
	case spawner.StepWaiting:
		return "Waiting for the dashboard"
	case spawner.StepReady:
		return "Ready"
	case StepFailed:
		return "Failed"
	}
	return step
}

// AboutWait says roughly how long d is, for people (the starting page,
// the admin's session page): an estimate, so rounded up to 5 seconds under
// a minute and to minutes above.
func AboutWait(d time.Duration) string {
	switch {
	case d <= 5*time.Second:
		return "a few seconds"
	case d < 55*time.Second:
		return fmt.Sprintf("about %d seconds", int((d+5*time.Second-1)/(5*time.Second))*5)
	case d < 90*time.Second:
		return "about a minute"
	case d < time.Hour:
		return fmt.Sprintf("about %d minutes", int((d+30*time.Second)/time.Minute))
	}
	return "more than an hour"
}

// WaitSeconds is a wait estimate in whole seconds, rounded up, for the
// APIs: 0 means none.
func WaitSeconds(d time.Duration) int { return int((d + time.Second - 1) / time.Second) }

// DefaultStarts is how many environments start at once when neither the
// portal's `starts` nor Options.Starts says.
const DefaultStarts = config.DefaultStarts

// stopTimeout bounds one Stop call; a stop that fails is retried by the
// reconcile loop.
const stopTimeout = 2 * time.Minute

// maxStops bounds concurrent stops: stopping is cheap next to starting,
// but an end-of-class wave must not fork hundreds of killers at once.
const maxStops = 8

// Reserve start backoff: after a failed reserve start, the environment's
// reserves are not started again for minBackoff, doubling up to maxBackoff
// while they keep failing.
const (
	minBackoff = time.Second
	maxBackoff = 5 * time.Minute
)

// StartResult tells Options.OnStart how a start attempt ended.
type StartResult struct {
	Environment string
	Session     string
	// Duration is from the start leaving the queue to ready or failure.
	Duration time.Duration
	// Reason is "" for a start that became ready, else why it failed
	// (ReasonStartFailed, with Err the cause).
	Reason string
	Err    error
}

// workQueue is a FIFO of session names worked on by at most limit
// goroutines. A name is in it at most once, waiting or being worked on.
type workQueue struct {
	mu      sync.Mutex
	waiting []string
	active  map[string]bool // waiting or running
	running int
	limit   int
	open    bool // workers may run: false before the restart reconciliation and after Close
	// spares holds the active names that are reserves' starts (nobody's
	// session yet): refills yield to learners while only these wait.
	spares map[string]bool
	// finished holds when the last works ended, oldest first (at most
	// paceKept): the pace of the queue, for the wait estimate.
	finished []time.Time
}

// The wait estimate of a queued start: the pace at which starts ended in
// the last paceWindow, from at least paceMin of them (fewer say nothing
// about a class), at most paceKept.
const (
	paceWindow = 2 * time.Minute
	paceMin    = 3
	paceKept   = 32
)

// finishLocked records, with q.mu held, that a work ended at now.
func (q *workQueue) finishLocked(now time.Time) {
	q.finished = append(q.finished, now)
	if len(q.finished) > paceKept {
		q.finished = slices.Delete(q.finished, 0, len(q.finished)-paceKept)
	}
}

// wait estimates how long the work at 1-based position waits for a worker
// at the queue's recent pace: position works must end before it begins.
// ok is false without a recent pace.
func (q *workQueue) wait(position int, now time.Time) (time.Duration, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	recent := q.finished
	for len(recent) > 0 && now.Sub(recent[0]) > paceWindow {
		recent = recent[1:]
	}
	if position <= 0 || len(recent) < paceMin {
		return 0, false
	}
	span := recent[len(recent)-1].Sub(recent[0])
	if span <= 0 {
		return 0, false
	}
	return time.Duration(position) * span / time.Duration(len(recent)-1), true
}

func (q *workQueue) add(names []string) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.addLocked(names)
}

func (q *workQueue) addLocked(names []string) {
	if q.active == nil {
		q.active = map[string]bool{}
	}
	for _, n := range names {
		if !q.active[n] {
			q.active[n] = true
			q.waiting = append(q.waiting, n)
		}
	}
}

// has reports whether name waits or is being worked on.
func (q *workQueue) has(name string) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.active[name]
}

// addStarts adds names, of which spares are reserves' starts, and notes
// that the starts of taken, reserves until now, are a learner's.
func (q *workQueue) addStarts(names, spares, taken []string) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.addLocked(names)
	if q.spares == nil {
		q.spares = map[string]bool{}
	}
	for _, n := range spares {
		if q.active[n] {
			q.spares[n] = true
		}
	}
	for _, n := range taken {
		delete(q.spares, n)
	}
}

// learnerWaiting reports whether a learner's start waits for a worker.
func (q *workQueue) learnerWaiting() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	for _, n := range q.waiting {
		if !q.spares[n] {
			return true
		}
	}
	return false
}

// position is name's 1-based place among the waiting, 0 when it is not
// waiting.
func (q *workQueue) position(name string) int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return slices.Index(q.waiting, name) + 1
}

func (q *workQueue) setOpen(open bool) {
	q.mu.Lock()
	q.open = open
	q.mu.Unlock()
}

// pump starts workers for waiting names while there is room. Workers are
// added to s.wg under q.mu, and Close closes the queue under q.mu before
// it waits, so no worker is added once Close waits.
func (s *Service) pump(q *workQueue, run func(string)) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for q.open && q.running < q.limit && len(q.waiting) > 0 {
		name := q.waiting[0]
		q.waiting = q.waiting[1:]
		q.running++
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer func() {
				q.mu.Lock()
				q.running--
				delete(q.active, name)
				delete(q.spares, name)
				q.finishLocked(s.now())
				q.mu.Unlock()
				s.pump(q, run)
			}()
			defer s.recoverWorker(name)
			run(name)
		}()
	}
}

func (s *Service) recoverWorker(name string) {
	if v := recover(); v != nil {
		s.log.Error("environment worker panicked", zap.String("session", name), zap.Any("panic", v))
	}
}

// queueStarts queues the start of the named sessions' environments; spares
// are those of them that are reserves, and taken the starting sessions
// that were reserves and are a learner's now.
func (s *Service) queueStarts(names, spares, taken []string) {
	if len(names) == 0 && len(taken) == 0 {
		return
	}
	s.startQ.addStarts(names, spares, taken)
	s.pump(&s.startQ, s.startOne)
}

// queueStops queues the stop of the named sessions' environments.
func (s *Service) queueStops(names []string) {
	if len(names) == 0 {
		return
	}
	s.stopQ.add(names)
	s.pump(&s.stopQ, s.stopOne)
}

// QueuePosition is the 1-based position of a session waiting for its
// environment to start, 0 when it is not waiting (started, starting, or
// not a spawned session).
func (s *Service) QueuePosition(name string) int { return s.startQ.position(name) }

// QueueWait is name's position in this replica's start queue (0 when it
// is not waiting there) and an estimate of how long it waits for its start
// to begin, at the pace starts ended lately; wait is 0 when there is no
// such pace (the first starts of a class).
func (s *Service) QueueWait(name string) (position int, wait time.Duration) {
	position = s.startQ.position(name)
	wait, _ = s.startQ.wait(position, s.now())
	return position, wait
}

// QueuedAt is QueueWait for sess while it waits in this replica's start
// queue (STARTING now, its progress "queued"), else 0 and 0 without
// looking at the queue: the admin pages and API ask it of every session
// they list, and an ended session keeps its last step.
func (s *Service) QueuedAt(sess *Session) (position int, wait time.Duration) {
	if sess.Progress == nil || sess.Progress.Step != StepQueued {
		return 0, 0
	}
	if st, _ := sess.Effective(s.now()); st != lifecycle.Starting {
		return 0, 0
	}
	return s.QueueWait(sess.Name)
}

// spawnerOf returns the spawner of an environment's workshop, or nil for a
// workshop with a static pool or template.
func (s *Service) spawnerOf(e *Environment) spawner.Spawner {
	if e == nil {
		return nil
	}
	return s.opts.Spawners[e.Workshop.Name]
}

// Spawned reports whether an environment's sessions get environments from
// a spawner (which probes their readiness itself) rather than a static
// pool or template.
func (s *Service) Spawned(e *Environment) bool { return s.spawnerOf(e) != nil }

// backingOff reports whether reserve starts of env wait for a backoff.
func (s *Service) backingOff(env string, now time.Time) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	b, ok := s.backoff[env]
	return ok && now.Before(b.until)
}

type backoffState struct {
	delay time.Duration
	until time.Time
}

// failedReserve starts or doubles env's reserve backoff.
func (s *Service) failedReserve(env string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	b := s.backoff[env]
	b.delay = min(max(2*b.delay, minBackoff), maxBackoff)
	b.until = s.now().Add(b.delay)
	s.backoff[env] = b
}

// readyReserve ends env's backoff: its starts work again.
func (s *Service) readyReserve(env string) {
	s.mu.Lock()
	delete(s.backoff, env)
	s.mu.Unlock()
}

// rawSession reads a session record as stored, deadlines not applied.
func (s *Service) rawSession(ctx context.Context, name string) (*Session, error) {
	var sess *Session
	err := s.st.View(ctx, func(tx store.Txn) error {
		v, err := tx.Get(keySession(name))
		if errors.Is(err, store.ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		sess = &Session{}
		if unmarshal(v, sess) != nil {
			sess = nil
		}
		return nil
	})
	return sess, err
}

// startOne starts one session's environment and waits until it is ready.
func (s *Service) startOne(name string) {
	ctx := s.ctx
	sess, e, secret, err := s.claim(ctx, name)
	if err != nil {
		if ctx.Err() == nil {
			s.log.Warn("claiming a start", zap.String("session", name), zap.Error(err))
		}
		return
	}
	if sess == nil {
		return
	}
	sp := s.spawnerOf(e)
	if sess.Reserved() && sess.Env == nil {
		s.yieldToLearners(ctx, name)
	}
	begin := time.Now()
	if e.Overdue > 0 {
		// The workshop's overdue bounds the whole start, queue excluded.
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, e.Overdue)
		defer cancel()
	}
	// failed ends the start with err, named as the overdue's when that is
	// what ran out: the spawner's own words would be a bare "context
	// deadline exceeded" or its ready timeout, which did not end it.
	failed := func(err error, attempt startAttempt) {
		if d, ok := ctx.Deadline(); ok && e.Overdue > 0 && !time.Now().Before(d) {
			err = &overdueError{after: e.Overdue, cause: err}
		}
		s.startFailed(name, e, begin, err, attempt)
	}
	ps := s.newProgressSaver(name)
	env := sess.Env
	// A start this service cuts short as it closes (a reload, a stop) is
	// given back at once, so the next config or start-up starts it again
	// now rather than once the claim counts as abandoned.
	defer s.giveBackIfClosing(name)
	if env == nil {
		spec := s.specOf(sess)
		if secret != "" {
			spec.Login = s.loginOf(sp, spec, secret)
		}
		got, err := sp.Start(ctx, spec, ps.report)
		if err != nil {
			ps.stop()
			failed(err, startAttempt{claimed: sess.SpawningSince})
			return
		}
		if !s.storeEnv(name, sp, got, ps.take()) {
			ps.stop()
			return
		}
		env = &got
	}
	err = spawner.WaitReady(ctx, sp, *env, ps.report)
	ps.stop()
	if err != nil {
		failed(err, startAttempt{env: env})
		return
	}
	s.readied(name, e, begin)
}

// overdueError is a start's error when the workshop's overdue time ran out
// before the environment was ready. It says so, with the last thing the
// spawner knew (the dashboard's last answer to its probe) when that says
// more than the deadline itself.
type overdueError struct {
	after time.Duration
	cause error
}

func (e *overdueError) Error() string {
	msg := "the environment was not ready within " + e.after.String() + ", the workshop's overdue time"
	var te *spawner.TimeoutError
	switch {
	case errors.As(e.cause, &te):
		return msg + ": " + te.Last.Error()
	case errors.Is(e.cause, context.DeadlineExceeded):
		return msg
	}
	return msg + ": " + e.cause.Error()
}

func (e *overdueError) Unwrap() error { return e.cause }

// giveBackTimeout bounds the write that gives back a start cut short by
// Close.
const giveBackTimeout = 5 * time.Second

// giveBackIfClosing, once the service is closing, clears the claim of
// session name if no environment was recorded for it: whatever the start
// made was removed by the backend's failed Start or stopped by storeEnv,
// and the session keeps its place and its turn (STARTING, queued again by
// whichever service reconciles next).
func (s *Service) giveBackIfClosing(name string) {
	if s.ctx.Err() == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), giveBackTimeout)
	defer cancel()
	err := s.update(store.Volatile(ctx), func(t *txState) error {
		sess, err := t.session(name)
		if err != nil || sess == nil || !sess.Spawning || sess.Env != nil || sess.EnvOwner != s.replica {
			return err
		}
		sess.Spawning = false
		sess.Progress = queued()
		return t.put(sess)
	})
	s.cache.drop(name)
	if err != nil {
		s.log.Warn("giving back a start cut short", zap.String("session", name), zap.Error(err))
	}
}

// Refills of the warm pool yield to a class that is arriving: a reserve's
// start waits while learners keep requesting or activating sessions (each
// request is store writes, and a start's fork, probes and writes compete
// with them on a small machine), but no longer than yieldMax, not at all
// when a learner's own start waits for a worker (it must not queue behind
// a yielding reserve; other reserves waiting do not count), and no longer
// once a learner was given the reserve. With reserved 50, the 50 refills
// of a class's arrival once started at once (8 at a time) because others
// waited, and activation to dashboard took p99 100 ms instead of 40.
const (
	yieldQuiet = 200 * time.Millisecond
	yieldMax   = 2 * time.Second
	yieldPoll  = 20 * time.Millisecond
)

func (s *Service) yieldToLearners(ctx context.Context, name string) {
	quiet := s.opts.YieldQuiet
	if quiet == 0 {
		quiet = yieldQuiet
	}
	deadline := time.Now().Add(max(yieldMax, 2*quiet))
	for time.Now().Before(deadline) && !s.startQ.learnerWaiting() {
		if time.Since(time.Unix(0, s.learnersAt.Load())) >= quiet {
			return
		}
		// A full workshop hands a starting reserve to a learner: then it
		// is theirs, and starts at once.
		if cur, err := s.GetCached(ctx, name); err == nil && !cur.Reserved() {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(yieldPoll):
		}
	}
}

// claim marks a queued session's start as under way (Spawning), so its
// place stays held whatever happens to the session while the backend
// works. It returns nil when there is nothing to start: the session ended,
// is ready, or belongs to another replica. A session whose Env is already
// set (adopted after a restart before it was ready) is returned as it is,
// to be waited for. For a spawner whose dashboards log the learner in
// through the portal, it also returns the secret of the session's OAuth
// client, whose hash the claim stores (a new one for every start: a
// previous start's environment is gone).
func (s *Service) claim(ctx context.Context, name string) (*Session, *Environment, string, error) {
	var out *Session
	var env *Environment
	var secret string
	err := s.update(store.Volatile(ctx), func(t *txState) error {
		out, env, secret = nil, nil, ""
		sess, err := t.session(name)
		if err != nil || sess == nil {
			return err
		}
		e := s.byEnv[sess.Environment]
		if st, _ := sess.Effective(t.now); st != lifecycle.Starting || sess.EnvOwner != s.replica || s.spawnerOf(e) == nil {
			return nil
		}
		if sess.Spawning {
			// Another worker's start is under way (a config reload's
			// overlap); one start per session, or an environment would
			// be left that no record names.
			return nil
		}
		if sess.Env == nil {
			sess.Spawning, sess.SpawningSince = true, t.now
			sess.Progress = &spawner.Progress{Step: spawner.StepStarting, Message: "starting the environment"}
			if loginOn(s.spawnerOf(e)) {
				var err error
				if secret, err = tokens.New(); err != nil {
					return err
				}
				sess.ClientSecretHash = tokens.Hash(secret)
			}
			if err := t.put(sess); err != nil {
				return err
			}
		}
		cp := *sess
		out, env = &cp, e
		return nil
	})
	s.cache.drop(name)
	return out, env, secret, err
}

// loginOn reports whether sp's dashboards log the learner in through the
// portal.
func loginOn(sp spawner.Spawner) bool {
	pl, ok := sp.(spawner.PortalLogin)
	if !ok {
		return false
	}
	_, on := pl.PortalLogin()
	return on
}

// loginOf is the OAuth client of one start, for a spawner that asks for
// one: the learner's browser authorizes at the session's own origin,
// where the gate knows them by their dashboard cookie.
func (s *Service) loginOf(sp spawner.Spawner, spec spawner.Spec, secret string) *spawner.PortalClient {
	pl, ok := sp.(spawner.PortalLogin)
	if !ok {
		return nil
	}
	api, ok := pl.PortalLogin()
	if !ok {
		return nil
	}
	if api == "" {
		api = s.cfg.URL
	}
	origin := strings.TrimSuffix(spec.URL, "/")
	if s.cfg.Dashboards.Mode != config.DashboardsHost {
		origin = strings.TrimSuffix(s.cfg.URL, "/")
	}
	return &spawner.PortalClient{ID: spec.Session, Secret: secret, URL: origin, APIURL: strings.TrimSuffix(api, "/")}
}

// CheckClient authenticates a session's OAuth client (its id is the
// session name) and returns the session: ErrSessionNotFound when the
// session is unknown, ended or has no client, ErrBadClient for a wrong
// secret. The secret is compared by hash, in constant time.
func (s *Service) CheckClient(ctx context.Context, name, secret string) (*Session, error) {
	sess, err := s.Get(ctx, name)
	if err != nil {
		return nil, err
	}
	if sess.ClientSecretHash == "" || sess.State.Ending() || sess.State == lifecycle.Stopped {
		return nil, ErrSessionNotFound
	}
	if secret == "" || !tokens.Equal(tokens.Hash(secret), sess.ClientSecretHash) {
		return nil, ErrBadClient
	}
	return sess, nil
}

// specOf says what to start for a session.
func (s *Service) specOf(sess *Session) spawner.Spec {
	prefix := "/workshops/session/" + sess.Name + "/"
	spec := spawner.Spec{Portal: s.cfg.Name, Session: sess.Name, User: sess.Owner, Workshop: sess.Workshop,
		Environment: sess.Environment, Prefix: prefix, Protocol: "http"}
	if u, err := url.Parse(s.cfg.URL); err == nil && u.Host != "" {
		spec.Protocol = u.Scheme
		spec.Domain = u.Hostname()
		spec.URL = u.Scheme + "://" + u.Host + prefix
	}
	if s.cfg.Dashboards.Mode == config.DashboardsHost {
		spec.Domain = s.cfg.Dashboards.Domain
		host := sess.Name + "." + spec.Domain
		if u, err := url.Parse(s.cfg.URL); err == nil && u.Port() != "" {
			// Session hosts are served on the portal's port.
			host += ":" + u.Port()
		}
		spec.URL = spec.Protocol + "://" + host + "/"
	}
	if len(sess.Params) > 0 {
		spec.Parameters = map[string]string{}
		for _, p := range sess.Params {
			spec.Parameters[p.Name] = p.Value
		}
	}
	return spec
}

// progressDelay is how long a start's progress step must stay the current
// one before it is saved. Each save is a synced store write the start waits
// for, and most steps of a fast start (a local process ready in 20 ms) are
// over long before a learner's starting page could show them; the steps of
// a slow one (a pull, a dashboard that takes seconds) are saved 100 ms late.
const progressDelay = 100 * time.Millisecond

// progressSaver saves one start's progress in its session record for the
// starting page and API clients: a step once it has lasted progressDelay
// (with its latest message), at most one save per step.
type progressSaver struct {
	s    *Service
	name string

	mu      sync.Mutex
	saved   string            // the step saved last (or handed to the caller's own write)
	pending *spawner.Progress // the current step, not saved yet
	timer   *time.Timer       // saves pending when it fires
	done    bool
}

// newProgressSaver returns the progress saver of session name's start.
// The first step is saved even when the record shows the same one: the
// spawner's message says more than the portal's "starting the environment".
func (s *Service) newProgressSaver(name string) *progressSaver {
	return &progressSaver{s: s, name: name}
}

// report is the spawner's progress callback.
func (p *progressSaver) report(pr spawner.Progress) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.done || p.pending == nil && pr.Step == p.saved {
		return
	}
	p.pending = &pr
	if p.timer == nil {
		p.timer = time.AfterFunc(progressDelay, p.flush)
	}
}

// flush saves the pending step. The lock is held across the write, so take
// and stop never return while an older step is being saved.
func (p *progressSaver) flush() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.timer = nil
	if p.done || p.pending == nil {
		return
	}
	pr := *p.pending
	p.pending, p.saved = nil, pr.Step
	err := p.s.st.Update(store.Volatile(p.s.ctx), func(tx store.Txn) error {
		v, err := tx.Get(keySession(p.name))
		if err != nil {
			return err
		}
		sess := &Session{}
		if err := unmarshal(v, sess); err != nil || sess.State != lifecycle.Starting {
			return err
		}
		sess.Progress = &pr
		if err := tx.Set(keySession(p.name), marshal(sess)); err != nil {
			return err
		}
		return setLiveEntry(tx, sess)
	})
	if err != nil && p.s.ctx.Err() == nil {
		p.s.log.Debug("saving start progress", zap.String("session", p.name), zap.Error(err))
	}
	p.s.cache.drop(p.name)
}

// take returns the step not saved yet (nil if none) for the caller to save
// with its own write, and goes on saving later steps.
func (p *progressSaver) take() *spawner.Progress {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.timer != nil {
		p.timer.Stop()
		p.timer = nil
	}
	pr := p.pending
	if pr != nil {
		p.pending, p.saved = nil, pr.Step
	}
	return pr
}

// stop ends saving: the caller's next write (ready, failed) says what the
// start came to, and no older step may overwrite it.
func (p *progressSaver) stop() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.done = true
	p.pending = nil
	if p.timer != nil {
		p.timer.Stop()
		p.timer = nil
	}
}

// storeEnv records a started environment in its session, with the start's
// progress when it has a step not saved yet. It reports
// whether to go on and wait for readiness: false when the session ended
// meanwhile, in which case its environment is being stopped.
func (s *Service) storeEnv(name string, sp spawner.Spawner, env spawner.Env, progress *spawner.Progress) bool {
	goOn, orphan := false, false
	err := s.update(store.Volatile(s.ctx), func(t *txState) error {
		goOn, orphan = false, false
		sess, err := t.session(name)
		if err != nil {
			return err
		}
		if sess == nil || sess.State == lifecycle.Stopped {
			orphan = true // nothing records it: stop it here
			return nil
		}
		if sess.Env != nil || sess.EnvOwner != s.replica {
			// Recorded another start's environment meanwhile, or taken
			// over by another replica (takeOverStart).
			orphan = true
			return nil
		}
		sess.Env = &env
		sess.Upstream = env.Addr
		sess.Spawning = false
		if progress != nil {
			sess.Progress = progress
		}
		if st, reason := sess.Effective(t.now); st == lifecycle.Stopping {
			return t.retire(sess, reason)
		}
		goOn = true
		return t.put(sess)
	})
	s.cache.drop(name)
	if err != nil || orphan {
		// The start's outcome could not be recorded: the environment must
		// not outlive this start.
		ctx, cancel := context.WithTimeout(context.Background(), stopTimeout)
		defer cancel()
		if serr := sp.Stop(ctx, env); serr != nil {
			s.log.Warn("stopping an unrecorded environment", zap.String("session", name), zap.Error(serr))
		}
		return false
	}
	return goOn
}

// readied makes a session whose environment answered ready: WAITING (a
// reserve to hand out, or a pending session), or RUNNING when it was
// activated while it started.
func (s *Service) readied(name string, e *Environment, begin time.Time) {
	reserve := false
	var env spawner.Env
	// How long the start took, for the people who look at it (the admin's
	// session page, the admin API); the metric has its own measurement.
	took := time.Since(begin)
	ready := &spawner.Progress{Step: spawner.StepReady, Message: "started in " + took.Round(time.Millisecond).String()}
	err := s.update(store.Volatile(s.ctx), func(t *txState) error {
		reserve, env = false, spawner.Env{}
		sess, err := t.session(name)
		if err != nil || sess == nil || sess.State == lifecycle.Stopped || sess.EnvOwner != s.replica {
			return err // ended, or taken over by another replica
		}
		switch st, reason := sess.Effective(t.now); st {
		case lifecycle.Stopping:
			return t.retire(sess, reason)
		case lifecycle.Starting:
		default:
			return nil // made ready by another worker already
		}
		sess.Progress = ready
		switch {
		case sess.Reserved():
			reserve = true
			if sess.Env != nil {
				env = *sess.Env
			}
			sess.State = lifecycle.Waiting
			c, err := t.count(sess.Environment)
			if err != nil {
				return err
			}
			c.ready(name)
		case !sess.Activated.IsZero():
			sess.State = lifecycle.Running
			sess.Started = t.now
			sess.Expires = e.Policy.ExpiresAtActivation(t.now)
			sess.LastActivity = t.now
			t.event(EventSessionStarted, sess, nil)
		default:
			sess.State = lifecycle.Waiting
		}
		return t.put(sess)
	})
	s.cache.drop(name)
	if err != nil {
		if s.ctx.Err() == nil {
			s.log.Warn("recording a ready environment", zap.String("session", name), zap.Error(err))
		}
		return
	}
	if reserve {
		s.readyReserve(e.Name)
		s.reserveReady(e, name, env)
	}
	s.log.Info("environment ready", zap.String("session", name), zap.Duration("took", time.Since(begin)))
	if s.opts.OnStart != nil {
		s.opts.OnStart(StartResult{Environment: e.Name, Session: name, Duration: time.Since(begin)})
	}
}

// reserveReady tells Options.OnReserveReady about the dashboard of reserve
// name.
func (s *Service) reserveReady(e *Environment, name string, env spawner.Env) {
	if s.opts.OnReserveReady == nil || env.Addr == "" {
		return
	}
	s.warmMu.Lock()
	if s.warmed == nil {
		s.warmed = map[string]time.Time{}
	}
	s.warmed[name] = time.Now()
	s.warmMu.Unlock()
	path := ""
	if rp, ok := s.spawnerOf(e).(spawner.ReadyPather); ok {
		path = rp.ReadyPath(env)
	}
	if path == "" {
		path = "/"
	}
	s.opts.OnReserveReady(env.Addr, path)
}

// rewarm reports again the waiting reserves among checked (this replica's
// environments found running by a reconcile pass) whose last report is
// RewarmEvery old, and forgets the reserves that stopped waiting.
func (s *Service) rewarm(checked []*Session, lost map[string]string) {
	if s.opts.OnReserveReady == nil {
		return
	}
	now := time.Now()
	waiting := map[string]bool{}
	var due []*Session
	s.warmMu.Lock()
	for _, sess := range checked {
		if _, gone := lost[sess.Name]; gone || !sess.Reserved() || sess.State != lifecycle.Waiting {
			continue
		}
		waiting[sess.Name] = true
		if now.Sub(s.warmed[sess.Name]) >= s.opts.RewarmEvery {
			due = append(due, sess)
		}
	}
	for name, at := range s.warmed {
		// A reserve readied after the pass listed its environments is
		// not among them yet: only a report that is due is forgotten.
		if !waiting[name] && now.Sub(at) >= s.opts.RewarmEvery {
			delete(s.warmed, name)
		}
	}
	s.warmMu.Unlock()
	for _, sess := range due {
		s.reserveReady(s.byEnv[sess.Environment], sess.Name, *sess.Env)
	}
}

// startAttempt says which start of a session failed: the one claimed at
// claimed whose Start failed, or the one waiting for env to be ready.
type startAttempt struct {
	claimed time.Time
	env     *spawner.Env
}

// current reports whether the attempt is still the session's start. A
// claim given back as abandoned can be claimed again while its first
// worker still runs (a service that was never closed); that worker's late
// failure must not end the session the second start serves.
func (a startAttempt) current(sess *Session) bool {
	if a.env != nil {
		return sess.Env != nil && sess.Env.Addr == a.env.Addr && bytes.Equal(sess.Env.State, a.env.State)
	}
	return sess.Env == nil && sess.SpawningSince.Equal(a.claimed)
}

// startFailed ends a session whose environment did not start or become
// ready: start-failed, its place freed once anything started is stopped.
// A failed reserve makes its environment back off before the next one.
func (s *Service) startFailed(name string, e *Environment, begin time.Time, cause error, attempt startAttempt) {
	if s.ctx.Err() != nil {
		// Shutting down (a reload): the start is not failed, only cut
		// short; the next start-up's reconciliation settles it.
		return
	}
	reserve, stale := false, false
	err := s.update(s.ctx, func(t *txState) error {
		reserve, stale = false, false
		sess, err := t.session(name)
		if err != nil || sess == nil || sess.State == lifecycle.Stopped {
			return err
		}
		if !attempt.current(sess) || sess.EnvOwner != s.replica {
			stale = true
			return nil
		}
		reserve = sess.Reserved()
		sess.Spawning = false
		sess.Progress = &spawner.Progress{Step: StepFailed, Message: cause.Error()}
		if sess.State != lifecycle.Stopping {
			sess.Reason = ReasonStartFailed
		}
		return t.finalize(sess, ReasonStartFailed)
	})
	s.cache.drop(name)
	if stale {
		s.log.Info("a start given back as abandoned failed; its session went on with another start",
			zap.String("session", name), zap.Error(cause))
		return
	}
	s.log.Warn("environment start failed", zap.String("session", name), zap.Error(cause))
	if err != nil {
		s.log.Warn("recording a failed start", zap.String("session", name), zap.Error(err))
	}
	if reserve {
		s.failedReserve(e.Name)
	}
	if s.opts.OnStart != nil {
		s.opts.OnStart(StartResult{Environment: e.Name, Session: name, Duration: time.Since(begin),
			Reason: ReasonStartFailed, Err: cause})
	}
}

// stopOne stops the environment of a session that ended, then clears Env
// and finalizes the session in one transaction. A failed stop leaves the
// session STOPPING; the reconcile loop queues it again.
func (s *Service) stopOne(name string) {
	sess, err := s.rawSession(s.ctx, name)
	if err != nil || sess == nil || sess.Env == nil || sess.EnvOwner != s.replica {
		return
	}
	if st, _ := sess.Effective(s.now()); st != lifecycle.Stopping {
		return // never stop the environment of a live session
	}
	env := *sess.Env
	stopEnv := env
	ctx, cancel := context.WithTimeout(s.ctx, stopTimeout)
	defer cancel()
	sp := s.spawnerOf(s.byEnv[sess.Environment])
	if sp == nil {
		// Its workshop was removed from the config (its learners' sessions
		// drained until they ended). A workshop still configured whose
		// spawner shares the backend (Caddy's default process dir, one
		// engine) lists the environment and stops it.
		listed, found, err := s.listedBy(ctx, name)
		switch {
		case err != nil:
			if s.ctx.Err() == nil {
				s.log.Warn("finding who stops a removed workshop's environment; retried later", zap.String("session", name), zap.Error(err))
			}
			return
		case found:
			sp, stopEnv = listed.sp, listed.env
		default:
			s.log.Warn("the environment of a removed workshop's session is not listed by any configured spawner: "+
				"nothing left to stop it with; the session is ended, stop its environment by hand if it still runs",
				zap.String("session", name), zap.String("environment", sess.Environment), zap.String("addr", env.Addr))
		}
	}
	if sp != nil {
		if err := sp.Stop(ctx, stopEnv); err != nil {
			if s.ctx.Err() == nil {
				s.log.Warn("stopping an environment failed; retried later", zap.String("session", name), zap.Error(err))
			}
			return
		}
	}
	err = s.update(s.ctx, func(t *txState) error {
		sess, err := t.session(name)
		if err != nil || sess == nil || sess.Env == nil || sess.Env.Addr != env.Addr || sess.State == lifecycle.Stopped {
			return err
		}
		sess.Env = nil
		_, reason := sess.deadlines(t.now)
		return t.finalize(sess, reason)
	})
	s.cache.drop(name)
	if err != nil && s.ctx.Err() == nil {
		s.log.Warn("finalizing a stopped environment's session", zap.String("session", name), zap.Error(err))
	}
}

// listing is an environment as a spawner lists it.
type listing struct {
	sp  spawner.Spawner
	env spawner.Env
}

// listAll lists the environments of every configured spawner, by
// environment (workshop); a spawner that could not be listed is missing
// from the map and its error joined into the returned one.
func (s *Service) listAll(ctx context.Context) (map[string][]spawner.Env, error) {
	listed := map[string][]spawner.Env{}
	var errs error
	for _, e := range s.envs {
		sp := s.spawnerOf(e)
		if sp == nil {
			continue
		}
		l, err := sp.List(ctx)
		if err != nil {
			errs = errors.Join(errs, fmt.Errorf("listing %s: %w", e.Name, err))
			continue
		}
		listed[e.Name] = l
	}
	return listed, errs
}

// listedBy finds the configured spawner that lists session's environment.
// An error (a backend that could not be listed) means it may be there.
func (s *Service) listedBy(ctx context.Context, session string) (listing, bool, error) {
	listed, errs := s.listAll(ctx)
	for _, e := range s.envs {
		for _, env := range listed[e.Name] {
			if env.Session == session {
				return listing{s.spawnerOf(e), env}, true, nil
			}
		}
	}
	return listing{}, false, errs
}

// stopStrays stops environments no live session holds, maxStops at a
// time: after an outage that outlasted a class, every environment of it
// is one, and stopping them one after another held up the portal's start
// for a minute at a few hundred.
func (s *Service) stopStrays(ctx context.Context, env string, sp spawner.Spawner, strays []spawner.Env) {
	eachAtMost(maxStops, strays, func(stray spawner.Env) {
		s.log.Info("stopping an environment no live session holds", zap.String("environment", env), zap.String("session", stray.Session))
		if err := sp.Stop(ctx, stray); err != nil {
			s.log.Warn("stopping a stray environment", zap.String("session", stray.Session), zap.Error(err))
		}
	})
}

// eachAtMost calls fn for every item, at most limit at a time, and
// returns when all calls have returned.
func eachAtMost[T any](limit int, items []T, fn func(T)) {
	var wg sync.WaitGroup
	sem := make(chan struct{}, limit)
	for _, it := range items {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			fn(it)
		}()
	}
	wg.Wait()
}

// recoverEnvironments is the reconciliation at start-up, before any start
// or stop runs: every spawner lists what it finds; environments of live
// sessions this replica owns that are still alive are adopted, every other
// one of this portal is stopped; this replica's sessions are settled
// (start-interrupted, environment-lost, stops and starts queued again).
// Sessions another replica owns are left to it.
func (s *Service) recoverEnvironments(ctx context.Context) error {
	if !slices.ContainsFunc(s.envs, s.Spawned) {
		// Nothing to list, adopt or settle: every step below is per
		// spawner. The scan of every live session would be read for
		// nothing (5,000 records at start-up with 100,000 stored).
		return nil
	}
	listed, err := s.listAll(ctx)
	if err != nil {
		// Without a spawner's list nothing of it can be told a stray;
		// sessions are still settled from their records below.
		s.log.Warn("listing environments", zap.Error(err))
	}
	// Read after every List: an environment listed was recorded, or
	// claimed, before. Workshops may share a backend (process spawners on
	// one directory, which is Caddy's default; container spawners on one
	// engine), and then each one's List finds the others' environments
	// too: those of another environment's live session are that
	// environment's to judge, never strays of this one (each pass used to
	// stop the other's).
	liveOf := map[string]map[string]*Session{} // by environment
	envOf := map[string]string{}               // live session -> its environment
	err = s.st.View(ctx, func(tx store.Txn) error {
		for _, e := range s.envs {
			live, err := s.viewState(tx).scanLive(e.Name)
			if err != nil {
				return err
			}
			liveOf[e.Name] = live
			for name := range live {
				envOf[name] = e.Name
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	s.warnForeignOwners(liveOf)
	for _, e := range s.envs {
		sp := s.spawnerOf(e)
		if sp == nil {
			continue
		}
		live := liveOf[e.Name]
		var owned []*Session
		for _, sess := range live {
			if sess.Env != nil && sess.EnvOwner == s.replica {
				owned = append(owned, sess)
			}
		}
		lost := s.lostEnvironments(ctx, owned)
		var strays []spawner.Env
		for _, env := range listed[e.Name] {
			if other, ok := envOf[env.Session]; ok && other != e.Name {
				continue
			}
			sess := live[env.Session]
			if s.opts.Overlap && sess != nil && sess.Spawning && sess.Env == nil {
				continue // being started by the other Service of this process
			}
			if _, gone := lost[env.Session]; sess != nil && sess.Env != nil && sess.Env.Addr == env.Addr && !gone {
				continue // adopted, another replica's to judge, or its backend cannot tell now
			}
			strays = append(strays, env)
		}
		s.stopStrays(ctx, e.Name, sp, strays)
		err = s.update(ctx, func(t *txState) error {
			m, err := t.env(e.Name)
			if err != nil {
				return err
			}
			for _, sess := range sortedSessions(m) {
				if sess.EnvOwner != s.replica {
					continue
				}
				why, gone := lost[sess.Name]
				switch {
				case sess.Env != nil && gone:
					// Gone while the portal was down: ended with a reason,
					// and Stop removes whatever is left of it.
					if err := t.lose(sess, why); err != nil {
						return err
					}
				case sess.Env == nil && sess.Spawning && s.opts.Overlap:
					// Claimed by the other Service of this process, maybe
					// under way: given back if it is abandoned.
				case sess.Env == nil && sess.Spawning:
					// A start was cut short: what it made was stopped above.
					sess.Spawning = false
					if sess.State != lifecycle.Stopping {
						sess.Reason = ReasonStartInterrupted
					}
					sess.Progress = &spawner.Progress{Step: StepFailed, Message: "the portal restarted while the environment started"}
					if err := t.finalize(sess, ReasonStartInterrupted); err != nil {
						return err
					}
				case sess.State == lifecycle.Starting:
					// Still queued (nothing was started, so it keeps its
					// turn), or started and adopted but not yet ready.
					t.starts = append(t.starts, sess.Name)
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// aliveTimeout bounds one round of Alive calls, each and all together, so
// a backend that hangs delays a reconcile pass by that much at most: one
// that does not answer in time cannot tell, and is asked again next pass.
const aliveTimeout = 5 * time.Second

// maxAliveChecks bounds concurrent Alive calls, so a pass over a full class
// does not send the backend hundreds of requests at once.
const maxAliveChecks = 8

// lostEnvironments asks the spawners whether the environments of list still
// run, outside any transaction, and returns why each one that is gone is
// gone, by session name. An environment whose backend cannot tell now is not
// gone: that is logged, and the next reconcile pass asks again.
func (s *Service) lostEnvironments(ctx context.Context, list []*Session) map[string]string {
	ctx, cancel := context.WithTimeout(ctx, aliveTimeout)
	defer cancel()
	lost := map[string]string{}
	var mu sync.Mutex
	var unsure []error
	eachAtMost(maxAliveChecks, list, func(sess *Session) {
		sp := s.spawnerOf(s.byEnv[sess.Environment])
		if sp == nil || sess.Env == nil {
			return
		}
		err := askAlive(ctx, sp, *sess.Env)
		mu.Lock()
		defer mu.Unlock()
		switch {
		case errors.Is(err, spawner.ErrGone):
			lost[sess.Name] = err.Error()
		case err != nil:
			unsure = append(unsure, err)
		}
	})
	if len(unsure) > 0 && ctx.Err() == nil {
		// One line per pass, not one per session: an unreachable backend
		// answers the same for all of them.
		s.log.Warn("cannot tell whether environments still run: their sessions are kept and asked about again later",
			zap.Int("environments", len(unsure)), zap.Error(unsure[0]))
	}
	return lost
}

// askAlive is one Alive call; a backend that panics cannot tell.
func askAlive(ctx context.Context, sp spawner.Spawner, env spawner.Env) (err error) {
	defer func() {
		if v := recover(); v != nil {
			err = fmt.Errorf("the spawner panicked: %v", v)
		}
	}()
	return sp.Alive(ctx, env)
}

// retireLost ends the sessions whose environment died while they wait or
// run (a dashboard that crashed, a container the engine stopped), instead of
// leaving them to the next restart: environment-lost, with the spawner's
// words for why on the learner's page. Only this replica's environments are
// asked about; a session a start worker holds is left to it (its probes see
// an environment that dies while it starts), and so is one already ending.
func (s *Service) retireLost(ctx context.Context) error {
	if len(s.opts.Spawners) == 0 {
		return nil
	}
	var check []*Session
	err := s.st.View(ctx, func(tx store.Txn) error {
		t := s.viewState(tx)
		for _, e := range s.envs {
			if s.spawnerOf(e) == nil {
				continue
			}
			m, err := t.env(e.Name)
			if err != nil {
				return err
			}
			for _, sess := range sortedSessions(m) {
				st, _ := sess.Effective(t.now)
				if sess.Env != nil && sess.EnvOwner == s.replica && st != lifecycle.Stopping && !s.startQ.has(sess.Name) {
					check = append(check, sess)
				}
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	lost := s.lostEnvironments(ctx, check)
	s.rewarm(check, lost)
	if len(lost) == 0 {
		return nil
	}
	var ended []string
	err = s.update(ctx, func(t *txState) error {
		ended = ended[:0]
		for _, was := range check {
			why, gone := lost[was.Name]
			if !gone {
				continue
			}
			sess, err := t.session(was.Name)
			if err != nil {
				return err
			}
			// It may have ended meanwhile, its environment stopped by its
			// own end: only the environment found gone ends it.
			if sess == nil || sess.Env == nil || sess.Env.Addr != was.Env.Addr || !bytes.Equal(sess.Env.State, was.Env.State) {
				continue
			}
			if st, _ := sess.Effective(t.now); st == lifecycle.Stopping || st == lifecycle.Stopped {
				continue
			}
			if err := t.lose(sess, why); err != nil {
				return err
			}
			ended = append(ended, sess.Name)
		}
		return nil
	})
	for name := range lost {
		s.cache.drop(name)
	}
	if err != nil {
		return err
	}
	for _, name := range ended {
		s.log.Warn("environment lost: its session ends", zap.String("session", name), zap.String("why", lost[name]))
	}
	return nil
}

// lose ends a session whose environment is gone: environment-lost, with why
// as its progress (what the learner's page and the progress route show),
// retired so that whatever is left of the environment is stopped before the
// session's place is free.
func (t *txState) lose(sess *Session, why string) error {
	if sess.State != lifecycle.Stopping {
		sess.Reason = ReasonEnvironmentLost
		sess.Progress = &spawner.Progress{Step: StepFailed, Message: why}
	}
	return t.retire(sess, ReasonEnvironmentLost)
}

// abandonedClaimGrace is added to the longest a start may take before a
// claim no worker of this service holds counts as abandoned.
const abandonedClaimGrace = time.Minute

// requeueStarts gives this replica's STARTING sessions of e that no worker
// of this service holds back to the start queue: a claim whose worker is
// gone (a config reload's old service was closed mid-start, after this
// service's start-up reconciliation ran) once it is older than any start
// may take, and unclaimed ones (an adopted environment still to become
// ready, or a start released). Without it such a session would hold its
// place, STARTING, until the next restart.
func (s *Service) requeueStarts(t *txState, e *Environment, sp spawner.Spawner, sess *Session) error {
	if sess.State != lifecycle.Starting || sess.EnvOwner != s.replica || s.startQ.has(sess.Name) {
		return nil
	}
	if st, _ := sess.Effective(t.now); st != lifecycle.Starting {
		return nil
	}
	if sess.Spawning {
		if t.now.Sub(sess.SpawningSince) < sp.ReadyTimeout()+e.Overdue+abandonedClaimGrace {
			return nil
		}
		s.log.Warn("giving back a start no worker holds", zap.String("session", sess.Name))
		sess.Spawning = false
		if sess.Env == nil {
			// It waits for a start again; one that recorded its
			// environment waits for the dashboard, as it said.
			sess.Progress = queued()
		}
		if err := t.put(sess); err != nil {
			return err
		}
	}
	t.starts = append(t.starts, sess.Name)
	return nil
}

// beatTimeout is how long a replica may go without beginning a reconcile
// pass (every 5 s by default) before the others take over the starts
// still queued on it.
const beatTimeout = 30 * time.Second

// beatTTL is how long a replica's beat is kept once it stopped.
const beatTTL = 24 * time.Hour

// beat records, on a store replicas share, that this replica is running
// its passes (p/<replica>). A failure is left to the next pass: a replica
// that cannot write cannot start anything either.
func (s *Service) beat(ctx context.Context) {
	if !s.shared {
		return
	}
	now := s.now()
	err := s.st.Update(store.Volatile(ctx), func(tx store.Txn) error {
		return tx.SetExpiring(keyBeat(s.replica), []byte(strconv.FormatInt(now.UnixNano(), 10)), now.Add(beatTTL))
	})
	if err != nil && ctx.Err() == nil {
		s.log.Warn("recording this replica's beat", zap.Error(err))
	}
}

// takeOverStart makes this replica the owner of sess, a session of another
// replica still starting, once that replica has not beaten for beatTimeout
// (or ever, within beatTTL): stopped or cut off, it will not finish the
// start, and its learner would wait until it returns. What it had begun
// (an environment not ready yet, on its machine) is forgotten: nobody uses
// it, and its owner's next start-up stops it as a stray. Should the owner
// still be working after all, its writes find the session owned by another
// replica and leave it.
func (s *Service) takeOverStart(t *txState, sess *Session) error {
	if !s.shared || sess.State != lifecycle.Starting || sess.EnvOwner == "" || sess.EnvOwner == s.replica {
		return nil
	}
	if st, _ := sess.Effective(t.now); st != lifecycle.Starting {
		return nil
	}
	if alive, err := t.beating(sess.EnvOwner); err != nil || alive {
		return err
	}
	s.log.Warn("taking over the start of a session whose replica has stopped",
		zap.String("session", sess.Name), zap.String("replica", sess.EnvOwner))
	return t.restartHere(sess)
}

// restartHere makes this replica the owner of sess, a STARTING session of
// another replica, and queues its start afresh.
func (t *txState) restartHere(sess *Session) error {
	sess.EnvOwner, sess.EnvNetwork = t.s.replica, t.s.opts.Network
	sess.Spawning, sess.SpawningSince = false, time.Time{}
	sess.Env, sess.Upstream = nil, ""
	sess.Progress = queued()
	if err := t.put(sess); err != nil {
		return err
	}
	t.starts = append(t.starts, sess.Name)
	return nil
}

// dropStrandedReserve ends a reserve whose environment belongs to a
// replica that has stopped beating: it lives on that replica's machine,
// which nobody else can check or reach, and would be handed to the next
// learner. It ends at once (the place is free for this replica's own
// reserve); the stopped replica, should it return, finds its environment
// without a live session and stops it as a stray.
func (s *Service) dropStrandedReserve(t *txState, sess *Session) error {
	if !s.shared || !sess.Reserved() || sess.Env == nil || sess.EnvOwner == s.replica || sess.EnvOwner == "" || sess.State.Ending() {
		return nil
	}
	if alive, err := t.beating(sess.EnvOwner); err != nil || alive || !t.spend() {
		return err
	}
	s.log.Warn("ending a reserve whose replica has stopped", zap.String("session", sess.Name), zap.String("replica", sess.EnvOwner))
	return t.abandon(sess, "the portal replica that started it ("+sess.EnvOwner+") has stopped")
}

// abandon ends sess at once without stopping its environment, which lives
// where this replica cannot reach it (on a replica that stopped or is
// gone), so its place is free now; its owner, should it return, finds the
// environment without a live session and stops it as a stray. A session
// that had already ended keeps its reason; any other ends
// environment-lost, with why as its progress.
func (t *txState) abandon(sess *Session, why string) error {
	st, reason := sess.Effective(t.now)
	sess.Env, sess.Spawning = nil, false
	if !st.Ending() {
		reason = ReasonEnvironmentLost
		sess.Reason = reason
		sess.Progress = &spawner.Progress{Step: StepFailed, Message: why}
	}
	return t.finalize(sess, reason)
}

// beating reports whether replica has begun a reconcile pass within
// beatTimeout of this transaction's time, read once per transaction.
func (t *txState) beating(replica string) (bool, error) {
	if alive, ok := t.beats[replica]; ok {
		return alive, nil
	}
	v, err := t.tx.Get(keyBeat(replica))
	alive := false
	switch {
	case err == nil:
		_, alive = beatAt(v, t.now)
	case !errors.Is(err, store.ErrNotFound):
		return false, err
	}
	if t.beats == nil {
		t.beats = map[string]bool{}
	}
	t.beats[replica] = alive
	return alive, nil
}

// beatAt reads a replica's beat: when it began its last pass, and whether
// that was within beatTimeout of now. A value that does not parse counts
// as alive: no replica's starts are taken over, nor its sessions listed as
// stranded, on a record nobody can read.
func beatAt(v []byte, now time.Time) (at time.Time, alive bool) {
	ns, err := strconv.ParseInt(string(v), 10, 64)
	if err != nil {
		return time.Time{}, true
	}
	at = time.Unix(0, ns)
	return at, now.Sub(at) < beatTimeout
}

// Dialable reports whether this replica may dial sess's upstream. An
// environment that listens on a loopback address (the process spawner's
// default bind) is reachable only in the network its owner recorded: from
// another machine, or another network namespace, the same address and
// port is that replica's own socket, another learner's dashboard or
// nothing. The owner itself dials what its spawner keeps (a container that
// outlived a reboot of its machine has a new boot's network), and records
// from before the network was recorded are dialled as they were.
func (s *Service) Dialable(sess *Session) bool {
	if sess.EnvNetwork == "" || sess.EnvNetwork == s.opts.Network || sess.EnvOwner == s.replica {
		return true
	}
	host, _, err := net.SplitHostPort(sess.Upstream)
	if err != nil {
		host = sess.Upstream
	}
	if strings.EqualFold(host, "localhost") {
		return false
	}
	ip := net.ParseIP(host)
	return ip == nil || !ip.IsLoopback() && !ip.IsUnspecified()
}

// warnForeignOwners says at start-up which live sessions another replica
// owns when no other process can use this store (Badger): that replica is
// this portal under a former `replica` name, and until it runs under that
// name again nothing checks, stops or frees their environments.
func (s *Service) warnForeignOwners(liveOf map[string]map[string]*Session) {
	if s.shared {
		return
	}
	count := map[string]int{}
	for _, live := range liveOf {
		for _, sess := range live {
			if sess.EnvOwner != "" && sess.EnvOwner != s.replica {
				count[sess.EnvOwner]++
			}
		}
	}
	for _, owner := range slices.Sorted(maps.Keys(count)) {
		s.log.Error("live sessions belong to another replica name, which on this store can only be this portal's "+
			"former one: their environments are not checked or stopped and their places are not freed until the "+
			"portal runs as that replica again (`replica "+owner+"` in the portal block), or they are released "+
			"(the admin overview's Release…, or POST /portal/"+s.cfg.Name+"/replicas/"+owner+"/release/ on the admin API)",
			zap.String("replica", owner), zap.Int("sessions", count[owner]), zap.String("this_replica", s.replica))
	}
}
