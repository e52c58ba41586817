// Package etcdstore implements store.Store on etcd, so that several portal
// replicas can share their state with the same semantics as the embedded
// Badger store (package badgerstore).
//
// # Keys and values
//
// Every key is stored under Options.Prefix. Values carry the same one-byte
// header as in badgerstore, so that an expiry instant travels with the value:
//
//	0x00 <value>                          plain value, never expires
//	0x01 <8-byte big-endian int64> <value> expires at that Unix time in nanoseconds
//
// Get and Scan hide a value whose expiry instant is at or before Options.Now,
// so expiry is exact to the nanosecond. etcd leases are not used for this:
// they have one-second granularity and run on the etcd leader's clock.
//
// Keys starting with "~" belong to this package: callers cannot write them,
// Get reports them missing, Scan and Watch never show them. The schema is:
//
//	~x/<8-byte expiry><user key>   expiry index entry, empty value
//	~h/<instance>                  this store's heartbeat (heartbeat.go)
//
// where <8-byte expiry> is the Unix nanoseconds as a big-endian uint64 with
// the sign bit flipped, so byte order is time order. SetExpiring adds an
// entry; unlike badgerstore, Set and Delete do not remove an older entry,
// because that would make every blind write read the old value first (and
// join the transaction's compare set). An entry whose key is gone or carries
// another expiry is stale, and the sweeper just drops it when its time comes.
//
// # Mirror
//
// Each Store keeps a local mirror of every user key under the prefix (raw
// encoded values with their ModRevision; the "~" keys are left out): Open
// loads it with paged range reads at one revision R0, and one etcd watch
// from R0+1 applies every later change in revision order; a watch that
// breaks resumes where it stopped, and when etcd has compacted the
// revisions it needs the mirror reloads (and Watch subscribers get "").
// The mirror is an immutable balanced tree replaced on every change, so a
// transaction reads one consistent state without holding any lock. Expiry
// is still decided at read time with Options.Now, from the stored header.
//
// Memory: the mirror holds the whole prefix, about 150 bytes per key on
// top of the key and value (TestMirrorMemory logs about 750 bytes for a
// 600-byte session record), so 10,000 sessions take some 8 MB per replica.
//
// # Heartbeats
//
// Every quarter second each Store writes its own heartbeat key and notes when
// it sent the write; when its mirror's watch brings the write back, every
// change committed before that instant has come through the watch first.
// CurrentAsOf (store.Current) returns the newest such instant, so a replica
// behind a network partition can tell that it no longer hears of the others'
// changes (the gate then closes requests to shared dashboards).
//
// # Transactions
//
// Update is optimistic. fn reads the mirror (Get and Scan; Scan merges
// the transaction's own buffered writes, so it reads its writes), and the
// reads are recorded with the ModRevision they saw (0 for a missing key).
// Writes are committed with one etcd Txn whose If holds, for every key the
// attempt read (by Get, and every key Scan visited), "ModRevision is still
// what the attempt saw". If a compare fails, the store waits until the
// mirror has applied the revision of the failed Txn (briefly: that
// revision may belong to keys outside the prefix) and fn runs again, on
// fresh data; after a few conflicts, a small jittered backoff separates the
// contenders, and an attempt that has conflicted a few times runs alone
// among this store's Updates, so a hot key cannot starve it (other replicas
// still compete). After Options.MaxAttempts conflicts Update returns
// store.ErrConflict. A successful commit is applied to the mirror at once,
// at the commit's revision, and the next Update of this store waits
// (briefly) for the watch to reach that revision, so it neither misses nor
// conflicts with the store's own writes.
//
// Since the mirror may lag etcd by the watch's delivery time, what fn
// decides from it is checked in every case: when fn returns an error after
// reading, or writes nothing, a read-only Txn with the same compares (which
// etcd answers without a log entry) confirms the reads; if they were stale
// fn runs again. So Update is strictly serializable, as before.
//
// etcd rejects a Txn with more than --max-txn-ops compares, or more than
// that many operations (default 128 each; the limit applies to each list,
// not to their sum). Expiring writes take two operations (the key and its
// index entry). When an attempt would exceed Options.MaxTxnOps compares,
// the keys visited only by Scan are not compared one by one; each scanned
// prefix gets one range compare instead, "no key in the range has a
// ModRevision after R", where R is the mirror's revision. If that is still
// too many, keys read with Get are collapsed the same way by key-prefix
// group (the key up to and including its last '/': all "s/..." keys give
// one compare on "s/"), the largest groups first, until the compares fit;
// the other keys (the "alloc" key, user keys) keep their own compares.
// A range compare detects every change to and insertion of a key under the
// prefix, but not a deletion, and it also fails on changes to keys the
// attempt did not read (more conflicts, never fewer checks otherwise). The
// portal does not depend on deletions for conflict detection (capacity
// changes all read and write one "alloc" key, see package sessions).
// Writes cannot be collapsed: an attempt with more operations than the
// limit fails with ErrTxnTooLarge (which wraps store.ErrTooLarge).
//
// View reads etcd's current revision with one linearizable request, waits
// until the mirror has applied it and runs fn on the mirror, so it sees
// every commit that finished before it started, by any replica (a key
// another replica has just created, or changed). When the mirror does not
// get there within a few milliseconds (the watch is slow, or the newest
// revision belongs to keys outside the prefix and brings no event), fn
// reads etcd directly at that revision instead, as before the mirror.
//
// # Errors
//
// Every etcd call is bounded by Options.RequestTimeout. Unreachable etcd,
// timeouts, a lost leader and similar transient conditions are returned
// wrapped so that errors.Is(err, store.ErrUnavailable) holds; the client
// reconnects by itself and the next call succeeds once etcd is back. An
// ErrUnavailable from the commit of an Update means the outcome is unknown:
// the write may or may not have been applied.
//
// # Expiry sweeper
//
// A goroutine owned by the store calls Sweep every Options.SweepInterval.
// Sweep walks the expiry index up to Now and deletes each due key with a Txn
// that compares the key's ModRevision with the one it checked, so several
// replicas can sweep at once: each expired key is deleted exactly once, and
// a key rewritten in the meantime is left alone.
package etcdstore

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"google.golang.org/grpc"
	grpcbackoff "google.golang.org/grpc/backoff"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/caddyportal/caddyportal/caddyportal/store"
	"github.com/caddyportal/caddyportal/caddyportal/store/internal/kvcore"
)

// Defaults of Options.
const (
	DefaultDialTimeout    = 5 * time.Second
	DefaultRequestTimeout = 3 * time.Second
	DefaultSweepInterval  = 30 * time.Second
	DefaultMaxTxnOps      = 128
	DefaultMaxAttempts    = 50
)

// exclusiveAfter is the number of conflicting attempts after which Update
// runs its remaining attempts alone among this store's Updates.
const exclusiveAfter = 4

// ErrTxnTooLarge is returned by Update when an attempt needs more compares
// or more operations than Options.MaxTxnOps, even with range compares for
// its scans. Raise etcd's --max-txn-ops and MaxTxnOps together, or split the
// transaction.
var ErrTxnTooLarge = fmt.Errorf("%w for etcd", store.ErrTooLarge)

// Options configures Open.
type Options struct {
	// Endpoints are the etcd client URLs, for example http://10.0.0.1:2379.
	Endpoints []string
	// Prefix is prepended to every key, so several portals (or other
	// applications) can share one etcd. It should end in a separator, for
	// example "/caddyportal/demo/".
	Prefix string
	// Username and Password authenticate to etcd when Username is set.
	Username string
	Password string
	// TLS is the client TLS configuration. When nil, one is built from
	// CAFile, CertFile and KeyFile if any is set, and an https endpoint
	// without any of them verifies the server against the system roots.
	TLS *tls.Config
	// CAFile is a PEM file of CA certificates that sign etcd's server
	// certificate.
	CAFile string
	// CertFile and KeyFile are the PEM client certificate and key, for etcd
	// configured with --client-cert-auth. They go together.
	CertFile string
	KeyFile  string
	// DialTimeout bounds the first connection and the round trip Open makes
	// to check that etcd answers. Zero means DefaultDialTimeout.
	DialTimeout time.Duration
	// RequestTimeout bounds every etcd call, so that an outage turns into
	// store.ErrUnavailable quickly. Zero means DefaultRequestTimeout.
	RequestTimeout time.Duration
	// Logger receives the sweeper's and watches' errors and the etcd
	// client's errors. Nil discards them.
	Logger *zap.Logger
	// Now is the clock that decides expiry. Nil means time.Now.
	Now func() time.Time
	// SweepInterval is how often expired keys are deleted. Zero means
	// DefaultSweepInterval; negative disables the background sweeper (Sweep
	// can still be called).
	SweepInterval time.Duration
	// MaxTxnOps is the etcd server's --max-txn-ops. Zero means
	// DefaultMaxTxnOps, etcd's default.
	MaxTxnOps int
	// MaxAttempts bounds how often Update runs fn when commits conflict.
	// Zero means DefaultMaxAttempts.
	MaxAttempts int
}

// Store is a store.Store backed by etcd. Its methods are safe for
// concurrent use.
type Store struct {
	cli         *clientv3.Client
	prefix      string
	log         *zap.Logger
	now         func() time.Time
	reqTimeout  time.Duration
	maxTxnOps   int
	maxAttempts int

	// life counts running calls so that Close closes the client only
	// after them; its context ends background loops, watches and in-flight
	// calls when Close begins.
	life *kvcore.Life
	// retry runs Update's attempts; one that keeps conflicting runs alone
	// among this store's Updates.
	retry *kvcore.Retrier

	// mirror serves the reads of transactions.
	mirror *mirror
	// beats proves how current the mirror's watch is (heartbeat.go).
	beats *heartbeats
	// lastCommit is the revision of this store's latest commit; an Update
	// waits until the mirror's watch has caught up with it, so that its
	// range compares do not fail on this store's own writes.
	lastCommit atomic.Int64
}

var _ store.Store = (*Store)(nil)

// Open connects to etcd and checks, within DialTimeout, that it answers a
// read under the prefix; then it loads the mirror (every key under the
// prefix, within DialTimeout) and starts its watch and the background
// sweeper.
func Open(ctx context.Context, opts Options) (*Store, error) {
	if len(opts.Endpoints) == 0 {
		return nil, errors.New("etcdstore: at least one endpoint is required")
	}
	if (opts.CertFile == "") != (opts.KeyFile == "") {
		return nil, errors.New("etcdstore: a client certificate and its key go together")
	}
	log := opts.Logger
	if log == nil {
		log = zap.NewNop()
	}
	s := &Store{
		prefix:      opts.Prefix,
		log:         log,
		now:         opts.Now,
		reqTimeout:  orDefault(opts.RequestTimeout, DefaultRequestTimeout),
		maxTxnOps:   opts.MaxTxnOps,
		maxAttempts: opts.MaxAttempts,
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.maxTxnOps <= 0 {
		s.maxTxnOps = DefaultMaxTxnOps
	}
	if s.maxAttempts <= 0 {
		s.maxAttempts = DefaultMaxAttempts
	}
	tlsCfg, err := clientTLS(opts)
	if err != nil {
		return nil, err
	}
	dialTimeout := orDefault(opts.DialTimeout, DefaultDialTimeout)
	where := strings.Join(opts.Endpoints, ", ")

	cli, err := clientv3.New(clientv3.Config{
		Endpoints:   opts.Endpoints,
		DialTimeout: dialTimeout,
		// Keepalives notice a silently dead connection (a partition, a
		// crashed host) so the client switches endpoint or reconnects.
		DialKeepAliveTime:    10 * time.Second,
		DialKeepAliveTimeout: 3 * time.Second,
		Username:             opts.Username,
		Password:             opts.Password,
		TLS:                  tlsCfg,
		// gRPC's default reconnect backoff grows to two minutes, which
		// would keep a replica down long after etcd is back; reconnect
		// at least every two seconds instead.
		DialOptions: []grpc.DialOption{grpc.WithConnectParams(grpc.ConnectParams{
			Backoff: grpcbackoff.Config{
				BaseDelay:  100 * time.Millisecond,
				Multiplier: 1.6,
				Jitter:     0.2,
				MaxDelay:   2 * time.Second,
			},
			MinConnectTimeout: dialTimeout,
		})},
		// The client logs every retry of an unavailable call as a warning;
		// callers get those as ErrUnavailable already.
		Logger: log.Named("etcd").WithOptions(zap.WrapCore(func(c zapcore.Core) zapcore.Core {
			return errorsOnly{c}
		})),
	})
	if err != nil {
		if isUnavailable(err) {
			err = fmt.Errorf("%w: %w", store.ErrUnavailable, err)
		}
		return nil, fmt.Errorf("etcdstore: connecting to etcd at %s: %w", where, err)
	}
	s.cli = cli

	// clientv3.New does not wait for a connection; one real read proves
	// etcd answers (and that the credentials may read the prefix).
	pctx, cancel := context.WithTimeout(ctx, dialTimeout)
	_, err = cli.Get(pctx, s.prefix+"~", clientv3.WithCountOnly())
	cancel()
	if err != nil {
		cli.Close()
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if isUnavailable(err) {
			return nil, fmt.Errorf("etcdstore: etcd at %s did not answer within %v: %w: %w",
				where, dialTimeout, store.ErrUnavailable, err)
		}
		return nil, fmt.Errorf("etcdstore: reading from etcd at %s: %w", where, err)
	}

	if s.beats, err = newHeartbeats(s.prefix); err != nil {
		cli.Close()
		return nil, fmt.Errorf("etcdstore: %w", err)
	}
	s.life = kvcore.NewLife(log)
	s.retry = &kvcore.Retrier{Life: s.life, MaxAttempts: s.maxAttempts, ExclusiveAfter: exclusiveAfter, Pause: pause}
	s.mirror = newMirror(s)
	// WithRequireLeader ends the watch when its member loses the leader,
	// instead of leaving it silently stuck on a minority member.
	s.mirror.watchCtx = clientv3.WithRequireLeader(s.life.Context())
	lctx, lcancel := context.WithTimeout(ctx, dialTimeout)
	err = s.mirror.reload(lctx)
	lcancel()
	if err != nil {
		s.life.Close(nil)
		cli.Close()
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("etcdstore: etcd at %s: %w", where, err)
	}
	s.life.Go(s.mirror.run)
	if err := s.dropStaleBeats(ctx); err != nil {
		log.Warn("stale heartbeat keys of stopped replicas left in etcd", zap.Error(err))
	}
	s.life.Go(s.beat)
	sweepEvery := orDefault(opts.SweepInterval, DefaultSweepInterval)
	if sweepEvery > 0 {
		s.life.SweepEvery(sweepEvery, s.Sweep)
	}
	return s, nil
}

func orDefault(d, def time.Duration) time.Duration {
	if d == 0 {
		return def
	}
	return d
}

// clientTLS returns the TLS configuration for the client, or nil for plain
// connections.
func clientTLS(opts Options) (*tls.Config, error) {
	if opts.TLS != nil {
		return opts.TLS, nil
	}
	https := false
	for _, ep := range opts.Endpoints {
		if strings.HasPrefix(ep, "https://") || strings.HasPrefix(ep, "unixs://") {
			https = true
		}
	}
	if opts.CAFile == "" && opts.CertFile == "" && !https {
		return nil, nil
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if opts.CAFile != "" {
		pem, err := os.ReadFile(opts.CAFile)
		if err != nil {
			return nil, fmt.Errorf("etcdstore: reading CA file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("etcdstore: CA file %s holds no PEM certificate", opts.CAFile)
		}
		cfg.RootCAs = pool
	}
	if opts.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(opts.CertFile, opts.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("etcdstore: loading client certificate: %w", err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}

// Close stops the sweeper and watches, waits for running calls (each is
// bounded by RequestTimeout, and Close cancels them) and closes the client.
// Later calls return the first call's result. Close must not be called from
// inside an Update or View function.
func (s *Store) Close() error {
	return s.life.Close(func() error {
		s.dropBeat()
		if err := s.cli.Close(); err != nil && !errors.Is(err, context.Canceled) {
			return fmt.Errorf("etcdstore: closing: %w", err)
		}
		return nil
	})
}

// callCtx returns the context for one etcd call: the caller's, bounded by
// RequestTimeout and canceled by Close.
func (s *Store) callCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	c, cancel := context.WithTimeout(ctx, s.reqTimeout)
	stop := context.AfterFunc(s.life.Context(), cancel)
	return c, func() { stop(); cancel() }
}

// wrap turns an etcd call's error into the store's: the caller's own
// context error as is, store.ErrClosed after Close, store.ErrUnavailable for
// transient trouble, anything else with the operation named.
func (s *Store) wrap(ctx context.Context, op string, err error) error {
	if cerr := ctx.Err(); cerr != nil {
		return cerr
	}
	if s.life.Ending() {
		return store.ErrClosed
	}
	if isUnavailable(err) {
		return fmt.Errorf("etcdstore: %s: %w: %w", op, store.ErrUnavailable, err)
	}
	return fmt.Errorf("etcdstore: %s: %w", op, err)
}

// isUnavailable reports whether err means etcd cannot serve now but may
// again soon: no connection, no leader, a timeout, overload, no space.
func isUnavailable(err error) bool {
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) || clientv3.IsConnCanceled(err) {
		return true
	}
	var code codes.Code
	var ee rpctypes.EtcdError
	if errors.As(err, &ee) {
		code = ee.Code()
	} else if st, ok := status.FromError(err); ok {
		code = st.Code()
	} else {
		return false
	}
	switch code {
	case codes.Unavailable, codes.DeadlineExceeded, codes.Canceled, codes.ResourceExhausted, codes.Aborted:
		return true
	}
	return false
}

// isCompacted reports whether a read at the snapshot revision failed
// because etcd compacted that revision away; the attempt must start over.
func isCompacted(err error) bool {
	return errors.Is(err, rpctypes.ErrCompacted) || errors.Is(err, rpctypes.ErrGRPCCompacted)
}

// Update runs fn in a read-write transaction and commits it with one etcd
// Txn (see the package documentation). fn reads the mirror; it runs again
// on fresh data when the commit finds that something it read has changed.
// An error from fn discards the attempt and is returned as is, once a
// read-only Txn has confirmed that what fn read was current (otherwise fn
// runs again). fn must not call Update or Close on the same store. A
// committed etcd Txn is always durable, so store.Volatile changes nothing.
func (s *Store) Update(ctx context.Context, fn func(tx store.Txn) error) error {
	if err := s.life.Enter(ctx); err != nil {
		return err
	}
	defer s.life.Leave()
	// Reading the mirror before the watch has brought this store's own
	// last commit would make range compares fail on our own writes.
	waitFor := s.lastCommit.Load()
	return s.retry.Run(ctx, func() error { return s.catchUp(ctx, waitFor) }, func() error {
		rev, err := s.tryUpdate(ctx, fn)
		if errors.Is(err, kvcore.ErrRetry) {
			// The failed Txn's revision includes the change that made it
			// fail: once the mirror has it, the next attempt reads fresh data.
			waitFor = max(rev, s.lastCommit.Load())
		}
		return err
	})
}

// pause is the wait after the n-th conflict: none after the first (the
// mirror has caught up with the change that caused it), then a jittered
// backoff that separates the contenders.
func pause(n int) time.Duration {
	if n < 2 {
		return 0
	}
	return kvcore.Backoff(n - 1)
}

// catchUp waits, at most catchUpWait, until the mirror has applied
// revision rev. Running late is not an error (the commit's compares decide),
// only the caller's end or Close are.
func (s *Store) catchUp(ctx context.Context, rev int64) error {
	if rev <= s.mirror.snap().rev {
		return nil
	}
	wctx, cancel := context.WithTimeout(ctx, catchUpWait)
	defer cancel()
	err := s.mirror.waitRev(wctx, rev)
	if errors.Is(err, store.ErrClosed) {
		return err
	}
	if cerr := ctx.Err(); cerr != nil {
		return cerr
	}
	return nil
}

// committed records a successful commit of writes at rev.
func (s *Store) committed(writes map[string]write, rev int64) {
	for {
		last := s.lastCommit.Load()
		if rev <= last || s.lastCommit.CompareAndSwap(last, rev) {
			break
		}
	}
	s.mirror.applyOwn(writes, rev)
}

// tryUpdate runs fn once on the mirror and commits (or, when fn fails,
// checks its reads). It returns kvcore.ErrRetry, with the revision of the
// failed Txn, when the attempt must run again.
func (s *Store) tryUpdate(ctx context.Context, fn func(tx store.Txn) error) (int64, error) {
	tx := newTxn(ctx, s, true, s.mirror.snap(), 0)
	err := fn(tx)
	tx.End()
	if err != nil {
		if !tx.read() {
			return 0, err
		}
		// fn decided on the mirror, which may be a little behind etcd:
		// the error stands only if what fn read is still current.
		tx.writes = nil
		rev, verr := tx.commit()
		if verr != nil {
			return rev, verr
		}
		return 0, err
	}
	return tx.commit()
}

// View runs fn in a read-only transaction on a consistent snapshot that is
// at least as new as etcd was when View was called (linearizable): it
// reads etcd's current revision, waits (briefly) until the mirror has
// applied it, and runs fn on the mirror. If the mirror does not
// catch up in time, fn reads etcd directly at that revision instead.
func (s *Store) View(ctx context.Context, fn func(tx store.Txn) error) error {
	if err := s.life.Enter(ctx); err != nil {
		return err
	}
	defer s.life.Leave()
	rev, err := s.currentRevision(ctx)
	if err != nil {
		return err
	}
	wctx, cancel := context.WithTimeout(ctx, catchUpWait)
	err = s.mirror.waitRev(wctx, rev)
	cancel()
	switch {
	case err == nil:
		tx := newTxn(ctx, s, false, s.mirror.snap(), 0)
		err := fn(tx)
		tx.End()
		return err
	case errors.Is(err, store.ErrClosed):
		return err
	case ctx.Err() != nil:
		return ctx.Err()
	}
	s.log.Debug("mirror behind etcd, View reads etcd directly", zap.Int64("revision", rev))
	for attempt := 1; ; attempt++ {
		tx := newTxn(ctx, s, false, nil, rev)
		err := fn(tx)
		tx.End()
		if !tx.retry {
			return err
		}
		// The revision was compacted under fn; read a fresh one.
		if attempt >= s.maxAttempts {
			return fmt.Errorf("%w (%d attempts, snapshots compacted)", store.ErrConflict, attempt)
		}
		if rev, err = s.currentRevision(ctx); err != nil {
			return err
		}
	}
}

// errorsOnly passes on error-level entries and above. zap.IncreaseLevel
// would do, but it refuses (and prints to stderr) when the wrapped core
// is less verbose than error, as Caddy's discarding logger is.
type errorsOnly struct{ zapcore.Core }

func (c errorsOnly) Enabled(l zapcore.Level) bool {
	return l >= zapcore.ErrorLevel && c.Core.Enabled(l)
}

func (c errorsOnly) Check(e zapcore.Entry, ce *zapcore.CheckedEntry) *zapcore.CheckedEntry {
	if !c.Enabled(e.Level) {
		return ce
	}
	return c.Core.Check(e, ce)
}

func (c errorsOnly) With(fields []zapcore.Field) zapcore.Core {
	return errorsOnly{c.Core.With(fields)}
}
