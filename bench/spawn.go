package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
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

// The spawn and pool scenarios (issue 14): sessions whose environments the
// portal's process spawner starts, one real dashboard process each.

// Goals of issue 14.
const (
	goalSpawnRatio = 0.8                   // portal / direct environments per second, at least
	goalPoolP99    = 50 * time.Millisecond // activation to dashboard page with a warm pool
)

// spawnPoll is how long a learner of the spawn scenario waits to reload
// its dashboard after the portal showed it the starting page. The gate
// holds each request up to 2 s until the environment is ready, so most
// learners never see that page; a browser then reloads after 2 s (the
// page's meta refresh), the harness sooner, so the time to the dashboard
// is measured to within 100 ms.
const spawnPoll = 100 * time.Millisecond

// directPoll is how often the direct baseline probes a process it started:
// short, so the baseline is close to what the machine can do.
const directPoll = 5 * time.Millisecond

// envMarker is the variable the process spawner puts into every process of
// an environment (CADDYPORTAL_ENV=<portal>/<replica>/<session>).
const envMarker = "CADDYPORTAL_ENV"

// dashPage is the page bench/cmd/benchdash serves for session name (a copy
// of its page function: both are main packages).
func dashPage(name string) string {
	return "<!doctype html><title>bench dashboard</title><p id=\"bench-dashboard\">session " + name + "</p>\n"
}

// isBenchDash says whether body is benchdash's page for session name.
func isBenchDash(name string, body []byte) bool { return string(body) == dashPage(name) }

// spawnDash is a dashboard the spawn scenario starts, through the portal
// and directly: its spawner command, its direct command, its page and the
// executable its processes run (to count them).
type spawnDash struct {
	// title names it in the report.
	title string
	// command is the process spawner's command line.
	command string
	// direct is the same dashboard's command on port, serving dir.
	direct func(port int, dir string) []string
	// isDash says whether body is session name's dashboard page.
	isDash func(name string, body []byte) bool
	// exe is the executable its processes run (symlinks resolved).
	exe string
}

// benchDash is bench/cmd/benchdash built at bin: a few milliseconds of
// CPU to start, so the portal's own cost of a start dominates.
func benchDash(bin string) spawnDash {
	return spawnDash{title: "benchdash", command: bin + " {port}", exe: bin, isDash: isBenchDash,
		direct: func(port int, _ string) []string { return []string{bin, strconv.Itoa(port)} }}
}

// pythonDash is Debian's python3 -m http.server serving the session's
// directory, the example of a small real dashboard: tens of
// milliseconds of CPU and about 20 MB to start.
func pythonDash() (spawnDash, error) {
	// Debian's, not whatever python3 comes first in PATH (a version
	// manager's shim is a shell script that costs more than Python).
	const py = "/usr/bin/python3"
	exe, err := filepath.EvalSymlinks(py)
	if err != nil {
		return spawnDash{}, err
	}
	return spawnDash{title: "python3 -m http.server", exe: exe,
		command: py + " -m http.server {port} --bind 127.0.0.1 --directory {dir}",
		direct: func(port int, dir string) []string {
			return []string{py, "-m", "http.server", strconv.Itoa(port), "--bind", "127.0.0.1", "--directory", dir}
		},
		// Each session's directory starts empty: its listing is the page.
		isDash: func(_ string, body []byte) bool { return bytes.Contains(body, []byte("Directory listing for /")) },
	}, nil
}

// buildDashboard builds bench/cmd/benchdash, the dashboard of the spawn and
// pool scenarios, into dir. A Go binary starts in a few milliseconds with a
// few MB of RSS, so 200 of them measure the portal's cost of starting
// environments rather than the dashboard's own (python3 -m http.server
// takes about 100 ms of CPU and 30 MB each; the portal binary cannot serve
// as a dashboard).
func buildDashboard(ctx context.Context, root, dir string) (string, error) {
	bin := filepath.Join(dir, "benchdash")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "./bench/cmd/benchdash")
	cmd.Dir = root
	out, err := cmd.CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("go build ./bench/cmd/benchdash: %v\n%s", err, out)
	}
	return bin, nil
}

// spawnerBlock is the body of the workshop's `spawner process` block: the
// dashboard on the port the portal picks, probed at /.
func spawnerBlock(command string) string {
	return "\t\t\t\tcommand " + command + "\n\t\t\t\tready / 30s\n\t\t\t\tstop_timeout 5s"
}

// spawnPortal starts a portal whose one workshop spawns dash per session,
// with Caddy's admin API on (for the portal admin API and /metrics).
func spawnPortal(ctx context.Context, o Options, bin string, dash spawnDash, work string, capacity, reserved, starts int) (*proc, *adminClient, portalSpec, error) {
	admin, err := adminAddr()
	if err != nil {
		return nil, nil, portalSpec{}, err
	}
	spec := portalSpec{
		Data: filepath.Join(work, "badger"), Maximum: capacity, Capacity: capacity, Env: o.PortalEnv,
		Spawner: spawnerBlock(dash.command), Reserved: reserved, Initial: reserved, Starts: starts,
		Admin: admin,
	}
	p, err := startPortal(ctx, bin, work, spec)
	if err != nil {
		return nil, nil, spec, err
	}
	return p, &adminClient{addr: spec.Admin, c: &http.Client{Timeout: 30 * time.Second}}, spec, nil
}

// learnerResult is one learner of the spawn or pool scenario.
type learnerResult struct {
	// toDash is from the request (spawn) or the activation (pool) to the
	// first answer that was the session's own dashboard page.
	toDash time.Duration
	// at is when the dashboard page arrived, from the release of all.
	at time.Duration
	// starting counts starting pages seen before the dashboard.
	starting int
	err      error
}

// learner requests a session, activates it and GETs its dashboard through
// the gate with its cookie until the dashboard itself answers (isDash says
// whether a page is session name's own dashboard), polling every poll while
// the portal shows the starting page. t0 is the release of all learners;
// fromActivation says whether toDash starts at the activation (pool) or at
// the request (spawn, container).
func learner(ctx context.Context, r *rest, user string, t0 time.Time, poll time.Duration, fromActivation bool, isDash func(name string, body []byte) bool) learnerResult {
	var lr learnerResult
	start := time.Now()
	name, link, err := r.requestSession(ctx, user)
	if err != nil {
		lr.err = err
		return lr
	}
	if fromActivation {
		start = time.Now()
	}
	cookie, err := r.activate(ctx, name, link)
	if err != nil {
		lr.err = err
		return lr
	}
	url := r.base + "/workshops/session/" + name + "/"
	deadline := time.Now().Add(2 * time.Minute)
	for {
		status, body, err := get(ctx, r.c, url, cookie)
		switch {
		case err != nil:
			lr.err = err
			return lr
		case status == http.StatusOK && isDash(name, body):
			lr.toDash, lr.at = time.Since(start), time.Since(t0)
			return lr
		case status == http.StatusOK && bytes.Contains(body, []byte("<title>Starting your workshop</title>")):
			lr.starting++
		default:
			// The progress route says why a session ended (a failed
			// start and the spawner's words for it).
			lr.err = fmt.Errorf("GET %s: %d %.200s (progress: %s)", url, status, body, r.progress(ctx, name))
			return lr
		}
		if time.Now().After(deadline) {
			lr.err = fmt.Errorf("%s: no dashboard after 2 minutes (%d starting pages)", name, lr.starting)
			return lr
		}
		select {
		case <-ctx.Done():
			lr.err = ctx.Err()
			return lr
		case <-time.After(poll):
		}
	}
}

// get GETs url with cookie and returns the status and body.
func get(ctx context.Context, c *http.Client, url, cookie string) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, "GET", url, nil)
	if err != nil {
		return 0, nil, err
	}
	if cookie != "" {
		req.Header.Set("Cookie", cookie)
	}
	res, err := c.Do(req)
	if err != nil {
		return 0, nil, err
	}
	body, err := io.ReadAll(res.Body)
	res.Body.Close()
	return res.StatusCode, body, err
}

// learners runs n learners at once (released together) and returns their
// results and the wall time until the last one finished.
func learners(ctx context.Context, r *rest, prefix string, n int, poll time.Duration, fromActivation bool, isDash func(string, []byte) bool) ([]learnerResult, time.Duration) {
	out := make([]learnerResult, n)
	release := make(chan struct{})
	var wg sync.WaitGroup
	var t0 time.Time
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-release
			out[i] = learner(ctx, r, fmt.Sprintf("%s%d", prefix, i), t0, poll, fromActivation, isDash)
		}()
	}
	t0 = time.Now()
	close(release)
	wg.Wait()
	return out, time.Since(t0)
}

// learnerStats splits results into the successful ones' times and errors.
func learnerStats(res []learnerResult) (toDash, at []time.Duration, starting, errs int, first error) {
	for _, lr := range res {
		if lr.err != nil {
			errs++
			if first == nil {
				first = lr.err
			}
			continue
		}
		toDash, at = append(toDash, lr.toDash), append(at, lr.at)
		starting += lr.starting
	}
	return
}

// directStarts starts n dashboards directly, at most conc at once, each
// on a free port, and waits for each to answer a GET (probing every
// directPoll, one connection per probe like the portal's readiness probe);
// a start slot is freed when its process answers. It returns the wall time
// until all answered and the processes, still running.
func directStarts(ctx context.Context, dash spawnDash, dir string, n, conc int) (time.Duration, []*exec.Cmd, error) {
	probe := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	cmds := make([]*exec.Cmd, n)
	errs := make([]error, n)
	sem := make(chan struct{}, conc)
	var wg sync.WaitGroup
	t0 := time.Now()
	for i := range n {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			// A port picked free can be taken by a concurrent pick before
			// the dashboard binds it; the dashboard then exits and is
			// started again on another port.
			for try := 0; ; try++ {
				cmd, err := directStart(ctx, probe, dash, dir, "direct"+strconv.Itoa(i))
				if err == nil || try == 4 {
					cmds[i], errs[i] = cmd, err
					return
				}
			}
		}()
	}
	wg.Wait()
	return time.Since(t0), cmds, errors.Join(errs...)
}

// directStart starts dash for session on a free port and waits until it
// serves its page. On failure nothing of it is left running.
func directStart(ctx context.Context, probe *http.Client, dash spawnDash, dir, session string) (*exec.Cmd, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	// Its own empty directory, as the spawner gives each session.
	sdir := filepath.Join(dir, session)
	if err := os.MkdirAll(sdir, 0o700); err != nil {
		return nil, err
	}
	argv := dash.direct(port, sdir)
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir = sdir
	cmd.Env = []string{"SESSION_NAME=" + session, "PATH=" + os.Getenv("PATH")}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	url := fmt.Sprintf("http://127.0.0.1:%d/", port)
	deadline := time.Now().Add(30 * time.Second)
	for {
		status, body, err := get(ctx, probe, url, "")
		if err == nil && status == http.StatusOK && dash.isDash(session, body) {
			return cmd, nil
		}
		select {
		case <-exited:
			return nil, fmt.Errorf("direct start of %s: the dashboard exited", session)
		case <-time.After(directPoll):
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			_ = cmd.Process.Kill()
			<-exited
			return nil, fmt.Errorf("direct start of %s: not ready after 30 s (%v, %d)", session, err, status)
		}
	}
}

// stopDirect ends the processes directStarts started and waits for them.
func stopDirect(cmds []*exec.Cmd) {
	for _, c := range cmds {
		if c != nil {
			_ = c.Process.Signal(syscall.SIGTERM)
		}
	}
	for _, c := range cmds {
		// directStart's goroutine waits for the process; this waits
		// for it to be gone.
		for c != nil && syscall.Kill(c.Process.Pid, 0) == nil {
			time.Sleep(5 * time.Millisecond)
		}
	}
}

// envProcesses counts the running processes of dash (by their executable)
// that carry the spawner's marker for this harness's portal: what the
// portal started and has not stopped.
func envProcesses(dash string) int {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return -1
	}
	n := 0
	for _, e := range entries {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		if exe, err := os.Readlink("/proc/" + e.Name() + "/exe"); err != nil || exe != dash {
			continue
		}
		env, err := os.ReadFile("/proc/" + e.Name() + "/environ")
		if err != nil {
			continue
		}
		for _, kv := range bytes.Split(env, []byte{0}) {
			if bytes.HasPrefix(kv, []byte(envMarker+"="+portalName+"/")) {
				n++
				break
			}
		}
	}
	return n
}

// adminClient calls Caddy's admin API of a portal: the portal admin API
// (sessions), /metrics and /load.
type adminClient struct {
	addr string
	c    *http.Client
}

func (a *adminClient) do(ctx context.Context, method, path, ctype string, body []byte) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, method, "http://"+a.addr+path, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	res, err := a.c.Do(req)
	if err != nil {
		return nil, err
	}
	b, err := io.ReadAll(res.Body)
	res.Body.Close()
	if err == nil && res.StatusCode != http.StatusOK {
		err = fmt.Errorf("%s %s: %d %.300s", method, path, res.StatusCode, b)
	}
	return b, err
}

// sessionGauge reads caddyportal_sessions{environment=envName} by state
// from /metrics.
func (a *adminClient) sessionGauge(ctx context.Context) (map[string]int, error) {
	b, err := a.do(ctx, "GET", "/metrics", "", nil)
	if err != nil {
		return nil, err
	}
	out := map[string]int{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		line := sc.Text()
		labels, ok := strings.CutPrefix(line, "caddyportal_sessions{")
		if !ok || !strings.Contains(labels, `environment="`+envName+`"`) {
			continue
		}
		_, st, ok := strings.Cut(labels, `state="`)
		if !ok {
			continue
		}
		st, _, _ = strings.Cut(st, `"`)
		f := strings.Fields(line)
		v, err := strconv.ParseFloat(f[len(f)-1], 64)
		if err != nil {
			return nil, fmt.Errorf("metrics: %q: %v", line, err)
		}
		out[st] = int(v)
	}
	return out, sc.Err()
}

// liveSession is a session in the portal admin API's listing.
type liveSession struct {
	Name  string `json:"name"`
	State string `json:"state"`
	Owner string `json:"owner"`
}

// live lists the portal's live sessions (reserves included).
func (a *adminClient) live(ctx context.Context) ([]liveSession, error) {
	b, err := a.do(ctx, "GET", "/portal/"+portalName+"/sessions/", "", nil)
	if err != nil {
		return nil, err
	}
	var list []liveSession
	if err := json.Unmarshal(b, &list); err != nil {
		return nil, fmt.Errorf("sessions: %v: %.300s", err, b)
	}
	return list, nil
}

// endAll ends every session of the portal and waits until the portal has
// stopped all their environments: no live session and nothing left that
// left counts (the marked processes of a dashboard, or the containers and
// networks labelled with the portal). It returns what left counted when it
// gave up.
//
// Reserves cannot be terminated (they belong to nobody), so with a pool
// the config is first reloaded with reserved 0 (a reload keeps the
// portal's sessions and their environments) and each ready reserve is
// handed to a drain user, then terminated like the learners' sessions.
func endAll(ctx context.Context, p *proc, a *adminClient, r *rest, spec portalSpec, work string, left func() int) (int, error) {
	if spec.Reserved > 0 {
		// Let the pool's refills finish first: a reload while starts are
		// queued or under way loses them (the old config's service stops
		// the environment being started, and the session stays STARTING
		// in the new one; seen with caddyportal at 93a30cd).
		for {
			g, err := a.sessionGauge(ctx)
			if err != nil {
				return left(), err
			}
			if g["starting"] == 0 && g["queued"] == 0 {
				break
			}
			if time.Since(p.Started) > 5*time.Minute || ctx.Err() != nil {
				return left(), fmt.Errorf("starts still under way before ending the sessions: %v", g)
			}
			time.Sleep(50 * time.Millisecond)
		}
		spec.Reserved, spec.Initial = 0, 0
		if _, err := a.do(ctx, "POST", "/load", "text/caddyfile", []byte(spec.caddyfile(work, p.Port))); err != nil {
			return left(), fmt.Errorf("reloading without reserves: %w", err)
		}
	}
	deadline := time.Now().Add(2 * time.Minute)
	drained := 0
	for {
		list, err := a.live(ctx)
		if err != nil {
			return left(), err
		}
		var wg sync.WaitGroup
		sem := make(chan struct{}, 16)
		for _, s := range list {
			reserve := s.Owner == ""
			if strings.EqualFold(s.State, "STOPPING") || reserve && !strings.EqualFold(s.State, "WAITING") {
				continue // on its way out, or a reserve still starting
			}
			drained++
			user := fmt.Sprintf("drain%d", drained)
			wg.Add(1)
			sem <- struct{}{}
			go func() {
				defer wg.Done()
				defer func() { <-sem }()
				name := s.Name
				if reserve {
					// Takes a ready reserve (maybe another one: any will do).
					var err error
					if name, _, err = r.requestSession(ctx, user); err != nil {
						return
					}
				}
				// A session that ended meanwhile answers 4xx; the next
				// listing tells.
				_, _ = a.do(ctx, "POST", "/portal/"+portalName+"/sessions/"+name+"/terminate/", "", nil)
			}()
		}
		wg.Wait()
		n := left()
		if len(list) == 0 && n == 0 {
			g, err := a.sessionGauge(ctx)
			if err == nil && g["stopping"] == 0 && g["starting"] == 0 && g["queued"] == 0 {
				return 0, nil
			}
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			var states []string
			for _, s := range list {
				states = append(states, s.Name+" "+s.State)
			}
			return n, fmt.Errorf("after 2 minutes %d sessions are live (%s) and %d environment objects left",
				len(list), strings.Join(states, ", "), n)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// profileLearners, with -pprof, starts a CPU profile of the portal of
// scenario sc (cpu-<sc>.pprof) 100 ms before its learners are released;
// the returned func waits for it to be saved (at once without -pprof).
func profileLearners(ctx context.Context, o Options, spec portalSpec, work, sc string, rep *Report, logf func(string, ...any)) func() {
	if o.Profile <= 0 {
		return func() {}
	}
	done := cpuProfile(ctx, spec.Admin, o.Profile, filepath.Join(filepath.Dir(work), "cpu-"+sc+".pprof"))
	time.Sleep(100 * time.Millisecond)
	rep.note("%s ran with -pprof: profiling costs CPU while the learners arrive", sc)
	return func() {
		if err := <-done; err != nil {
			logf("%s cpu profile: %v", sc, err)
		}
	}
}

// perfFreq is -perf's sampling rate: enough samples in a class of 100 ms
// to see its parts, and the same for every scenario so runs compare.
const perfFreq = "4000"

// perfClass, with -perf, starts `perf record` of process pid (and the
// children it starts) into dir/perf.data and returns the func that ends
// it once the class is over; at once without -perf. perf starts with its
// events off and turns them on when asked, and it acknowledges that: the
// class is released only after the ack, so its start is never missed
// (attaching to the portal's threads took longer than a whole small class).
func perfClass(o Options, pid int, dir string, rep *Report, logf func(string, ...any)) func() {
	if !o.Perf {
		return func() {}
	}
	file := filepath.Join(dir, "perf.data")
	ctlR, ctlW, err := os.Pipe()
	if err != nil {
		rep.note("-perf: %v", err)
		return func() {}
	}
	ackR, ackW, err := os.Pipe()
	if err != nil {
		ctlR.Close()
		ctlW.Close()
		rep.note("-perf: %v", err)
		return func() {}
	}
	defer ctlR.Close()
	defer ackW.Close()
	// The child's fds 3 and 4 are ExtraFiles[0] and [1].
	cmd := exec.Command("perf", "record", "-q", "-g", "-F", perfFreq, "-p", strconv.Itoa(pid), "-o", file, "-D", "-1", "--control", "fd:3,4")
	cmd.ExtraFiles = []*os.File{ctlR, ackW}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		ctlW.Close()
		ackR.Close()
		rep.note("-perf: %v (Debian: apt-get install -y linux-perf)", err)
		return func() {}
	}
	stop := func() {
		_ = cmd.Process.Signal(os.Interrupt)
		// perf ends itself with the signal it got, after writing the file.
		if err := cmd.Wait(); err != nil && !strings.Contains(err.Error(), "signal: interrupt") {
			logf("perf record: %v: %s", err, out.String())
		}
		ctlW.Close()
		ackR.Close()
	}
	ack := make([]byte, 4)
	if _, err := ctlW.WriteString("enable\n"); err != nil {
		stop()
		rep.note("-perf: perf record did not start: %s", out.String())
		return func() {}
	}
	if _, err := io.ReadFull(ackR, ack); err != nil || string(ack) != "ack\n" {
		stop()
		rep.note("-perf: perf record did not acknowledge (%v): %s", err, out.String())
		return func() {}
	}
	rep.note("-perf: a class recorded in %s (perf costs CPU while the learners arrive); read it with `perf report -i %s --comm caddyportal`", file, file)
	return stop
}

// runSpawn: a class of N learners request and activate sessions of a
// workshop with reserved 0 at once, so the portal starts N environments
// (at most `starts` at a time); each learner reloads its dashboard until
// it is served. The same N dashboards are also started directly with the
// same bound, as the machine's own rate. A round measures both, one right
// after the other (which goes first alternates), and the goal is judged on
// the median round's ratio: this machine's own start rate drifts by a
// fifth within minutes, and a ratio of two measurements taken apart would
// carry that drift.
func runSpawn(ctx context.Context, o Options, bin, work string, rep *Report, logf func(string, ...any)) error {
	const sc = "spawn"
	n, starts, rounds := o.SpawnUsers, o.SpawnStarts, max(1, o.SpawnRounds)
	dash := benchDash(o.dashboard)
	label := fmt.Sprintf("spawn (%d learners, reserved 0, starts %d, %d rounds)", n, starts, rounds)
	if o.SpawnPython {
		var err error
		if dash, err = pythonDash(); err != nil {
			return fmt.Errorf("spawn: -spawn-python: %w", err)
		}
		label = fmt.Sprintf("spawn (%d learners, reserved 0, starts %d, %d rounds, %s)", n, starts, rounds, dash.title)
	}
	var (
		outs                   []spawnOutcome
		toDash                 []time.Duration
		walls                  []time.Duration
		ratioList              []float64
		errs, left, starting   int
		running                = n
		pcpu, hcpu             time.Duration
		directBusy, portalBusy time.Duration
		directShares, pShares  []float64
		cpuOK, busyOK          = true, true
		rss, hwm               int64
	)
	// One class of direct starts first, not measured. In most runs the
	// machine's first seconds of full load ran faster than any later ones
	// (round 1's direct rate 77–95 /s against 53–70 /s for every later
	// phase), which went to whichever side ran first in round 1. The
	// warm-up also brings the dashboard's binary into the page cache for
	// both sides.
	warmDir := filepath.Join(work, "warm-up")
	_, cmds, err := directStarts(ctx, dash, warmDir, n, starts)
	stopDirect(cmds)
	_ = os.RemoveAll(warmDir)
	if err != nil {
		return fmt.Errorf("spawn: warm-up: %w", err)
	}
	for i := range rounds {
		dir, profileAs := roundDir(work, i, rounds)
		r, err := spawnRound(ctx, o, bin, dash, dir, profileAs, i%2 == 1, rep, logf)
		if err != nil {
			return fmt.Errorf("round %d: %w", i+1, err)
		}
		outs = append(outs, r)
		toDash = append(toDash, r.toDash...)
		errs += r.errs
		starting += r.starting
		left = max(left, r.left)
		running = min(running, r.running)
		walls = append(walls, r.wall)
		if r.first != nil {
			rep.note("spawn round %d: first error: %v", i+1, r.first)
		}
		if r.ratio > 0 {
			ratioList = append(ratioList, r.ratio)
		}
		if r.cpuErr != nil {
			cpuOK = false
		}
		pcpu, hcpu = pcpu+r.pcpu, hcpu+r.hcpu
		if r.busyErr != nil {
			busyOK = false
		}
		directBusy, portalBusy = directBusy+r.directBusy, portalBusy+r.portalBusy
		directShares, pShares = append(directShares, r.directShare), append(pShares, r.portalShare)
		rss, hwm = max(rss, r.mem.RSS), max(hwm, r.mem.HWM)
		logf("spawn round %d: %d reached in %s (direct %s, ratio %s), %d errors, %d processes left", i+1, len(r.toDash),
			r.wall.Round(time.Millisecond), r.directWall.Round(time.Millisecond), fmtRatio(r.ratio, goalSpawnRatio), r.errs, r.left)
	}
	rep.addErrors(sc, errs)
	rep.count("spawn.reached", len(toDash))
	rep.count("spawn.running", running)
	rep.goal(label, "reached their dashboard / errors, all rounds", fmt.Sprintf("%d / %d", len(toDash), errs),
		fmt.Sprintf("%d / 0", n*rounds), len(toDash) == n*rounds && errs == 0)
	rep.metric(label, "time to dashboard from the request, all rounds' learners p50 / p99", latencies(toDash))
	rep.metric(label, fmt.Sprintf("wall time, all %d (median round; starting pages seen in all, learners poll every %s)", n, spawnPoll),
		fmt.Sprintf("%s (%d)", fmtDur(median(walls)), starting))
	if len(ratioList) == rounds {
		each := make([]string, len(outs))
		for i, r := range outs {
			each[i] = fmt.Sprintf("%s (%.1f /s against %.1f /s)", fmtRatio(r.ratio, goalSpawnRatio), r.portalRate, r.directRate)
		}
		m := median(ratioList)
		rep.goal(label, "spawn throughput: portal / direct (same command, same bound), each round (median)",
			fmt.Sprintf("%s (%s)", strings.Join(each, ", "), fmtRatio(m, goalSpawnRatio)),
			fmt.Sprintf("≥ %.1f×", goalSpawnRatio), m >= goalSpawnRatio && errs == 0)
	}
	envs := float64(n * rounds)
	if cpuOK {
		// On 2 cores the CPU the portal spends per environment bounds its
		// rate; the harness's share is the learners' requests and polls.
		rep.metric(label, "CPU used during the storms: portal / harness (per environment)",
			fmt.Sprintf("%s / %s (%.1f ms / %.1f ms)", fmtDur(pcpu), fmtDur(hcpu),
				float64(pcpu.Microseconds())/1000/envs, float64(hcpu.Microseconds())/1000/envs))
	}
	if busyOK {
		// Both runs keep the machine's CPUs about as busy as they can: the
		// rates are then the inverse of the CPU each environment costs the
		// whole machine (dashboard, portal, harness).
		rep.metric(label, "whole machine: CPU busy, direct / portal (CPU per environment)",
			fmt.Sprintf("%.0f%% / %.0f%% (%.1f ms / %.1f ms)", 100*median(directShares), 100*median(pShares),
				float64(directBusy.Microseconds())/1000/envs, float64(portalBusy.Microseconds())/1000/envs))
	}
	if rss > 0 {
		rep.metric(label, "portal RSS with all running / peak (largest round)", fmtMB(rss)+" / "+fmtMB(hwm))
	}
	rep.goal(label, "environment processes running (fewest of a round) / left after ending the sessions and stopping the portal",
		fmt.Sprintf("%d / %d", running, left), fmt.Sprintf("%d / 0", n), running == n && left == 0)
	logf("spawn: median ratio %s over %d rounds, %d errors, %d processes left", fmtRatio(median(ratioList), goalSpawnRatio), rounds, errs, left)
	return nil
}

// roundDir is where round i of n keeps its portal's data (work itself when
// there is one round), and profileAs the work directory whose profile the
// round takes: only the first round is profiled, so each scenario leaves
// one profile file, in the work directory's parent like the others.
func roundDir(work string, i, n int) (dir, profileAs string) {
	dir = work
	if n > 1 {
		dir = filepath.Join(work, fmt.Sprint("round", i+1))
	}
	if i == 0 {
		profileAs = work
	}
	return dir, profileAs
}

// spawnOutcome is one round of the spawn scenario.
type spawnOutcome struct {
	directWall             time.Duration
	toDash                 []time.Duration
	wall                   time.Duration
	portalRate, directRate float64
	ratio                  float64 // 0 when either side failed
	starting, errs         int
	first                  error
	pcpu, hcpu             time.Duration
	cpuErr                 error
	directBusy, portalBusy time.Duration
	directShare            float64
	portalShare            float64
	busyErr                error
	mem                    memInfo
	running, left          int
}

// spawnRound starts the class's dashboards directly and then through a new
// portal in work (the portal first when portalFirst), ends the sessions
// and stops the portal. With -pprof, a non-empty profileAs is the scenario
// work directory whose profile the round takes.
func spawnRound(ctx context.Context, o Options, bin string, dash spawnDash, work, profileAs string, portalFirst bool, rep *Report, logf func(string, ...any)) (spawnOutcome, error) {
	var out spawnOutcome
	n := o.SpawnUsers
	direct := func() {
		var cmds []*exec.Cmd
		var derr error
		directDir := filepath.Join(work, "direct")
		var busyErr error
		settle(ctx)
		out.directBusy, out.directShare, busyErr = machineBusy(func() { out.directWall, cmds, derr = directStarts(ctx, dash, directDir, n, o.SpawnStarts) })
		out.busyErr = errors.Join(out.busyErr, busyErr)
		stopDirect(cmds)
		_ = os.RemoveAll(directDir)
		if derr != nil {
			out.errs++
			rep.note("spawn: direct starts: %v", derr)
			out.directWall = 0
		}
	}
	if !portalFirst {
		direct()
	}
	p, admin, spec, err := spawnPortal(ctx, o, bin, dash, work, n, 0, o.SpawnStarts)
	if err != nil {
		return out, err
	}
	defer p.Stop()
	client := newClient(n)
	defer client.CloseIdleConnections()
	r := &rest{base: p.Base, c: client}
	if err := r.login(ctx); err != nil {
		return out, err
	}
	// Settled first: the profile is of the class, not of the new
	// portal's start-up work (its spares, its first reconcile).
	settle(ctx)
	profiled := func() {}
	if profileAs != "" {
		profiled = profileLearners(ctx, o, spec, profileAs, "spawn", rep, logf)
	}
	var res []learnerResult
	var busyErr error
	perfDone := perfClass(o, p.cmd.Process.Pid, work, rep, logf)
	out.portalBusy, out.portalShare, busyErr = machineBusy(func() {
		out.pcpu, out.hcpu, out.cpuErr = cpuUsed(p, func() { res, out.wall = learners(ctx, r, "spawn", n, spawnPoll, false, dash.isDash) })
	})
	perfDone()
	out.busyErr = errors.Join(out.busyErr, busyErr)
	out.mem, _ = p.Mem()
	profiled()
	var at []time.Duration
	var errs int
	out.toDash, at, out.starting, errs, out.first = learnerStats(res)
	out.errs += errs
	out.running = envProcesses(dash.exe)
	left, endErr := endAll(ctx, p, admin, r, spec, work, func() int { return envProcesses(dash.exe) })
	if endErr != nil {
		rep.note("spawn: ending the sessions: %v", endErr)
	}
	p.Stop()
	// Stopping the portal must not leave anything behind either (it leaves
	// running environments for the next start to adopt, but there are none).
	out.left = max(left, envProcesses(dash.exe))
	if out.left != 0 {
		out.errs++
	}
	if portalFirst {
		direct()
	}
	if len(at) > 0 && out.directWall > 0 {
		out.portalRate = float64(len(at)) / pct(at, 1).Seconds()
		out.directRate = float64(n) / out.directWall.Seconds()
		out.ratio = out.portalRate / out.directRate
	}
	return out, nil
}

// runPool: with `reserved R`, once the R reserves are started and probed,
// R learners request and activate at once and each fetches its dashboard:
// the time from activation to the page, which a warm pool makes immediate.
// Capacity is 2R, so the pool refills in the background as it would in a
// real class while the learners arrive. The class is run PoolRounds times,
// each with a new portal, and the goal is judged on the median round: the
// p99 of R learners is nearly their slowest one, and on a 2-core machine
// shared with the load generator the same binary's p99 varied 2× from run
// to run.
func runPool(ctx context.Context, o Options, bin, work string, rep *Report, logf func(string, ...any)) error {
	const sc = "pool"
	k, n := o.PoolReserved, max(1, o.PoolRounds)
	dash := benchDash(o.dashboard)
	label := fmt.Sprintf("pool (reserved %d, capacity %d, %d learners, %d rounds)", k, 2*k, k, n)
	var all, p99s, fills, walls []time.Duration
	var starting, errs, left int
	var pcpu, hcpu, mcpu time.Duration
	cpuOK := true
	for i := range n {
		dir, profileAs := roundDir(work, i, n)
		r, err := poolRound(ctx, o, bin, dash, dir, profileAs, rep, logf)
		if err != nil {
			return fmt.Errorf("round %d: %w", i+1, err)
		}
		all = append(all, r.toDash...)
		roundP99 := pct(r.toDash, 0.99)
		p99s = append(p99s, roundP99)
		fills, walls = append(fills, r.fill), append(walls, r.wall)
		starting += r.starting
		errs += r.errs
		left = max(left, r.left)
		pcpu, hcpu, mcpu, cpuOK = pcpu+r.portalCPU, hcpu+r.harnessCPU, mcpu+r.machineCPU, cpuOK && r.cpuOK
		if r.first != nil {
			rep.note("pool round %d: first error: %v", i+1, r.first)
		}
		logf("pool round %d: %d reserves ready in %s; %d reached, p99 %s, %d errors, %d processes left",
			i+1, k, fmtDur(r.fill), len(r.toDash), fmtDur(roundP99), r.errs, r.left)
	}
	rep.addErrors(sc, errs)
	rep.count("pool.reached", len(all))
	p99 := median(p99s)
	rep.metric(label, "all reserves ready, from starting the portal process (median round)", fmtDur(median(fills)))
	rep.goal(label, "reached their dashboard / errors, all rounds", fmt.Sprintf("%d / %d", len(all), errs),
		fmt.Sprintf("%d / 0", k*n), len(all) == k*n && errs == 0)
	rep.goal(label, "activation to dashboard page, p99 of each round (median)", fmt.Sprintf("%s (%s)", fmtDurs(p99s), fmtDur(p99)),
		"median p99 ≤ "+fmtDur(goalPoolP99), len(all) == k*n && p99 <= goalPoolP99)
	rep.metric(label, "activation to dashboard page, all rounds' learners p50 / p99", latencies(all))
	rep.metric(label, "wall time, all request + activate + page (median round; starting pages seen)", fmt.Sprintf("%s (%d)", fmtDur(median(walls)), starting))
	if cpuOK && len(all) > 0 {
		// The p99 is how long the class's CPU takes on the machine's
		// cores; these say whose CPU it is, steadier than the p99 itself
		// from run to run (counted in 10 ms ticks, summed over rounds).
		per := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 / float64(len(all)) }
		rep.metric(label, "CPU used during the classes: portal / harness / whole machine (per learner)",
			fmt.Sprintf("%s / %s / %s (%.1f ms / %.1f ms / %.1f ms)", fmtDur(pcpu), fmtDur(hcpu), fmtDur(mcpu), per(pcpu), per(hcpu), per(mcpu)))
	}
	rep.goal(label, "environment processes left after ending the sessions and stopping the portal", fmt.Sprint(left), "0", left == 0)
	logf("pool: median p99 %s over %d rounds, %d errors, %d processes left", fmtDur(p99), n, errs, left)
	return nil
}

// poolOutcome is one round of the pool scenario.
type poolOutcome struct {
	toDash         []time.Duration
	fill, wall     time.Duration
	starting, errs int
	left           int
	first          error
	// The CPU the portal, the harness and the whole machine spent while
	// the class ran (the reserves' refills wait until it has gone quiet).
	portalCPU, harnessCPU, machineCPU time.Duration
	cpuOK                             bool
}

// poolRound starts a portal with `reserved k` in work, waits for the pool
// to fill, runs the class once, ends its sessions and stops the portal.
// With -pprof, a non-empty profileAs is the scenario work directory whose
// profile the round takes.
func poolRound(ctx context.Context, o Options, bin string, dash spawnDash, work, profileAs string, rep *Report, logf func(string, ...any)) (poolOutcome, error) {
	var out poolOutcome
	k := o.PoolReserved
	p, admin, spec, err := spawnPortal(ctx, o, bin, dash, work, 2*k, k, o.SpawnStarts)
	if err != nil {
		return out, err
	}
	defer p.Stop()
	for {
		g, err := admin.sessionGauge(ctx)
		if err != nil {
			return out, err
		}
		if g["reserved"] >= k {
			break
		}
		if time.Since(p.Started) > 2*time.Minute {
			return out, fmt.Errorf("only %d of %d reserves ready after 2 minutes (%v)", g["reserved"], k, g)
		}
		time.Sleep(50 * time.Millisecond)
	}
	out.fill = time.Since(p.Started)
	client := newClient(k)
	defer client.CloseIdleConnections()
	r := &rest{base: p.Base, c: client}
	if err := r.login(ctx); err != nil {
		return out, err
	}
	profiled := func() {}
	if profileAs != "" {
		profiled = profileLearners(ctx, o, spec, profileAs, "pool", rep, logf)
	}
	var res []learnerResult
	var wall time.Duration
	var procErr, busyErr error
	// Ended as soon as the class is: the refills wait until it has gone
	// quiet, so the recording is the class alone.
	perfDone := perfClass(o, p.cmd.Process.Pid, work, rep, logf)
	out.machineCPU, _, busyErr = machineBusy(func() {
		out.portalCPU, out.harnessCPU, procErr = cpuUsed(p, func() { res, wall = learners(ctx, r, "pool", k, spawnPoll, true, dash.isDash) })
	})
	perfDone()
	out.cpuOK = procErr == nil && busyErr == nil
	profiled()
	out.wall = wall
	out.toDash, _, out.starting, out.errs, out.first = learnerStats(res)
	left, endErr := endAll(ctx, p, admin, r, spec, work, func() int { return envProcesses(dash.exe) })
	if endErr != nil {
		rep.note("pool: ending the sessions: %v", endErr)
	}
	p.Stop()
	out.left = max(left, envProcesses(dash.exe))
	if out.left != 0 {
		out.errs++
	}
	return out, nil
}
