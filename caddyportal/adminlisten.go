package caddyportal

import (
	"net"
	"reflect"
	"strconv"

	"github.com/caddyserver/caddy/v2"
)

// adminListeners returns the TCP addresses ("host:port") of Caddy's admin
// endpoints, which per-request webhooks must never reach: one POST to
// /stop there ends the server. They are the config's `admin` listener and
// remote listener, plus Caddy's default (localhost:2019 or CADDY_ADMIN),
// which is included always since a later reload may turn it back on.
//
// caddy.Context keeps the config it provisions unexported and Caddy has no
// accessor for it, so the two strings are read through reflection (read
// only); if a Caddy release renames them, the default is still refused.
func adminListeners(ctx caddy.Context) []string {
	addrs := []string{caddy.DefaultAdminListen}
	if cfg := reflect.ValueOf(ctx).FieldByName("cfg"); cfg.IsValid() && cfg.Kind() == reflect.Pointer && !cfg.IsNil() {
		if a := cfg.Elem().FieldByName("Admin"); a.IsValid() && a.Kind() == reflect.Pointer && !a.IsNil() {
			if l := a.Elem().FieldByName("Listen"); l.IsValid() && l.Kind() == reflect.String && l.String() != "" {
				addrs = append(addrs, l.String())
			}
			if r := a.Elem().FieldByName("Remote"); r.IsValid() && r.Kind() == reflect.Pointer && !r.IsNil() {
				remote := ":2021" // Caddy's default for a remote admin listener
				if l := r.Elem().FieldByName("Listen"); l.IsValid() && l.Kind() == reflect.String && l.String() != "" {
					remote = l.String()
				}
				addrs = append(addrs, remote)
			}
		}
	}
	repl := caddy.NewReplacer()
	var out []string
	for _, a := range addrs {
		na, err := caddy.ParseNetworkAddress(repl.ReplaceKnown(a, ""))
		if err != nil || na.IsUnixNetwork() || na.IsFdNetwork() {
			continue // not reachable over TCP
		}
		for p := na.StartPort; p <= na.EndPort && p-na.StartPort < 1024; p++ {
			out = append(out, net.JoinHostPort(na.Host, strconv.FormatUint(uint64(p), 10)))
		}
	}
	return out
}
