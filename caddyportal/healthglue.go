package caddyportal

import (
	"context"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyevents"
	"go.uber.org/zap"
)

// resumeHealthOnStart begins dashboard probes at Caddy's "started" event,
// when every server of the config listens (dashboards this Caddy serves
// too), or at the portal's first request, whichever comes first.
func (h *Handler) resumeHealthOnStart(ctx caddy.Context) {
	app, err := ctx.App("events")
	if err == nil {
		if events, ok := app.(*caddyevents.App); ok {
			err = events.On("started", resumeHealth{h})
		}
	}
	if err != nil {
		h.logger.Warn("no started event: dashboard probes begin at the first request", zap.Error(err))
	}
}

// resumeHealth begins probing when Caddy has started the config, whose
// apps, startApp among them, have all started by then.
type resumeHealth struct{ h *Handler }

// Handle implements caddyevents.Handler.
func (r resumeHealth) Handle(context.Context, caddy.Event) error {
	select {
	case <-r.h.started:
		if r.h.portal != nil {
			r.h.portal.ResumeHealth()
		}
	default:
	}
	return nil
}
