package caddyportal

import (
	"context"
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

// Warm implements gate.Warmer: one GET of path to the dashboard at
// upstream through the reverse proxy, its answer discarded, which leaves
// the proxy's kept-alive connection to the dashboard in its pool. It runs
// outside any server request, so it prepares the request as Caddy's server
// does, with an empty server (the proxy reads its log settings); should a
// later Caddy need more of it, the panic becomes this warm-up's error.
func (p caddyProxy) Warm(ctx context.Context, upstream, path string) (err error) {
	defer func() {
		if v := recover(); v != nil {
			err = fmt.Errorf("reverse proxy: %v", v)
		}
	}()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+upstream+path, nil)
	if err != nil {
		return err
	}
	w := &discardResponse{header: http.Header{}}
	req = caddyhttp.PrepareRequest(req, caddy.NewReplacer(), w, &caddyhttp.Server{})
	caddyhttp.SetVar(req.Context(), upstreamVar, upstream)
	return p.rp.ServeHTTP(w, req, noNext)
}

// discardResponse is a ResponseWriter that keeps nothing.
type discardResponse struct{ header http.Header }

func (d *discardResponse) Header() http.Header         { return d.header }
func (d *discardResponse) Write(b []byte) (int, error) { return len(b), nil }
func (d *discardResponse) WriteHeader(int)             {}

var (
	_ gate.Proxy  = caddyProxy{}
	_ gate.Warmer = caddyProxy{}
)
