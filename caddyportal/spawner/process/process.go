// Package process is the spawner that runs each session's dashboard as a
// local process (optionally inside bubblewrap) in a directory of its own.
//
// What makes it trustworthy:
//   - every process runs in a session and process group of its own and
//     carries a marker variable (CADDYPORTAL_ENV=<portal>/<replica>/<session>),
//     so Stop finds all of it, grandchildren that left the group included;
//   - a small state file per environment in <dir>/.caddyportal/ records PID,
//     process start time, port and owner before anything else is created, so
//     a portal killed at any instant leaves nothing List cannot find (a
//     stopped environment's state file and pipe are kept, blanked, for a
//     later start: see spares);
//   - output goes through a named pipe that outlives the portal, so a
//     dashboard keeps running (and a later portal keeps logging it) after the
//     portal that started it was killed: with a plain pipe its next log line
//     would meet EPIPE or SIGPIPE.
package process

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"go.uber.org/zap"

	"github.com/caddyportal/caddyportal/caddyportal/spawner"
	"github.com/caddyportal/caddyportal/internal/procfs"
)

// MarkerVar marks every process of an environment; its value is
// <portal>/<replica>/<session>. Reconciliation finds an environment's
// processes by it, and so can an operator (or a test) looking for them.
const MarkerVar = "CADDYPORTAL_ENV"

// stateDirName is the directory under Config.Dir that holds the portal's own
// files (state, output pipes); session names cannot start with a dot, and the
// sandbox hides it from every environment.
const stateDirName = ".caddyportal"

// Defaults for the zero values of Config.
const (
	DefaultReadyTimeout = 30 * time.Second
	DefaultStopTimeout  = 10 * time.Second
	DefaultBindHost     = "127.0.0.1"
)

// killGrace is how long Stop waits for processes to vanish after SIGKILL
// before it reports them (a process stuck in uninterruptible sleep).
const killGrace = 5 * time.Second

// EnvVar is one operator-set variable; Value may contain placeholders.
type EnvVar = spawner.EnvVar

// Config configures a process spawner.
type Config struct {
	// Command is the dashboard's command line; elements may contain
	// placeholders (spawner.PlaceholderNames). It is not run through a shell.
	Command []string
	// Dir is an absolute directory; each session gets <Dir>/<session>
	// (created 0700, removed at Stop). Dir must belong to this portal replica.
	Dir string
	// Env are extra variables, applied after the portal's own (so the
	// operator can override them); values may contain placeholders.
	Env []EnvVar
	// ReadyPath is the path the readiness probe GETs (placeholders allowed,
	// e.g. {prefix}api); default "/".
	ReadyPath string
	// ReadyTimeout is how long a start may take to become ready.
	ReadyTimeout time.Duration
	// StopTimeout is how long Stop waits after SIGTERM before SIGKILL.
	StopTimeout time.Duration
	// Sandbox is "" or "bubblewrap".
	Sandbox string
	// User, when set, is the user (name or numeric uid) the process runs as;
	// the portal must be able to switch to it (run as root).
	User string
	// BindHost is the address the dashboard binds to and that other
	// replicas dial; default 127.0.0.1.
	BindHost string
	// Portal and Replica identify this portal replica: List and Stop touch
	// only environments carrying the same pair.
	Portal, Replica string
	// Prepare is how many spare state files, output pipes and session
	// directories New makes in the background (at most maxSpares of each),
	// so that a class starting takes them instead of creating files (see
	// spares). The portal passes the workshop's capacity; 0 prepares none.
	Prepare int
	// PortalLogin gives each environment an OAuth client of its own
	// (PORTAL_CLIENT_ID, ...), with which an Educates gateway logs the
	// learner in through the portal; PortalAPIURL is the portal's address
	// as the process reaches it ("" for the portal's URL).
	PortalLogin  bool
	PortalAPIURL string
}

// State is the process spawner's Env.State.
type State struct {
	PID     int    `json:"pid"`             // the process started (bwrap's when sandboxed); 0 until it runs
	Start   uint64 `json:"start,omitempty"` // its start time, /proc/<pid>/stat field 22
	PGID    int    `json:"pgid,omitempty"`  // its process group and session (== PID)
	Port    int    `json:"port,omitempty"`
	Dir     string `json:"dir"`
	Ready   string `json:"ready,omitempty"` // the expanded probe path
	Portal  string `json:"portal"`
	Replica string `json:"replica"`
}

// Spawner runs dashboards as local processes. It is safe for concurrent use.
type Spawner struct {
	cfg Config
	log *zap.Logger
	// outLog logs the dashboards' output, under a name of its own so that
	// an operator can leave it out of Caddy's logs (`exclude`).
	outLog   *zap.Logger
	stateDir string
	cred     *syscall.Credential
	bwrap    string

	spare  *spares   // state files, pipes and directories for later starts
	scans  procScans // passes over /proc, shared by concurrent stops
	diag   diagConn  // which socket answers on an environment's port
	bindIP net.IP    // the address dialled for BindHost; nil when it is a name
	// stopPrepare ends the preparation of spares New began, and waits for it.
	stopPrepare func()

	mu       sync.Mutex
	ports    map[int]string    // ports handed out, so two starts never get the same one
	children map[string]*child // environments started (or whose output is read) by this value
}

// child is what this Spawner value knows about one environment.
type child struct {
	exited   chan struct{} // closed once Wait returned; nil when not our child
	pid      int           // our child's PID and start time, set with exited
	start    uint64
	waitErr  error         // Wait's result, valid after exited closed
	output   chan struct{} // closed once the output reader ended; nil when none
	mu       sync.Mutex
	eof      bool     // the output reader saw every writer of the pipe gone
	last     []string // the last lines of output, for error messages
	verified uint64   // the start time of the process whose listener was verified
	raw      []byte   // the state last parsed for Ready, and what it said
	parsed   State
}

var (
	_ spawner.Spawner     = (*Spawner)(nil)
	_ spawner.PortalLogin = (*Spawner)(nil)
	_ spawner.ReadyPather = (*Spawner)(nil)
)

// PortalLogin implements spawner.PortalLogin.
func (s *Spawner) PortalLogin() (string, bool) { return s.cfg.PortalAPIURL, s.cfg.PortalLogin }

var (
	sessionName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$`)
	varName     = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
)

// Check checks cfg as New does, without creating anything: what `caddy
// validate` and a config that is loaded but not yet run may do. It warns
// through log (which may be nil) about what is legal but probably a
// mistake.
func Check(cfg Config, log *zap.Logger) error {
	if log == nil {
		log = zap.NewNop()
	}
	c, err := check(cfg)
	if err != nil {
		return err
	}
	if !mentionsPort(c.Config) {
		// Legitimate for a dashboard that reads $PORT; otherwise every
		// start but the first waits out its ready timeout on the wrong port.
		log.Warn("process spawner: the command does not pass {port}: the dashboard must listen on the port in $PORT",
			zap.Strings("command", c.Command))
	}
	return nil
}

// New checks cfg (see Check, whose warnings it does not repeat), creates
// Dir and its state directory, begins making spares, and returns the
// spawner. log may be nil.
func New(cfg Config, log *zap.Logger) (*Spawner, error) {
	if log == nil {
		log = zap.NewNop()
	}
	c, err := check(cfg)
	if err != nil {
		return nil, err
	}
	cfg = c.Config
	s := &Spawner{
		cfg:      cfg,
		log:      log,
		outLog:   log.Named("output"),
		stateDir: filepath.Join(cfg.Dir, stateDirName),
		ports:    map[int]string{},
		children: map[string]*child{},
		bindIP:   dialedIP(cfg.BindHost),
		bwrap:    c.bwrap,
		cred:     c.cred,
	}
	// 0711: a user the dashboards run as may enter its own session directory
	// but not list the others'.
	if err := os.MkdirAll(cfg.Dir, 0o711); err != nil {
		return nil, fmt.Errorf("process spawner: %w", err)
	}
	if err := os.MkdirAll(s.stateDir, 0o700); err != nil {
		return nil, fmt.Errorf("process spawner: %w", err)
	}
	sp, err := newSpares(filepath.Join(s.stateDir, spareDirName))
	if err != nil {
		return nil, fmt.Errorf("process spawner: %w", err)
	}
	s.spare = sp
	s.stopPrepare = sp.prepare(cfg.Prepare, log)
	return s, nil
}

// checked is a configuration check passed, with what it found: the
// configuration with its defaults applied, the sandbox's program and the
// credential to start dashboards with (nil: this process's own).
type checked struct {
	Config
	bwrap string
	cred  *syscall.Credential
}

// check is Check without its warnings.
func check(cfg Config) (checked, error) {
	var c checked
	if len(cfg.Command) == 0 || cfg.Command[0] == "" {
		return c, errors.New("process spawner: command is required")
	}
	if cfg.Dir == "" || !filepath.IsAbs(cfg.Dir) {
		return c, fmt.Errorf("process spawner: dir must be an absolute path, got %q", cfg.Dir)
	}
	cfg.Dir = filepath.Clean(cfg.Dir)
	if cfg.Portal == "" {
		return c, errors.New("process spawner: portal name is required")
	}
	if cfg.Replica == "" {
		cfg.Replica = "local"
	}
	for _, id := range []string{cfg.Portal, cfg.Replica} {
		if strings.ContainsAny(id, "/\x00=") {
			return c, fmt.Errorf("process spawner: portal and replica names cannot contain '/', '=' or NUL: %q", id)
		}
	}
	for _, a := range cfg.Command {
		if err := spawner.CheckTemplate(a); err != nil {
			return c, fmt.Errorf("process spawner: command: %w", err)
		}
	}
	if err := checkProgram(cfg.Command[0]); err != nil {
		return c, fmt.Errorf("process spawner: command: %w", err)
	}
	for _, e := range cfg.Env {
		if !varName.MatchString(e.Name) {
			return c, fmt.Errorf("process spawner: env: %q is not a variable name", e.Name)
		}
		if e.Name == MarkerVar {
			return c, fmt.Errorf("process spawner: env: %s is the portal's own", MarkerVar)
		}
		if err := spawner.CheckTemplate(e.Value); err != nil {
			return c, fmt.Errorf("process spawner: env %s: %w", e.Name, err)
		}
	}
	if cfg.ReadyPath == "" {
		cfg.ReadyPath = "/"
	}
	if err := spawner.CheckTemplate(cfg.ReadyPath); err != nil {
		return c, fmt.Errorf("process spawner: ready path: %w", err)
	}
	if cfg.ReadyTimeout <= 0 {
		cfg.ReadyTimeout = DefaultReadyTimeout
	}
	if cfg.StopTimeout <= 0 {
		cfg.StopTimeout = DefaultStopTimeout
	}
	if cfg.BindHost == "" {
		cfg.BindHost = DefaultBindHost
	}
	if err := spawner.CheckBindHost(cfg.BindHost); err != nil {
		return c, fmt.Errorf("process spawner: %w", err)
	}
	// An address this machine does not have would fail every start (each
	// picks its port there): fail the config's load instead.
	l, err := net.Listen("tcp", net.JoinHostPort(cfg.BindHost, "0"))
	if err != nil {
		return c, fmt.Errorf("process spawner: bind %s: %w", cfg.BindHost, err)
	}
	l.Close()
	switch cfg.Sandbox {
	case "":
	case "bubblewrap":
		if c.bwrap, err = exec.LookPath("bwrap"); err != nil {
			return c, errors.New("process spawner: sandbox bubblewrap needs bwrap on PATH (Debian package bubblewrap)")
		}
	default:
		return c, fmt.Errorf("process spawner: unknown sandbox %q (want bubblewrap)", cfg.Sandbox)
	}
	if cfg.User != "" {
		cred, err := lookupUser(cfg.User)
		if err != nil {
			return c, fmt.Errorf("process spawner: user: %w", err)
		}
		if c.cred, err = switchableTo(cfg.User, cred); err != nil {
			return c, err
		}
	}
	c.Config = cfg
	return c, nil
}

// mentionsPort reports whether cfg passes the dashboard its port through
// the {port} placeholder, in the command or a variable.
func mentionsPort(cfg Config) bool {
	for _, a := range cfg.Command {
		if strings.Contains(a, "{port}") {
			return true
		}
	}
	for _, e := range cfg.Env {
		if strings.Contains(e.Value, "{port}") {
			return true
		}
	}
	return false
}

// checkProgram refuses a command whose program cannot be found now, so
// that a typo fails the config's load (a reload keeps the running config)
// instead of every session's start. A program named with a placeholder,
// or by a path relative to the session's directory (where it runs), can
// only be found at start.
func checkProgram(name string) error {
	if strings.Contains(name, "{") || strings.Contains(name, "/") && !filepath.IsAbs(name) {
		return nil
	}
	_, err := exec.LookPath(name)
	return err
}

// switchableTo returns the credential to start dashboards with for user
// (cred): none when it is the user this process runs as, which needs no
// switch, and an error at load when this process may not switch users, so
// that the config is refused rather than every session's start failing.
func switchableTo(name string, cred *syscall.Credential) (*syscall.Credential, error) {
	if cred.Uid == uint32(os.Geteuid()) && cred.Gid == uint32(os.Getegid()) {
		return nil, nil
	}
	ok, err := procfs.HasCapabilities(procfs.CapSetUID, procfs.CapSetGID)
	if err != nil {
		return nil, fmt.Errorf("process spawner: user %s: cannot tell whether this process may switch users: %w", name, err)
	}
	if !ok {
		return nil, fmt.Errorf("process spawner: user %s: the portal may not switch users; run it as root, "+
			"or grant it CAP_SETUID and CAP_SETGID (a container's root often lacks them), or remove `user`", name)
	}
	return cred, nil
}

func lookupUser(name string) (*syscall.Credential, error) {
	u, err := user.Lookup(name)
	if err != nil {
		if _, nerr := strconv.Atoi(name); nerr != nil {
			return nil, err
		}
		if u, err = user.LookupId(name); err != nil {
			return nil, err
		}
	}
	uid, err := strconv.ParseUint(u.Uid, 10, 32)
	if err != nil {
		return nil, err
	}
	gid, err := strconv.ParseUint(u.Gid, 10, 32)
	if err != nil {
		return nil, err
	}
	cred := &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
	if ids, err := u.GroupIds(); err == nil {
		for _, g := range ids {
			if n, err := strconv.ParseUint(g, 10, 32); err == nil {
				cred.Groups = append(cred.Groups, uint32(n))
			}
		}
	}
	return cred, nil
}

// ReadyPath implements spawner.ReadyPather: the path the probe GETs.
func (s *Spawner) ReadyPath(env spawner.Env) string { return s.parseState(env).Ready }

// ReadyTimeout implements spawner.Spawner.
func (s *Spawner) ReadyTimeout() time.Duration { return s.cfg.ReadyTimeout }

func (s *Spawner) marker(session string) string {
	return s.cfg.Portal + "/" + s.cfg.Replica + "/" + session
}

func (s *Spawner) sessionDir(session string) string { return filepath.Join(s.cfg.Dir, session) }
func (s *Spawner) stateFile(session string) string {
	return filepath.Join(s.stateDir, session+".json")
}
func (s *Spawner) pipeFile(session string) string { return filepath.Join(s.stateDir, session+".out") }

// Start implements spawner.Spawner: it writes the state file, creates the
// session directory, and starts the command; on any error it removes
// whatever it created.
func (s *Spawner) Start(ctx context.Context, spec spawner.Spec, progress func(spawner.Progress)) (env spawner.Env, err error) {
	if !sessionName.MatchString(spec.Session) {
		return spawner.Env{}, fmt.Errorf("process spawner: invalid session name %q", spec.Session)
	}
	if err := ctx.Err(); err != nil {
		return spawner.Env{}, err
	}
	spawner.Report(progress, spawner.StepStarting, "starting the environment")
	session := spec.Session
	c := &child{}
	s.mu.Lock()
	if _, busy := s.children[session]; busy {
		s.mu.Unlock()
		return spawner.Env{}, fmt.Errorf("process spawner: session %s already has an environment", session)
	}
	s.children[session] = c
	s.mu.Unlock()
	dir := s.sessionDir(session)
	// Left by a previous run that nobody stopped: cleaning it up here would
	// hide that (and kill whatever still runs there); reconciliation does it.
	for _, p := range []string{s.stateFile(session), dir} {
		if _, err := os.Lstat(p); err == nil {
			s.forget(session)
			return spawner.Env{}, fmt.Errorf("process spawner: session %s has an environment left from before (%s): stop it first", session, p)
		}
	}
	port, err := s.pickPort(session)
	if err != nil {
		s.forget(session)
		return spawner.Env{}, err
	}
	st := State{Port: port, Dir: dir, Portal: s.cfg.Portal, Replica: s.cfg.Replica}
	env = spawner.Env{Session: session, Addr: net.JoinHostPort(s.cfg.BindHost, strconv.Itoa(port))}
	defer func() {
		if err != nil {
			// Remove everything this start created, processes included.
			if serr := s.Stop(context.Background(), env); serr != nil {
				s.log.Error("cleaning up a failed start", zap.String("session", session), zap.Error(serr))
			}
			err = fmt.Errorf("process spawner: starting %s: %w", session, err)
		}
	}()

	vars := spawner.NewVars(spec, s.cfg.BindHost, port, dir)
	argv, err := spawner.ExpandAll(s.cfg.Command, vars)
	if err != nil {
		return env, err
	}
	if st.Ready, err = spawner.Expand(s.cfg.ReadyPath, vars); err != nil {
		return env, err
	}
	environ, err := s.environ(spec, vars, port, dir)
	if err != nil {
		return env, err
	}
	// The state file comes first: if the portal dies anywhere after this,
	// List finds the environment and Stop removes it.
	if env.State, err = s.createState(session, st); err != nil {
		return env, err
	}
	if err := s.makeSessionDir(dir); err != nil {
		return env, fmt.Errorf("session directory: %w", err)
	}
	if s.cred != nil {
		if err := os.Chown(dir, int(s.cred.Uid), int(s.cred.Gid)); err != nil {
			return env, fmt.Errorf("session directory: %w", err)
		}
	}
	out, in, err := s.openPipe(session)
	if err != nil {
		return env, err
	}
	defer out.Close()
	if err := ctx.Err(); err != nil {
		in.Close()
		return env, err
	}
	if s.bwrap != "" {
		argv = append(s.sandboxArgs(dir), argv...)
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir = dir
	cmd.Env = environ
	cmd.Stdout = out
	cmd.Stderr = out
	// A session of its own: a process group to signal as one, and no
	// controlling terminal of the portal's to inject keystrokes into.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Credential: s.cred}
	if err := cmd.Start(); err != nil {
		in.Close()
		return env, err
	}
	pid := cmd.Process.Pid
	st.PID, st.PGID = pid, pid
	// Read before Wait can reap it: even a process that exited at once is
	// still a zombie here, so its start time is always recorded.
	if p, serr := procfs.ReadStat(pid); serr == nil {
		st.Start = p.Start
	}
	c.pid, c.start = pid, st.Start
	c.exited = make(chan struct{})
	go func() {
		werr := waitExited(cmd)
		c.mu.Lock()
		c.waitErr = werr
		c.mu.Unlock()
		close(c.exited)
	}()
	s.readOutput(session, c, in)
	if env.State, err = s.updateState(session, env.State, st); err != nil {
		return env, err
	}
	s.log.Info("environment started", zap.String("session", session), zap.Int("pid", pid),
		zap.String("addr", env.Addr), zap.Strings("command", argv))
	spawner.Report(progress, spawner.StepStarted, "the environment is running")
	return env, nil
}

// environ builds the child's environment. The portal's own environment is not
// inherited (it may hold secrets: store credentials, OAuth keys): only PATH
// and the locale pass through.
func (s *Spawner) environ(spec spawner.Spec, vars spawner.Vars, port int, dir string) ([]string, error) {
	path := os.Getenv("PATH")
	if path == "" {
		path = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
	}
	env := []string{"PATH=" + path, "HOME=" + dir, "PORT=" + strconv.Itoa(port)}
	for _, k := range []string{"LANG", "LC_ALL", "TZ"} {
		if v, ok := os.LookupEnv(k); ok {
			env = append(env, k+"="+v)
		}
	}
	if s.cfg.User != "" {
		env = append(env, "USER="+s.cfg.User, "LOGNAME="+s.cfg.User)
	}
	portal, err := spawner.Environment(spec)
	if err != nil {
		return nil, err
	}
	env = append(env, portal...)
	for _, e := range s.cfg.Env {
		v, err := spawner.Expand(e.Value, vars)
		if err != nil {
			return nil, err
		}
		env = append(env, e.Name+"="+v)
	}
	env = append(env, MarkerVar+"="+s.marker(spec.Session))
	return dedupEnv(env), nil
}

// dedupEnv keeps the last value of each name, in first-seen order.
func dedupEnv(env []string) []string {
	idx := map[string]int{}
	out := make([]string, 0, len(env))
	for _, kv := range env {
		k, _, _ := strings.Cut(kv, "=")
		if i, ok := idx[k]; ok {
			out[i] = kv
			continue
		}
		idx[k] = len(out)
		out = append(out, kv)
	}
	return out
}

// sandboxArgs runs the command in bubblewrap: the whole file system read-only,
// Dir replaced by an empty read-only tmpfs (other sessions and the portal's
// state invisible) with only the session's own directory bound back writable, a
// private /tmp, /dev and /proc, every namespace but the network unshared, and
// no capabilities (bwrap run by root keeps them otherwise, and with
// CAP_SYS_ADMIN the read-only mounts could be undone). The pid namespace makes
// the whole tree die with bwrap's init, whatever it did to escape its group.
func (s *Spawner) sandboxArgs(dir string) []string {
	return []string{s.bwrap,
		"--ro-bind", "/", "/",
		"--dev", "/dev",
		"--proc", "/proc",
		"--tmpfs", "/tmp",
		"--tmpfs", s.cfg.Dir,
		"--bind", dir, dir,
		"--remount-ro", s.cfg.Dir,
		"--unshare-all", "--share-net",
		"--cap-drop", "ALL",
		"--chdir", dir,
		"--",
	}
}

// pickPort returns a free port on the bind host that no other environment of
// this Spawner holds. Another program may take it before the dashboard binds
// it; that start then fails (the dashboard cannot listen) or its probe reaches
// the wrong server, which is why the bind host's ephemeral ports should be
// left to the portal.
func (s *Spawner) pickPort(session string) (int, error) {
	for range 50 {
		l, err := net.Listen("tcp", net.JoinHostPort(s.cfg.BindHost, "0"))
		if err != nil {
			return 0, fmt.Errorf("process spawner: no free port on %s: %w", s.cfg.BindHost, err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		l.Close()
		s.mu.Lock()
		if _, taken := s.ports[port]; !taken {
			s.ports[port] = session
			s.mu.Unlock()
			return port, nil
		}
		s.mu.Unlock()
	}
	return 0, errors.New("process spawner: no free port")
}

// forget drops what this value knows of session once it is stopped.
func (s *Spawner) forget(session string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.children, session)
	for p, owner := range s.ports {
		if owner == session {
			delete(s.ports, p)
		}
	}
}

// createState writes session's first state file into a spare (see spares)
// or a new file, directly rather than through a temporary file and a
// rename, which would cost another new file. A crash between the file's
// appearance and the write leaves an empty (or blanked) file, which List
// still reports so that Stop cleans it up.
func (s *Spawner) createState(session string, st State) (json.RawMessage, error) {
	b, err := json.Marshal(st)
	if err != nil {
		return nil, err
	}
	path := s.stateFile(session)
	flags := os.O_CREATE | os.O_EXCL
	took, err := s.spare.take(spareState, path)
	if err != nil {
		return nil, fmt.Errorf("state file: %w", err)
	}
	if took {
		flags = 0
	}
	if err := writeStateFile(path, flags, b); err != nil {
		return nil, err
	}
	return b, nil
}

// makeSessionDir makes a session's directory (0700): a spare one made
// ahead, or a new one.
func (s *Spawner) makeSessionDir(dir string) error {
	took, err := s.spare.take(spareDir, dir)
	if err != nil || took {
		return err
	}
	return os.Mkdir(dir, 0o700)
}

// updateState rewrites session's state file, whose current content is
// prev, in one write at offset 0, padded with spaces (JSON's whitespace) to
// at least prev's length. A write of less than a page is never cut short by
// the writer's death, so a portal killed at any point leaves either the old
// record or the new one, never a mix, without a temporary file and a
// rename.
func (s *Spawner) updateState(session string, prev json.RawMessage, st State) (json.RawMessage, error) {
	b, err := json.Marshal(st)
	if err != nil {
		return nil, err
	}
	out := b
	if len(b) < len(prev) {
		out = append(append([]byte(nil), b...), bytes.Repeat([]byte(" "), len(prev)-len(b))...)
	}
	if err := writeStateFile(s.stateFile(session), 0, out); err != nil {
		return nil, err
	}
	return b, nil
}

// writeStateFile writes b at the start of the state file path, opened write-only
// with the extra flags, in one write.
func writeStateFile(path string, flags int, b []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|flags, 0o600)
	if err != nil {
		return fmt.Errorf("state file: %w", err)
	}
	_, err = f.WriteAt(b, 0)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("state file: %w", err)
	}
	return nil
}

// parseState reads env.State; an empty or unreadable one gives a State with
// only the owner filled in, enough for Stop to find processes by marker.
func (s *Spawner) parseState(env spawner.Env) State {
	var st State
	if len(env.State) > 0 {
		_ = json.Unmarshal(env.State, &st)
	}
	return st
}

// openPipe creates the named pipe the environment's output goes through and
// returns its write end (for the child) and read end (for the portal). The
// child's end is opened read-write, so the pipe always has a reader: when the
// portal dies, the dashboard's writes still succeed (into a 1 MiB buffer that
// a later portal drains) instead of failing with EPIPE or killing it with
// SIGPIPE.
func (s *Spawner) openPipe(session string) (out, in *os.File, err error) {
	p := s.pipeFile(session)
	// None should be left (Stop removes the pipe before the state file,
	// whose absence Start checked); unlink, not os.Remove, which also tries
	// rmdir: two failing calls per start.
	_ = syscall.Unlink(p)
	took, err := s.spare.take(sparePipe, p)
	if err != nil {
		return nil, nil, fmt.Errorf("output pipe: %w", err)
	}
	if !took {
		if err := syscall.Mkfifo(p, 0o600); err != nil {
			return nil, nil, fmt.Errorf("output pipe: %w", err)
		}
	}
	out, err = os.OpenFile(p, os.O_RDWR, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("output pipe: %w", err)
	}
	if took {
		// A spare is the portal's own, but a file of another type there
		// must not become the dashboard's output.
		if fi, err := out.Stat(); err != nil || fi.Mode().Type() != os.ModeNamedPipe {
			out.Close()
			return nil, nil, fmt.Errorf("output pipe: %s is not a named pipe", p)
		}
	}
	// F_SETPIPE_SZ (1031): 1 MiB is the unprivileged maximum; failing to
	// raise it only means a smaller buffer.
	_, _, _ = syscall.Syscall(syscall.SYS_FCNTL, out.Fd(), 1031, 1<<20)
	in, err = os.OpenFile(p, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		out.Close()
		return nil, nil, fmt.Errorf("output pipe: %w", err)
	}
	return out, in, nil
}

// readOutput logs in line by line with the session name until every writer
// (the environment's processes) is gone.
func (s *Spawner) readOutput(session string, c *child, in *os.File) {
	c.output = make(chan struct{})
	go func() {
		defer close(c.output)
		defer in.Close()
		r := bufio.NewReaderSize(in, 16<<10)
		for {
			line, err := r.ReadSlice('\n')
			if len(line) > 0 {
				text := strings.TrimRight(string(line), "\r\n")
				s.outLog.Info("environment output", zap.String("session", session), zap.String("line", text))
				c.mu.Lock()
				c.last = append(c.last, text)
				if len(c.last) > 5 {
					c.last = c.last[len(c.last)-5:]
				}
				c.mu.Unlock()
			}
			if err != nil && !errors.Is(err, bufio.ErrBufferFull) {
				if errors.Is(err, io.EOF) {
					c.mu.Lock()
					c.eof = true
					c.mu.Unlock()
				} else if !errors.Is(err, os.ErrClosed) {
					s.log.Debug("reading environment output", zap.String("session", session), zap.Error(err))
				}
				return
			}
		}
	}()
}

// ownChild returns the exited channel of session's process if this value
// started it, as pid at start (nil for an environment it adopted or did
// not start, or a record of another process).
func (s *Spawner) ownChild(session string, pid int, start uint64) chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	if c := s.children[session]; c != nil && c.exited != nil && c.pid == pid && c.start == start {
		return c.exited
	}
	return nil
}

// Alive implements spawner.Spawner: the recorded PID runs, is no zombie, and
// started at the recorded instant (a reused PID has a later start time).
// Only a process that is provably gone is reported gone: /proc that cannot
// be read for another reason means it cannot tell.
func (s *Spawner) Alive(ctx context.Context, env spawner.Env) error {
	return s.alive(ctx, env, s.parseState(env))
}

// alive is Alive with env's state already parsed.
func (s *Spawner) alive(ctx context.Context, env spawner.Env, st State) error {
	if st.PID <= 0 || st.Start == 0 {
		return spawner.Gone("no dashboard process is recorded for this environment")
	}
	if exited := s.ownChild(env.Session, st.PID, st.Start); exited != nil {
		// This process started it and reaps it: until Wait has returned
		// its PID cannot have been reused, so Wait says all /proc would
		// (reading /proc at every readiness probe was a seventh of the
		// portal's CPU in a class start of Python dashboards).
		if !isClosed(exited) {
			return nil
		}
		return spawner.Gone(s.exitReason(ctx, env.Session))
	}
	p, err := procfs.ReadStat(st.PID)
	switch {
	case errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ESRCH):
		return spawner.Gone(s.exitReason(ctx, env.Session))
	case err != nil:
		return fmt.Errorf("process spawner: checking process %d of %s: %w", st.PID, env.Session, err)
	case p.Start != st.Start:
		return spawner.Gone("the dashboard process is gone: its process ID now belongs to another process")
	case p.Dead():
		return spawner.Gone(s.exitReason(ctx, env.Session))
	}
	return nil
}

// exitReason says how the environment's process ended, for the learner: its
// exit status or signal when this value started it, else only that it no
// longer runs (an environment adopted after a restart is not our child).
func (s *Spawner) exitReason(ctx context.Context, session string) string {
	const unknown = "the dashboard process is no longer running"
	s.mu.Lock()
	c := s.children[session]
	s.mu.Unlock()
	if c == nil || c.exited == nil {
		return unknown
	}
	// Wait returns a moment after the process died; give it that.
	select {
	case <-c.exited:
	case <-ctx.Done():
		return unknown
	case <-time.After(time.Second):
		return unknown
	}
	c.mu.Lock()
	werr := c.waitErr
	c.mu.Unlock()
	var ee *exec.ExitError
	switch {
	case werr == nil:
		return "the dashboard process exited with status 0"
	case errors.As(werr, &ee):
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return fmt.Sprintf("the dashboard process was stopped by a signal (%s)", ws.Signal())
		}
		return fmt.Sprintf("the dashboard process exited with status %d", ee.ExitCode())
	}
	return "the dashboard process ended: " + werr.Error()
}

// Ready implements spawner.Spawner. A process that is gone fails with
// spawner.ErrGone, its exit status and its last lines of output.
//
// The first answer is trusted only once the listening socket is proven to
// belong to the environment: the port was free when picked, but another
// program (another session's dashboard squatting on ports, since the network
// is shared) could have bound it first, and the learner must never be sent
// to someone else's server.
func (s *Spawner) Ready(ctx context.Context, env spawner.Env) error {
	s.mu.Lock()
	c := s.children[env.Session]
	s.mu.Unlock()
	st := s.readyState(c, env)
	if err := s.alive(ctx, env, st); errors.Is(err, spawner.ErrGone) {
		return s.goneError(env.Session)
	} else if err != nil {
		return err
	}
	// While the dashboard starts, nothing listens on its port, and that is
	// most probes' answer during a class start: asking the kernel costs a
	// tenth of the connect that would be refused.
	if inode, err := s.diag.listenerAt(s.bindIP, st.Port); err == nil && inode == 0 {
		return fmt.Errorf("nothing listens on %s", env.Addr)
	}
	if err := spawner.Probe(ctx, env.Addr, st.Ready); err != nil {
		return err
	}
	if c != nil {
		c.mu.Lock()
		verified := c.verified == st.Start
		c.mu.Unlock()
		if verified {
			return nil
		}
	}
	if err := s.verifyListener(env.Session, st); err != nil {
		return err
	}
	if c != nil {
		c.mu.Lock()
		c.verified = st.Start
		c.mu.Unlock()
	}
	return nil
}

// readyState is parseState, remembered for an environment this Spawner
// knows: a start probes the same state every few milliseconds.
func (s *Spawner) readyState(c *child, env spawner.Env) State {
	if c == nil {
		return s.parseState(env)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if !bytes.Equal(c.raw, env.State) {
		c.parsed, c.raw = s.parseState(env), bytes.Clone(env.State)
	}
	return c.parsed
}

// verifyListener checks that a process of the environment holds the socket
// that answers on its address: the one a connection to BindHost and its
// port reaches, or, when BindHost is a name, any socket listening on the
// port.
func (s *Spawner) verifyListener(session string, st State) error {
	inodes := s.answering(st.Port)
	if len(inodes) == 0 {
		return fmt.Errorf("port %d answered but has no listening socket in this network namespace", st.Port)
	}
	// Most dashboards listen in the process the portal started (Ready has
	// checked it is still that process): look there before scanning every
	// process, which costs the portal's CPU in proportion to the
	// environments running, at every start.
	if st.PID > 0 && ownsSocket(st.PID, inodes) {
		return nil
	}
	procs, err := s.victims(s.marker(session), map[int]bool{st.PGID: true})
	if err != nil {
		return err
	}
	for _, p := range procs {
		if ownsSocket(p.PID, inodes) {
			return nil
		}
	}
	return fmt.Errorf("port %d is served by a process outside this environment", st.Port)
}

// answering returns the inodes of the sockets that may have answered on
// port: exactly the one the kernel hands a connection to BindHost:port,
// or, where it cannot say (BindHost is a name, no sock_diag), every socket
// listening on the port.
func (s *Spawner) answering(port int) map[string]bool {
	inode, err := s.diag.listenerAt(s.bindIP, port)
	if err != nil {
		return listeners(port)
	}
	if inode == 0 {
		return nil
	}
	return map[string]bool{strconv.FormatUint(uint64(inode), 10): true}
}

// Close releases what the Spawner keeps open between calls. Environments
// keep running: a later Spawner of the same portal adopts them.
func (s *Spawner) Close() {
	s.stopPrepare()
	s.diag.Close()
}

func (s *Spawner) goneError(session string) error {
	s.mu.Lock()
	c := s.children[session]
	s.mu.Unlock()
	msg := "the process is not running"
	if c != nil {
		if c.exited != nil {
			// Wait returns a moment after the process died; give it that.
			select {
			case <-c.exited:
			case <-time.After(time.Second):
			}
		}
		if c.output != nil {
			select {
			case <-c.output:
			case <-time.After(time.Second):
			}
		}
		c.mu.Lock()
		if c.waitErr != nil {
			msg = "the process exited: " + c.waitErr.Error()
		} else if c.exited != nil && isClosed(c.exited) {
			msg = "the process exited with status 0"
		}
		if len(c.last) > 0 {
			msg += "; last output: " + strings.Join(c.last, " | ")
		}
		c.mu.Unlock()
	}
	return fmt.Errorf("%w: %s", spawner.ErrGone, msg)
}

func isClosed(ch chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}
