package gate

import (
	"net/http"
	"strings"
)

// Headers the gate sets for the upstream. Any client-sent header with these
// names (or the X-Portal- prefix) is removed first.
const (
	HeaderSession = "X-Portal-Session"
	HeaderUser    = "X-Portal-User"
)

// identityHeaders are headers that upstream dashboards or auth middleware
// commonly trust as identity; a browser must never be able to set them.
var identityHeaders = []string{
	"X-Forwarded-User", "X-Forwarded-Email", "X-Forwarded-Preferred-Username", "X-Forwarded-Groups",
	"X-Remote-User", "X-Remote-Group", "Remote-User", "X-User", "X-Email", "X-Auth-User",
	"X-Auth-Request-User", "X-Auth-Request-Email", "X-Auth-Request-Preferred-Username",
	"X-Auth-Request-Groups", "X-Auth-Request-Access-Token", "X-Webauth-User",
}

// clientAddressHeaders claim where a request came from or how it reached
// the proxy. Caddy rewrites X-Forwarded-For, -Proto and -Host itself; these
// others it passes through as the browser sent them, and dashboards or
// their frameworks may trust them for client IPs, schemes or URLs.
var clientAddressHeaders = []string{
	"Forwarded", "X-Real-Ip", "X-Client-Ip", "True-Client-Ip", "X-Cluster-Client-Ip",
	"Cf-Connecting-Ip", "Fastly-Client-Ip", "X-Original-Forwarded-For", "X-Forwarded-Port",
	"X-Forwarded-Server", "X-Forwarded-Ssl", "X-Forwarded-Scheme", "Front-End-Https", "X-Url-Scheme",
	"X-Original-Url", "X-Original-Host", "X-Rewrite-Url", "X-Host",
}

// StripIdentity removes client-sent identity and client-address headers
// and the portal's own
// cookies (with cookiePrefix) from a request about to be proxied, then sets
// the gate's identity headers.
func StripIdentity(h http.Header, cookiePrefix, session, user string) {
	const portalPrefix = "x-portal-"
	for name := range h {
		if len(name) >= len(portalPrefix) && strings.EqualFold(name[:len(portalPrefix)], portalPrefix) {
			delete(h, name)
		}
	}
	for _, list := range [][]string{identityHeaders, clientAddressHeaders} {
		for _, name := range list {
			h.Del(name)
		}
	}
	if cookies := h.Values("Cookie"); len(cookies) > 0 {
		var kept []string
		for _, line := range cookies {
			for _, part := range strings.Split(line, ";") {
				part = strings.TrimSpace(part)
				if part == "" || strings.HasPrefix(part, cookiePrefix) {
					continue
				}
				kept = append(kept, part)
			}
		}
		h.Del("Cookie")
		if len(kept) > 0 {
			h.Set("Cookie", strings.Join(kept, "; "))
		}
	}
	h.Set(HeaderSession, session)
	h.Set(HeaderUser, user)
}
