package main

import (
	"bytes"
	"cmp"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/coder/websocket"

	"github.com/caddyportal/caddyportal/internal/e2etest/echo"
)

// run runs the selected scenarios and returns their report. A scenario
// that cannot run at all (the portal does not start) is an error, which
// the report's notes repeat (a results file that ended early says why);
// failed operations inside a scenario are counted in the report instead.
func run(ctx context.Context, o Options) (*Report, error) {
	rep, err := runScenarios(ctx, o)
	if err != nil && rep != nil {
		rep.note("the run stopped early, without the rows of the scenario that failed and of those after it: %v", err)
	}
	return rep, err
}

func runScenarios(ctx context.Context, o Options) (*Report, error) {
	logf := o.Progress
	if logf == nil {
		logf = func(format string, args ...any) { fmt.Fprintf(os.Stderr, "bench: "+format+"\n", args...) }
	}
	rep := newReport(o.Command)
	defer func() { rep.Elapsed = time.Since(rep.Started) }()
	if n, err := raiseFileLimit(); err != nil {
		logf("cannot raise the open-file limit: %v", err)
	} else if n < uint64(2*o.WSConns+1000) && contains(o.Scenarios, "ws") {
		rep.note("open-file limit is %d, low for %d WebSockets", n, o.WSConns)
	}

	work := o.Workdir
	if work == "" {
		var err error
		if work, err = os.MkdirTemp("", "caddyportal-bench-"); err != nil {
			return rep, err
		}
	} else if err := os.MkdirAll(work, 0o755); err != nil {
		return rep, err
	}
	if o.Keep {
		logf("work directory: %s (kept)", work)
	} else {
		defer os.RemoveAll(work)
	}

	bin := o.Binary
	if bin == "" {
		root, err := moduleRoot()
		if err != nil {
			return rep, err
		}
		logf("building ./cmd/caddyportal ...")
		t0 := time.Now()
		if bin, err = buildBinary(ctx, root, work); err != nil {
			return rep, err
		}
		logf("built in %s", time.Since(t0).Round(time.Millisecond))
	}

	if contains(o.Scenarios, "spawn") || contains(o.Scenarios, "pool") {
		root, err := moduleRoot()
		if err != nil {
			return rep, err
		}
		if o.dashboard, err = buildDashboard(ctx, root, work); err != nil {
			return rep, err
		}
	}

	type step struct {
		name string
		fn   func(context.Context, Options, string, string, *Report, func(string, ...any)) error
	}
	steps := []step{{"storm", runStorm}, {"gate", runGate}, {"ws", runWS}}
	for _, s := range steps {
		if !contains(o.Scenarios, s.name) {
			continue
		}
		logf("scenario %s ...", s.name)
		if err := s.fn(ctx, o, bin, filepath.Join(work, s.name), rep, logf); err != nil {
			return rep, fmt.Errorf("%s: %w", s.name, err)
		}
	}
	if contains(o.Scenarios, "memory") || contains(o.Scenarios, "scaling") {
		logf("scenarios memory/scaling ...")
		if err := runStored(ctx, o, bin, work, rep, logf); err != nil {
			return rep, err
		}
	}
	for _, s := range []step{{"spawn", runSpawn}, {"pool", runPool}, {"container", runContainer}} {
		if !contains(o.Scenarios, s.name) {
			continue
		}
		logf("scenario %s ...", s.name)
		if err := s.fn(ctx, o, bin, filepath.Join(work, s.name), rep, logf); err != nil {
			return rep, fmt.Errorf("%s: %w", s.name, err)
		}
	}
	return rep, nil
}

// runStorm: a classroom of N users request and activate a session at the
// same moment against capacity N, with durable writes.
func runStorm(ctx context.Context, o Options, bin, work string, rep *Report, logf func(string, ...any)) error {
	const sc = "storm"
	n := o.Users
	spec := portalSpec{
		Data: filepath.Join(work, "badger"), Maximum: n, Capacity: n, Upstreams: []string{templateUpstream}, Env: o.PortalEnv,
	}
	if o.Profile > 0 {
		var err error
		if spec.Admin, err = adminAddr(); err != nil {
			return err
		}
	}
	p, err := startPortal(ctx, bin, work, spec)
	if err != nil {
		return err
	}
	defer p.Stop()
	client := newClient(n)
	defer client.CloseIdleConnections()
	r := &rest{base: p.Base, c: client}
	if err := r.login(ctx); err != nil {
		return err
	}
	var profDone chan error
	if o.Profile > 0 {
		// The storm is short: the profile covers it and some idle time.
		profDone = cpuProfile(ctx, spec.Admin, o.Profile, filepath.Join(filepath.Dir(work), "cpu-storm.pprof"))
		time.Sleep(100 * time.Millisecond)
		rep.note("storm ran with -pprof: profiling costs CPU during the storm")
	}
	s := runFlows(ctx, r, "storm", n, n)
	if profDone != nil {
		if err := <-profDone; err != nil {
			logf("storm cpu profile: %v", err)
		}
	}
	rep.addErrors(sc, s.errors)
	rep.count("storm.served", len(s.total))
	if s.firstErr != nil {
		rep.note("storm: first error: %v", s.firstErr)
	}
	// One more request than the capacity must be refused: the storm really
	// filled the workshop and no request was double-booked.
	_, _, extraErr := r.requestSession(ctx, "storm-extra")
	overbooked := extraErr == nil
	if overbooked {
		rep.addErrors(sc, 1)
		rep.note("storm: request %d was granted beyond capacity %d", n+1, n)
	}
	label := fmt.Sprintf("storm (%d users, capacity %d)", n, n)
	rep.goal(label, "wall time, all request + activate", fmtDur(s.wall), "< 2 s", s.wall < 2*time.Second && s.errors == 0)
	rep.goal(label, "served / errors", fmt.Sprintf("%d / %d", len(s.total), s.errors), "0 errors", s.errors == 0 && !overbooked)
	rep.metric(label, "throughput", fmtRate(len(s.total), s.wall)+" sessions")
	rep.metric(label, "request p50 / p99", latencies(s.request))
	rep.metric(label, "activate p50 / p99", latencies(s.activate))
	if m, err := p.Mem(); err == nil {
		rep.metric(label, "portal RSS after / peak", fmtMB(m.RSS)+" / "+fmtMB(m.HWM))
	}
	logf("storm: %d served in %s, %d errors", len(s.total), s.wall.Round(time.Millisecond), s.errors)
	return nil
}

// hammerResult is a fixed-time closed-loop load run against one URL.
type hammerResult struct {
	n, errors int
	firstErr  error
	lat       []time.Duration
	elapsed   time.Duration
}

// hammer GETs url with conns keep-alive clients until d has passed, and
// checks every answer is the dashboard page.
func hammer(ctx context.Context, c *http.Client, url, cookie string, conns int, d time.Duration) hammerResult {
	var (
		mu  sync.Mutex
		out hammerResult
		wg  sync.WaitGroup
	)
	t0 := time.Now()
	stop := t0.Add(d)
	for range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var lat []time.Duration
			errs := 0
			var first error
			for time.Now().Before(stop) && ctx.Err() == nil {
				s := time.Now()
				if err := getPage(ctx, c, url, cookie); err != nil {
					errs++
					if first == nil {
						first = err
					}
					continue
				}
				lat = append(lat, time.Since(s))
			}
			mu.Lock()
			out.lat = append(out.lat, lat...)
			out.errors += errs
			if out.firstErr == nil {
				out.firstErr = first
			}
			mu.Unlock()
		}()
	}
	wg.Wait()
	out.elapsed = time.Since(t0)
	out.n = len(out.lat)
	return out
}

func getPage(ctx context.Context, c *http.Client, url, cookie string) error {
	_, err := fetchPage(ctx, c, url, cookie)
	return err
}

// fetchPage GETs url with cookie ("" for none) and returns the body if it
// is the dashboard page.
func fetchPage(ctx context.Context, c *http.Client, url, cookie string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, "GET", url, nil)
	if err != nil {
		return nil, err
	}
	if cookie != "" {
		req.Header.Set("Cookie", cookie)
	}
	res, err := c.Do(req)
	if err != nil {
		return nil, err
	}
	body, err := io.ReadAll(res.Body)
	res.Body.Close()
	if err != nil {
		return nil, err
	}
	if res.StatusCode != http.StatusOK || !echo.IsPage(body) {
		return nil, fmt.Errorf("GET %s: %d %.200s", url, res.StatusCode, body)
	}
	return body, nil
}

// runWS opens many WebSockets through the gate, spread over a few sessions
// whose dashboards echo, holds them all open, and measures echo round trips
// while every connection sends at a steady pace.
func runWS(ctx context.Context, o Options, bin, work string, rep *Report, logf func(string, ...any)) error {
	const sc = "ws"
	k := o.WSSessions
	dash, err := echo.New("bench", echo.Listeners(k))
	if err != nil {
		return err
	}
	defer dash.Close()
	p, err := startPortal(ctx, bin, work, portalSpec{
		Data: filepath.Join(work, "badger"), Maximum: k, Capacity: k, Upstreams: dash.Addrs, Env: o.PortalEnv,
	})
	if err != nil {
		return err
	}
	defer p.Stop()
	client := newClient(8)
	defer client.CloseIdleConnections()
	r := &rest{base: p.Base, c: client}
	if err := r.login(ctx); err != nil {
		return err
	}
	names := make([]string, k)
	cookies := make([]string, k)
	for i := range k {
		name, link, err := r.requestSession(ctx, fmt.Sprintf("ws-user%d", i))
		if err != nil {
			return err
		}
		if cookies[i], err = r.activate(ctx, name, link); err != nil {
			return err
		}
		names[i] = name
	}

	// WebSockets hijack their connection, so each dial is a new one; the
	// transport must not cap connections per host.
	wsClient := &http.Client{Transport: &http.Transport{}}
	defer wsClient.CloseIdleConnections()
	wsBase := "ws" + strings.TrimPrefix(p.Base, "http")
	n := o.WSConns
	conns := make([]*websocket.Conn, n)
	dialLat := make([]time.Duration, n)
	var (
		mu       sync.Mutex
		errs     int
		firstErr error
	)
	fail := func(err error) {
		mu.Lock()
		errs++
		if firstErr == nil {
			firstErr = err
		}
		mu.Unlock()
	}
	// Dial with bounded parallelism, like browsers of a class arriving.
	sem := make(chan struct{}, 64)
	var wg sync.WaitGroup
	t0 := time.Now()
	for i := range n {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			dctx, cancel := context.WithTimeout(ctx, time.Minute)
			defer cancel()
			s := time.Now()
			c, res, err := websocket.Dial(dctx, wsBase+"/workshops/session/"+names[i%k]+"/ws", &websocket.DialOptions{
				HTTPClient: wsClient, HTTPHeader: http.Header{"Cookie": {cookies[i%k]}},
			})
			if err != nil {
				status := 0
				if res != nil {
					status = res.StatusCode
				}
				fail(fmt.Errorf("dial %d: %v (status %d)", i, err, status))
				return
			}
			dialLat[i] = time.Since(s)
			conns[i] = c
		}()
	}
	wg.Wait()
	dialAll := time.Since(t0)
	open := 0
	var dialOK []time.Duration
	for i, c := range conns {
		if c != nil {
			open++
			dialOK = append(dialOK, dialLat[i])
		}
	}
	memOpen, _ := p.Mem()

	// Every open connection sends msgs messages at a steady pace (one per
	// interval, starting at a random offset), so the portal carries all of
	// them at once without a synchronized burst.
	interval := o.WSInterval
	var echoLat []time.Duration
	echoStart := time.Now()
	for i, c := range conns {
		if c == nil {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			msg := bytes.Repeat([]byte{'a' + byte(i%26)}, 64)
			copy(msg, fmt.Sprintf("conn %d ", i))
			time.Sleep(rand.N(interval))
			lat := make([]time.Duration, 0, o.WSMessages)
			for m := range o.WSMessages {
				next := time.Now().Add(interval)
				ectx, cancel := context.WithTimeout(ctx, time.Minute)
				s := time.Now()
				err := c.Write(ectx, websocket.MessageText, msg)
				var got []byte
				if err == nil {
					_, got, err = c.Read(ectx)
				}
				d := time.Since(s)
				cancel()
				if err == nil && !bytes.Equal(got, msg) {
					err = fmt.Errorf("echo mismatch: %q", got)
				}
				if err != nil {
					fail(fmt.Errorf("conn %d message %d: %w", i, m, err))
					return
				}
				lat = append(lat, d)
				time.Sleep(time.Until(next))
			}
			mu.Lock()
			echoLat = append(echoLat, lat...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	echoWall := time.Since(echoStart)
	for _, c := range conns {
		if c != nil {
			_ = c.Close(websocket.StatusNormalClosure, "")
		}
	}
	rep.addErrors(sc, errs)
	rep.count("ws.open", open)
	rep.count("ws.echoes", len(echoLat))
	if firstErr != nil {
		rep.note("ws: first error: %v", firstErr)
	}
	label := fmt.Sprintf("ws (%d connections, %d sessions)", n, k)
	rep.goal(label, "open at once / errors", fmt.Sprintf("%d / %d", open, errs), fmt.Sprintf("%d / 0", n), open == n && errs == 0)
	rep.metric(label, "dial through the gate p50 / p99 (all dialled in)", latencies(dialOK)+" ("+fmtDur(dialAll)+")")
	rep.metric(label, fmt.Sprintf("echo p50 / p99 (%d messages, 1 per %s per connection)", len(echoLat), interval), latencies(echoLat))
	rep.metric(label, "echo throughput", fmtRate(len(echoLat), echoWall)+" round trips")
	if memOpen.RSS > 0 {
		rep.metric(label, "portal RSS with all open", fmtMB(memOpen.RSS))
	}
	logf("ws: %d open, %d echoes, %d errors", open, len(echoLat), errs)
	return nil
}

// runStored seeds each stored-session count, then starts the portal on a
// fresh copy of it StoredRounds times and measures start-up, memory and
// request latency (memory and scaling). The memory goals are judged on the
// median round: the same binary's peak at 100,000 stored sessions varied
// by a third from run to run.
func runStored(ctx context.Context, o Options, bin, work string, rep *Report, logf func(string, ...any)) error {
	type point struct {
		n        int
		req, act []time.Duration
	}
	var points []point
	for _, n := range o.Sessions {
		var rounds []storedOutcome
		var s flowStats
		for i := range max(1, o.StoredRounds) {
			r, err := storedRound(ctx, o, bin, work, n, i, rep, logf)
			if err != nil {
				return err
			}
			rounds = append(rounds, r)
			s.add(r.flows)
			logf("%d stored, round %d: ready in %s, peak RSS %s, request p50 %s, %d errors", n, i+1, r.ready.Round(time.Millisecond),
				fmtMB(r.settled.HWM), fmtDur(pct(r.flows.request, 0.5)), r.flows.errors)
		}
		// The flows are the scaling measurement, and the memory scenario's
		// load when it runs alone.
		flowsOf := "scaling"
		if !contains(o.Scenarios, "scaling") {
			flowsOf = "memory"
		}
		rep.addErrors(flowsOf, s.errors)
		rep.count("scaling.flows", s.n)
		rep.count("memory.sizes", 1)
		if s.firstErr != nil {
			rep.note("scaling (%d stored): first error: %v", n, s.firstErr)
		}
		ss := rounds[0].seed
		stored := fmt.Sprintf("%d stored (%d live, %d stopped)", n, ss.Live, ss.Stopped)
		if contains(o.Scenarios, "memory") {
			reportStoredMemory(rep, "memory, "+stored, rounds)
		}
		if contains(o.Scenarios, "scaling") {
			label := fmt.Sprintf("scaling, %s", stored)
			rep.metric(label, fmt.Sprintf("request p50 / p99 (%d flows, %d clients, %d rounds)", o.ScaleFlows, o.ScaleConns, len(rounds)), latencies(s.request))
			rep.metric(label, "activate p50 / p99", latencies(s.activate))
			rep.goal(label, "throughput / errors", fmtRate(s.n, s.wall)+" flows / "+fmt.Sprint(s.errors), "0 errors", s.errors == 0)
		}
		points = append(points, point{n, s.request, s.activate})
	}
	if contains(o.Scenarios, "scaling") && len(points) >= 2 {
		a, b := points[0], points[len(points)-1]
		ra := float64(pct(b.req, 0.5)) / float64(pct(a.req, 0.5))
		aa := float64(pct(b.act, 0.5)) / float64(pct(a.act, 0.5))
		rep.goal(fmt.Sprintf("scaling, %d → %d stored", a.n, b.n), "request p50 ratio, activate p50 ratio",
			fmt.Sprintf("%.2f×, %.2f×", ra, aa), "flat (≤ 1.5×)", ra <= 1.5 && aa <= 1.5)
	}
	return nil
}

// storedOutcome is one round of a stored-session size: a new portal on a
// fresh copy of the seeded store.
type storedOutcome struct {
	seed                     seedStats
	disk                     int64
	ready                    time.Duration
	atReady, loaded, settled memInfo
	flows                    flowStats
}

// storedRound copies the seeded store of n sessions (seeding it first if
// no earlier run has), starts the portal on it, runs the flows and reads
// its memory. With -pprof, the first round is profiled.
func storedRound(ctx context.Context, o Options, bin, work string, n, round int, rep *Report, logf func(string, ...any)) (storedOutcome, error) {
	var out storedOutcome
	dir := filepath.Join(work, fmt.Sprintf("stored-%d", n))
	if round > 0 {
		dir += fmt.Sprintf("-round%d", round+1)
	}
	if err := os.RemoveAll(dir); err != nil {
		return out, err
	}
	ss, err := seededStore(ctx, work, filepath.Join(dir, "badger"), n, o.LiveFraction, logf)
	if err != nil {
		return out, fmt.Errorf("seeding %d sessions: %w", n, err)
	}
	out.seed, out.disk = ss, dirSize(filepath.Join(dir, "badger"))
	spec := portalSpec{
		Data: filepath.Join(dir, "badger"), Maximum: 0, Capacity: 10_000_000, Upstreams: []string{templateUpstream},
		Env: o.PortalEnv,
	}
	profile := o.Profile > 0 && round == 0
	if profile {
		if spec.Admin, err = adminAddr(); err != nil {
			return out, err
		}
	}
	p, err := startPortal(ctx, bin, dir, spec)
	if err != nil {
		return out, fmt.Errorf("%d stored sessions: %w", n, err)
	}
	defer p.Stop()
	out.ready = p.Ready
	out.atReady, _ = p.Mem()
	client := newClient(o.ScaleConns)
	defer client.CloseIdleConnections()
	r := &rest{base: p.Base, c: client}
	if err := r.login(ctx); err != nil {
		return out, err
	}
	var profDone chan error
	if profile {
		profDone = cpuProfile(ctx, spec.Admin, o.Profile, filepath.Join(work, fmt.Sprintf("cpu-%d.pprof", n)))
	}
	out.flows = runFlows(ctx, r, fmt.Sprintf("scale%d-", n), o.ScaleFlows, o.ScaleConns)
	out.loaded, _ = p.Mem()
	if profDone != nil {
		// Keep the same load on (unmeasured) until the profile is in.
		for k := 0; ; k++ {
			select {
			case err := <-profDone:
				if err != nil {
					logf("cpu profile: %v", err)
				}
				if err := fetchProfile(ctx, spec.Admin, "heap", filepath.Join(work, fmt.Sprintf("heap-%d.pprof", n))); err != nil {
					logf("heap profile: %v", err)
				}
				logf("profiles saved in %s", work)
				profDone = nil
			default:
				runFlows(ctx, r, fmt.Sprintf("prof%d-%d-", n, k), o.ScaleConns*4, o.ScaleConns)
				continue
			}
			break
		}
		rep.note("memory/scaling ran with -pprof: profiling costs CPU during the measured flows of their first round")
	}
	// Let background work after the load (Badger compactions) show in
	// the peak before it is read.
	time.Sleep(2 * time.Second)
	out.settled, _ = p.Mem()
	return out, nil
}

// reportStoredMemory reports the memory rows of one stored-session size:
// start-up and peak RSS of every round with their medians (the goals; for
// an even count of rounds the peak's is the higher of the middle two, so
// that the goal is never met by halving), and the other figures of the
// round whose peak that is.
func reportStoredMemory(rep *Report, label string, rounds []storedOutcome) {
	byPeak := slices.Clone(rounds)
	slices.SortFunc(byPeak, func(a, b storedOutcome) int { return cmp.Compare(a.settled.HWM, b.settled.HWM) })
	mid := byPeak[len(byPeak)/2]
	var readies []time.Duration
	var peaks []string
	for _, r := range rounds {
		readies = append(readies, r.ready)
		peaks = append(peaks, fmtMB(r.settled.HWM))
	}
	ready := median(readies)
	rep.addErrors("memory", 0)
	// The same rows for one round as for several, as pool and spawn do.
	rep.goal(label, "start to ready, each round (median)", fmt.Sprintf("%s (%s)", fmtDurs(readies), fmtDur(ready)), "median < 2 s", ready < 2*time.Second)
	rep.goal(label, "peak RSS (VmHWM), each round (median)", fmt.Sprintf("%s (%s)", strings.Join(peaks, ", "), fmtMB(mid.settled.HWM)),
		"median < 100 MB", mid.settled.HWM < 100*1024)
	rep.metric(label, "RSS after ready / after load / 2 s later (the median peak's round)", fmtMB(mid.atReady.RSS)+" / "+fmtMB(mid.loaded.RSS)+" / "+fmtMB(mid.settled.RSS))
	rep.metric(label, "2 s later: private (anon) + file-backed (code, mmapped tables) (the median peak's round)",
		fmtMB(mid.settled.Anon)+" + "+fmtMB(mid.settled.File))
	rep.metric(label, "data on disk", fmt.Sprintf("%.1f MB", float64(rounds[0].disk)/(1<<20)))
}

// cpuProfile takes a CPU profile of the portal for d into file in the
// background; the channel gives its outcome.
func cpuProfile(ctx context.Context, admin string, d time.Duration, file string) chan error {
	done := make(chan error, 1)
	go func() {
		done <- fetchProfile(ctx, admin, fmt.Sprintf("profile?seconds=%d", int(d.Seconds()+0.5)), file)
	}()
	return done
}

// fetchProfile saves the portal's /debug/pprof/<what> to file.
func fetchProfile(ctx context.Context, admin, what, file string) error {
	req, err := http.NewRequestWithContext(ctx, "GET", "http://"+admin+"/debug/pprof/"+what, nil)
	if err != nil {
		return err
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(res.Body)
		return fmt.Errorf("%s: %d %s", what, res.StatusCode, b)
	}
	f, err := os.Create(file)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, res.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
