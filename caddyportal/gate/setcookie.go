package gate

import (
	"net"
	"net/http"
	"strings"
)

// FilterSetCookies removes the Set-Cookie lines of a dashboard's response
// that reach beyond the dashboard: any cookie whose name starts with
// cookiePrefix (the portal's own cookies, the login cookie among them), a
// Domain attribute wider than host (the request's Host), and, in path mode
// (pathPrefix, /workshops/session/<name>, not ""), a Path outside the
// session's prefix, which the portal's pages or other sessions' dashboards
// would receive. Lines that do not parse are dropped as well: a browser may
// read them differently. It returns how many lines it dropped.
func FilterSetCookies(h http.Header, cookiePrefix, host, pathPrefix string) int {
	lines, ok := h["Set-Cookie"]
	if !ok {
		return 0
	}
	if hh, _, err := net.SplitHostPort(host); err == nil {
		host = hh
	}
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	kept := lines[:0:0]
	for _, line := range lines {
		if allowedSetCookie(line, cookiePrefix, host, pathPrefix) {
			kept = append(kept, line)
		}
	}
	dropped := len(lines) - len(kept)
	if len(kept) == 0 {
		delete(h, "Set-Cookie")
	} else {
		h["Set-Cookie"] = kept
	}
	return dropped
}

func allowedSetCookie(line, cookiePrefix, host, pathPrefix string) bool {
	c, err := http.ParseSetCookie(line)
	if err != nil || strings.HasPrefix(c.Name, cookiePrefix) {
		return false
	}
	if c.Domain != "" && strings.ToLower(strings.TrimSuffix(strings.TrimPrefix(c.Domain, "."), ".")) != host {
		return false
	}
	// A Path that does not start with "/" makes the browser use the
	// default path, the directory of the request's path: inside the prefix.
	if pathPrefix != "" && strings.HasPrefix(c.Path, "/") &&
		c.Path != pathPrefix && !strings.HasPrefix(c.Path, pathPrefix+"/") {
		return false
	}
	return true
}
