// Package caddyportal is the Caddy glue of the workshop training portal: the
// `http.handlers.portal` module, its Caddyfile directive `portal`, the
// usage pools that let the store, the stream registry and the metrics
// outlive config reloads, the Proxy over Caddy's reverse_proxy, and the
// admin API module. The portal itself (package portal and the packages it
// assembles) does not import Caddy.
package caddyportal

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

	"github.com/caddyportal/caddyportal/caddyportal/clientip"
	"github.com/caddyportal/caddyportal/caddyportal/config"
	"github.com/caddyportal/caddyportal/caddyportal/gate"
	"github.com/caddyportal/caddyportal/caddyportal/httperr"
	"github.com/caddyportal/caddyportal/caddyportal/metrics"
	"github.com/caddyportal/caddyportal/caddyportal/portal"
	"github.com/caddyportal/caddyportal/caddyportal/sessions"
)

func init() {
	caddy.RegisterModule(Handler{})
}

// Handler serves a workshop training portal: the Educates-compatible REST
// API, the activation links and the gate in front of each session's
// dashboard. Requests it does not own are passed to the next handler.
type Handler struct {
	config.Portal

	// StreamCloseDelay is how long dashboard WebSockets and other streams
	// stay open after a config reload before they are closed, so that a
	// reload does not disconnect every learner's terminal at once.
	// Default: 10m.
	StreamCloseDelay caddy.Duration `json:"stream_close_delay,omitempty"`

	// DashboardTimeout is how long the gate waits for a dashboard's
	// response headers before giving the browser an error page, so a
	// dashboard that accepts connections but never answers cannot hang
	// browsers. It does not limit WebSockets or streams once they answered.
	// Default: 30s.
	DashboardTimeout caddy.Duration `json:"dashboard_timeout,omitempty"`

	logger *zap.Logger
	// proxy and spawners are loaded in Provision, for start.
	proxy    gate.Proxy
	spawners []workshopSpawner
	// started is closed once start has run: portal is set then, unless
	// the start failed.
	started chan struct{}
	portal  *portal.Portal
	// keptAt and storeKey are the pool keys of what the portal keeps
	// across configs (kept) and of the store, once acquired.
	keptAt   string
	storeKey string
	// hostLock is the key of the portal replica's machine-wide lock, when
	// it has spawned workshops.
	hostLock string
	listed   *runningPortal
	// metrics are the process-wide collectors (see metricspool.go);
	// metricsHeld says this handler holds a reference to them.
	metrics     *metrics.Metrics
	metricsHeld bool
}

// CaddyModule returns the Caddy module information.
func (Handler) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.portal",
		New: func() caddy.Module { return new(Handler) },
	}
}

// Provision expands placeholders in secrets, checks the configuration and
// its spawners, loads the dashboard proxy and the process's metrics, and
// queues the portal's start for when Caddy runs the config (startApp):
// `caddy validate` and a config that fails to load start nothing, open no
// store and touch no environment.
func (h *Handler) Provision(ctx caddy.Context) error {
	h.logger = ctx.Logger()
	h.started = make(chan struct{})
	repl := caddy.NewReplacer()
	pooled, err := staticPools(h.Portal)
	if err != nil {
		return fmt.Errorf("portal: %w", err)
	}
	h.Portal = pooled.ExpandSecrets(func(s string) string { return repl.ReplaceKnown(s, "") }).WithDefaults()
	if err := h.Portal.Validate(); err != nil {
		return fmt.Errorf("portal: %w", err)
	}
	for _, msg := range append(h.Portal.Adjusted(), h.Portal.WeakSecrets()...) {
		h.logger.Warn(msg, zap.String("portal", h.Name))
	}
	m, err := acquireMetrics()
	if err != nil {
		return fmt.Errorf("portal %s: metrics: %w", h.Name, err)
	}
	h.metrics, h.metricsHeld = m, true
	if err := m.Register(ctx.GetMetricsRegistry()); err != nil {
		return fmt.Errorf("portal %s: %w", h.Name, err)
	}
	spec, err := storeFor(h.Portal)
	if err != nil {
		return fmt.Errorf("portal: %w", err)
	}
	if h.proxy, err = h.loadProxy(ctx); err != nil {
		return fmt.Errorf("portal %s: %w", h.Name, err)
	}
	if h.spawners, err = h.loadSpawners(ctx); err != nil {
		return fmt.Errorf("portal %s: %w", h.Name, err)
	}
	app, err := ctx.App(startAppID)
	if err != nil {
		return fmt.Errorf("portal %s: %w", h.Name, err)
	}
	app.(*startApp).add(func() error { return h.start(ctx, spec, pooled.Replica == "") })
	h.resumeHealthOnStart(ctx)
	return nil
}

// start opens (or shares) the state store, makes the workshops' spawners
// and starts the portal; storedReplica says the replica name is the one
// the store kept (no replica line). It runs when Caddy runs the config.
func (h *Handler) start(ctx caddy.Context, spec storeSpec, storedReplica bool) (err error) {
	defer close(h.started)
	st, shared, err := acquireStore(spec)
	if err != nil {
		return fmt.Errorf("portal %s: opening store in %s: %w", h.Name, spec.where, err)
	}
	h.storeKey = spec.key
	if storedReplica {
		// On Badger, the name its first start kept, not the host's
		// current one (see sessions.StoredReplica).
		if h.Portal.Replica, err = sessions.StoredReplica(ctx, st, h.Portal.Replica); err != nil {
			return fmt.Errorf("portal %s: reading the replica name kept in the store: %w", h.Name, err)
		}
	}
	if len(h.spawners) > 0 {
		// Spawners mark what they start with the portal's and the
		// replica's names, and stop what they find so marked as strays.
		if h.hostLock, err = acquireHostLock(h.Name, h.Replica); err != nil {
			return fmt.Errorf("portal %s: %w", h.Name, err)
		}
	}
	h.keptAt = spec.key + "|" + h.Name
	kept := acquireKept(h.keptAt)
	spawners, err := h.makeSpawners(h.spawners)
	if err != nil {
		return fmt.Errorf("portal %s: %w", h.Name, err)
	}
	p, err := portal.New(ctx, h.Portal, st, portal.Deps{
		Proxy:          h.proxy,
		Logger:         h.logger,
		Metrics:        h.metrics,
		Streams:        kept.streams,
		Limits:         kept.limits,
		ClientIP:       clientIP,
		AdminListeners: adminListeners(ctx),
		Spawners:       spawners,
		Overlap:        shared,
		// Dashboards served by this Caddy listen only once every app of
		// the config has started: probes wait for Caddy's "started" event
		// or the first request (ServeHTTP).
		HealthPaused: true,
	})
	if err != nil {
		return fmt.Errorf("portal %s: %w", h.Name, err)
	}
	h.portal = p
	h.listed = register(h.Name, p.Service())
	return nil
}

// running returns the portal once its start has run: Caddy may pass a
// request between the start of its http app and of startApp. Without a
// portal (the start failed, or the client left while it ran) the answer
// has been written and running returns nil.
func (h *Handler) running(w http.ResponseWriter, r *http.Request) *portal.Portal {
	// Every request passes here: once started, do not even ask for the
	// request's Done channel, which its context makes on first use.
	select {
	case <-h.started:
	default:
		select {
		case <-h.started:
		case <-r.Context().Done():
			return nil
		}
	}
	if h.portal == nil {
		httperr.Write(w, http.StatusServiceUnavailable, "The portal did not start; its log says why.")
	}
	return h.portal
}

// clientIP is the address limits count a request against: Caddy's client
// IP, which honours trusted_proxies.
func clientIP(r *http.Request) string {
	if ip, ok := caddyhttp.GetVar(r.Context(), caddyhttp.ClientIPVarKey).(string); ok && ip != "" {
		return ip
	}
	return clientip.Remote(r)
}

// Validate checks the configuration.
func (h *Handler) Validate() error {
	if err := validate(h.Portal); err != nil {
		return fmt.Errorf("portal: %w", err)
	}
	return nil
}

// validate checks p as Provision runs it: static spawners as the pools they
// become (a pool's size is its workshop's default capacity).
func validate(p config.Portal) error {
	pooled, err := staticPools(p)
	if err != nil {
		return err
	}
	return pooled.Validate()
}

// Cleanup stops the portal and releases the pooled store, streams and
// metrics. It copes with a Provision or a start that failed part-way, and
// with a config that never ran.
func (h *Handler) Cleanup() error {
	if h.listed != nil {
		svc := h.portal.Service()
		if unregister(h.Name, h.listed, svc) && !caddy.Exiting() {
			// A reload that renamed or removed the portal: nothing will
			// serve or end its live sessions, nor stop their environments.
			h.warnLeftBehind(svc)
		}
	}
	if h.portal != nil {
		h.portal.Close()
	}
	if h.keptAt != "" {
		releaseKept(h.keptAt)
	}
	if h.storeKey != "" {
		releaseStore(h.storeKey)
	}
	if h.hostLock != "" {
		releaseHostLock(h.hostLock)
	}
	// Caddy drops this config's registry with the config, so the
	// collectors need no Unregister; only the pool reference goes.
	if h.metricsHeld {
		h.metricsHeld = false
		releaseMetrics()
	}
	return nil
}

// warnLeftBehind logs what a portal that left the config leaves behind
// in its store: its live sessions.
func (h *Handler) warnLeftBehind(svc *sessions.Service) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	learners, reserves := 0, 0
	// Sessions of its own workshops only, on a store it may share.
	err := svc.EachLiveSession(ctx, func(s *sessions.Session) {
		if s.Reserved() {
			reserves++
		} else {
			learners++
		}
	})
	if err != nil || learners+reserves == 0 {
		return
	}
	h.logger.Warn("a portal with live sessions is no longer in the config (renamed or removed): nothing serves or "+
		"ends them, and their environments keep running, until a portal of that name starts again on the same "+
		"store and replica. To retire a portal, end its sessions first (admin pages or admin API), or let them "+
		"expire with each workshop's capacity at 0",
		zap.String("portal", h.Name), zap.String("replica", h.Replica), zap.Int("learners_sessions", learners), zap.Int("reserves", reserves))
}

// ServeHTTP serves the portal's routes and passes anything else on.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	p := h.running(w, r)
	if p == nil {
		return nil
	}
	p.ResumeHealth() // the servers listen now (see resumeHealthOnStart)
	if hh := p.Route(r); hh != nil {
		hh.ServeHTTP(w, r)
		return nil
	}
	return next.ServeHTTP(w, r)
}

// Interface guards.
var (
	_ caddy.Provisioner           = (*Handler)(nil)
	_ caddy.Validator             = (*Handler)(nil)
	_ caddy.CleanerUpper          = (*Handler)(nil)
	_ caddyhttp.MiddlewareHandler = (*Handler)(nil)
)
