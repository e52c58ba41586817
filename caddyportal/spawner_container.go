package caddyportal

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/dustin/go-humanize"
	"go.uber.org/zap"

	"github.com/caddyportal/caddyportal/caddyportal/spawner"
	"github.com/caddyportal/caddyportal/caddyportal/spawner/container"
)

func init() {
	caddy.RegisterModule(ContainerSpawner{})
}

// ContainerSpawner runs each session's dashboard in a container of its own,
// on a Docker Engine API (Docker, or Podman's `podman system service`):
// started on demand or ahead of time (`reserved`), probed before the
// learner goes in, and removed, with its network and anonymous volumes,
// when the session ends. Command, Env and ReadyPath take the process
// spawner's placeholders ({port} is the container port). Every container
// and network is labelled with the portal, replica and session, so a
// restarted portal adopts those of live sessions and removes the rest.
type ContainerSpawner struct {
	// Image is the image reference.
	Image string `json:"image"`
	// Port is the dashboard's port inside the container (10081 with
	// educates).
	Port int `json:"port,omitempty"`
	// Engine is the engine's API address, unix:///path or tcp://host:port.
	// Default: DOCKER_HOST, else the engine's default socket.
	Engine string `json:"engine,omitempty"`
	// TLSCA, TLSCert and TLSKey are the files of a TLS connection to a tcp
	// engine.
	TLSCA   string `json:"tls_ca,omitempty"`
	TLSCert string `json:"tls_cert,omitempty"`
	TLSKey  string `json:"tls_key,omitempty"`
	// Command replaces the image's command.
	Command []string `json:"command,omitempty"`
	// Env are extra environment variables; values may use placeholders.
	Env map[string]string `json:"env,omitempty"`
	// Memory is the memory limit in bytes; over it the engine kills the
	// container and the session ends saying so.
	Memory int64 `json:"memory,omitempty"`
	// CPUs is the CPU limit, in CPUs (0.5 is half of one).
	CPUs float64 `json:"cpus,omitempty"`
	// Pids limits the processes in the container.
	Pids int64 `json:"pids,omitempty"`
	// Network is the name of an existing network every session's container
	// joins. Default: a network of its own per session (on Podman a network
	// namespace with slirp4netns, on Docker a bridge network), isolated from the
	// others.
	Network string `json:"network,omitempty"`
	// Volumes are read-only bind mounts, "<host path>:<container path>".
	Volumes []string `json:"volumes,omitempty"`
	// Ulimits are resource limits, "<name>=<soft>[:<hard>]" (nofile,
	// nproc, ...). Default for a local engine: nofile and nproc at the
	// portal's own hard limits (at most 65536 and 4096).
	Ulimits []string `json:"ulimits,omitempty"`
	// Pull is the pull policy: never, missing (default) or always.
	Pull string `json:"pull,omitempty"`
	// ReadyPath is the path the readiness probe GETs (2xx or 3xx is
	// ready). Default: /, with educates /session/activity.
	ReadyPath string `json:"ready_path,omitempty"`
	// ReadyTimeout bounds a start, pull included. Default: 60s, with
	// educates 300s.
	ReadyTimeout caddy.Duration `json:"ready_timeout,omitempty"`
	// StopTimeout is how long the engine waits after SIGTERM before
	// SIGKILL. Default: 10s.
	StopTimeout caddy.Duration `json:"stop_timeout,omitempty"`
	// BindHost is where the dashboard port is published and what the gate
	// dials. Default: 127.0.0.1 (the engine's host for a tcp engine).
	BindHost string `json:"bind_host,omitempty"`
	// PortalLogin gives each environment an OAuth client of its own
	// (PORTAL_CLIENT_ID, PORTAL_CLIENT_SECRET, PORTAL_URL, PORTAL_API_URL),
	// with which an Educates workshop gateway logs the learner in through
	// the portal (host mode). PortalAPI is the portal's address as the
	// environment reaches it; default: the portal's url.
	PortalLogin bool   `json:"portal_login,omitempty"`
	PortalAPI   string `json:"portal_api,omitempty"`
	// User runs the container as "uid[:gid]" or a name the image knows.
	User string `json:"user,omitempty"`
	// Educates runs an Educates workshop image: port 10081, user 1001:0,
	// readiness /session/activity and the variables its start-up reads.
	Educates bool `json:"educates,omitempty"`
	// EducatesWorkshop is a workshop definition (workshop.yaml) mounted
	// where an Educates image reads it; implies Educates.
	EducatesWorkshop string `json:"educates_workshop,omitempty"`

	// started are the spawners made for this config, closed at Cleanup;
	// Caddy calls Spawner and Cleanup from one goroutine.
	started []*container.Spawner
}

// CaddyModule returns the Caddy module information.
func (ContainerSpawner) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.portal.spawners.container",
		New: func() caddy.Module { return new(ContainerSpawner) },
	}
}

// Validate checks the configuration that can be checked without the engine.
func (c *ContainerSpawner) Validate() error {
	cfg, err := c.config(spawner.Identity{Portal: "check"})
	if err != nil {
		return err
	}
	return container.Validate(cfg)
}

// config is the container package's Config for one portal replica.
func (c *ContainerSpawner) config(id spawner.Identity) (container.Config, error) {
	cfg := container.Config{Engine: c.Engine, TLSCA: c.TLSCA, TLSCert: c.TLSCert, TLSKey: c.TLSKey,
		Image: c.Image, Port: c.Port, Command: c.Command, Memory: c.Memory, CPUs: c.CPUs, Pids: c.Pids,
		Network: c.Network, Pull: c.Pull, ReadyPath: c.ReadyPath, ReadyTimeout: time.Duration(c.ReadyTimeout),
		StopTimeout: time.Duration(c.StopTimeout), BindHost: c.BindHost, User: c.User,
		Educates: c.Educates, EducatesWorkshop: c.EducatesWorkshop, Portal: id.Portal, Replica: id.Replica,
		PortalLogin: c.PortalLogin, PortalAPIURL: c.PortalAPI}
	if c.Image == "" {
		return cfg, fmt.Errorf("spawner container: an image is required")
	}
	if (c.TLSCert == "") != (c.TLSKey == "") {
		return cfg, fmt.Errorf("spawner container: tls needs both a certificate and its key")
	}
	for _, k := range sortedKeys(c.Env) {
		cfg.Env = append(cfg.Env, container.EnvVar{Name: k, Value: c.Env[k]})
	}
	for _, v := range c.Volumes {
		src, dst, ok := strings.Cut(v, ":")
		if !ok || strings.HasSuffix(dst, ":ro") {
			return cfg, fmt.Errorf("spawner container: volume %q: use <host path>:<container path> (always read-only)", v)
		}
		cfg.Mounts = append(cfg.Mounts, container.Mount{Source: src, Target: dst})
	}
	for _, u := range c.Ulimits {
		l, err := parseUlimit(u)
		if err != nil {
			return cfg, err
		}
		cfg.Ulimits = append(cfg.Ulimits, l)
	}
	if c.ReadyTimeout < 0 || c.StopTimeout < 0 {
		return cfg, fmt.Errorf("spawner container: durations must not be negative")
	}
	return cfg, nil
}

// parseUlimit reads "<name>=<soft>[:<hard>]".
func parseUlimit(s string) (container.Ulimit, error) {
	name, val, ok := strings.Cut(s, "=")
	soft, hard, two := strings.Cut(val, ":")
	if !two {
		hard = soft
	}
	a, err1 := strconv.ParseInt(soft, 10, 64)
	b, err2 := strconv.ParseInt(hard, 10, 64)
	if !ok || name == "" || err1 != nil || err2 != nil || a < 0 || b < a {
		return container.Ulimit{}, fmt.Errorf("spawner container: ulimit %q: use <name> <soft>[:<hard>] with soft <= hard", s)
	}
	return container.Ulimit{Name: name, Soft: a, Hard: b}, nil
}

// Spawner implements spawner.Module: it connects to the engine, so a wrong
// engine address fails the config load, not the first learner.
func (c *ContainerSpawner) Spawner(id spawner.Identity, log *zap.Logger) (spawner.Spawner, error) {
	cfg, err := c.config(id)
	if err != nil {
		return nil, err
	}
	s, err := container.New(context.Background(), cfg, log)
	if err != nil {
		return nil, err
	}
	c.started = append(c.started, s)
	return s, nil
}

// Check implements spawner.Checker: the engine is contacted only once the
// config runs.
func (c *ContainerSpawner) Check(id spawner.Identity, _ *zap.Logger) error {
	_, err := c.config(id)
	return err
}

// Cleanup closes the engine connections. The containers keep running: a
// config reload or the next start of the portal adopts them.
func (c *ContainerSpawner) Cleanup() error {
	for _, s := range c.started {
		_ = s.Close()
	}
	c.started = nil
	return nil
}

// UnmarshalCaddyfile sets up the container spawner from Caddyfile tokens.
// Syntax (inside a workshop block):
//
//	spawner container {
//		image   <reference>
//		port    <port inside the container>
//		engine  <unix:///path | tcp://host:port>   # default: DOCKER_HOST
//		tls     <ca> [<cert> <key>]                # for a tcp engine
//		command <args...>                          # placeholders as for process
//		env     <name> <value>                     # repeatable
//		memory  <size>                             # 512MiB, 1GiB
//		cpus    <number>
//		pids    <number>
//		network <existing network>                 # default: one per session, isolated
//		volume  <host path>:<container path>       # read-only; repeatable
//		ulimit  <name> <soft>[:<hard>]             # repeatable
//		pull    never | missing | always
//		ready   <path> [<timeout>]
//		stop_timeout <duration>
//		bind    <ip>                               # where the port is published
//		user    <uid[:gid] | name>
//		educates [<workshop.yaml>]                 # an Educates workshop image
//		portal_login [<url>]                       # an OAuth client per session, for its gateway
//	}
func (c *ContainerSpawner) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	repeatable := map[string]bool{"env": true, "volume": true, "ulimit": true}
	one := func(opt string, args []string) (string, error) {
		if len(args) != 1 {
			return "", d.Errf("spawner container: %s takes one value", opt)
		}
		return args[0], nil
	}
	return forEachSpawnerOption(d, "container", repeatable, func(opt string, args []string) error {
		var err error
		switch opt {
		case "image":
			c.Image, err = one(opt, args)
		case "port":
			var v string
			if v, err = one(opt, args); err == nil {
				c.Port, err = strconv.Atoi(v)
				if err != nil || c.Port < 1 || c.Port > 65535 {
					return d.Errf("spawner container: port %q: a port number 1-65535", v)
				}
			}
		case "engine":
			c.Engine, err = one(opt, args)
		case "tls":
			if len(args) != 1 && len(args) != 3 {
				return d.Err("spawner container: tls <ca> [<cert> <key>]")
			}
			c.TLSCA = args[0]
			if len(args) == 3 {
				c.TLSCert, c.TLSKey = args[1], args[2]
			}
		case "command":
			if len(args) == 0 {
				return d.Err("spawner container: command <args...>")
			}
			c.Command = args
		case "env":
			return parseEnvOption(d, "container", args, &c.Env)
		case "memory":
			var v string
			if v, err = one(opt, args); err == nil {
				n, perr := humanize.ParseBytes(v)
				if perr != nil || n == 0 || n > 1<<50 {
					return d.Errf("spawner container: memory %q: a size such as 512MiB or 1GiB", v)
				}
				c.Memory = int64(n)
			}
		case "cpus":
			var v string
			if v, err = one(opt, args); err == nil {
				c.CPUs, err = strconv.ParseFloat(v, 64)
				if err != nil || c.CPUs <= 0 || c.CPUs > 1024 {
					return d.Errf("spawner container: cpus %q: a positive number such as 0.5 or 2", v)
				}
			}
		case "pids":
			var v string
			if v, err = one(opt, args); err == nil {
				c.Pids, err = strconv.ParseInt(v, 10, 64)
				if err != nil || c.Pids <= 0 {
					return d.Errf("spawner container: pids %q: a positive number", v)
				}
			}
		case "network":
			c.Network, err = one(opt, args)
		case "volume":
			var v string
			if v, err = one(opt, args); err == nil {
				c.Volumes = append(c.Volumes, v)
			}
		case "ulimit":
			if len(args) != 2 {
				return d.Err("spawner container: ulimit <name> <soft>[:<hard>]")
			}
			c.Ulimits = append(c.Ulimits, args[0]+"="+args[1])
		case "pull":
			c.Pull, err = one(opt, args)
		case "ready":
			return parseReadyOption(d, "container", args, &c.ReadyPath, &c.ReadyTimeout)
		case "stop_timeout":
			return parseDurationOption(d, "container", "stop_timeout", args, &c.StopTimeout)
		case "portal_login":
			if len(args) > 1 {
				return d.Err("spawner container: portal_login [<portal url as the environment reaches it>]")
			}
			c.PortalLogin = true
			if len(args) == 1 {
				c.PortalAPI = args[0]
			}
		case "bind":
			c.BindHost, err = one(opt, args)
		case "user":
			c.User, err = one(opt, args)
		case "educates":
			if len(args) > 1 {
				return d.Err("spawner container: educates [<workshop.yaml>]")
			}
			c.Educates = true
			if len(args) == 1 {
				c.EducatesWorkshop = args[0]
			}
		default:
			return d.Errf("spawner container: unknown option %q", opt)
		}
		return err
	}, c.Validate)
}

// Interface guards.
var (
	_ caddy.Validator       = (*ContainerSpawner)(nil)
	_ caddy.CleanerUpper    = (*ContainerSpawner)(nil)
	_ caddyfile.Unmarshaler = (*ContainerSpawner)(nil)
	_ spawner.Module        = (*ContainerSpawner)(nil)
	_ spawner.Checker       = (*ContainerSpawner)(nil)
)
