// Package clientip is the one place that says which address a request came
// from when nothing better is known: the host part of its RemoteAddr. The
// Caddy glue passes Caddy's client IP instead (it honours trusted_proxies);
// the portal's faces fall back to Remote when run without it, as their
// tests and other embedders do. It does not import Caddy.
package clientip

import (
	"net"
	"net/http"
)

// Remote is the host part of r.RemoteAddr, or RemoteAddr itself when it
// has no port (a unix socket, or a test's made-up address), so that limits
// still count it against something stable.
func Remote(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}
