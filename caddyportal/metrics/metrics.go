// Package metrics holds the portal's Prometheus collectors: sessions by
// state, allocations, activation latency, extensions, terminations, token
// grants, gate traffic, open WebSockets and analytics webhook deliveries.
//
// It does not import Caddy. The Caddy glue passes in the registry it gets
// from ctx.GetMetricsRegistry(). Caddy 2.11 gives every config its own
// registry, so to keep counter values across config reloads the glue keeps
// one *Metrics alive across configs and calls Register with each new
// config's registry: the same collector objects, and so the same values,
// are then exposed by the new registry (the idiom of Caddy's reverse proxy
// and of caddy-ratelimit #101/#102). New itself also copes with a registry
// that already holds these collectors from an earlier call, by reusing them.
//
// Every method is safe on a nil *Metrics, where it does nothing, so the
// glue can run with metrics turned off.
package metrics

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/caddyportal/caddyportal/caddyportal/lifecycle"
	"github.com/caddyportal/caddyportal/caddyportal/sessions"
)

// Namespace prefixes every metric name.
const Namespace = "caddyportal"

// Allocation results counted by caddyportal_allocations_total.
const (
	// ResultAllocated is a session handed to a user (a reserve or one
	// created on demand).
	ResultAllocated = "allocated"
	// ResultNoSession is a refusal for lack of capacity: every session of
	// the workshop, or the portal's maximum, is in use.
	ResultNoSession = "no-session"
	// ResultSessionLimit is a refusal because the user already has as many
	// sessions as they may have at once (ErrSessionLimit). The REST API
	// answers it as Educates does, "No session available"; the metric
	// tells an operator whether learners are turned away for capacity or
	// by their own cap.
	ResultSessionLimit = "session-limit"
	// ResultCannotReacquire is a refused reacquire of a session whose link
	// cannot be handed out again.
	ResultCannotReacquire = "cannot-reacquire"
	// ResultNotPermitted is a request for a user who may not have sessions.
	ResultNotPermitted = "not-permitted"
	// ResultNoEnvironment is a request for an environment that does not
	// exist. Its environment label is always empty: the name came from the
	// client and must not create label values.
	ResultNoEnvironment = "no-environment"
	// ResultError is a backend failure.
	ResultError = "error"
)

// Session state buckets of the caddyportal_sessions gauge. They split
// WAITING into reserves (no owner) and pending (owned, not yet activated),
// which is what an operator watching capacity wants to see.
const (
	StateReserved = "reserved"
	StatePending  = "pending"
	StateRunning  = "running"
	StateStopping = "stopping"
	// StateQueued and StateStarting are sessions of workshops with a
	// spawner whose environment waits in the start queue or is starting.
	StateQueued   = "queued"
	StateStarting = "starting"
)

// sessionStates lists the buckets a ServiceSessions snapshot fills with
// zeros, so a dashboard line drops to 0 instead of vanishing.
var sessionStates = [...]string{StateQueued, StateStarting, StateReserved, StatePending, StateRunning, StateStopping}

// maxTracked bounds the per-session bookkeeping kept for activation latency
// and termination reasons: events for sessions nobody activates or ends
// (after a crash, say) must not grow memory without limit.
const maxTracked = 1 << 16

// SessionKey labels one sample of the caddyportal_sessions gauge.
type SessionKey struct {
	Environment string
	State       string
}

// SessionsSource returns the current number of sessions by environment and
// state. It is called once per scrape, so it should read a snapshot, not
// walk the store more than once.
type SessionsSource func(ctx context.Context) (map[SessionKey]int, error)

// Metrics holds the portal's collectors. Create it with New; the zero value
// is not usable, but a nil *Metrics is (every method is then a no-op).
type Metrics struct {
	sessions    *sessionsCollector
	allocations *prometheus.CounterVec
	activation  *prometheus.HistogramVec
	extensions  *prometheus.CounterVec
	terminated  *prometheus.CounterVec
	tokens      *prometheus.CounterVec
	gate        *prometheus.CounterVec
	websockets  *prometheus.GaugeVec
	webhooks    *prometheus.CounterVec
	upstreams   *prometheus.GaugeVec
	spawnStarts *prometheus.HistogramVec
	current     *prometheus.GaugeVec
	// gateCounters caches the gate counter of each environment and
	// status class: the gate counts every proxied request, and the vec's
	// label lookup hashes both labels each time.
	gateCounters sync.Map // gateKey -> prometheus.Counter

	mu         sync.Mutex
	pendingAt  map[string]time.Time // session → when it was handed out
	terminates map[string]bool      // sessions counted at Session/Terminate
}

// New creates the collectors and registers them on reg (nil: register
// nowhere). Where reg already holds collectors of the same names registered
// by an earlier New or Register (an earlier config that used the same
// registry), New adopts those, so their values carry on.
func New(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		sessions: newSessionsCollector(),
		allocations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace, Name: "allocations_total",
			Help: "Session requests by environment and result (allocated, no-session, session-limit, cannot-reacquire, not-permitted, no-environment, error).",
		}, []string{"environment", "result"}),
		activation: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: Namespace, Name: "activation_latency_seconds",
			Help: "Time from a session being handed to a user to its activation.",
			// People click activation links: seconds to minutes.
			Buckets: []float64{0.5, 1, 2, 5, 10, 20, 30, 45, 60, 120, 300, 600},
		}, []string{"environment"}),
		extensions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace, Name: "extensions_total",
			Help: "Session extensions by environment.",
		}, []string{"environment"}),
		terminated: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace, Name: "terminations_total",
			Help: "Sessions ended, by environment and reason (terminated, expired, orphaned, or the stop reason the service reports).",
		}, []string{"environment", "reason"}),
		tokens: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace, Name: "token_requests_total",
			Help: "OAuth2 token requests by grant type and result (ok or the OAuth2 error code).",
		}, []string{"grant", "result"}),
		gate: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace, Name: "gate_requests_total",
			Help: "Requests through the session gate by environment and status class.",
		}, []string{"environment", "code"}),
		websockets: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: Namespace, Name: "websockets_open",
			Help: "WebSockets and other streams open through the gate, by environment.",
		}, []string{"environment"}),
		webhooks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace, Name: "webhook_deliveries_total",
			Help: "Analytics webhook deliveries by result (ok, failed after retries, dropped because the queue was full or closed).",
		}, []string{"result"}),
		upstreams: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: Namespace, Name: "upstream_healthy",
			Help: "Whether a workshop dashboard's last health probe succeeded (1) or failed (0), by environment and upstream; failed ones are not handed out.",
		}, []string{"environment", "upstream"}),
		spawnStarts: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: Namespace, Name: "spawn_start_seconds",
			Help: "Starts of session environments (workshops with a spawner) by environment and result (ok, or why it failed), from leaving the start queue to ready or failure.",
			// Processes start in well under a second, containers in
			// seconds, images being pulled in minutes.
			Buckets: []float64{0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300},
		}, []string{"environment", "result"}),
		current: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: Namespace, Name: "replica_current",
			Help: "On a store shared by replicas (etcd), whether this replica can prove it has heard of every change the others made within half the stopping grace (1), or cannot, being cut off from the store, and closes requests to fixed-list dashboards (0); by portal.",
		}, []string{"portal"}),
		pendingAt:  map[string]time.Time{},
		terminates: map[string]bool{},
	}
	if reg == nil {
		return m, nil
	}
	var err error
	if m.sessions, err = adopt(reg, m.sessions); err != nil {
		return nil, err
	}
	if m.allocations, err = adopt(reg, m.allocations); err != nil {
		return nil, err
	}
	if m.activation, err = adopt(reg, m.activation); err != nil {
		return nil, err
	}
	if m.extensions, err = adopt(reg, m.extensions); err != nil {
		return nil, err
	}
	if m.terminated, err = adopt(reg, m.terminated); err != nil {
		return nil, err
	}
	if m.tokens, err = adopt(reg, m.tokens); err != nil {
		return nil, err
	}
	if m.gate, err = adopt(reg, m.gate); err != nil {
		return nil, err
	}
	if m.websockets, err = adopt(reg, m.websockets); err != nil {
		return nil, err
	}
	if m.webhooks, err = adopt(reg, m.webhooks); err != nil {
		return nil, err
	}
	if m.upstreams, err = adopt(reg, m.upstreams); err != nil {
		return nil, err
	}
	if m.spawnStarts, err = adopt(reg, m.spawnStarts); err != nil {
		return nil, err
	}
	if m.current, err = adopt(reg, m.current); err != nil {
		return nil, err
	}
	return m, nil
}

// adopt registers c on reg, or returns the collector of the same type that
// reg already holds under the same descriptors.
func adopt[C prometheus.Collector](reg prometheus.Registerer, c C) (C, error) {
	err := reg.Register(c)
	if err == nil {
		return c, nil
	}
	var are prometheus.AlreadyRegisteredError
	if errors.As(err, &are) {
		if existing, ok := are.ExistingCollector.(C); ok {
			return existing, nil
		}
		return c, fmt.Errorf("metrics: a collector of another type is registered under the same name: %w", err)
	}
	return c, fmt.Errorf("metrics: registering collector: %w", err)
}

// collectors lists every collector in a fixed order.
func (m *Metrics) collectors() []prometheus.Collector {
	return []prometheus.Collector{m.sessions, m.allocations, m.activation, m.extensions,
		m.terminated, m.tokens, m.gate, m.websockets, m.webhooks, m.upstreams, m.spawnStarts, m.current}
}

// Register exposes the same collectors, with their current values, on
// another registry: call it with each new config's registry on a reload.
// Registering twice on one registry is not an error.
func (m *Metrics) Register(reg prometheus.Registerer) error {
	if m == nil || reg == nil {
		return nil
	}
	for _, c := range m.collectors() {
		err := reg.Register(c)
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) && are.ExistingCollector == c {
			continue
		}
		if err != nil {
			return fmt.Errorf("metrics: registering collector: %w", err)
		}
	}
	return nil
}

// Unregister removes the collectors from reg. Caddy drops a config's whole
// registry with the config, so the glue does not need this; it is here for
// callers that share one long-lived registry.
func (m *Metrics) Unregister(reg prometheus.Registerer) {
	if m == nil || reg == nil {
		return
	}
	for _, c := range m.collectors() {
		reg.Unregister(c)
	}
}

// SetSessionsSource adds src as a source of the caddyportal_sessions gauge
// and returns a function that removes it again. Where sources report the
// same environment and state, the most recently added one wins: during a
// reload the old and new config briefly overlap and must not be summed.
// Portals have distinct environment names, so sources of different portals
// never collide.
func (m *Metrics) SetSessionsSource(src SessionsSource) (release func()) {
	if m == nil || src == nil {
		return func() {}
	}
	return m.sessions.sources.add(&m.sessions.mu, src)
}

// StrandedSource returns, by replica, how many live sessions of a portal
// wait for a replica that is not running; replicas nothing waits for are
// left out.
type StrandedSource func(ctx context.Context) (map[string]int, error)

// SetStrandedSource adds src as portal's source of the
// caddyportal_stranded_sessions gauge and returns a function that removes
// it again; the most recently added source of a portal wins.
func (m *Metrics) SetStrandedSource(portal string, src StrandedSource) (release func()) {
	if m == nil || src == nil {
		return func() {}
	}
	return m.sessions.strandedBy.add(&m.sessions.mu, portalStranded{portal: portal, src: src})
}

// ServiceStranded returns a StrandedSource over svc's replicas. Telling
// which replica owns a session takes reading every live record, so a
// snapshot is kept for every (0: read at each scrape).
func ServiceStranded(svc *sessions.Service, every time.Duration) StrandedSource {
	var mu sync.Mutex
	var last map[string]int
	var at time.Time
	return func(ctx context.Context) (map[string]int, error) {
		mu.Lock()
		defer mu.Unlock()
		if last != nil && time.Since(at) < every {
			return last, nil
		}
		list, err := svc.Replicas(ctx)
		if err != nil {
			return nil, err
		}
		out := map[string]int{}
		for _, r := range list {
			if r.Stranded() {
				out[r.Name] = r.Holds()
			}
		}
		last, at = out, time.Now()
		return out, nil
	}
}

// ServiceSessions returns a SessionsSource that reads the live sessions of
// svc once per call, with each session's effective state at the service's
// clock, and zero-fills every state of every known environment. It reads
// the live index alone (EachLiveSummary), not every live record.
func ServiceSessions(svc *sessions.Service) SessionsSource {
	return func(ctx context.Context) (map[SessionKey]int, error) {
		envs := svc.Environments()
		out := make(map[SessionKey]int, len(envs)*len(sessionStates))
		for _, e := range envs {
			for _, st := range sessionStates {
				out[SessionKey{e.Name, st}] = 0
			}
		}
		err := svc.EachLiveSummary(ctx, "", func(env string, ls sessions.LiveSummary) {
			st := bucket(ls)
			if st == StateStarting && svc.QueuePosition(ls.Name) > 0 {
				st = StateQueued
			}
			out[SessionKey{env, st}]++
		})
		if err != nil {
			return nil, err
		}
		return out, nil
	}
}

// bucket maps a live session to its gauge bucket.
func bucket(ls sessions.LiveSummary) string {
	switch ls.State {
	case lifecycle.Stopping:
		return StateStopping
	case lifecycle.Running:
		return StateRunning
	case lifecycle.Starting:
		return StateStarting
	}
	if ls.Reserved {
		return StateReserved
	}
	return StatePending
}

// Allocation counts one session request for env with the given result
// (one of the Result constants).
func (m *Metrics) Allocation(env, result string) {
	if m == nil {
		return
	}
	m.allocations.WithLabelValues(env, result).Inc()
}

// AllocationFailed counts a refused or failed session request from the
// error sessions.Service.RequestSession returned. A request for an unknown
// environment is counted with an empty environment label, because that
// name came from the client.
func (m *Metrics) AllocationFailed(env string, err error) {
	if m == nil || err == nil {
		return
	}
	result := ResultError
	switch {
	case errors.Is(err, sessions.ErrNoEnvironment):
		env, result = "", ResultNoEnvironment
	case errors.Is(err, sessions.ErrSessionLimit):
		result = ResultSessionLimit
	case errors.Is(err, sessions.ErrNoSession):
		result = ResultNoSession
	case errors.Is(err, sessions.ErrCannotReacquire):
		result = ResultCannotReacquire
	case errors.Is(err, sessions.ErrUserNotPermitted):
		result = ResultNotPermitted
	}
	m.Allocation(env, result)
}

// ActivationLatency records the time from hand-out to activation.
func (m *Metrics) ActivationLatency(env string, d time.Duration) {
	if m == nil || d < 0 {
		return
	}
	m.activation.WithLabelValues(env).Observe(d.Seconds())
}

// Extension counts one session extension.
func (m *Metrics) Extension(env string) {
	if m == nil {
		return
	}
	m.extensions.WithLabelValues(env).Inc()
}

// Termination counts one ended session.
func (m *Metrics) Termination(env, reason string) {
	if m == nil {
		return
	}
	m.terminated.WithLabelValues(env, reason).Inc()
}

// TokenGrant counts one OAuth2 token request. grant is the grant_type
// (anything but password, refresh_token, authorization_code and
// client_credentials is counted as "other", so clients cannot create label
// values); result is "ok" or the OAuth2 error code sent back.
func (m *Metrics) TokenGrant(grant, result string) {
	if m == nil {
		return
	}
	switch grant {
	case "password", "refresh_token", "authorization_code", "client_credentials":
	default:
		grant = "other"
	}
	m.tokens.WithLabelValues(grant, result).Inc()
}

// GateRequest counts one request through the gate by its status class
// ("2xx" … "5xx"). env is the session's environment, or "" when the
// session is unknown (the name came from the client).
func (m *Metrics) GateRequest(env string, status int) {
	if m == nil {
		return
	}
	k := gateKey{env, statusClass(status)}
	if c, ok := m.gateCounters.Load(k); ok {
		c.(prometheus.Counter).Inc()
		return
	}
	c := m.gate.WithLabelValues(k.env, k.class)
	m.gateCounters.Store(k, c)
	c.Inc()
}

// gateKey names one gate counter.
type gateKey struct{ env, class string }

// statusClasses are the code label values, so a request does not build
// one.
var statusClasses = [...]string{"1xx", "2xx", "3xx", "4xx", "5xx"}

func statusClass(status int) string {
	if status < 100 || status > 599 {
		return "other"
	}
	return statusClasses[status/100-1]
}

// WebSocketOpened counts a stream opened through the gate.
func (m *Metrics) WebSocketOpened(env string) {
	if m == nil {
		return
	}
	m.websockets.WithLabelValues(env).Inc()
}

// WebSocketClosed counts a stream through the gate that has closed.
func (m *Metrics) WebSocketClosed(env string) {
	if m == nil {
		return
	}
	m.websockets.WithLabelValues(env).Dec()
}

// WebhookDelivery counts one webhook delivery that succeeded or was given
// up after its retries. It fits webhooks.Options.OnResult.
func (m *Metrics) WebhookDelivery(ok bool) {
	if m == nil {
		return
	}
	result := "ok"
	if !ok {
		result = "failed"
	}
	m.webhooks.WithLabelValues(result).Inc()
}

// UpstreamHealth records the outcome of a dashboard's latest health probe.
func (m *Metrics) UpstreamHealth(env, upstream string, healthy bool) {
	if m == nil {
		return
	}
	v := 0.0
	if healthy {
		v = 1
	}
	m.upstreams.WithLabelValues(env, upstream).Set(v)
}

// ReplicaCurrent records whether this replica of portal can prove that it
// has heard of the other replicas' changes lately (see gate.Streams'
// Distrust).
func (m *Metrics) ReplicaCurrent(portal string, current bool) {
	if m == nil {
		return
	}
	v := 0.0
	if current {
		v = 1
	}
	m.current.WithLabelValues(portal).Set(v)
}

// SpawnStart observes one start of a session environment: its duration
// and result ("ok" or the failure reason). It fits
// sessions.Options.OnStart.
func (m *Metrics) SpawnStart(r sessions.StartResult) {
	if m == nil {
		return
	}
	result := r.Reason
	if result == "" {
		result = "ok"
	}
	m.spawnStarts.WithLabelValues(r.Environment, result).Observe(r.Duration.Seconds())
}

// WebhookDropped counts one webhook event dropped without an attempt. It
// fits webhooks.Options.OnDrop.
func (m *Metrics) WebhookDropped() {
	if m == nil {
		return
	}
	m.webhooks.WithLabelValues("dropped").Inc()
}

// ObserveEvent updates the counters from a committed state change of the
// sessions service; pass it (or a function calling it) as
// sessions.Options.OnEvent. It never blocks on I/O.
//
//   - Session/Pending counts an allocation and starts the activation clock;
//   - Session/Started observes the activation latency;
//   - Session/Extended counts an extension;
//   - Session/Terminate counts a termination with reason "terminated";
//     the Session/Deleted that follows when it is STOPPED is not counted
//     again;
//   - Session/Expired and Session/Orphaned count terminations with those
//     reasons; any other Session/Deleted counts one with the reason in
//     Data["reason"] if the service gives it, else "ended" for a user's
//     session and "reserve-removed" for a reserve.
func (m *Metrics) ObserveEvent(ev sessions.Event) {
	if m == nil {
		return
	}
	switch ev.Name {
	case sessions.EventSessionPending:
		m.Allocation(ev.Environment, ResultAllocated)
		m.mu.Lock()
		if len(m.pendingAt) >= maxTracked {
			clear(m.pendingAt)
		}
		m.pendingAt[ev.Session] = ev.Time
		m.mu.Unlock()
	case sessions.EventSessionStarted:
		m.mu.Lock()
		at, ok := m.pendingAt[ev.Session]
		delete(m.pendingAt, ev.Session)
		m.mu.Unlock()
		if ok {
			m.ActivationLatency(ev.Environment, ev.Time.Sub(at))
		}
	case sessions.EventSessionExtended:
		m.Extension(ev.Environment)
	case sessions.EventSessionTerminate:
		m.mu.Lock()
		delete(m.pendingAt, ev.Session)
		if len(m.terminates) >= maxTracked {
			clear(m.terminates)
		}
		m.terminates[ev.Session] = true
		m.mu.Unlock()
		m.Termination(ev.Environment, sessions.ReasonTerminated)
	case sessions.EventSessionExpired, sessions.EventSessionOrphaned, sessions.EventSessionDeleted:
		m.mu.Lock()
		delete(m.pendingAt, ev.Session)
		counted := m.terminates[ev.Session]
		delete(m.terminates, ev.Session)
		m.mu.Unlock()
		if counted {
			return
		}
		m.Termination(ev.Environment, endReason(ev))
	}
}

// endReason names why a session ended for a Session/Expired, Orphaned or
// Deleted event.
func endReason(ev sessions.Event) string {
	switch ev.Name {
	case sessions.EventSessionExpired:
		return sessions.ReasonExpired
	case sessions.EventSessionOrphaned:
		return sessions.ReasonOrphaned
	}
	if r, ok := ev.Data["reason"].(string); ok && r != "" {
		return r
	}
	if ev.User == "" {
		return "reserve-removed"
	}
	return "ended"
}

// sessionsCollector is the caddyportal_sessions gauge: on each scrape it
// asks its sources for one snapshot each instead of being kept up to date
// on every state change.
type sessionsCollector struct {
	desc     *prometheus.Desc
	stranded *prometheus.Desc
	errors   prometheus.Counter

	mu         sync.Mutex
	sources    sourceList[SessionsSource]
	strandedBy sourceList[portalStranded]
}

// portalStranded is a portal's source of the stranded sessions gauge.
type portalStranded struct {
	portal string
	src    StrandedSource
}

func newSessionsCollector() *sessionsCollector {
	return &sessionsCollector{
		desc: prometheus.NewDesc(prometheus.BuildFQName(Namespace, "", "sessions"),
			"Live sessions by environment and state (queued, starting, reserved, pending, running, stopping).",
			[]string{"environment", "state"}, nil),
		stranded: prometheus.NewDesc(prometheus.BuildFQName(Namespace, "", "stranded_sessions"),
			"Live sessions that wait for a replica that is not running (its environments, or their stop), by portal and replica.",
			[]string{"portal", "replica"}, nil),
		errors: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: Namespace, Name: "sessions_scrape_errors_total",
			Help: "Scrapes where a sessions snapshot could not be read.",
		}),
	}
}

// sourceList holds the sources added to a gauge, each under an id of its
// own so that it can be removed again; its lock is the collector's.
type sourceList[T any] struct {
	next uint64
	byID map[uint64]T
}

// add adds v under mu and returns a function that removes it again.
func (l *sourceList[T]) add(mu *sync.Mutex, v T) func() {
	mu.Lock()
	defer mu.Unlock()
	if l.byID == nil {
		l.byID = map[uint64]T{}
	}
	l.next++
	id := l.next
	l.byID[id] = v
	var once sync.Once
	return func() {
		once.Do(func() {
			mu.Lock()
			delete(l.byID, id)
			mu.Unlock()
		})
	}
}

// newestFirst lists the sources, the most recently added first; the caller
// holds the lock.
func (l *sourceList[T]) newestFirst() []T {
	ids := make([]uint64, 0, len(l.byID))
	for id := range l.byID {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] > ids[j] })
	out := make([]T, len(ids))
	for i, id := range ids {
		out[i] = l.byID[id]
	}
	return out
}

// Describe implements prometheus.Collector.
func (c *sessionsCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.desc
	ch <- c.stranded
	c.errors.Describe(ch)
}

// scrapeTimeout bounds one snapshot so a stuck store cannot hang /metrics.
const scrapeTimeout = 5 * time.Second

// Collect implements prometheus.Collector. Newer sources win over older
// ones for the same environment and state.
func (c *sessionsCollector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	srcs := c.sources.newestFirst()
	stranded := c.strandedBy.newestFirst()
	c.mu.Unlock()

	ctx, cancel := context.WithTimeout(context.Background(), scrapeTimeout)
	defer cancel()
	seen := map[SessionKey]bool{}
	for _, src := range srcs {
		counts, err := src(ctx)
		if err != nil {
			// One failing store must not fail the whole /metrics page.
			c.errors.Inc()
			continue
		}
		for k, n := range counts {
			if seen[k] {
				continue
			}
			seen[k] = true
			ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64(n), k.Environment, k.State)
		}
	}
	portals := map[string]bool{}
	for _, ps := range stranded {
		if portals[ps.portal] {
			continue // an older config's, during a reload
		}
		portals[ps.portal] = true
		byReplica, err := ps.src(ctx)
		if err != nil {
			c.errors.Inc()
			continue
		}
		for replica, n := range byReplica {
			ch <- prometheus.MustNewConstMetric(c.stranded, prometheus.GaugeValue, float64(n), ps.portal, replica)
		}
	}
	c.errors.Collect(ch)
}
