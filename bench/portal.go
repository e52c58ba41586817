package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Portal settings shared by the generated Caddyfiles and the in-process
// seeding, which must agree on the portal and workshop names so that the
// binary finds the seeded environment.
const (
	portalName   = "bench"
	workshopName = "lab"
	envName      = portalName + "-w01"
	robotUser    = "robot@portal"
	robotPass    = "robot-pass"
	clientID     = "bench-client"
	clientSecret = "bench-secret"
	hubIndex     = "https://hub.example.com/"
	// templateUpstream gives every session its own dashboard address
	// without a fixed pool, so capacity is not bounded by pool size. The
	// storm and scaling flows never open the dashboard.
	templateUpstream = "{session}.lab.invalid:80"
)

// buildBinary builds ./cmd/caddyportal of the module at root into dir, with
// the release's build tags (releaseTags), so the harness measures the
// binary operators run.
func buildBinary(ctx context.Context, root, dir string) (string, error) {
	tags, err := releaseTags(root)
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "caddyportal")
	args := []string{"build", "-o", bin}
	if tags != "" {
		args = append(args, "-tags", tags)
	}
	cmd := exec.CommandContext(ctx, "go", append(args, "./cmd/caddyportal")...)
	cmd.Dir = root
	out, err := cmd.CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("go %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return bin, nil
}

// releaseTags returns the -tags of the release build, from the build
// manifest xcaddy.json's build_flags (Caddy's own release tags: they leave
// out database drivers of smallstep's ACME server that Caddy never uses,
// about 7 MB of resident code). Its -trimpath and -ldflags are not taken:
// they change only file paths and the symbol table, not what is linked or
// resident, and -trimpath would compile all of Caddy a second time beside
// the tests' own build.
func releaseTags(root string) (string, error) {
	b, err := os.ReadFile(filepath.Join(root, "xcaddy.json"))
	if err != nil {
		return "", err
	}
	var m struct {
		BuildFlags string `json:"build_flags"`
	}
	if err := json.Unmarshal(b, &m); err != nil {
		return "", fmt.Errorf("xcaddy.json: %w", err)
	}
	f := strings.Fields(m.BuildFlags)
	for i, flag := range f {
		if v, ok := strings.CutPrefix(flag, "-tags="); ok {
			return v, nil
		}
		if flag == "-tags" && i+1 < len(f) {
			return f[i+1], nil
		}
	}
	return "", nil
}

// moduleRoot finds the caddyportal module directory from the working
// directory upwards, so the harness runs from the repo root (go run ./bench)
// as well as from bench/ (go test).
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		b, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && strings.Contains(string(b), "module github.com/caddyportal/caddyportal\n") {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("cannot find the caddyportal module (go.mod) above the working directory; run from the repository")
		}
		dir = parent
	}
}

// portalSpec describes one generated Caddyfile.
type portalSpec struct {
	// Data is the Badger directory.
	Data string
	// Maximum is the portal-wide cap (sessions maximum).
	Maximum int
	// Capacity of the one workshop.
	Capacity int
	// Upstreams of the workshop: a pool or the template.
	Upstreams []string
	// Extra site blocks, appended verbatim.
	Extra string
	// Admin is the admin API address ("" turns it off); profiling uses
	// its /debug/pprof endpoints.
	Admin string
	// Env is added to the process environment.
	Env []string
	// Spawner, when set, replaces Upstreams: the body of a `spawner
	// <SpawnerKind>` block (one option per line), so sessions get
	// environments started per session.
	Spawner string
	// SpawnerKind is the spawner module: process ("") or container.
	SpawnerKind string
	// Reserved and Initial are the workshop's reserves (0: none).
	Reserved, Initial int
	// Starts is the portal's `starts` (0: the portal's default).
	Starts int
}

// caddyfile renders the Caddyfile of a portal on port, with Caddy's own
// state and log under work.
func (s portalSpec) caddyfile(work string, port int) string {
	admin := "off"
	if s.Admin != "" {
		admin = s.Admin
	}
	dashboards := "upstream " + strings.Join(s.Upstreams, " ")
	if s.Spawner != "" {
		kind := s.SpawnerKind
		if kind == "" {
			kind = "process"
		}
		dashboards = "spawner " + kind + " {\n" + s.Spawner + "\n\t\t\t}"
	}
	starts := ""
	if s.Starts > 0 {
		starts = fmt.Sprintf("starts %d\n\t\t", s.Starts)
	}
	return fmt.Sprintf(`{
	admin %s
	persist_config off
	storage file_system %s
	grace_period 1s
	log default {
		output file %s
		level INFO
	}
}

http://127.0.0.1:%d {
	bind 127.0.0.1
	portal {
		name %s
		storage badger %s
		index %s
		catalog public
		sessions maximum %d registered 1 anonymous 1
		robot %s %s
		client %s %s
		%sworkshop %s {
			title "Benchmark lab"
			reserved %d
			initial %d
			capacity %d
			expires 60m
			%s
		}
	}
	respond "not the portal" 404
}
%s`, admin, filepath.Join(work, "caddy"), filepath.Join(work, "caddy.log"), port,
		portalName, s.Data, hubIndex, s.Maximum, robotUser, robotPass, clientID, clientSecret,
		starts, workshopName, s.Reserved, s.Initial, s.Capacity, dashboards, s.Extra)
}

// proc is a running portal binary.
type proc struct {
	cmd  *exec.Cmd
	Base string
	Port int
	// Ready is the time from starting the process to the first 200 from
	// the portal's catalog route.
	Ready time.Duration
	// Started is when the process was started.
	Started time.Time
	done    chan error
	// stop makes Stop safe to call again (a scenario stops the portal
	// before it reads what is left, and a deferred Stop follows).
	stop sync.Once
}

// startPortal writes the Caddyfile into work and runs the binary until the
// portal answers. It fails if the process exits or does not answer within
// timeout (a bound on a broken start, not a measurement).
func startPortal(ctx context.Context, bin, work string, spec portalSpec) (*proc, error) {
	if err := os.MkdirAll(work, 0o755); err != nil {
		return nil, err
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	cf := filepath.Join(work, "Caddyfile")
	if err := os.WriteFile(cf, []byte(spec.caddyfile(work, port)), 0o600); err != nil {
		return nil, err
	}
	stderr, err := os.Create(filepath.Join(work, "stderr.log"))
	if err != nil {
		return nil, err
	}
	defer stderr.Close()
	cmd := exec.Command(bin, "run", "--config", cf, "--adapter", "caddyfile")
	// Caddy's data and config directories (autosave, certificates) stay in
	// the work directory instead of the user's home.
	cmd.Env = append(os.Environ(), "XDG_DATA_HOME="+work, "XDG_CONFIG_HOME="+work, "HOME="+work)
	cmd.Env = append(cmd.Env, spec.Env...)
	cmd.Stdout, cmd.Stderr = stderr, stderr
	p := &proc{cmd: cmd, Port: port, Base: fmt.Sprintf("http://127.0.0.1:%d", port), done: make(chan error, 1)}
	start := time.Now()
	p.Started = start
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", bin, err)
	}
	go func() { p.done <- cmd.Wait() }()

	client := &http.Client{Timeout: 2 * time.Second}
	defer client.CloseIdleConnections()
	deadline := time.Now().Add(2 * time.Minute)
	url := p.Base + "/workshops/catalog/environments/"
	for {
		res, err := client.Get(url)
		if err == nil {
			res.Body.Close()
			if res.StatusCode == http.StatusOK {
				p.Ready = time.Since(start)
				return p, nil
			}
		}
		select {
		case err := <-p.done:
			return nil, fmt.Errorf("portal exited before it was ready (%v); see %s", err, stderr.Name())
		case <-ctx.Done():
			p.Stop()
			return nil, ctx.Err()
		case <-time.After(2 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			p.Stop()
			return nil, fmt.Errorf("portal not ready after 2 minutes; see %s", stderr.Name())
		}
	}
}

// Stop ends the process gracefully, killing it if it does not stop.
// Later calls do nothing.
func (p *proc) Stop() {
	if p == nil || p.cmd.Process == nil {
		return
	}
	p.stop.Do(func() {
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(15 * time.Second):
			_ = p.cmd.Process.Kill()
			<-p.done
		}
	})
}

// memInfo is a process's memory from /proc/<pid>/status, in kB.
type memInfo struct {
	RSS, HWM int64 // VmRSS, VmHWM (peak)
	// Anon is private memory (heap, stacks); File is file-backed pages
	// mapped into the process: the binary's code and Badger's mmapped
	// tables, which the kernel can drop under memory pressure.
	Anon, File int64
}

// Mem reads the process's memory figures.
func (p *proc) Mem() (memInfo, error) {
	var m memInfo
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", p.cmd.Process.Pid))
	if err != nil {
		return m, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		n, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
		switch k {
		case "VmRSS":
			m.RSS = n
		case "VmHWM":
			m.HWM = n
		case "RssAnon":
			m.Anon = n
		case "RssFile":
			m.File = n
		}
	}
	return m, sc.Err()
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// adminAddr is a free loopback address for the portal's admin API (the
// portal admin API, /metrics and pprof).
func adminAddr() (string, error) {
	port, err := freePort()
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("127.0.0.1:%d", port), nil
}

// raiseFileLimit lifts the soft open-file limit to the hard one. Setting
// it explicitly (rather than relying on the Go runtime's own raise) makes
// child processes inherit it too, so the portal can hold thousands of
// WebSockets and their upstream connections.
func raiseFileLimit() (uint64, error) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 0, err
	}
	lim.Cur = lim.Max
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 0, err
	}
	return lim.Cur, nil
}

// dirSize sums the sizes of the files under dir.
func dirSize(dir string) int64 {
	var n int64
	_ = filepath.Walk(dir, func(_ string, info os.FileInfo, err error) error {
		if err == nil && !info.IsDir() {
			n += info.Size()
		}
		return nil
	})
	return n
}

// CPU is the CPU time the process has used so far (user + system), from
// /proc/<pid>/stat, in clock ticks of 10 ms.
func (p *proc) CPU() (time.Duration, error) {
	return procCPU(fmt.Sprintf("/proc/%d/stat", p.cmd.Process.Pid))
}

// cpuUsed runs work and returns the CPU time the portal process and the
// harness (load generator, dashboards) used meanwhile.
func cpuUsed(p *proc, work func()) (portal, harness time.Duration, err error) {
	pc0, err1 := p.CPU()
	hc0, err2 := selfCPU()
	work()
	pc1, err3 := p.CPU()
	hc1, err4 := selfCPU()
	if err := errors.Join(err1, err2, err3, err4); err != nil {
		return 0, 0, fmt.Errorf("reading CPU time: %w", err)
	}
	return pc1 - pc0, hc1 - hc0, nil
}

// machineCPU is the CPU time the whole machine has spent busy so far
// (every state of /proc/stat's cpu line but idle and iowait), and the
// number of CPUs it counts.
func machineCPU() (time.Duration, int, error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0, err
	}
	lines := strings.Split(string(b), "\n")
	f := strings.Fields(lines[0])
	if len(f) < 6 || f[0] != "cpu" {
		return 0, 0, errors.New("/proc/stat: no cpu line")
	}
	var busy int64
	for i, v := range f[1:] {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return 0, 0, fmt.Errorf("/proc/stat: %q: %v", v, err)
		}
		if i == 3 || i == 4 || i >= 8 { // idle, iowait; guest time is in user already
			continue
		}
		busy += n
	}
	cpus := 0
	for _, l := range lines[1:] {
		if strings.HasPrefix(l, "cpu") {
			cpus++
		}
	}
	return time.Duration(busy) * clockTick, cpus, nil
}

// machineBusy runs work and returns the CPU time the whole machine spent
// busy meanwhile and that as a share of what its CPUs had in the time.
func machineBusy(work func()) (time.Duration, float64, error) {
	b0, cpus, err1 := machineCPU()
	t0 := time.Now()
	work()
	wall := time.Since(t0)
	b1, _, err2 := machineCPU()
	if err := errors.Join(err1, err2); err != nil {
		return 0, 0, err
	}
	return b1 - b0, float64(b1-b0) / float64(wall*time.Duration(max(cpus, 1))), nil
}

// settle waits until the machine has been quiet (under quietShare of its
// CPUs busy) for a quietWindow, or for at most maxSettle, so that a
// measurement does not pay for the work the one before it left to the
// kernel and other processes (exits, removals, write-back).
func settle(ctx context.Context) {
	for t0 := time.Now(); time.Since(t0) < maxSettle && ctx.Err() == nil; {
		_, share, err := machineBusy(func() { time.Sleep(quietWindow) })
		if err != nil || share < quietShare {
			return
		}
	}
}

// What settle calls quiet: /proc/stat counts in 10 ms ticks, so a window
// of 300 ms on 2 CPUs resolves 1.7% steps.
const (
	quietShare  = 0.10
	quietWindow = 300 * time.Millisecond
	maxSettle   = 10 * time.Second
)

// selfCPU is the CPU time the harness process has used so far.
func selfCPU() (time.Duration, error) { return procCPU("/proc/self/stat") }

// procCPU reads utime + stime from a /proc stat file. The fields after
// the command name (which may hold spaces) start after its ")".
func procCPU(file string) (time.Duration, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return 0, err
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 13 {
		return 0, fmt.Errorf("%s: short stat line", file)
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("%s: bad utime/stime", file)
	}
	return time.Duration(ut+st) * clockTick, nil
}

// clockTick is the unit of /proc's CPU times (USER_HZ, 100 on Linux).
const clockTick = 10 * time.Millisecond
