// Package container is the spawner that runs each session's dashboard in a
// container of its own, over the Docker Engine API: the same code drives
// Docker and Podman (whose `podman system service` serves that API).
//
// What makes it trustworthy:
//   - every container (and the network made for it) carries labels naming
//     the portal, the replica and the session, so List finds everything of
//     this replica, including what a portal killed mid-start left behind;
//   - each session gets a network of its own, so one learner's container
//     cannot reach another's: on Podman a network namespace of its own with
//     user-mode networking (slirp4netns, the host's loopback closed), which
//     shares nothing with other sessions; on Docker a bridge network of its
//     own, which Docker isolates from other bridges;
//   - the dashboard port is published on the bind host only (127.0.0.1 by
//     default), never on every interface;
//   - limits (memory, CPUs, PIDs) are the engine's, and an environment the
//     engine stopped (out of memory) is reported gone with that reason.
package container

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/client"
	"go.uber.org/zap"

	"github.com/caddyportal/caddyportal/caddyportal/spawner"
)

// The labels on everything the spawner creates.
const (
	LabelPortal   = "io.caddyportal.portal"
	LabelReplica  = "io.caddyportal.replica"
	LabelSession  = "io.caddyportal.session"
	LabelWorkshop = "io.caddyportal.workshop"
)

// Pull policies.
const (
	PullNever   = "never"   // the image must be on the engine already
	PullMissing = "missing" // pull when the engine does not have it (default)
	PullAlways  = "always"  // pull before every start (a moving tag)
)

// Defaults for the zero values of Config.
const (
	DefaultReadyTimeout = 60 * time.Second
	DefaultStopTimeout  = 10 * time.Second
	DefaultBindHost     = "127.0.0.1"
)

// EnvVar is one operator-set variable; Value may contain placeholders.
type EnvVar = spawner.EnvVar

// Mount is a read-only bind mount of a host path into every container.
type Mount struct {
	Source, Target string
}

// Ulimit is a resource limit set in every container.
type Ulimit struct {
	Name       string // nofile, nproc, ...
	Soft, Hard int64
}

// Config configures a container spawner.
type Config struct {
	// Engine is the Docker Engine API address: unix:///path or
	// tcp://host:port. "" takes DOCKER_HOST (and DOCKER_TLS_VERIFY,
	// DOCKER_CERT_PATH), else the engine's default socket.
	Engine string
	// TLSCA, TLSCert and TLSKey are the files of a TLS connection to a tcp
	// engine (the CA that signed the engine's certificate, and the client's
	// certificate and key).
	TLSCA, TLSCert, TLSKey string
	// Image is the image reference.
	Image string
	// Port is the dashboard's port inside the container.
	Port int
	// Command replaces the image's command when set; placeholders allowed.
	Command []string
	// Env are extra variables, applied after the portal's own.
	Env []EnvVar
	// Memory is the memory limit in bytes (0: none).
	Memory int64
	// CPUs is the CPU limit in CPUs (0: none).
	CPUs float64
	// Pids is the limit on processes in the container (0: none).
	Pids int64
	// Network is "" for a network of its own per session, or the name of an
	// existing network the operator chose (shared by all sessions).
	Network string
	// Mounts are read-only bind mounts.
	Mounts []Mount
	// Ulimits are set in every container. When none is given and the engine
	// is local, nofile and nproc are set to the portal's own hard limits
	// (at most 65536 and 4096): an engine running inside a container (as on
	// CI machines) cannot raise them, and its defaults often ask for more.
	Ulimits []Ulimit
	// Pull is the pull policy: never, missing (default) or always.
	Pull string
	// ReadyPath is the path the readiness probe GETs; default "/".
	ReadyPath string
	// ReadyTimeout is how long a start may take to become ready (pull
	// included).
	ReadyTimeout time.Duration
	// StopTimeout is how long the engine waits after SIGTERM before
	// SIGKILL.
	StopTimeout time.Duration
	// BindHost is the host address the dashboard port is published on,
	// and the one the gate dials. Default: 127.0.0.1 for a local engine,
	// the engine's host for a tcp one.
	BindHost string
	// User is the user (and group) the container runs as, "uid[:gid]" or a
	// name the image knows; "" keeps the image's.
	User string
	// Educates gives the container the environment an Educates workshop
	// image expects when it runs standalone (see educates.go).
	Educates bool
	// EducatesWorkshop is a workshop definition (workshop.yaml) mounted
	// read-only where an Educates image reads it.
	EducatesWorkshop string
	// PortalLogin gives each environment an OAuth client of its own
	// (PORTAL_CLIENT_ID, ...), with which an Educates gateway logs the
	// learner in through the portal; PortalAPIURL is the portal's address
	// as the container reaches it ("" for the portal's URL).
	PortalLogin  bool
	PortalAPIURL string
	// Portal and Replica identify this portal replica: List and Stop touch
	// only containers labelled with the same pair.
	Portal, Replica string
}

// State is the container spawner's Env.State.
type State struct {
	Container string `json:"container,omitempty"` // the container's ID
	Name      string `json:"name"`                // the container's name
	Network   string `json:"network,omitempty"`   // the session's own network, when it has one
	Ready     string `json:"ready,omitempty"`     // the expanded probe path
	Portal    string `json:"portal"`
	Replica   string `json:"replica"`
}

// Spawner runs dashboards in containers. It is safe for concurrent use.
type Spawner struct {
	cfg    Config
	log    *zap.Logger
	cli    *client.Client
	podman bool // the engine is Podman: its bridge networks need "isolate"
	// bridges: a session's own network is a bridge network made for it,
	// not a network namespace of its own (see ownNetworkMode). True on
	// Docker, which has no user-mode networking.
	bridges bool
	port    network.Port // the dashboard's port inside the container, parsed once

	pullMu sync.Mutex
	pulls  map[string]*pull // image pulls under way, shared by concurrent starts
}

var (
	_ spawner.Spawner     = (*Spawner)(nil)
	_ spawner.PortalLogin = (*Spawner)(nil)
	_ spawner.ReadyPather = (*Spawner)(nil)
)

var (
	sessionName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$`)
	varName     = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
	nameUnsafe  = regexp.MustCompile(`[^A-Za-z0-9_.-]`)
)

// New checks cfg, connects to the engine and returns the spawner. It asks
// the engine for its version (which also settles the API version both
// speak), so a wrong address fails here, when the config loads, not at the
// first learner's start. log may be nil.
func New(ctx context.Context, cfg Config, log *zap.Logger) (*Spawner, error) {
	if log == nil {
		log = zap.NewNop()
	}
	if err := check(&cfg); err != nil {
		return nil, err
	}
	opts := []client.Opt{client.FromEnv}
	if cfg.Engine != "" {
		opts = append(opts, client.WithHost(cfg.Engine))
	}
	if cfg.TLSCA != "" || cfg.TLSCert != "" {
		opts = append(opts, client.WithTLSClientConfig(cfg.TLSCA, cfg.TLSCert, cfg.TLSKey))
	}
	cli, err := client.New(opts...)
	if err != nil {
		return nil, fmt.Errorf("container spawner: engine: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	v, err := cli.ServerVersion(ctx, client.ServerVersionOptions{})
	if err != nil {
		cli.Close()
		return nil, fmt.Errorf("container spawner: engine at %s does not answer: %w", cli.DaemonHost(), err)
	}
	s := &Spawner{cfg: cfg, log: log, cli: cli, pulls: map[string]*pull{},
		port: network.MustParsePort(strconv.Itoa(cfg.Port) + "/tcp")}
	s.podman = IsPodman(v)
	s.bridges = !s.podman
	// A local engine (a socket, or TCP on loopback) shares this machine's
	// limits; a remote one is reached, and publishes, on its own host.
	local, engineHost := true, ""
	if u, err := url.Parse(cli.DaemonHost()); err == nil && u.Scheme == "tcp" {
		engineHost = u.Hostname()
		ip := net.ParseIP(engineHost)
		local = engineHost == "localhost" || ip != nil && ip.IsLoopback()
	}
	if s.cfg.BindHost == "" {
		s.cfg.BindHost = DefaultBindHost
		if engineHost != "" && !local {
			s.cfg.BindHost = engineHost
		}
	}
	if len(s.cfg.Ulimits) == 0 && local {
		s.cfg.Ulimits = ownUlimits()
	}
	log.Info("container engine", zap.String("engine", cli.DaemonHost()), zap.String("version", v.Version),
		zap.String("api", cli.ClientVersion()), zap.Bool("podman", s.podman))
	if s.cfg.Pull == PullNever {
		// Not an error: the image may be loaded into the engine after the
		// portal starts. But a typo in its name would fail every start.
		if _, err := cli.ImageInspect(ctx, s.cfg.Image); notFound(err) {
			log.Warn("container spawner: the image is not on the engine and the pull policy is never: every start fails until it is loaded",
				zap.String("image", s.cfg.Image))
		}
	}
	return s, nil
}

// Validate reports what is wrong with cfg without asking the engine, for
// checking a configuration when it loads.
func Validate(cfg Config) error { return check(&cfg) }

// check validates cfg and fills in defaults.
func check(cfg *Config) error {
	if cfg.Educates || cfg.EducatesWorkshop != "" {
		educatesDefaults(cfg)
	}
	if cfg.Image == "" {
		return errors.New("container spawner: image is required")
	}
	if cfg.Port <= 0 || cfg.Port > 65535 {
		return fmt.Errorf("container spawner: port %d: the dashboard's port inside the container (1-65535) is required", cfg.Port)
	}
	if cfg.Portal == "" {
		return errors.New("container spawner: portal name is required")
	}
	if cfg.Replica == "" {
		cfg.Replica = "local"
	}
	for _, a := range cfg.Command {
		if err := spawner.CheckTemplate(a); err != nil {
			return fmt.Errorf("container spawner: command: %w", err)
		}
	}
	for _, e := range cfg.Env {
		if !varName.MatchString(e.Name) {
			return fmt.Errorf("container spawner: env: %q is not a variable name", e.Name)
		}
		if err := spawner.CheckTemplate(e.Value); err != nil {
			return fmt.Errorf("container spawner: env %s: %w", e.Name, err)
		}
	}
	switch cfg.Pull {
	case "":
		cfg.Pull = PullMissing
	case PullNever, PullMissing, PullAlways:
	default:
		return fmt.Errorf("container spawner: pull %q: use never, missing or always", cfg.Pull)
	}
	if cfg.Memory < 0 || cfg.CPUs < 0 || cfg.Pids < 0 {
		return errors.New("container spawner: memory, cpus and pids must not be negative")
	}
	if cfg.Memory > 0 && cfg.Memory < 6<<20 {
		return fmt.Errorf("container spawner: memory %d bytes is below the engines' minimum of 6MiB", cfg.Memory)
	}
	for _, m := range cfg.Mounts {
		if !strings.HasPrefix(m.Source, "/") || !strings.HasPrefix(m.Target, "/") {
			return fmt.Errorf("container spawner: volume %s:%s: both paths must be absolute", m.Source, m.Target)
		}
		if strings.ContainsAny(m.Source+m.Target, ":,") {
			return fmt.Errorf("container spawner: volume %s:%s: paths cannot contain ':' or ','", m.Source, m.Target)
		}
	}
	if cfg.ReadyPath == "" {
		cfg.ReadyPath = "/"
	}
	if err := spawner.CheckTemplate(cfg.ReadyPath); err != nil {
		return fmt.Errorf("container spawner: ready path: %w", err)
	}
	if cfg.ReadyTimeout <= 0 {
		cfg.ReadyTimeout = DefaultReadyTimeout
	}
	if cfg.StopTimeout <= 0 {
		cfg.StopTimeout = DefaultStopTimeout
	}
	if cfg.BindHost != "" && net.ParseIP(cfg.BindHost) == nil {
		return fmt.Errorf("container spawner: bind %q must be an IP address", cfg.BindHost)
	}
	if err := spawner.CheckBindHost(cfg.BindHost); err != nil {
		return fmt.Errorf("container spawner: %w", err)
	}
	return nil
}

// ownUlimits returns nofile and nproc at this process's hard limits, capped
// at values a workshop needs (65536 open files, 4096 processes): an engine
// is often started with lower limits than the portal (Podman's service caps
// nproc at 32768), and runc cannot raise a limit above its own.
func ownUlimits() []Ulimit {
	var out []Ulimit
	for _, l := range []struct {
		name string
		res  int
		max  uint64
	}{{"nofile", syscall.RLIMIT_NOFILE, 65536}, {"nproc", 6 /* RLIMIT_NPROC */, 4096}} {
		var r syscall.Rlimit
		if err := syscall.Getrlimit(l.res, &r); err != nil {
			continue
		}
		v := min(r.Max, l.max)
		out = append(out, Ulimit{Name: l.name, Soft: int64(v), Hard: int64(v)})
	}
	return out
}

// PortalLogin implements spawner.PortalLogin.
func (s *Spawner) PortalLogin() (string, bool) { return s.cfg.PortalAPIURL, s.cfg.PortalLogin }

// Config returns the spawner's configuration, defaults filled in.
func (s *Spawner) Config() Config { return s.cfg }

// Close releases the engine connection.
func (s *Spawner) Close() error { return s.cli.Close() }

// ReadyTimeout implements spawner.Spawner.
func (s *Spawner) ReadyTimeout() time.Duration { return s.cfg.ReadyTimeout }

// containerName is the engine-wide name of session's container (and of its
// network), readable in `docker ps`. It names the replica too: a session
// name is unique within a portal, but a name left behind by a replica that
// is gone, or by another deployment of a portal with the same name on the
// same engine, must not stop this replica from starting the session.
func (s *Spawner) containerName(session string) string {
	return "caddyportal-" + nameUnsafe.ReplaceAllString(s.cfg.Portal, "_") + "-" +
		nameUnsafe.ReplaceAllString(s.cfg.Replica, "_") + "-" + session
}

func (s *Spawner) labels(spec spawner.Spec) map[string]string {
	return map[string]string{
		LabelPortal:   s.cfg.Portal,
		LabelReplica:  s.cfg.Replica,
		LabelSession:  spec.Session,
		LabelWorkshop: spec.Workshop,
	}
}

// IsPodman reports whether an engine's version answer is Podman's: a
// session's network of its own is then a network namespace with user-mode
// networking, and on Docker a bridge network made for it.
func IsPodman(v client.ServerVersionResult) bool {
	for _, c := range v.Components {
		if strings.Contains(strings.ToLower(c.Name), "podman") {
			return true
		}
	}
	return false
}

// ownFilter selects what this portal replica created.
func (s *Spawner) ownFilter() client.Filters {
	return make(client.Filters).Add("label", LabelPortal+"="+s.cfg.Portal, LabelReplica+"="+s.cfg.Replica)
}

// notFound reports an engine error that means the object is gone.
func notFound(err error) bool { return cerrdefs.IsNotFound(err) }
