package sessions

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/caddyportal/caddyportal/caddyportal/config"
	"github.com/caddyportal/caddyportal/caddyportal/lifecycle"
	"github.com/caddyportal/caddyportal/caddyportal/spawner"
	"github.com/caddyportal/caddyportal/caddyportal/store"
	"github.com/caddyportal/caddyportal/caddyportal/tokens"
	"github.com/caddyportal/caddyportal/internal/procfs"
)

// Options tune a Service. The zero value is usable.
type Options struct {
	// Now is the clock; default time.Now. Tests inject their own.
	Now func() time.Time
	// StopGrace is how long a terminated session stays STOPPING (its slot
	// held, its dashboard refused) before it is STOPPED. Default 2s.
	StopGrace time.Duration
	// YieldQuiet is how long no learner must have requested or activated
	// a session before a reserve of the warm pool starts (at most 2s, or
	// twice YieldQuiet, of waiting). Default: 200ms. Wall time, not Now:
	// it orders work on this machine.
	YieldQuiet time.Duration
	// ReconcileInterval is the period of the background pass that tops up
	// reserves, makes passed deadlines durable, and ends the sessions whose
	// spawned environment died. Default 5s.
	ReconcileInterval time.Duration
	// MaxBatch bounds how many session requests share one transaction.
	// Default 256.
	MaxBatch int
	// Logger receives state changes; default no-op.
	Logger *zap.Logger
	// OnEvent is called after each committed state change, in commit order.
	// It must not block.
	OnEvent func(Event)
	// Healthy reports whether a dashboard upstream may be handed out (its
	// last health probe did not fail). Allocation skips pool slots and
	// retires reserves whose upstream is not healthy. It is called inside
	// transactions, so it must answer at once. Nil: every upstream is.
	Healthy func(upstream string) bool
	// OnEnd is called with the name of a session that stopped being live:
	// made STOPPING by Terminate (after the commit), or found STOPPED by a
	// transaction — before that transaction can hand the session's slot to
	// another session, so the gate can close the session's streams first.
	// It may be called more than once for a session, and for a transaction
	// that is then retried; it must not block.
	OnEnd func(session string)
	// OnChange is called with the name of a session another writer may have
	// changed, as the store's watch reports it ("" when changes may have
	// been missed: any session may have changed). It must not block.
	OnChange func(session string)
	// OnRequestFailed is told about every session request the service
	// refused or failed, whoever made it (REST API, pages, anonymous start
	// link), so allocation metrics have one source. It must not block.
	OnRequestFailed func(env string, err error)

	// Spawners start the environments of the workshops that have one, by
	// workshop name. A workshop without one keeps its static pool or
	// template.
	Spawners map[string]spawner.Spawner
	// Replica names this process among the replicas sharing the store: it
	// owns the environments it starts, and only it stops and reconciles
	// them. Default: the portal's `replica` (config.Portal.Replica).
	Replica string
	// Network names the network this process dials in, recorded with the
	// environments it starts (Session.EnvNetwork). Default:
	// procfs.NetworkID(), this machine's boot and network namespace.
	Network string
	// Overlap says another Service of this process works on the same store
	// (the old config while a reload brings up the new one): starts it has
	// claimed may be under way, so the reconciliation at New leaves them
	// and their environments alone instead of ending them as interrupted
	// (a claim nobody finishes is given back later, as any abandoned one).
	Overlap bool
	// Starts bounds how many environments this process starts at once;
	// the others wait in FIFO order. Default: the portal's `starts`.
	Starts int
	// OnStart is told how each start attempt ended (for metrics). It must
	// not block.
	OnStart func(StartResult)
	// OnReserveReady is told the dashboard of a reserve that passed its
	// readiness probe and waits for a learner: its dial address and the
	// path the probe GETs ("/" when the spawner does not say). It is told
	// again every RewarmEvery while the reserve waits (this replica's
	// reserves, at reconcile passes). It must not block.
	OnReserveReady func(addr, path string)
	// RewarmEvery is how often a waiting reserve is reported again.
	// Default 90s: Caddy's reverse proxy closes a connection idle for 2
	// minutes, and a pool is often filled long before its class comes.
	// Wall time, not Now.
	RewarmEvery time.Duration
}

// Event names, as the Educates training portal sends them in analytics
// webhooks (reference §5.5); the prefixes tell user and environment events
// from session events.
const (
	EventUserCreate       = "User/Create"
	EventSessionCreated   = "Session/Created"
	EventSessionPending   = "Session/Pending"
	EventSessionStarted   = "Session/Started"
	EventSessionExtended  = "Session/Extended"
	EventSessionTerminate = "Session/Terminate"
	EventSessionStopping  = "Session/Stopping"
	EventSessionExpired   = "Session/Expired"
	EventSessionOrphaned  = "Session/Orphaned"
	EventSessionDeleted   = "Session/Deleted"
	// EventSessionStaffAccess: a staff member opened the learner's
	// dashboard (data: staff, client, until).
	EventSessionStaffAccess = "Session/StaffAccess"

	EventUserPrefix        = "User/"
	EventEnvironmentPrefix = "Environment/"
	// EventSessionPrefix starts the names of the session events above.
	EventSessionPrefix = "Session/"
)

// Event is a committed state change, named as Educates analytics events.
type Event struct {
	Name        string
	Time        time.Time
	User        string
	Session     string
	Environment string
	Workshop    string
	Data        map[string]any
	// AnalyticsURL is the session's own analytics webhook (the request's
	// analytics_url), empty for none and for user and environment events:
	// the webhook dispatcher sends the event there too.
	AnalyticsURL string
}

// Environment is a workshop environment as the service runs it.
type Environment struct {
	config.Environment
	// State is RUNNING for configured workshops, STOPPING for removed ones
	// that still have sessions, STOPPED afterwards.
	State string
	// Number orders environments by creation.
	Number int
	// Policy holds the expiry maths parameters.
	Policy lifecycle.Policy
	// Lazy is true until the environment has had reserves created: with
	// initial 0 no reserve exists before the first request.
	Lazy bool
}

// Service allocates sessions and runs their lifecycle on a store.
type Service struct {
	st    store.Store
	cfg   config.Portal
	opts  Options
	now   func() time.Time
	log   *zap.Logger
	envs  []*Environment // ordered by Number
	byEnv map[string]*Environment

	cache gateCache
	// batchCap, when set, is the largest allocation batch the store has
	// accepted after refusing a larger one.
	batchCap atomic.Int64
	// finalizeCap is how many passed deadlines one transaction makes
	// durable (see txState.spend); it halves when the store refuses a
	// transaction as too large.
	finalizeCap atomic.Int64
	// reconciles counts Reconcile calls (see fullReconcileEvery).
	reconciles atomic.Int64
	// shared says other processes use the store too (it is a
	// store.Watcher): their streams of a session are closed only once the
	// watch tells them, so slots are held briefly after a stop (keyQuiet).
	shared bool
	// current proves how up to date the watch of a shared store is; nil
	// when the store cannot (see CurrentAsOf).
	current store.Current

	reqs   chan *allocReq
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	mu     sync.Mutex // guards Lazy flags and backoff

	// replica is Options.Replica with its default.
	replica string
	// startQ and stopQ run the spawners (see spawn.go).
	startQ, stopQ workQueue
	// learnersAt is when a learner last requested or activated a session
	// (unix nanoseconds): refills of the warm pool yield to a class that
	// is arriving (see yieldToLearners).
	learnersAt atomic.Int64
	// backoff holds, by environment, when its reserves may be started
	// again after a failed one.
	backoff map[string]backoffState
	// linkKey derives activation tokens from a session's link seed (see
	// linkToken); it comes from the portal's stored secret, so every
	// replica derives the same links.
	linkKey []byte
	// warmed is when each waiting reserve was last reported to
	// OnReserveReady, under warmMu.
	warmMu sync.Mutex
	warmed map[string]time.Time
}

// New syncs the configured workshops with the stored environments and
// starts the service's background work. Close stops it.
func New(ctx context.Context, st store.Store, cfg config.Portal, opts Options) (*Service, error) {
	cfg = cfg.WithDefaults()
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.StopGrace <= 0 {
		opts.StopGrace = 2 * time.Second
	}
	if opts.ReconcileInterval <= 0 {
		opts.ReconcileInterval = 5 * time.Second
	}
	if opts.RewarmEvery <= 0 {
		opts.RewarmEvery = 90 * time.Second
	}
	if opts.MaxBatch <= 0 {
		opts.MaxBatch = 256
	}
	if opts.Logger == nil {
		opts.Logger = zap.NewNop()
	}
	// The service's store speaks its error vocabulary; the Watcher
	// interface is looked for on the store behind any wrapper.
	if opts.Replica == "" {
		opts.Replica = cfg.Replica
	}
	if opts.Starts <= 0 {
		opts.Starts = max(cfg.Starts, 1)
	}
	if opts.Network == "" {
		opts.Network = procfs.NetworkID()
	}
	st = unwrapStore(st)
	s := &Service{st: WrapStore(st), cfg: cfg, opts: opts, now: opts.Now, log: opts.Logger, byEnv: map[string]*Environment{},
		replica: opts.Replica, backoff: map[string]backoffState{}}
	s.startQ.limit, s.stopQ.limit = opts.Starts, maxStops
	s.finalizeCap.Store(defaultFinalizeCap)
	_, s.shared = st.(store.Watcher)
	s.current, _ = st.(store.Current)
	// The workers' context exists before the first transaction, which may
	// queue starts (initial reserves); the queues stay closed until the
	// reconciliation below has run.
	s.ctx, s.cancel = context.WithCancel(context.Background())
	if err := s.syncEnvironments(ctx); err != nil {
		s.cancel()
		return nil, err
	}
	secret, err := s.Secret(ctx)
	if err != nil {
		s.cancel()
		return nil, fmt.Errorf("reading secret: %w", err)
	}
	s.linkKey = tokens.DeriveKey(secret, "activation-links")
	if err := s.recoverEnvironments(ctx); err != nil {
		s.cancel()
		return nil, fmt.Errorf("reconciling environments: %w", err)
	}
	if err := s.topUpKnown(ctx); err != nil {
		// Not worth failing the start-up for: the reconcile passes top up
		// too (replicas starting together on etcd can conflict here).
		s.log.Warn("topping up reserves at start-up; the next reconcile pass will", zap.Error(err))
	}
	s.startQ.setOpen(true)
	s.stopQ.setOpen(true)
	s.pump(&s.stopQ, s.stopOne)
	s.pump(&s.startQ, s.startOne)
	s.reqs = make(chan *allocReq, 4096)
	s.wg.Add(2)
	go s.allocLoop()
	go s.reconcileLoop()
	if w, ok := st.(store.Watcher); ok {
		// Other replicas change sessions too: drop their cached copies at
		// once instead of serving them for up to gateCacheTTL.
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			w.Watch(s.ctx, keySession(""), func(key string) {
				name := strings.TrimPrefix(key, keySession(""))
				if key == "" {
					s.cache.clear()
				} else {
					s.cache.drop(name)
				}
				if s.opts.OnChange != nil {
					s.opts.OnChange(name)
				}
			})
		}()
	}
	return s, nil
}

// defaultFinalizeCap keeps a transaction that makes stops durable well
// inside Badger's transaction size limit (which a wave of about 5,000
// sessions expiring together exceeded).
const defaultFinalizeCap = 500

// shrinkFinalize halves the finalization budget after the store refused a
// transaction as too large; false when it cannot shrink further.
func (s *Service) shrinkFinalize() bool {
	for {
		c := s.finalizeCap.Load()
		if c <= 1 {
			return false
		}
		if s.finalizeCap.CompareAndSwap(c, c/2) {
			s.log.Debug("store refused a large transaction; finalizing fewer sessions per transaction", zap.Int64("cap", c/2))
			return true
		}
	}
}

// Close stops background work. Requests already queued are answered with
// ErrClosed.
func (s *Service) Close() {
	s.cancel()
	// No worker is added once the queues are closed (see pump).
	s.startQ.setOpen(false)
	s.stopQ.setOpen(false)
	s.wg.Wait()
}

// Config returns the portal configuration with defaults applied.
func (s *Service) Config() config.Portal { return s.cfg }

// Now returns the service clock's current time.
func (s *Service) Now() time.Time { return s.now() }

// Current reports whether this process can prove that it has heard of
// every change other processes made to the store within half the stopping
// grace (the store's store.Current): the bound within which a replica must
// close requests to a dashboard another replica may hand on after that
// grace. asOf is the instant it can prove, on this process's clock. shared
// is false for a store only this process writes, which needs no proof.
func (s *Service) Current() (current bool, asOf time.Time, shared bool) {
	if s.current == nil {
		return true, time.Time{}, false
	}
	asOf = s.current.CurrentAsOf()
	return time.Since(asOf) <= s.opts.StopGrace/2, asOf, true
}

// StopGrace is how long a stopped session keeps its dashboard slot on a
// shared store before another session may get it (Options.StopGrace).
func (s *Service) StopGrace() time.Duration { return s.opts.StopGrace }

// Environments returns every known environment in creation order.
func (s *Service) Environments() []*Environment { return s.envs }

// Environment returns one environment by name, or nil.
func (s *Service) Environment(name string) *Environment { return s.byEnv[name] }

// syncEnvironments maps each configured workshop to its stored environment
// (by workshop name), creates environments for new workshops, and marks
// environments of removed workshops STOPPING.
func (s *Service) syncEnvironments(ctx context.Context) error {
	resolved := s.cfg.Environments()
	var envs []*Environment
	var created []*Environment
	err := s.st.Update(ctx, func(tx store.Txn) error {
		envs, created = nil, nil
		stored := map[string]*envRecord{} // by workshop, RUNNING only
		var all []*envRecord
		maxNum := 0
		prefix := s.cfg.Name + "-w"
		err := tx.Scan(prefixEnv, func(_ string, v []byte) error {
			var r envRecord
			if err := unmarshal(v, &r); err != nil {
				return nil // a corrupt record must not stop the portal
			}
			if !strings.HasPrefix(r.Name, prefix) {
				return nil
			}
			all = append(all, &r)
			maxNum = max(maxNum, r.Number)
			if r.State == EnvRunning {
				stored[r.Workshop] = &r
			}
			return nil
		})
		if err != nil {
			return err
		}
		now := s.now()
		inConfig := map[string]bool{}
		for _, re := range resolved {
			inConfig[re.Workshop.Name] = true
			rec := stored[re.Workshop.Name]
			fresh := rec == nil
			if fresh {
				maxNum++
				rec = &envRecord{Name: fmt.Sprintf("%s%02d", prefix, maxNum), Workshop: re.Workshop.Name, Number: maxNum, State: EnvRunning, Created: now}
				if err := tx.Set(keyEnv(rec.Name), marshal(rec)); err != nil {
					return err
				}
				all = append(all, rec)
			}
			re.Name = rec.Name
			// With initial 0 an environment stays without reserves until its
			// first request. Whether that request came is stored (it
			// created sessions), so a restart does not make an environment
			// in use lazy again.
			lazy := re.Initial == 0
			if lazy && !fresh {
				seq, err := tx.Get(keySeq(rec.Name))
				if err != nil && !errors.Is(err, store.ErrNotFound) {
					return err
				}
				lazy = parseInt(seq) == 0
			}
			e := &Environment{Environment: re, State: EnvRunning, Number: rec.Number, Lazy: lazy,
				Policy: lifecycle.Policy{Expires: re.Expires, Overtime: re.Overtime, Deadline: re.Deadline}}
			envs = append(envs, e)
			if fresh {
				created = append(created, e)
			}
		}
		for _, r := range all {
			if inConfig[r.Workshop] && r.State == EnvRunning || r.State == EnvStopped {
				continue
			}
			if r.State == EnvRunning {
				r.State = EnvStopping
				if err := tx.Set(keyEnv(r.Name), marshal(r)); err != nil {
					return err
				}
			}
			envs = append(envs, &Environment{Environment: config.Environment{Name: r.Name, Workshop: config.Workshop{Name: r.Workshop}}, State: r.State, Number: r.Number, Lazy: true})
		}
		if err := markIndexes(tx, now); err != nil {
			return err
		}
		if _, err := tx.Get(keySecret); errors.Is(err, store.ErrNotFound) {
			secret := make([]byte, 32)
			if _, err := rand.Read(secret); err != nil {
				return err
			}
			return tx.Set(keySecret, secret)
		} else if err != nil {
			return err
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("loading environments: %w", err)
	}
	sort.Slice(envs, func(i, j int) bool { return envs[i].Number < envs[j].Number })
	s.envs = envs
	for _, e := range envs {
		s.byEnv[e.Name] = e
	}
	// Initial reserves for environments seen for the first time.
	for _, e := range created {
		if e.Initial > 0 {
			if err := s.createInitial(ctx, e); err != nil {
				return err
			}
		}
	}
	return nil
}

// Secret returns the portal's persistent random secret, from which cookie
// and ticket signing keys are derived. It is shared by all replicas.
func (s *Service) Secret(ctx context.Context) ([]byte, error) {
	var secret []byte
	err := s.st.View(ctx, func(tx store.Txn) error {
		v, err := tx.Get(keySecret)
		secret = append([]byte(nil), v...)
		return err
	})
	return secret, err
}

// ended reports a session that stopped being live to OnEnd.
func (s *Service) ended(name string) {
	if s.opts.OnEnd != nil {
		s.opts.OnEnd(name)
	}
}

func (s *Service) emit(events []Event) {
	for _, ev := range events {
		if ev.Session != "" {
			s.cache.drop(ev.Session)
		}
		if ce := s.log.Check(zap.InfoLevel, "session event"); ce != nil {
			ce.Write(zap.String("event", ev.Name), zap.String("session", ev.Session),
				zap.String("user", ev.User), zap.String("environment", ev.Environment))
		}
		if s.opts.OnEvent != nil {
			s.opts.OnEvent(ev)
		}
	}
}

// newUserID returns a random UUIDv4, used when a request names no user.
func newUserID() (string, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16]), nil
}

// sessionName formats `<env>-sNNN`.
func sessionName(env string, n int) string { return env + "-s" + fmt.Sprintf("%03d", n) }

// NameLen is the length of the session name of portal that s begins with,
// `<portal>-w<digits>-s<digits>` (environments are `<portal>-wNN`, see
// config; sessions sessionName), or 0. The gate tells a session's host
// names from its ingress hosts' by it.
func NameLen(portal, s string) int {
	rest, ok := strings.CutPrefix(s, portal+"-w")
	if !ok {
		return 0
	}
	env := leadingDigits(rest)
	if env == 0 || !strings.HasPrefix(rest[env:], "-s") {
		return 0
	}
	num := leadingDigits(rest[env+2:])
	if num == 0 {
		return 0
	}
	return len(s) - len(rest) + env + 2 + num
}

// leadingDigits is how many ASCII digits s begins with.
func leadingDigits(s string) int {
	i := 0
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	return i
}

func parseInt(b []byte) int {
	n, _ := strconv.Atoi(string(b))
	return n
}

// healthy reports whether upstream may be handed out (Options.Healthy).
func (s *Service) healthy(upstream string) bool {
	return s.opts.Healthy == nil || s.opts.Healthy(upstream)
}
