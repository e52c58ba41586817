package caddyportal

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/caddyportal/caddyportal/caddyportal/gate"
)

// defaultStreamCloseDelay keeps dashboard WebSockets (terminals, editors)
// open this long after a config reload instead of cutting them at once.
const defaultStreamCloseDelay = 10 * time.Minute

// defaultDashboardTimeout bounds the wait for a dashboard's response
// headers; a hung dashboard then gets the browser an error page.
const defaultDashboardTimeout = 30 * time.Second

// upstreamVar is the request variable in which caddyProxy leaves the dial
// address of the session's dashboard; the proxy's upstream dials it.
const upstreamVar = "portal.upstream"

// loadProxy loads Caddy's own reverse proxy, dialing the address the gate
// chose for the session, as a module of this config so Caddy cleans it up
// (and closes or delays closing its WebSockets) with the config.
func (h *Handler) loadProxy(ctx caddy.Context) (gate.Proxy, error) {
	delay := time.Duration(h.StreamCloseDelay)
	if delay == 0 {
		delay = defaultStreamCloseDelay
	}
	timeout := time.Duration(h.DashboardTimeout)
	if timeout == 0 {
		timeout = defaultDashboardTimeout
	}
	raw, err := json.Marshal(map[string]any{
		// One static upstream whose dial address is the placeholder the
		// gate fills per request. Dynamic upstreams would cost a copy of
		// the whole proxy handler and a global lock per request.
		"upstreams":          []map[string]string{{"dial": "{http.vars." + upstreamVar + "}"}},
		"stream_close_delay": int64(delay),
		"transport":          map[string]any{"protocol": "http", "response_header_timeout": int64(timeout)},
		// No flush_interval: Caddy already flushes streaming and
		// unknown-length responses (SSE, terminals) at once, and forcing a
		// flush on every write costs a syscall per chunk on plain pages.
	})
	if err != nil {
		return nil, err
	}
	mod, err := ctx.LoadModuleByID("http.handlers.reverse_proxy", raw)
	if err != nil {
		return nil, fmt.Errorf("loading reverse proxy: %w", err)
	}
	return caddyProxy{mod.(caddyhttp.MiddlewareHandler)}, nil
}

// caddyProxy is the gate's Proxy over Caddy's reverse_proxy.
type caddyProxy struct{ rp caddyhttp.MiddlewareHandler }

// noNext ends the chain: the proxy answers every request itself (it calls
// next only for handle_response routes, which this one has none of).
var noNext = caddyhttp.HandlerFunc(func(http.ResponseWriter, *http.Request) error { return nil })

// Forward implements gate.Proxy.
func (p caddyProxy) Forward(w http.ResponseWriter, r *http.Request, upstream string) error {
	caddyhttp.SetVar(r.Context(), upstreamVar, upstream)
	err := p.rp.ServeHTTP(w, r, noNext)
	var he caddyhttp.HandlerError
	if errors.As(err, &he) {
		return &gate.ProxyError{Status: he.StatusCode, Err: err}
	}
	return err
}

var _ gate.Proxy = caddyProxy{}
