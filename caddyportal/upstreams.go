package caddyportal

import (
	"fmt"
	"net/http"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp/reverseproxy"
)

func init() {
	caddy.RegisterModule(UpstreamSource{})
}

// upstreamVar is the request variable in which the gate leaves the dial
// address of the session's dashboard for UpstreamSource.
const upstreamVar = "portal.upstream"

// UpstreamSource hands the reverse proxy the dashboard address that the
// portal gate chose for the request's session. It is only useful inside the
// portal handler, which loads the proxy with this source.
type UpstreamSource struct{}

// CaddyModule returns the Caddy module information.
func (UpstreamSource) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.reverse_proxy.upstreams.portal",
		New: func() caddy.Module { return new(UpstreamSource) },
	}
}

// GetUpstreams returns the session's dashboard upstream.
func (UpstreamSource) GetUpstreams(r *http.Request) ([]*reverseproxy.Upstream, error) {
	addr, _ := caddyhttp.GetVar(r.Context(), upstreamVar).(string)
	if addr == "" {
		return nil, fmt.Errorf("portal: no session upstream chosen for this request")
	}
	return []*reverseproxy.Upstream{{Dial: addr}}, nil
}

var _ reverseproxy.UpstreamSource = (*UpstreamSource)(nil)
