// Package caddyportal is the Caddy glue of the workshop training portal: the
// `http.handlers.portal` module, its Caddyfile directive `portal`, the pooled
// state store that survives config reloads, and the wiring of the REST API
// and the session gate. The portal logic itself lives in sub-packages that do
// not import Caddy.
package caddyportal

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

	"github.com/caddyportal/caddyportal/caddyportal/api"
	"github.com/caddyportal/caddyportal/caddyportal/config"
	"github.com/caddyportal/caddyportal/caddyportal/gate"
	"github.com/caddyportal/caddyportal/caddyportal/health"
	"github.com/caddyportal/caddyportal/caddyportal/loginlimit"
	"github.com/caddyportal/caddyportal/caddyportal/metrics"
	"github.com/caddyportal/caddyportal/caddyportal/oauth"
	"github.com/caddyportal/caddyportal/caddyportal/redirects"
	"github.com/caddyportal/caddyportal/caddyportal/sessions"
	"github.com/caddyportal/caddyportal/caddyportal/tokens"
	"github.com/caddyportal/caddyportal/caddyportal/webhooks"
	"github.com/caddyportal/caddyportal/caddyportal/webui"
)

// webhookCloseTimeout bounds how long an old config keeps delivering the
// analytics events it had queued after a reload or stop. It runs in the
// background, so a hanging receiver never delays the reload itself.
const webhookCloseTimeout = 10 * time.Second

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

	logger    *zap.Logger
	proxy     caddyhttp.MiddlewareHandler
	activity  *activity
	streams   *gate.Streams
	streamsAt string // the streams pool key, once acquired
	redirects *redirects.Policy
	storeKey  string
	svc       *sessions.Service
	listed    *runningPortal
	api       *api.API
	ui        *webui.UI
	cookies   *gate.Cookies
	origins   gate.Origins
	// logins counts failed logins for both doors, the REST API's token
	// endpoint and the web login, so guesses at one count at the other.
	logins *loginlimit.Limiter
	// creates limits anonymous session starts per client address.
	creates *loginlimit.Rate

	// metrics are the process-wide collectors (see metricspool.go);
	// metricsHeld says this handler holds a reference to them.
	metrics      *metrics.Metrics
	metricsHeld  bool
	releaseGauge func()
	webhooks     *webhooks.Dispatcher
	webhookGuard *webhooks.Guard
	// health probes the dashboards; healthSvc is the service it reads
	// its targets from, set once the service exists.
	health    *health.Checker
	healthSvc *atomic.Pointer[sessions.Service]
}

// CaddyModule returns the Caddy module information.
func (Handler) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.portal",
		New: func() caddy.Module { return new(Handler) },
	}
}

// Provision expands placeholders in secrets, applies defaults, opens (or
// shares) the state store and starts the portal service.
func (h *Handler) Provision(ctx caddy.Context) error {
	h.logger = ctx.Logger()
	repl := caddy.NewReplacer()
	h.Robot.Password = repl.ReplaceKnown(h.Robot.Password, "")
	h.Client.ID = repl.ReplaceKnown(h.Client.ID, "")
	h.Client.Secret = repl.ReplaceKnown(h.Client.Secret, "")
	if h.Admin != nil {
		a := *h.Admin
		a.Password = repl.ReplaceKnown(a.Password, "")
		h.Admin = &a
	}
	h.Portal = h.Portal.WithDefaults()
	if err := h.Portal.Validate(); err != nil {
		return fmt.Errorf("portal: %w", err)
	}
	if err := h.provisionObservability(ctx); err != nil {
		return fmt.Errorf("portal %s: %w", h.Name, err)
	}
	spec, err := storeFor(h.Portal)
	if err != nil {
		return fmt.Errorf("portal: %w", err)
	}
	st, err := acquireStore(spec)
	if err != nil {
		return fmt.Errorf("portal %s: opening store in %s: %w", h.Name, spec.where, err)
	}
	h.storeKey = spec.key
	h.streamsAt = spec.key + "|" + h.Name
	h.streams = acquireStreams(h.streamsAt)
	h.startHealth(ctx)
	h.svc, err = sessions.New(ctx, st, h.Portal, sessions.Options{Logger: h.logger, OnEvent: h.onEvent,
		OnEnd: h.streams.End, OnChange: h.streams.Changed, Healthy: h.health.Healthy,
		OnRequestFailed: h.metrics.AllocationFailed})
	if err != nil {
		return fmt.Errorf("portal %s: %w", h.Name, err)
	}
	h.streams.SetCheck(checkStream(h.svc))
	h.healthSvc.Store(h.svc)
	h.health.Refresh() // probe the pools now, not at the next tick
	secret, err := h.svc.Secret(ctx)
	if err != nil {
		return fmt.Errorf("portal %s: reading secret: %w", h.Name, err)
	}
	signer, err := tokens.NewSigner(tokens.DeriveKey(secret, "cookies"))
	if err != nil {
		return err
	}
	h.cookies = gate.NewCookies(signer, "portal-"+h.Name+"-")
	h.origins = gate.NewOrigins(h.URL)
	policy, err := redirects.NewPolicy(append([]string{h.URL, h.Index}, h.Redirects...)...)
	if err != nil {
		return fmt.Errorf("portal: redirects: %w", err)
	}
	h.redirects = policy
	h.logins = loginlimit.New(h.svc.Now)
	h.creates = loginlimit.NewRate(h.svc.Now, CreateBurst, CreateEvery)
	// The pages' cookies share the gate's prefix so the gate strips them
	// from requests it proxies to dashboards.
	h.ui, err = webui.New(webui.Options{Service: h.svc, Key: tokens.DeriveKey(secret, "webui"),
		CookiePrefix: "portal-" + h.Name + "-", Redirects: policy, Logger: h.logger, ClientIP: clientIP,
		Logins: h.logins, Health: h.health.Statuses})
	if err != nil {
		return fmt.Errorf("portal %s: %w", h.Name, err)
	}
	if err := h.loadProxy(ctx); err != nil {
		return fmt.Errorf("portal %s: %w", h.Name, err)
	}
	uid := tokens.DeriveKey(secret, "uid")
	portalUID := fmt.Sprintf("%x-%x-%x-%x-%x", uid[0:4], uid[4:6], uid[6:8], uid[8:10], uid[10:16])
	// Tokens are bound to the robot's and the admin's passwords: a reload
	// that changes one ends the tokens issued under it.
	issuer := oauth.NewIssuer(st, h.Tokens.Access.D(), h.Tokens.Refresh.D(), nil,
		oauth.BindTo(api.Credentials(h.Portal, tokens.DeriveKey(secret, "oauth-bind"))))
	h.api = api.New(api.Options{
		Service:           h.svc,
		Issuer:            issuer,
		Redirects:         policy,
		Logger:            h.logger,
		ClientIP:          clientIP,
		Logins:            h.logins,
		OnActivate:        h.activated,
		PortalUID:         portalUID,
		OnToken:           h.metrics.TokenGrant,
		CheckAnalyticsURL: h.webhookGuard.CheckURL,
	})
	// The dispatcher held the events emitted since the service started
	// until it knows the portal's uid, which comes from the store.
	h.webhooks.SetPortal(webhooks.Portal{Name: h.Name, UID: portalUID, URL: h.URL})
	h.releaseGauge = h.metrics.SetSessionsSource(metrics.ServiceSessions(h.svc))
	h.listed = register(h.Name, h.svc)
	return nil
}

// provisionObservability exposes the process's portal collectors on this
// config's metrics registry and starts the analytics webhook dispatcher.
func (h *Handler) provisionObservability(ctx caddy.Context) error {
	m, err := acquireMetrics()
	if err != nil {
		return fmt.Errorf("metrics: %w", err)
	}
	h.metrics, h.metricsHeld = m, true
	if err := m.Register(ctx.GetMetricsRegistry()); err != nil {
		return err
	}
	// Sessions' own analytics URLs come from REST callers: they may reach
	// only what the operator allows, and never Caddy's admin listener.
	h.webhookGuard, err = webhooks.NewGuard(h.AnalyticsAllow, adminListeners(ctx))
	if err != nil {
		return fmt.Errorf("analytics_allow: %w", err)
	}
	h.webhooks, err = webhooks.New(webhooks.Options{
		Guard:    h.webhookGuard,
		URL:      h.Analytics,
		Portal:   webhooks.Portal{Name: h.Name, URL: h.URL},
		Hold:     true,
		Logger:   h.logger.Named("analytics"),
		OnResult: m.WebhookDelivery,
		OnDrop:   m.WebhookDropped,
	})
	if err != nil {
		return fmt.Errorf("analytics: %w", err)
	}
	return nil
}

// onEvent receives every committed state change of the service. Both
// calls only count and queue: the service calls it on the request path.
func (h *Handler) onEvent(ev sessions.Event) {
	h.metrics.ObserveEvent(ev)
	h.webhooks.Send(ev, ev.AnalyticsURL)
}

// clientIP is the address failed logins are counted against: Caddy's
// client IP, which honours trusted_proxies.
func clientIP(r *http.Request) string {
	if ip, ok := caddyhttp.GetVar(r.Context(), caddyhttp.ClientIPVarKey).(string); ok && ip != "" {
		return ip
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// Validate checks the configuration.
func (h *Handler) Validate() error {
	if err := h.Portal.Validate(); err != nil {
		return fmt.Errorf("portal: %w", err)
	}
	return nil
}

// Cleanup stops the service and releases the shared store. It copes with a
// Provision that failed part-way.
func (h *Handler) Cleanup() error {
	if h.releaseGauge != nil {
		h.releaseGauge()
	}
	if h.listed != nil {
		unregister(h.Name, h.listed, h.svc)
	}
	if h.svc != nil {
		h.svc.Close()
	}
	h.health.Close()
	if d := h.webhooks; d != nil {
		// The service is closed, so nothing more is queued: deliver what
		// is left in the background, for a bounded time.
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), webhookCloseTimeout)
			defer cancel()
			_ = d.Close(ctx)
		}()
	}
	if h.streamsAt != "" {
		releaseStreams(h.streamsAt)
	}
	if h.storeKey != "" {
		releaseStore(h.storeKey)
	}
	// Caddy drops this config's registry with the config, so the
	// collectors need no Unregister; only the pool reference goes.
	if h.metricsHeld {
		h.metricsHeld = false
		releaseMetrics()
	}
	return nil
}

// ServeHTTP serves the portal's routes and passes anything else on.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	h.health.Resume() // the servers listen now (see startHealth)
	// A session host belongs to its dashboard entirely: its paths may look
	// like API routes but are the dashboard's own.
	if name := h.sessionHost(r); name != "" {
		return h.serveSessionHost(w, r, name, next)
	}
	if hh := h.api.Handler(r); hh != nil {
		if h.refusePortal(w, r, true) {
			return nil
		}
		hh.ServeHTTP(w, r)
		return nil
	}
	if hh := h.ui.Handler(r); hh != nil {
		if h.refusePortal(w, r, false) {
			return nil
		}
		hh.ServeHTTP(w, r)
		return nil
	}
	if handled, err := h.serveBrowser(w, r, next); handled {
		return err
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
