package portal

import (
	"context"
	"time"

	"github.com/caddyportal/caddyportal/caddyportal/config"
	"github.com/caddyportal/caddyportal/caddyportal/health"
	"github.com/caddyportal/caddyportal/caddyportal/sessions"
)

// healthTargets lists what to probe: every address of a pool, and the
// address of every live session of a template workshop.
func healthTargets(svc *sessions.Service) []health.Target {
	if svc == nil {
		return nil
	}
	var out []health.Target
	var templates map[string]health.Probe
	for _, e := range svc.Environments() {
		hc := e.Workshop.HealthCheck
		if e.State != sessions.EnvRunning || hc != nil && hc.Disabled || svc.Spawned(e) {
			// (A spawner probes its environments' readiness itself, and
			// they are stopped when they fail.)
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
	for env, p := range templates {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		addrs, err := svc.LiveUpstreams(ctx, env)
		cancel()
		if err != nil {
			continue
		}
		for _, a := range addrs {
			out = append(out, health.Target{Environment: env, Addr: a, Probe: p})
		}
	}
	return out
}

// upstreamHealth records a probe's outcome as a metric, for pool
// addresses only: a template's addresses come and go with its sessions
// and would pile up as series.
func (p *Portal) upstreamHealth(svc *sessions.Service, t health.Target, ok bool) {
	if svc == nil {
		return
	}
	if e := svc.Environment(t.Environment); e != nil {
		if _, tmpl := e.Workshop.Template(); !tmpl {
			p.metrics.UpstreamHealth(t.Environment, t.Addr, ok)
		}
	}
}

func probeOf(hc *config.HealthCheck) health.Probe {
	if hc == nil {
		return health.Probe{}
	}
	return health.Probe{Path: hc.Path, Interval: hc.Interval.D(), Timeout: hc.Timeout.D()}
}
