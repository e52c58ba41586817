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

// identityPrefixes name whole families of headers that authenticating
// proxies set and dashboards (or their auth middleware) trust as identity:
// listing single names missed members such as Remote-Groups or
// X-Remote-Extra-Scopes, so a family is removed by its prefix. Compared
// case-insensitively.
var identityPrefixes = []string{
	"x-portal-",             // the gate's own
	"remote-",               // Authelia, Authentik, Kubernetes front proxies
	"x-remote-",             // Kubernetes request-header auth (X-Remote-Extra-*)
	"impersonate-",          // Kubernetes impersonation (User, Group, Uid, Extra-*)
	"x-auth-request-",       // oauth2-proxy
	"x-webauth-",            // Grafana auth proxy
	"x-user-",               // X-User-Id, X-User-Email, ...
	"x-ms-client-principal", // Azure App Service authentication
	"x-goog-authenticated-", // Google IAP
	"x-goog-iap-",           // Google IAP (JWT assertion)
	"x-amzn-oidc-",          // AWS ALB authentication
	"cf-access-",            // Cloudflare Access
	"x-original-",           // X-Original-Url, -Host, -Forwarded-For, -Method
	"x-forwarded-",          // all but forwardedKept (below)
}

// forwardedKept are the X-Forwarded- headers Caddy's proxy itself rewrites
// (or, from trusted proxies, extends); every other X-Forwarded- header
// (User, Email, Groups, Preferred-Username, Access-Token, Prefix, Port,
// Server, ...) is a claim of the client. The gate sets X-Forwarded-Prefix
// itself after stripping, in path mode.
var forwardedKept = map[string]bool{
	"X-Forwarded-For": true, "X-Forwarded-Proto": true, "X-Forwarded-Host": true,
}

// identityHeaders are single identity headers outside the families above.
var identityHeaders = []string{
	"X-User", "X-Email", "X-Username", "X-Groups", "X-Preferred-Username", "X-Auth-User",
	"X-Auth-Email", "X-Auth-Username", "X-Access-Token", "X-Id-Token", "X-Proxy-User",
	"X-Credential-Username", "X-Jwt-Assertion",
}

// clientAddressHeaders claim where a request came from or how it reached
// the proxy. Caddy rewrites X-Forwarded-For, -Proto and -Host itself; these
// others it passes through as the browser sent them, and dashboards or
// their frameworks may trust them for client IPs, schemes or URLs.
var clientAddressHeaders = []string{
	"Forwarded", "X-Real-Ip", "X-Client-Ip", "True-Client-Ip", "X-Cluster-Client-Ip",
	"Cf-Connecting-Ip", "Fastly-Client-Ip", "Front-End-Https", "X-Url-Scheme",
	"X-Rewrite-Url", "X-Host",
}

// isClientClaim reports whether a client-sent header (or trailer) named
// name claims an identity or a client address the upstream might trust.
// It runs for every header of every proxied request, so it compares
// without allocating.
func isClientClaim(name string) bool {
	for _, p := range identityPrefixes {
		if len(name) >= len(p) && strings.EqualFold(name[:len(p)], p) {
			return !forwardedKept[http.CanonicalHeaderKey(name)]
		}
	}
	for _, list := range [][]string{identityHeaders, clientAddressHeaders} {
		for _, n := range list {
			if strings.EqualFold(name, n) {
				return true
			}
		}
	}
	return false
}

// HeaderPrefix is the header in which the gate tells a path-mode
// dashboard the path prefix it is served under.
const HeaderPrefix = "X-Forwarded-Prefix"

// StripIdentity removes client-sent identity and client-address headers
// (by family, see identityPrefixes) and the portal's own cookies (with
// cookiePrefix) from a request about to be proxied, then sets the gate's
// identity headers and, when prefix is not empty, X-Forwarded-Prefix.
func StripIdentity(h http.Header, cookiePrefix, session, user, prefix string) {
	for name := range h {
		if isClientClaim(name) {
			delete(h, name)
		}
	}
	if cookies := h["Cookie"]; len(cookies) > 0 {
		if kept := keptCookies(cookies, cookiePrefix); kept != "" {
			h["Cookie"] = append(cookies[:0], kept)
		} else {
			delete(h, "Cookie")
		}
	}
	// One backing array for the gate's headers; each slice is capped so
	// that an append by a later handler cannot write into the next.
	vals := [3]string{session, user, prefix}
	all := vals[:]
	h[HeaderSession] = all[0:1:1]
	h[HeaderUser] = all[1:2:2]
	if prefix != "" {
		h[HeaderPrefix] = all[2:3:3]
	}
}

// keptCookies joins the cookies of the Cookie header lines that do not
// start with cookiePrefix (the portal's own) into one line.
func keptCookies(lines []string, cookiePrefix string) string {
	var b strings.Builder
	for _, line := range lines {
		for line != "" {
			var part string
			part, line, _ = strings.Cut(line, ";")
			part = strings.TrimSpace(part)
			if part == "" || strings.HasPrefix(part, cookiePrefix) {
				continue
			}
			if b.Len() > 0 {
				b.WriteString("; ")
			} else {
				b.Grow(len(lines[0]))
			}
			b.WriteString(part)
		}
	}
	return b.String()
}

// StripTrailers removes from request trailers what StripIdentity removes
// from headers, and any Cookie trailer: an upstream that merges trailers
// into its headers (or reads them as such) must not learn a client's
// identity claim that way. The rest is kept for the rare client that
// uses trailers (checksums, gRPC-style status).
func StripTrailers(t http.Header) {
	for name := range t {
		if isClientClaim(name) || strings.EqualFold(name, "Cookie") {
			delete(t, name)
		}
	}
}
