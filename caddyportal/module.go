// Package caddyportal is the Caddy glue of the workshop training portal: the
// `http.handlers.portal` module, its Caddyfile directive `portal`, the pooled
// state store that survives config reloads, and the wiring of the REST API
// and the session gate. The portal logic itself lives in sub-packages that do
// not import Caddy.
package caddyportal

import (
	"fmt"
	"net/http"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

	"github.com/caddyportal/caddyportal/caddyportal/config"
)

func init() {
	caddy.RegisterModule(Handler{})
}

// Handler serves a workshop training portal: the Educates-compatible REST
// API, the activation links and the gate in front of each session's
// dashboard. Requests it does not own are passed to the next handler.
type Handler struct {
	config.Portal

	logger *zap.Logger
}

// CaddyModule returns the Caddy module information.
func (Handler) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.portal",
		New: func() caddy.Module { return new(Handler) },
	}
}

// Provision expands placeholders in secrets and applies defaults.
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
	return nil
}

// Validate checks the configuration.
func (h *Handler) Validate() error {
	if err := h.Portal.Validate(); err != nil {
		return fmt.Errorf("portal: %w", err)
	}
	return nil
}

// Cleanup releases what Provision acquired.
func (h *Handler) Cleanup() error {
	return nil
}

// ServeHTTP serves the portal's routes and passes anything else on.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	return next.ServeHTTP(w, r)
}

// Interface guards.
var (
	_ caddy.Provisioner           = (*Handler)(nil)
	_ caddy.Validator             = (*Handler)(nil)
	_ caddy.CleanerUpper          = (*Handler)(nil)
	_ caddyhttp.MiddlewareHandler = (*Handler)(nil)
)
