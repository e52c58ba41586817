package caddyportal

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"go.uber.org/zap"

	"github.com/caddyportal/caddyportal/caddyportal/config"
	"github.com/caddyportal/caddyportal/caddyportal/spawner"
	"github.com/caddyportal/caddyportal/caddyportal/spawner/process"
)

func init() {
	caddy.RegisterModule(ProcessSpawner{})
}

// Defaults of the process spawner.
const (
	defaultReadyTimeout = 30 * time.Second
	defaultStopTimeout  = 10 * time.Second
)

// ProcessSpawner runs each session's dashboard as a local process in its
// own process group and directory, started on demand or ahead of time
// (`reserved`) and removed, with everything it started, when the session
// ends. Command, Env and ReadyPath may use the placeholders {port} (a free
// port the portal picks on BindHost), {dir}, {session}, {user},
// {workshop}, {environment}, {prefix} (the session's path-mode base,
// /workshops/session/<s>/) and {url}. The process also gets Educates'
// variables (SESSION_NAME, WORKSHOP_NAME, ENVIRONMENT_NAME, SESSION_URL,
// INGRESS_DOMAIN, INGRESS_PROTOCOL, …) and the request's parameters.
type ProcessSpawner struct {
	// Command is the dashboard's command line, not run through a shell.
	Command []string `json:"command"`
	// Dir is where each session gets its own directory, <dir>/<session>,
	// removed when the session ends. Default: portal/<portal>/sessions
	// under Caddy's data directory.
	Dir string `json:"dir,omitempty"`
	// Env are extra environment variables (name to value); values may use
	// the placeholders. They override the portal's own.
	Env map[string]string `json:"env,omitempty"`
	// ReadyPath is the path the readiness probe GETs: the dashboard is
	// ready when it answers 2xx or 3xx. Default: /.
	ReadyPath string `json:"ready_path,omitempty"`
	// ReadyTimeout is how long a start may take to become ready before
	// the session ends with start-failed. Default: 30s.
	ReadyTimeout caddy.Duration `json:"ready_timeout,omitempty"`
	// StopTimeout is how long the portal waits after SIGTERM to the
	// process group before it sends SIGKILL. Default: 10s.
	StopTimeout caddy.Duration `json:"stop_timeout,omitempty"`
	// Sandbox is empty or "bubblewrap": run the process inside bwrap with
	// its directory as the only writable place.
	Sandbox string `json:"sandbox,omitempty"`
	// User runs the process as this user (name or uid); the portal must
	// run as root to switch.
	User string `json:"user,omitempty"`
	// BindHost is the address the dashboard listens on and other replicas
	// dial. Default: 127.0.0.1.
	BindHost string `json:"bind_host,omitempty"`
	// PortalLogin gives each environment an OAuth client of its own
	// (PORTAL_CLIENT_ID, PORTAL_CLIENT_SECRET, PORTAL_URL, PORTAL_API_URL),
	// with which an Educates workshop gateway logs the learner in through
	// the portal (host mode). PortalAPI is the portal's address as the
	// environment reaches it; default: the portal's url.
	PortalLogin bool   `json:"portal_login,omitempty"`
	PortalAPI   string `json:"portal_api,omitempty"`

	// started are the spawners made for this config, closed at Cleanup;
	// Caddy calls Spawner and Cleanup from one goroutine.
	started []*process.Spawner
}

// CaddyModule returns the Caddy module information.
func (ProcessSpawner) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.portal.spawners.process",
		New: func() caddy.Module { return new(ProcessSpawner) },
	}
}

// Validate checks the configuration.
func (p *ProcessSpawner) Validate() error {
	if len(p.Command) == 0 || p.Command[0] == "" {
		return fmt.Errorf("spawner process: a command is required")
	}
	if p.Sandbox != "" && p.Sandbox != "bubblewrap" {
		return fmt.Errorf("spawner process: sandbox %q: use bubblewrap", p.Sandbox)
	}
	if p.Dir != "" && !filepath.IsAbs(p.Dir) {
		return fmt.Errorf("spawner process: dir %q must be an absolute path", p.Dir)
	}
	if p.ReadyTimeout < 0 || p.StopTimeout < 0 {
		return fmt.Errorf("spawner process: durations must not be negative")
	}
	return nil
}

// Spawner implements spawner.Module: the process spawner of one workshop
// for one portal replica.
func (p *ProcessSpawner) Spawner(id spawner.Identity, log *zap.Logger) (spawner.Spawner, error) {
	s, err := process.New(p.config(id), log)
	if err != nil {
		return nil, err
	}
	p.started = append(p.started, s)
	return s, nil
}

// Check implements spawner.Checker.
func (p *ProcessSpawner) Check(id spawner.Identity, log *zap.Logger) error {
	return process.Check(p.config(id), log)
}

// config is the process spawner's configuration for id, defaults applied.
func (p *ProcessSpawner) config(id spawner.Identity) process.Config {
	cfg := process.Config{Command: p.Command, Dir: p.Dir, ReadyPath: p.ReadyPath,
		ReadyTimeout: time.Duration(p.ReadyTimeout), StopTimeout: time.Duration(p.StopTimeout),
		Sandbox: p.Sandbox, User: p.User, BindHost: p.BindHost, Portal: id.Portal, Replica: id.Replica,
		PortalLogin: p.PortalLogin, PortalAPIURL: p.PortalAPI, Prepare: id.Capacity}
	if cfg.Dir == "" {
		cfg.Dir = filepath.Join(caddy.AppDataDir(), "caddyportal", id.Portal, "sessions")
	}
	if cfg.ReadyTimeout == 0 {
		cfg.ReadyTimeout = defaultReadyTimeout
	}
	if cfg.StopTimeout == 0 {
		cfg.StopTimeout = defaultStopTimeout
	}
	for _, k := range sortedKeys(p.Env) {
		cfg.Env = append(cfg.Env, process.EnvVar{Name: k, Value: p.Env[k]})
	}
	return cfg
}

// Cleanup releases what the spawners keep open. The environments keep
// running: a config reload or the next start of the portal adopts them.
func (p *ProcessSpawner) Cleanup() error {
	for _, s := range p.started {
		s.Close()
	}
	p.started = nil
	return nil
}

// UnmarshalCaddyfile sets up the process spawner from Caddyfile tokens.
// Syntax (inside a workshop block):
//
//	spawner process {
//		command <args...>            # placeholders: {port} {dir} {session} {user} {workshop} {environment} {prefix} {url}
//		dir     <absolute path>      # each session gets <dir>/<session>
//		env     <name> <value>       # repeatable
//		ready   <path> [<timeout>]   # readiness probe (2xx/3xx) and start timeout
//		stop_timeout <duration>      # SIGTERM to the process group, then SIGKILL
//		sandbox bubblewrap
//		user    <user>
//		bind    <host>
//		portal_login [<url>]          # an OAuth client per session, for an Educates gateway
//	}
func (p *ProcessSpawner) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	return forEachSpawnerOption(d, "process", map[string]bool{"env": true}, func(opt string, args []string) error {
		switch opt {
		case "command":
			if len(args) == 0 {
				return d.Err("spawner process: command <args...>")
			}
			p.Command = args
		case "dir":
			if len(args) != 1 {
				return d.Err("spawner process: dir <absolute path>")
			}
			p.Dir = args[0]
		case "env":
			return parseEnvOption(d, "process", args, &p.Env)
		case "ready":
			return parseReadyOption(d, "process", args, &p.ReadyPath, &p.ReadyTimeout)
		case "stop_timeout":
			return parseDurationOption(d, "process", "stop_timeout", args, &p.StopTimeout)
		case "sandbox":
			if len(args) != 1 {
				return d.Err("spawner process: sandbox bubblewrap")
			}
			p.Sandbox = args[0]
		case "user":
			if len(args) != 1 {
				return d.Err("spawner process: user <name or uid>")
			}
			p.User = args[0]
		case "portal_login":
			if len(args) > 1 {
				return d.Err("spawner process: portal_login [<portal url as the environment reaches it>]")
			}
			p.PortalLogin = true
			if len(args) == 1 {
				p.PortalAPI = args[0]
			}
		case "bind":
			if len(args) != 1 {
				return d.Err("spawner process: bind <host>")
			}
			p.BindHost = args[0]
		default:
			return d.Errf("spawner process: unknown option %q", opt)
		}
		return nil
	}, p.Validate)
}

// forEachSpawnerOption reads the block of `spawner <module> { ... }`: it
// refuses arguments after the module name and an option given twice (but
// those in repeatable), undoes the adapter's placeholder shorthands in the
// arguments, calls each option's handler, then validate.
func forEachSpawnerOption(d *caddyfile.Dispenser, module string, repeatable map[string]bool, handle func(opt string, args []string) error, validate func() error) error {
	d.Next() // the module name
	if d.NextArg() {
		return d.ArgErr()
	}
	seen := map[string]bool{}
	for d.NextBlock(0) {
		opt := d.Val()
		if !repeatable[opt] && seen[opt] {
			return d.Errf("spawner %s: option %q given twice", module, opt)
		}
		seen[opt] = true
		args := d.RemainingArgs()
		for i := range args {
			args[i] = spawnerPlaceholders.Replace(args[i])
		}
		if err := handle(opt, args); err != nil {
			return err
		}
	}
	if err := validate(); err != nil {
		return d.Errf("%v", err)
	}
	return nil
}

// parseEnvOption reads `env <name> <value>` into env.
func parseEnvOption(d *caddyfile.Dispenser, module string, args []string, env *map[string]string) error {
	if len(args) != 2 {
		return d.Errf("spawner %s: env <name> <value>", module)
	}
	if *env == nil {
		*env = map[string]string{}
	}
	if _, dup := (*env)[args[0]]; dup {
		return d.Errf("spawner %s: env %s given twice", module, args[0])
	}
	(*env)[args[0]] = args[1]
	return nil
}

// parseReadyOption reads `ready <path> [<timeout>]`.
func parseReadyOption(d *caddyfile.Dispenser, module string, args []string, path *string, timeout *caddy.Duration) error {
	if len(args) < 1 || len(args) > 2 {
		return d.Errf("spawner %s: ready <path> [<timeout>]", module)
	}
	if !strings.HasPrefix(args[0], "/") && !strings.HasPrefix(args[0], "{") {
		return d.Errf("spawner %s: ready: the path %q must begin with / (or a placeholder such as {prefix}); usage: ready <path> [<timeout>]", module, args[0])
	}
	*path = args[0]
	if len(args) == 2 {
		return parseDurationOption(d, module, "ready timeout", args[1:], timeout)
	}
	return nil
}

// parseDurationOption reads an option's single duration argument.
func parseDurationOption(d *caddyfile.Dispenser, module, name string, args []string, out *caddy.Duration) error {
	if len(args) != 1 {
		return d.Errf("spawner %s: %s <duration>", module, name)
	}
	v, err := config.ParseDuration(args[0])
	if err != nil {
		return d.Errf("spawner %s: %s: %v", module, name, err)
	}
	*out = caddy.Duration(v)
	return nil
}

// workshopSpawner is a workshop's loaded spawner module.
type workshopSpawner struct {
	workshop string
	capacity int
	module   spawner.Module
}

// loadSpawners loads the spawner module of every workshop that has one and
// checks it for this portal replica (spawner.Checker), creating nothing:
// the Spawners are made at start (makeSpawners). The workshop's JSON stays
// as it is (Caddy clears the field it loads from), so the config still
// says the workshop is spawned.
func (h *Handler) loadSpawners(ctx caddy.Context) ([]workshopSpawner, error) {
	var out []workshopSpawner
	envs := h.Environments()
	for i, w := range h.Workshops {
		if !w.Spawned() {
			continue
		}
		holder := struct {
			Spawner json.RawMessage `caddy:"namespace=http.handlers.portal.spawners inline_key=spawner"`
		}{w.Spawner}
		mod, err := ctx.LoadModule(&holder, "Spawner")
		if err != nil {
			return nil, fmt.Errorf("workshop %s: loading spawner: %w", w.Name, err)
		}
		m, ok := mod.(spawner.Module)
		if !ok {
			return nil, fmt.Errorf("workshop %s: module %T is not a spawner", w.Name, mod)
		}
		ws := workshopSpawner{workshop: w.Name, capacity: envs[i].Capacity, module: m}
		if c, ok := m.(spawner.Checker); ok {
			if err := c.Check(h.spawnerIdentity(ws), h.spawnerLog(ws)); err != nil {
				return nil, fmt.Errorf("workshop %s: %w", w.Name, err)
			}
		}
		out = append(out, ws)
	}
	return out, nil
}

// makeSpawners returns each spawned workshop's Spawner for this portal
// replica, once the config runs.
func (h *Handler) makeSpawners(loaded []workshopSpawner) (map[string]spawner.Spawner, error) {
	var out map[string]spawner.Spawner
	for _, ws := range loaded {
		s, err := ws.module.Spawner(h.spawnerIdentity(ws), h.spawnerLog(ws))
		if err != nil {
			return nil, fmt.Errorf("workshop %s: %w", ws.workshop, err)
		}
		if out == nil {
			out = map[string]spawner.Spawner{}
		}
		out[ws.workshop] = s
	}
	return out, nil
}

func (h *Handler) spawnerIdentity(ws workshopSpawner) spawner.Identity {
	return spawner.Identity{Portal: h.Name, Replica: h.Replica, Capacity: ws.capacity}
}

func (h *Handler) spawnerLog(ws workshopSpawner) *zap.Logger {
	return h.logger.Named("spawner").With(zap.String("workshop", ws.workshop))
}

// spawnerPlaceholders undoes the Caddyfile adapter's shorthands for the
// spawner placeholders that share a name with one of Caddy's request
// placeholders: the adapter has already turned {port}, {host} and {dir}
// into {http.request.port}, {http.request.host} and
// {http.request.uri.path.dir}, which mean nothing when a process is
// started (and are not spawner placeholders, so they would reach the
// dashboard's command line as written).
var spawnerPlaceholders = strings.NewReplacer(
	"{http.request.port}", "{port}",
	"{http.request.host}", "{host}",
	"{http.request.uri.path.dir}", "{dir}",
)

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// Interface guards.
var (
	_ caddy.Validator       = (*ProcessSpawner)(nil)
	_ caddy.CleanerUpper    = (*ProcessSpawner)(nil)
	_ caddyfile.Unmarshaler = (*ProcessSpawner)(nil)
	_ spawner.Module        = (*ProcessSpawner)(nil)
	_ spawner.Checker       = (*ProcessSpawner)(nil)
)
