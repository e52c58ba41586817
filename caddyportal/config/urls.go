package config

// This file holds the portal's URL rules, each written once: what an origin
// is (Origin: the redirect policy, the gate's own hosts, the pages' Origin
// check and the config's own validation all use it), what a webhook URL may
// be, and how a URL is shown in messages without its secrets.

import (
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
)

// Origin returns the normalized origin scheme://host[:port] of an absolute
// http(s) URL: lowercase, without the scheme's default port or a trailing
// dot, IPv6 hosts in brackets, so that equal origins compare equal. It
// refuses user info and hosts with escapes or non-ASCII bytes, which
// browsers map in ways a string compare cannot (use the punycode form).
// The error names the URL.
func Origin(raw string) (string, error) {
	u, err := url.Parse(raw)
	scheme := ""
	if err == nil {
		scheme = strings.ToLower(u.Scheme)
	}
	if err != nil || u.Opaque != "" || u.User != nil || scheme != "http" && scheme != "https" || u.Host == "" {
		return "", fmt.Errorf("%q is not an absolute http(s) URL", raw)
	}
	if strings.ContainsAny(u.Host, "%@") || !ascii(u.Host) || u.Hostname() == "" {
		return "", fmt.Errorf("%q: the host must be a plain ASCII name or address (use the punycode form, no escapes)", raw)
	}
	host, port := strings.ToLower(strings.TrimSuffix(u.Hostname(), ".")), u.Port()
	if port == "80" && scheme == "http" || port == "443" && scheme == "https" {
		port = ""
	}
	if port != "" {
		return scheme + "://" + net.JoinHostPort(host, port), nil
	}
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	return scheme + "://" + host, nil
}

func ascii(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

// CheckBaseURL accepts the portal's public base URL: an origin, with at most
// a trailing slash. The portal's routes, redirects and cookies are at the
// root of its host, so a base URL with a path (or a query) would give
// activation links that lead nowhere.
func CheckBaseURL(raw string) error {
	if _, err := Origin(raw); err != nil {
		return err
	}
	u, _ := url.Parse(raw)
	if (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" || strings.HasSuffix(raw, "?") || strings.Contains(raw, "#") {
		return fmt.Errorf("%q: the portal is served at the root of its host; give scheme://host[:port] only, without a path or query", raw)
	}
	return nil
}

// CheckLink accepts an absolute http(s) URL without user info: a link the
// portal only shows (a workshop's home page), never trusts as an origin.
func CheckLink(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil {
		return fmt.Errorf("%q is not an absolute http(s) URL", raw)
	}
	return nil
}

// maxWebhookURL bounds a webhook URL as redirect targets are bounded; a
// session's own one is kept in its record.
const maxWebhookURL = 4096

// ValidateWebhookURL accepts an absolute http or https URL with a host and
// no credentials (they would end up in logs), of at most 4096 bytes: the
// only kind of webhook target, configured or given by a REST caller. A
// query string is allowed: many receivers take their secret there, so
// errors show the URL without it (RedactURL).
func ValidateWebhookURL(raw string) error {
	if len(raw) > maxWebhookURL {
		return fmt.Errorf("the webhook URL is longer than %d bytes", maxWebhookURL)
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Hostname() == "" {
		return fmt.Errorf("%q is not an absolute http(s) URL with a host", RedactURL(raw))
	}
	if u.User != nil {
		return fmt.Errorf("the webhook URL must not contain a username or password")
	}
	return nil
}

// RedactURL is raw without user info, query and fragment, which may hold
// secrets, for logs and error messages; a URL that does not parse is cut
// at its query and to 64 bytes.
func RedactURL(raw string) string {
	p, err := url.Parse(raw)
	if err != nil {
		if i := strings.IndexAny(raw, "?#"); i >= 0 {
			raw = raw[:i]
		}
		if len(raw) > 64 {
			raw = raw[:64]
		}
		return raw
	}
	p.User, p.RawQuery, p.Fragment, p.RawFragment = nil, "", "", ""
	p.ForceQuery = false
	return p.String()
}

// ValidateWebhookAllow accepts one analytics_allow entry: a network in CIDR
// form, a single IP address, or an origin (http or https scheme and host,
// optional port, nothing else).
func ValidateWebhookAllow(entry string) error {
	if strings.Contains(entry, "://") {
		u, err := url.Parse(entry)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Hostname() == "" || u.User != nil ||
			(u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
			return fmt.Errorf("%q is not an origin (scheme://host[:port])", entry)
		}
		if p := u.Port(); p != "" {
			if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
				return fmt.Errorf("%q has an invalid port", entry)
			}
		}
		return nil
	}
	if strings.Contains(entry, "/") {
		if _, err := netip.ParsePrefix(entry); err != nil {
			return fmt.Errorf("%q is not a network in CIDR form (such as 10.0.0.0/8)", entry)
		}
		return nil
	}
	if _, err := netip.ParseAddr(entry); err != nil {
		return fmt.Errorf("%q is not a network (10.0.0.0/8), an IP address or an origin (http://host:port)", entry)
	}
	return nil
}
