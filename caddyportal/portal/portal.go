// Package portal assembles a workshop training portal from its parts (the
// session service, OAuth2 issuer, REST API, web pages, gate, health probes
// and analytics webhooks) from plain arguments, owns their shutdown order,
// and routes requests to them through the one route table (package
// routes). It does not import Caddy: the Caddy glue hands it a store, the
// process's metrics and a Proxy over Caddy's reverse_proxy, and calls
// Route for each request.
package portal

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/caddyportal/caddyportal/caddyportal/api"
	"github.com/caddyportal/caddyportal/caddyportal/assertion"
	"github.com/caddyportal/caddyportal/caddyportal/config"
	"github.com/caddyportal/caddyportal/caddyportal/gate"
	"github.com/caddyportal/caddyportal/caddyportal/health"
	"github.com/caddyportal/caddyportal/caddyportal/metrics"
	"github.com/caddyportal/caddyportal/caddyportal/oauth"
	"github.com/caddyportal/caddyportal/caddyportal/redirects"
	"github.com/caddyportal/caddyportal/caddyportal/routes"
	"github.com/caddyportal/caddyportal/caddyportal/sessions"
	"github.com/caddyportal/caddyportal/caddyportal/spawner"
	"github.com/caddyportal/caddyportal/caddyportal/store"
	"github.com/caddyportal/caddyportal/caddyportal/tokens"
	"github.com/caddyportal/caddyportal/caddyportal/webhooks"
	"github.com/caddyportal/caddyportal/caddyportal/webui"
)

// webhookCloseTimeout bounds how long a closed portal keeps delivering the
// analytics events it had queued (after a reload or stop). It runs in the
// background, so a hanging receiver never delays the reload itself.
const webhookCloseTimeout = 10 * time.Second

// strandedEvery is how often the stranded sessions gauge reads every live
// record again (which replica owns each): at 5,000 live sessions a read
// costs about 50 ms, too much for every scrape of every replica.
const strandedEvery = 30 * time.Second

// Deps are what the host program provides besides config and store.
type Deps struct {
	// Proxy forwards admitted dashboard requests. Required.
	Proxy gate.Proxy
	// Logger; default no-op.
	Logger *zap.Logger
	// Metrics are the process's collectors; nil counts nothing.
	Metrics *metrics.Metrics
	// Streams is the registry of open dashboard requests. It must outlive
	// a config reload (the old config's WebSockets stay open), so the host
	// keeps it per portal; nil makes one of this portal's own.
	Streams *gate.Streams
	// ClientIP is the address limits count a request against (honouring
	// trusted proxies); default: the host of r.RemoteAddr.
	ClientIP func(*http.Request) string
	// AdminListeners are addresses webhooks may never reach (the host's
	// admin endpoint).
	AdminListeners []string
	// HealthPaused holds dashboard probes until ResumeHealth, for hosts
	// whose dashboards listen only once the portal is set up.
	HealthPaused bool
	// Now is the clock; default time.Now.
	Now func() time.Time
	// ReconcileInterval overrides the service's reconcile period (tests).
	ReconcileInterval time.Duration
	// Limits are the portal's abuse limits. They must outlive a config
	// reload (a reload must not forgive an address its failed logins), so
	// the host keeps them per portal; nil makes fresh ones.
	Limits *Limits
	// Spawners start the session environments of the workshops that have
	// one, keyed by workshop name; a workshop without one keeps its static
	// pool or template.
	Spawners map[string]spawner.Spawner
	// Overlap says another portal on the same store runs in this process
	// (the old config during a reload), whose environment starts may be
	// under way (sessions.Options.Overlap).
	Overlap bool
}

// Portal is one running training portal.
type Portal struct {
	cfg      config.Portal
	log      *zap.Logger
	metrics  *metrics.Metrics
	svc      *sessions.Service
	api      *api.API
	ui       *webui.UI
	gate     *gate.Gate
	health   *health.Checker
	webhooks *webhooks.Dispatcher
	uid      string
	// stop ends the background loops New started.
	stop context.CancelFunc
	// releaseGauge removes the service's sources of the scraped gauges.
	releaseGauge func()
	// limits are shared in the store once the config serves
	// (ResumeHealth, once: started).
	limits  *Limits
	started sync.Once
}

// New starts a portal for cfg (defaults applied and validated here) on
// st. ctx bounds the start-up only; Close stops the portal. On error,
// everything started so far is stopped.
func New(ctx context.Context, cfg config.Portal, st store.Store, d Deps) (_ *Portal, err error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	for _, w := range cfg.Workshops {
		if w.Spawned() && d.Spawners[w.Name] == nil {
			return nil, fmt.Errorf("portal %s: workshop %s: its spawner was not loaded", cfg.Name, w.Name)
		}
		if pl, ok := d.Spawners[w.Name].(spawner.PortalLogin); ok {
			// The dashboard must reach the portal, and the browser the
			// session's host: both come from the portal's url.
			if _, on := pl.PortalLogin(); on && cfg.URL == "" {
				return nil, fmt.Errorf("portal %s: workshop %s: portal_login needs the portal's url", cfg.Name, w.Name)
			}
		}
	}
	if d.Proxy == nil {
		return nil, fmt.Errorf("portal %s: no dashboard proxy", cfg.Name)
	}
	if d.Logger == nil {
		d.Logger = zap.NewNop()
	}
	if d.Streams == nil {
		d.Streams = gate.NewStreams(d.Now)
	}
	p := &Portal{cfg: cfg, log: d.Logger, metrics: d.Metrics}
	defer func() {
		if err != nil {
			p.Close()
		}
	}()
	runCtx, stop := context.WithCancel(context.Background())
	p.stop = stop
	// Sessions' own analytics URLs come from REST callers: they may reach
	// only what the operator allows, and never the host's admin endpoint.
	guard, err := webhooks.NewGuard(cfg.AnalyticsAllow, d.AdminListeners)
	if err != nil {
		return nil, fmt.Errorf("analytics_allow: %w", err)
	}
	p.webhooks, err = webhooks.New(webhooks.Options{
		Guard:    guard,
		URL:      cfg.Analytics,
		Portal:   webhooks.Portal{Name: cfg.Name, URL: cfg.URL},
		Hold:     true,
		Logger:   d.Logger.Named("analytics"),
		OnResult: d.Metrics.WebhookDelivery,
		OnDrop:   d.Metrics.WebhookDropped,
	})
	if err != nil {
		return nil, fmt.Errorf("analytics: %w", err)
	}
	// The service allocates only to healthy dashboards, and the probes
	// read their targets from the service: the checker starts first and
	// finds the service through svcRef once it exists.
	svcRef := new(atomic.Pointer[sessions.Service])
	p.health = health.Start(health.Options{
		Targets:  func() []health.Target { return healthTargets(svcRef.Load()) },
		OnResult: func(t health.Target, ok bool) { p.upstreamHealth(svcRef.Load(), t, ok) },
		Logger:   d.Logger.Named("health"),
		Paused:   d.HealthPaused,
	})
	p.svc, err = sessions.New(ctx, st, cfg, sessions.Options{Logger: d.Logger, Now: d.Now,
		ReconcileInterval: d.ReconcileInterval, OnEvent: p.onEvent,
		OnEnd: d.Streams.End, OnChange: d.Streams.Changed, Healthy: p.health.Healthy,
		OnRequestFailed: d.Metrics.AllocationFailed, Spawners: d.Spawners,
		OnStart: d.Metrics.SpawnStart, Overlap: d.Overlap, OnReserveReady: p.warmer(runCtx, d.Proxy)})
	if err != nil {
		return nil, err
	}
	d.Streams.SetCheck(gate.CheckSessions(p.svc))
	svcRef.Store(p.svc)
	p.health.Refresh() // probe the pools now, not at the next tick
	secret, err := p.svc.Secret(ctx)
	if err != nil {
		return nil, fmt.Errorf("reading secret: %w", err)
	}
	if err := p.assemble(secret, st, guard, d); err != nil {
		return nil, err
	}
	go p.gate.Run(runCtx)
	// The dispatcher held the events emitted since the service started
	// until it knows the portal's uid, which comes from the store.
	p.webhooks.SetPortal(webhooks.Portal{Name: cfg.Name, UID: p.uid, URL: cfg.URL})
	releaseSessions := d.Metrics.SetSessionsSource(metrics.ServiceSessions(p.svc))
	releaseStranded := d.Metrics.SetStrandedSource(cfg.Name, metrics.ServiceStranded(p.svc, strandedEvery))
	p.releaseGauge = func() { releaseSessions(); releaseStranded() }
	// One line that tells a newcomer where everything is.
	p.log.Info("portal ready", zap.String("portal", cfg.Name), zap.String("catalog", cfg.URL+routes.CatalogPath),
		zap.String("login", cfg.URL+routes.LoginPath), zap.String("admin", cfg.URL+routes.AdminPath),
		zap.String("rest_api", cfg.URL+"/workshops/"), zap.Int("workshops", len(cfg.Workshops)))
	return p, nil
}

// assemble builds the faces (gate, pages, REST API) over the running
// service. Every key they use derives from the portal's stored secret.
func (p *Portal) assemble(secret []byte, st store.Store, guard *webhooks.Guard, d Deps) error {
	cfg := p.cfg
	signer, err := tokens.NewSigner(tokens.DeriveKey(secret, "cookies"))
	if err != nil {
		return err
	}
	// The pages' cookies share the gate's prefix so the gate strips them
	// from requests it proxies to dashboards.
	cookiePrefix := "portal-" + cfg.Name + "-"
	policy, err := redirects.NewPolicy(append([]string{cfg.URL, cfg.Index}, cfg.Redirects...)...)
	if err != nil {
		return fmt.Errorf("redirects: %w", err)
	}
	limits := d.Limits
	if limits == nil {
		limits = NewLimits(p.svc.Now)
	}
	// The limits outlive a reload: they count in the store of the config
	// that serves, once it does (a reload that fails leaves them with the
	// config that goes on serving).
	p.limits = limits
	if !d.HealthPaused {
		p.shareLimits()
	}
	domain := ""
	if cfg.Dashboards.Mode == config.DashboardsHost {
		domain = cfg.Dashboards.Domain
	}
	// Tokens are bound to the robot's and the admin's passwords: a reload
	// that changes one ends the tokens issued under it. The issuer's store
	// speaks the service's error vocabulary, so the REST API answers its
	// outages like the service's own (503 with a Retry-After).
	issuer := oauth.NewIssuer(sessions.WrapStore(st), cfg.Tokens.Access.D(), cfg.Tokens.Refresh.D(), nil,
		oauth.BindTo(api.Credentials(cfg, tokens.DeriveKey(secret, "oauth-bind"))))
	var asserts *assertion.Signer
	if cfg.Assertion {
		asserts = assertion.New(sessions.WrapStore(st), sessions.KeyAssertionKeys, 0, d.Now)
	}
	// The gate and the pages know the portal's own host by one rule.
	origins := gate.NewOrigins(cfg.URL)
	p.gate, err = gate.New(gate.Options{Service: p.svc, Cookies: gate.NewCookies(signer, cookiePrefix), Codes: issuer,
		Assertions: asserts, Issuer: cfg.URL, Framed: framed(cfg),
		Origins: origins, Proxy: d.Proxy, Streams: d.Streams, Domain: domain,
		KeepPrefix: cfg.Dashboards.KeepPrefix,
		Index:      cfg.Index, Anonymous: cfg.Registration == config.RegistrationAnonymous,
		Redirects: policy, Creates: limits.Creates, AnonymousLogins: pagesLogins{p},
		ClientIP: d.ClientIP, Metrics: d.Metrics, Logger: d.Logger})
	if err != nil {
		return err
	}
	openAs := p.gate.ActivatedAs
	if cfg.StaffAccessOff {
		openAs = nil
	}
	p.ui, err = webui.New(webui.Options{Service: p.svc, Key: tokens.DeriveKey(secret, "webui"),
		CookiePrefix: cookiePrefix, Redirects: policy, Logger: d.Logger, ClientIP: d.ClientIP,
		Logins: limits.Logins, Signups: limits.Signups, Health: p.health.Statuses, OpenAs: openAs, StaffGrant: cfg.StaffAccess.D(),
		PortalHost: origins.PortalHost})
	if err != nil {
		return err
	}
	p.uid = uidOf(secret)
	p.api = api.New(api.Options{
		Service:           p.svc,
		Issuer:            issuer,
		Redirects:         policy,
		Logger:            d.Logger,
		ClientIP:          d.ClientIP,
		Logins:            limits.Logins,
		Revokes:           limits.Revokes,
		OnActivate:        p.gate.Activated,
		PortalUID:         p.uid,
		OnToken:           d.Metrics.TokenGrant,
		CheckAnalyticsURL: guard.CheckURL,
		Assertions:        asserts,
	})
	return nil
}

var (
	_ gate.AnonymousLogins = pagesLogins{}
	_ gate.AnonymousLogins = (*webui.UI)(nil)
)

// pagesLogins lends the gate the pages' anonymous logins. The pages are
// built after the gate (they open dashboards through it) and before any
// request arrives, so the gate reaches them through the portal.
type pagesLogins struct{ p *Portal }

func (l pagesLogins) AnonymousUser(r *http.Request) string { return l.p.ui.AnonymousUser(r) }

func (l pagesLogins) RememberAnonymous(w http.ResponseWriter, r *http.Request, user string) error {
	return l.p.ui.RememberAnonymous(w, r, user)
}

// framed says which workshops' sessions get the session frame.
func framed(cfg config.Portal) func(string) bool {
	on := map[string]bool{}
	for _, w := range cfg.Workshops {
		on[w.Name] = cfg.Frame || w.Frame
	}
	return func(workshop string) bool { return on[workshop] }
}

// uidOf derives the portal's uid (shown in the catalog, sent with
// webhooks) from its secret: stable across restarts and replicas.
func uidOf(secret []byte) string {
	u := tokens.DeriveKey(secret, "uid")
	return fmt.Sprintf("%x-%x-%x-%x-%x", u[0:4], u[4:6], u[6:8], u[8:10], u[10:16])
}

// onEvent receives every committed state change of the service. Both
// calls only count and queue: the service calls it on the request path.
func (p *Portal) onEvent(ev sessions.Event) {
	p.metrics.ObserveEvent(ev)
	p.webhooks.Send(ev, ev.AnalyticsURL)
}

// warmTimeout bounds the GET that opens the proxy's connection to a ready
// reserve's dashboard.
const warmTimeout = 10 * time.Second

// warmer returns the service's OnReserveReady hook, nil when proxy cannot
// warm: it opens the proxy's connection to each reserve's dashboard as soon
// as the reserve is ready, with a GET of the readiness probe's path, and
// the learner who takes the reserve is served over it. When a class
// arrives at a warm pool, the proxy dialling fifty dashboards at once (and
// each of them accepting its first connection) was 15% of the portal's CPU;
// with the connections opened ahead the class's p99 from activation to the
// dashboard fell from 66–74 to 44–60 ms (bench pool scenario).
func (p *Portal) warmer(ctx context.Context, proxy gate.Proxy) func(addr, path string) {
	w, ok := proxy.(gate.Warmer)
	if !ok {
		return nil
	}
	return func(addr, path string) {
		go func() {
			ctx, cancel := context.WithTimeout(ctx, warmTimeout)
			defer cancel()
			if err := w.Warm(ctx, addr, path); err != nil && ctx.Err() == nil {
				p.log.Debug("opening the proxy's connection to a ready reserve", zap.String("addr", addr), zap.Error(err))
			}
		}()
	}
}

// Service is the portal's session service (for the admin API).
func (p *Portal) Service() *sessions.Service { return p.svc }

// UID is the portal's uid.
func (p *Portal) UID() string { return p.uid }

// ResumeHealth starts dashboard probes held by Deps.HealthPaused, and from
// then on the abuse limits count in this portal's store when replicas
// share it. It is cheap after the first call.
func (p *Portal) ResumeHealth() {
	if p.limits != nil {
		p.shareLimits()
	}
	p.health.Resume()
}

// shareLimits points the limits at this portal's store, once.
func (p *Portal) shareLimits() {
	p.started.Do(func() { p.limits.shareIn(p.svc) })
}

// Close stops the portal: the service first (nothing more is queued),
// then the probes and activity, then the webhooks deliver what is left in
// the background for a bounded time. It copes with a New that failed
// part-way.
func (p *Portal) Close() {
	if p.releaseGauge != nil {
		p.releaseGauge()
	}
	if p.svc != nil {
		p.svc.Close()
	}
	p.health.Close()
	if p.stop != nil {
		p.stop()
	}
	if d := p.webhooks; d != nil {
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), webhookCloseTimeout)
			defer cancel()
			_ = d.Close(ctx)
		}()
	}
}
