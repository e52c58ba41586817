// Package spawner is the contract between the portal and whatever starts a
// session's environment (a local process, a container, later a pod), plus the
// pieces every backend shares: placeholder expansion, the environment
// variables a workshop expects, and the HTTP readiness probe. It is modelled
// on JupyterHub's Spawner (start, poll, stop, progress) with a list for
// reconciliation after a crash, and it imports nothing of Caddy so backends
// can be tested with real processes alone.
package spawner

import (
	"context"
	"encoding/json"
	"errors"
	"time"
)

// Spec says what to start: one session's environment.
type Spec struct {
	// Portal, Session, User, Workshop and Environment name the session; User
	// is "" for a reserve (an environment started before anyone asked).
	Portal, Session, User, Workshop, Environment string
	// Prefix is the session's path-mode base, /workshops/session/<s>/.
	Prefix string
	// URL is the dashboard's public URL.
	URL string
	// Domain and Protocol are the ingress domain and "http"/"https"
	// (Educates' INGRESS_DOMAIN and INGRESS_PROTOCOL).
	Domain, Protocol string
	// Parameters are the request's parameters, when the environment is
	// started for a request; each must pass ValidParameter.
	Parameters map[string]string
	// Login is the OAuth client the dashboard logs the learner in with,
	// for a spawner that asks for one (see PortalLogin); nil otherwise.
	Login *PortalClient
}

// PortalClient is a session's own OAuth client: an Educates workshop
// gateway sends the learner to URL/oauth2/authorize/ and exchanges the
// code at APIURL/oauth2/token/ with ID and Secret, then calls the
// session's routes under APIURL with the token it got.
type PortalClient struct {
	ID, Secret string
	// URL is what the learner's browser reaches the authorize endpoint
	// at: the session's own origin (its dashboard host).
	URL string
	// APIURL is what the environment reaches the portal at.
	APIURL string
}

// PortalLogin is implemented by a spawner whose dashboards log the learner
// in through the portal: the portal then gives each start an OAuth client
// of its own (Spec.Login). apiURL is the portal's address as the
// environment reaches it, "" for the portal's public URL.
type PortalLogin interface {
	PortalLogin() (apiURL string, ok bool)
}

// ReadyPather is implemented by a spawner whose readiness probe GETs a path
// of the dashboard: the portal sends the same GET through its own proxy
// once a reserve is ready, so the first learner's request finds the proxy's
// connection to the dashboard already open.
type ReadyPather interface {
	ReadyPath(env Env) string
}

// Env is a started environment as the portal stores it in the session record.
type Env struct {
	Session string `json:"session"`
	// Addr is the dial address (host:port) the gate proxies to.
	Addr string `json:"addr"`
	// State is backend-specific and opaque to the portal (for a process: pid,
	// process start time, directory, owner replica).
	State json.RawMessage `json:"state,omitempty"`
}

// EnvVar is one variable an operator sets on every environment of a
// workshop; Value may contain placeholders.
type EnvVar struct{ Name, Value string }

// Progress is one step of a start that the learner's page shows.
type Progress struct {
	Step    string `json:"step"`
	Message string `json:"message"`
}

// The steps every backend reports, so the portal's progress page needs no
// knowledge of the backend. Backends may add their own steps in between.
const (
	StepStarting = "starting" // the backend is creating the environment
	StepStarted  = "started"  // it runs; the portal now waits for Ready
	StepWaiting  = "waiting"  // waiting for the dashboard to answer
	StepReady    = "ready"    // the dashboard answered
)

// Spawner starts, probes, stops and lists the environments of one workshop.
// Implementations must be safe for concurrent use.
type Spawner interface {
	// Start starts spec's environment and returns once it runs (not
	// necessarily ready); progress may be nil. On error nothing of the
	// environment is left behind.
	Start(ctx context.Context, spec Spec, progress func(Progress)) (Env, error)
	// Ready probes the dashboard once: nil when it answers as configured. An
	// error wrapping ErrGone means the environment is no longer running and
	// waiting longer is pointless.
	Ready(ctx context.Context, env Env) error
	// ReadyTimeout is how long the portal waits for Ready after Start before
	// the start counts as failed.
	ReadyTimeout() time.Duration
	// Stop ends the environment and removes all of it (processes,
	// directory); idempotent; safe for an Env from a previous run of the
	// portal (after kill -9).
	Stop(ctx context.Context, env Env) error
	// List returns every environment of this portal the backend finds
	// running or left behind, including ones started by a previous run that
	// died: the portal adopts those of live sessions and Stops the rest.
	List(ctx context.Context) ([]Env, error)
	// Alive checks that env is still the environment that was started and
	// that it runs (for a process: same PID and same process start time, so
	// PID reuse cannot fool it). It returns nil when it is; an error
	// wrapping ErrGone when it is known to be gone, whose message says why
	// in words a learner understands ("the dashboard process exited with
	// status 1"), since the portal shows it on the session's page; and any
	// other error when it cannot tell now (the backend is unreachable): the
	// portal then keeps the session and asks again later.
	Alive(ctx context.Context, env Env) error
}

// ErrGone is wrapped by Ready's and Alive's errors when the environment
// stopped running (its process exited, its container is gone): no later
// probe can succeed.
var ErrGone = errors.New("environment is not running")

// Gone returns an error that wraps ErrGone and says only why, for the
// learner: Alive's answer for an environment that is gone.
func Gone(why string) error { return goneError(why) }

type goneError string

func (e goneError) Error() string        { return string(e) }
func (e goneError) Is(target error) bool { return target == ErrGone }

// Readiness probing: every fastProbe for the first fastProbeFor, then at
// intervals doubling up to slowProbe. A refused probe costs the portal tens
// of microseconds; at the start of a class with 8 starts at once that is
// 1,600 probes a second, a few percent of a core, for 100 ms per start.
const (
	fastProbe    = 5 * time.Millisecond
	fastProbeFor = 100 * time.Millisecond
	slowProbe    = 250 * time.Millisecond
)

// WaitReady probes env with s.Ready until it answers, the environment is gone,
// or s.ReadyTimeout (or ctx) runs out, reporting StepWaiting and StepReady to
// progress (which may be nil). The error of a timeout carries the last probe
// error, so the learner and the log see why ("connection refused", "HTTP 404").
func WaitReady(ctx context.Context, s Spawner, env Env, progress func(Progress)) error {
	ctx, cancel := context.WithTimeout(ctx, s.ReadyTimeout())
	defer cancel()
	deadline, _ := ctx.Deadline()
	Report(progress, StepWaiting, "waiting for the dashboard")
	// Probe every fastProbe while a quick dashboard is expected (a start
	// holds one of the portal's few start slots until its dashboard answers,
	// so every millisecond between the dashboard's readiness and the probe
	// that sees it is a millisecond of the slot wasted), then back off to a
	// modest interval, so a storm of slow starts does not become a storm of
	// probes.
	begin := time.Now()
	interval := fastProbe
	var last error // the last probe's own answer, not one the deadline cut short
	for {
		err := s.Ready(ctx, env)
		if err == nil {
			Report(progress, StepReady, "the dashboard is ready")
			return nil
		}
		if errors.Is(err, ErrGone) {
			return err
		}
		// A probe the deadline cut short says nothing about the dashboard.
		// The clock decides, not only ctx.Err(): on a busy machine the
		// connection's deadline can fire before the context's timer has
		// run, and the learner would read "i/o timeout" instead of the
		// dashboard's own answer.
		if cut := ctx.Err() != nil || !time.Now().Before(deadline); !cut || last == nil {
			last = err
		}
		t := time.NewTimer(interval)
		select {
		case <-ctx.Done():
			t.Stop()
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return &TimeoutError{After: s.ReadyTimeout(), Last: last}
			}
			return ctx.Err()
		case <-t.C:
		}
		interval = nextProbe(time.Since(begin), interval)
	}
}

// nextProbe is the wait before the next readiness probe, elapsed into the
// wait for the dashboard, after a wait of prev.
func nextProbe(elapsed, prev time.Duration) time.Duration {
	if elapsed < fastProbeFor {
		return fastProbe
	}
	return min(2*prev, slowProbe)
}

// TimeoutError is WaitReady's error when the dashboard did not answer in time.
type TimeoutError struct {
	After time.Duration
	Last  error // the last probe's error
}

// Error says how long was waited and why the last probe failed.
func (e *TimeoutError) Error() string {
	return "the dashboard did not become ready within " + e.After.String() + ": " + e.Last.Error()
}

// Unwrap returns the last probe's error.
func (e *TimeoutError) Unwrap() error { return e.Last }

// Report calls progress with one step when progress is not nil, so backends
// need no nil checks of their own.
func Report(progress func(Progress), step, msg string) {
	if progress != nil {
		progress(Progress{Step: step, Message: msg})
	}
}
