package caddyportal

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/caddyportal/caddyportal/caddyportal/config"
)

func init() {
	caddy.RegisterModule(StaticSpawner{})
}

// StaticSpawner gives sessions dashboards that already run: a fixed pool of
// addresses, one live session per address, or a single address template
// containing {session} (a dashboard per session that something else
// starts). It starts and stops nothing, so the next learner on an address
// finds what the previous one left: use it for dashboards that reset
// themselves, or for trying the portal.
//
// It is the spawner form of the workshop's `upstream` option, which
// stays as its shorthand. An address is handed out inside the allocation
// transaction that creates the session (so two replicas never hand out
// the same one) and is skipped while its health check fails; the
// portal's start queue, readiness probe and reconciliation, which are for
// environments it starts, do not apply.
type StaticSpawner struct {
	// To are the dashboard addresses (host:port or a URL): a fixed pool,
	// or one address template containing {session}.
	To []string `json:"to"`
}

// CaddyModule returns the Caddy module information.
func (StaticSpawner) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.portal.spawners.static",
		New: func() caddy.Module { return new(StaticSpawner) },
	}
}

// Validate checks the addresses: at least one, none empty or listed twice,
// and a template only on its own.
func (s *StaticSpawner) Validate() error {
	if len(s.To) == 0 {
		return fmt.Errorf("spawner static: at least one address is required (to <addresses...> | to <template containing %s>)", config.SessionPlaceholder)
	}
	if err := config.CheckUpstreams(s.To); err != nil {
		return fmt.Errorf("spawner static: %w", err)
	}
	return nil
}

// UnmarshalCaddyfile sets up the static spawner from Caddyfile tokens.
// Syntax (inside a workshop block; `upstream <addresses...>` is the same):
//
//	spawner static {
//		to <addresses...>                  # repeatable: a fixed pool, one session per address
//		to <template containing {session}> # or: one address per session
//	}
func (s *StaticSpawner) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	return forEachSpawnerOption(d, "static", map[string]bool{"to": true}, func(opt string, args []string) error {
		if opt != "to" {
			return d.Errf("spawner static: unknown option %q (to <addresses...>)", opt)
		}
		if len(args) == 0 {
			return d.Err("spawner static: to <addresses...> | to <template containing {session}>")
		}
		s.To = append(s.To, args...)
		return nil
	}, s.Validate)
}

// staticModule is the static spawner's name in a workshop's "spawner" key.
const staticModule = "static"

// withStaticPool returns w with a static spawner turned into the upstream
// pool (or template) the allocation hands out, and w unchanged when its
// spawner is another module or it has none. A static spawner beside
// `upstream` is refused, as any spawner is.
func withStaticPool(w config.Workshop) (config.Workshop, error) {
	if !w.Spawned() {
		return w, nil
	}
	var head struct {
		Module string `json:"spawner"`
	}
	if err := json.Unmarshal(w.Spawner, &head); err != nil || head.Module != staticModule {
		return w, nil // not static; loading the module reports a malformed one
	}
	if len(w.Upstreams) > 0 {
		return w, fmt.Errorf("upstream and spawner: a workshop's dashboards are either fixed addresses or started per session, not both")
	}
	var body struct {
		StaticSpawner
		Module string `json:"spawner"`
	}
	dec := json.NewDecoder(bytes.NewReader(w.Spawner))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&body); err != nil {
		return w, fmt.Errorf("spawner static: %v", err)
	}
	if err := body.Validate(); err != nil {
		return w, err
	}
	w.Upstreams = slices.Clone(body.To)
	w.Spawner = nil
	return w, nil
}

// staticPools applies withStaticPool to every workshop of p.
func staticPools(p config.Portal) (config.Portal, error) {
	ws := slices.Clone(p.Workshops)
	for i, w := range ws {
		var err error
		if ws[i], err = withStaticPool(w); err != nil {
			return p, fmt.Errorf("workshop %s: %w", w.Name, err)
		}
	}
	p.Workshops = ws
	return p, nil
}

// Interface guards.
var (
	_ caddy.Validator       = (*StaticSpawner)(nil)
	_ caddyfile.Unmarshaler = (*StaticSpawner)(nil)
)
