package caddyportal

import (
	"context"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyevents"
	"go.uber.org/zap"

	"github.com/caddyportal/caddyportal/caddyportal/portal"
)

// resumeHealthOnStart begins dashboard probes at Caddy's "started" event,
// when every server of the config listens (dashboards this Caddy serves
// too), or at the portal's first request, whichever comes first.
func (h *Handler) resumeHealthOnStart(ctx caddy.Context) {
	app, err := ctx.App("events")
	if err == nil {
		if events, ok := app.(*caddyevents.App); ok {
			err = events.On("started", resumeHealth{h.portal})
		}
	}
	if err != nil {
		h.logger.Warn("no started event: dashboard probes begin at the first request", zap.Error(err))
	}
}

// resumeHealth begins probing when Caddy has started the config.
type resumeHealth struct{ p *portal.Portal }

// Handle implements caddyevents.Handler.
func (r resumeHealth) Handle(context.Context, caddy.Event) error {
	r.p.ResumeHealth()
	return nil
}
