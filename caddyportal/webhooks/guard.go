package webhooks

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/caddyportal/caddyportal/caddyportal/config"
)

// ErrBlocked is wrapped by every refusal of the Guard: a per-request
// webhook that points at an address it may not reach.
var ErrBlocked = errors.New("webhook address not allowed")

// Guard decides which addresses a per-request webhook (a session's
// analytics_url, chosen by whoever holds a robot or staff token) may
// reach. Without it such a URL is a server-side request forgery: the portal
// would POST to Caddy's admin API, to its own routes on loopback, or to
// cloud metadata addresses. The operator's own analytics URL does not go
// through the Guard; it is trusted.
//
// By default only public unicast addresses are allowed. The operator can
// allow networks (CIDR or single IPs) and origins (scheme://host[:port],
// reached without any address check). Caddy's admin listeners are refused
// even inside an allowed network: no analytics receiver lives there.
//
// The check that matters runs in the dialer, on the address actually
// connected to, so a name that resolves to a public address when checked
// and to a private one when dialled (DNS rebinding) gains nothing.
// CheckURL only refuses the obvious cases early, at request time.
type Guard struct {
	nets    []netip.Prefix
	origins map[string]bool
	admin   []adminAddr
}

// adminAddr is one admin listener: port on ip, or on every local address
// when ip is not valid (the listener's host was a name or unspecified).
type adminAddr struct {
	ip   netip.Addr
	port uint16
}

// NewGuard builds a guard from the operator's allow list (entries as
// config.ValidateWebhookAllow accepts them) and Caddy's admin listener
// addresses ("host:port"; other forms, such as unix sockets, are ignored
// since they cannot be reached over TCP).
func NewGuard(allow []string, adminListeners []string) (*Guard, error) {
	g := &Guard{origins: map[string]bool{}}
	for _, a := range allow {
		if err := config.ValidateWebhookAllow(a); err != nil {
			return nil, err
		}
		switch {
		case strings.Contains(a, "://"):
			g.origins[origin(mustParse(a))] = true
		case strings.Contains(a, "/"):
			p, _ := netip.ParsePrefix(a)
			g.nets = append(g.nets, p.Masked())
		default:
			ip, _ := netip.ParseAddr(a)
			ip = ip.Unmap()
			g.nets = append(g.nets, netip.PrefixFrom(ip, ip.BitLen()))
		}
	}
	for _, l := range adminListeners {
		host, portStr, err := net.SplitHostPort(l)
		if err != nil {
			continue
		}
		port, err := strconv.ParseUint(portStr, 10, 16)
		if err != nil || port == 0 {
			continue
		}
		ip, err := netip.ParseAddr(host)
		if err == nil && !ip.IsUnspecified() {
			g.admin = append(g.admin, adminAddr{ip: ip.Unmap(), port: uint16(port)})
			continue
		}
		// A name (localhost) or an unspecified address: the listener may
		// answer on any local address, so refuse the port on all of them.
		g.admin = append(g.admin, adminAddr{port: uint16(port)})
	}
	return g, nil
}

func mustParse(s string) *url.URL {
	u, _ := url.Parse(s)
	return u
}

// portOf is u's port, or its scheme's default port.
func portOf(u *url.URL) string {
	if p := u.Port(); p != "" {
		return p
	}
	if strings.EqualFold(u.Scheme, "https") {
		return "443"
	}
	return "80"
}

// origin is u's scheme://host:port in lowercase, with the scheme's default
// port filled in, so that equal origins compare equal.
func origin(u *url.URL) string {
	return strings.ToLower(u.Scheme + "://" + net.JoinHostPort(strings.TrimSuffix(u.Hostname(), "."), portOf(u)))
}

// OriginAllowed reports whether the operator listed raw's origin, in which
// case it is posted to without any address check.
func (g *Guard) OriginAllowed(raw string) bool {
	u, err := url.Parse(raw)
	return err == nil && g.originAllowed(u)
}

func (g *Guard) originAllowed(u *url.URL) bool {
	return g != nil && g.origins[origin(u)]
}

// CheckURL refuses, before anything is stored, a URL whose host is a
// literal address the guard would refuse, or a localhost name. Other names
// are checked when they are dialled. The error names the host, never the
// whole URL (its query may hold a secret).
func (g *Guard) CheckURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("%w: not a valid URL", ErrBlocked)
	}
	if g.originAllowed(u) {
		return nil
	}
	host := strings.ToLower(strings.TrimSuffix(u.Hostname(), "."))
	n, err := strconv.ParseUint(portOf(u), 10, 16)
	if err != nil {
		return fmt.Errorf("%w: invalid port %q", ErrBlocked, u.Port())
	}
	port := uint16(n)
	if host == "localhost" || strings.HasSuffix(host, ".localhost") {
		// RFC 6761: these names are loopback wherever they are resolved.
		for _, ip := range []netip.Addr{netip.AddrFrom4([4]byte{127, 0, 0, 1}), netip.IPv6Loopback()} {
			if err := g.CheckAddr(netip.AddrPortFrom(ip, port)); err != nil {
				return fmt.Errorf("%w: %s is a loopback name", ErrBlocked, host)
			}
		}
		return nil
	}
	if ip, err := netip.ParseAddr(host); err == nil {
		return g.CheckAddr(netip.AddrPortFrom(ip, port))
	}
	return nil
}

// CheckAddr reports whether a per-request webhook may connect to ap.
func (g *Guard) CheckAddr(ap netip.AddrPort) error {
	ip := ap.Addr().WithZone("").Unmap()
	if g != nil {
		for _, a := range g.admin {
			if a.port == ap.Port() && (a.ip.IsValid() && a.ip == ip || !a.ip.IsValid() && isLocal(ip)) {
				return fmt.Errorf("%w: %s is Caddy's admin listener", ErrBlocked, ap)
			}
		}
		for _, n := range g.nets {
			if n.Contains(ip) {
				return nil
			}
		}
	}
	if why := special(ip); why != "" {
		return fmt.Errorf("%w: %s is %s (list it in analytics_allow to allow it)", ErrBlocked, ip, why)
	}
	return nil
}

// isLocal reports whether ip is an address of this machine.
func isLocal(ip netip.Addr) bool {
	if ip.IsLoopback() || ip.IsUnspecified() {
		return true
	}
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return true // unknown: err on the side of refusing
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok {
			if la, ok := netip.AddrFromSlice(n.IP); ok && la.Unmap() == ip {
				return true
			}
		}
	}
	return false
}

// reserved are ranges that are neither private nor caught by netip's
// predicates but are not the public Internet either.
var reserved = []struct {
	p   netip.Prefix
	why string
}{
	{netip.MustParsePrefix("0.0.0.0/8"), "a \"this network\" address"},
	{netip.MustParsePrefix("100.64.0.0/10"), "a shared (CGNAT) address"},
	{netip.MustParsePrefix("192.0.0.0/24"), "an IETF protocol address"},
	{netip.MustParsePrefix("192.0.2.0/24"), "a documentation address"},
	{netip.MustParsePrefix("198.18.0.0/15"), "a benchmarking address"},
	{netip.MustParsePrefix("198.51.100.0/24"), "a documentation address"},
	{netip.MustParsePrefix("203.0.113.0/24"), "a documentation address"},
	{netip.MustParsePrefix("240.0.0.0/4"), "a reserved address"},
	{netip.MustParsePrefix("100::/64"), "a discard address"},
	{netip.MustParsePrefix("2001::/23"), "an IETF protocol address"},
	{netip.MustParsePrefix("2001:db8::/32"), "a documentation address"},
	{netip.MustParsePrefix("64:ff9b:1::/48"), "a local NAT64 address"},
	{netip.MustParsePrefix("fec0::/10"), "a site-local address"},
}

var (
	nat64   = netip.MustParsePrefix("64:ff9b::/96")
	sixToF4 = netip.MustParsePrefix("2002::/16")
)

// special says why ip is not a public unicast address, or "" if it is.
func special(ip netip.Addr) string {
	switch {
	case !ip.IsValid():
		return "not an address"
	case ip.IsLoopback():
		return "a loopback address"
	case ip.IsUnspecified():
		return "an unspecified address"
	case ip.IsLinkLocalUnicast():
		return "a link-local address"
	case ip.IsMulticast():
		return "a multicast address"
	case ip.IsPrivate():
		return "a private address"
	case ip == netip.AddrFrom4([4]byte{255, 255, 255, 255}):
		return "the broadcast address"
	}
	// Addresses that carry an IPv4 address inside reach that address.
	if nat64.Contains(ip) {
		b := ip.As16()
		return special(netip.AddrFrom4([4]byte{b[12], b[13], b[14], b[15]}))
	}
	if sixToF4.Contains(ip) {
		b := ip.As16()
		return special(netip.AddrFrom4([4]byte{b[2], b[3], b[4], b[5]}))
	}
	for _, r := range reserved {
		if r.p.Contains(ip) {
			return r.why
		}
	}
	if !ip.IsGlobalUnicast() {
		return "not a unicast address"
	}
	return ""
}

// client returns an HTTP client whose every connection goes through the
// guard's check, made on the address the dialer is about to connect to.
// It uses no proxy (a proxy would connect for us, unchecked) and, like the
// trusted client, follows no redirect (a receiver must answer, not send us
// elsewhere: that would be a second, unchecked target).
func (g *Guard) client() *http.Client {
	d := &net.Dialer{
		Timeout:   30 * time.Second,
		KeepAlive: 30 * time.Second,
		ControlContext: func(_ context.Context, _, address string, _ syscall.RawConn) error {
			ap, err := netip.ParseAddrPort(address)
			if err != nil {
				return fmt.Errorf("%w: cannot check %q", ErrBlocked, address)
			}
			return g.CheckAddr(ap)
		},
	}
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.Proxy = nil
	t.DialContext = d.DialContext
	return &http.Client{Transport: t, CheckRedirect: noRedirect}
}

func noRedirect(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
