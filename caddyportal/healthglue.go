package caddyportal

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyevents"

	"github.com/caddyportal/caddyportal/caddyportal/config"
	"github.com/caddyportal/caddyportal/caddyportal/health"
	"github.com/caddyportal/caddyportal/caddyportal/lifecycle"
	"github.com/caddyportal/caddyportal/caddyportal/sessions"
	"go.uber.org/zap"
)

// startHealth starts probing the dashboards of this portal's workshops.
// The service is not known yet (it needs the checker's answer to
// allocate); healthTargets reads it from h.healthSvc once set. Probing
// waits for Caddy's "started" event, when every server of the config
// listens, or the portal's first request, whichever comes first.
func (h *Handler) startHealth(ctx caddy.Context) {
	h.healthSvc = new(atomic.Pointer[sessions.Service])
	h.health = health.Start(health.Options{
		Targets: h.healthTargets,
		OnResult: func(t health.Target, ok bool) {
			// Pool addresses only: a template's addresses come and go
			// with its sessions and would pile up as series.
			if svc := h.healthSvc.Load(); svc != nil {
				if e := svc.Environment(t.Environment); e != nil {
					if _, tmpl := e.Workshop.Template(); !tmpl {
						h.metrics.UpstreamHealth(t.Environment, t.Addr, ok)
					}
				}
			}
		},
		Logger: h.logger.Named("health"),
		// Dashboards served by this Caddy listen only once provisioning
		// is over: ServeHTTP resumes the checker.
		Paused: true,
	})
	app, err := ctx.App("events")
	if err == nil {
		if events, ok := app.(*caddyevents.App); ok {
			err = events.On("started", resumeHealth{h.health})
		}
	}
	if err != nil {
		h.logger.Warn("no started event: dashboard probes begin at the first request", zap.Error(err))
	}
}

// resumeHealth begins probing when Caddy has started the config.
type resumeHealth struct{ c *health.Checker }

// Handle implements caddyevents.Handler.
func (r resumeHealth) Handle(context.Context, caddy.Event) error {
	r.c.Resume()
	return nil
}

// healthTargets lists what to probe: every address of a pool, and the
// address of every live session of a template workshop.
func (h *Handler) healthTargets() []health.Target {
	svc := h.healthSvc.Load()
	if svc == nil {
		return nil
	}
	var out []health.Target
	var templates map[string]health.Probe
	for _, e := range svc.Environments() {
		hc := e.Workshop.HealthCheck
		if e.State != sessions.EnvRunning || hc != nil && hc.Disabled {
			continue
		}
		p := probeOf(hc)
		if _, ok := e.Workshop.Template(); ok {
			if templates == nil {
				templates = map[string]health.Probe{}
			}
			templates[e.Name] = p
			continue
		}
		for _, u := range e.Workshop.Upstreams {
			out = append(out, health.Target{Environment: e.Name, Addr: u, Probe: p})
		}
	}
	if len(templates) > 0 {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		byEnv, err := svc.EnvironmentSessions(ctx)
		if err == nil {
			for env, p := range templates {
				for _, s := range byEnv[env] {
					if s.State != lifecycle.Stopped {
						out = append(out, health.Target{Environment: env, Addr: s.Upstream, Probe: p})
					}
				}
			}
		}
	}
	return out
}

func probeOf(hc *config.HealthCheck) health.Probe {
	if hc == nil {
		return health.Probe{}
	}
	return health.Probe{Path: hc.Path, Interval: hc.Interval.D(), Timeout: hc.Timeout.D()}
}

// Interface guard.
var _ caddyevents.Handler = resumeHealth{}
