package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/caddyportal/caddyportal/caddyportal/spawner/container"
	"github.com/caddyportal/caddyportal/internal/e2etest/engine"
)

// The container scenario (issue 15): sessions whose environments the
// portal's container spawner starts over the Docker Engine API, against
// `podman run` of the same image from the command line, in the same run.

// goalContainerRatio is issue 15's goal: create-to-ready through the portal
// no slower than the CLI.
const goalContainerRatio = 1.0

// containerPoll is how often a learner reloads its dashboard through the
// gate while the starting page shows, and how often the CLI baseline
// probes its published port: the same for both, so both sides are measured
// to within the same step. Shorter would cost the 2 cores more than the
// gain in precision: 20 learners at 25 ms are 800 starting pages a second.
const containerPoll = 25 * time.Millisecond

// containerPort is testdash's port inside the container (its default).
const containerPort = 8080

// containerUlimits are the limits both sides set: rootful Podman here
// cannot start a container without explicit ones (its defaults ask for
// more than the service may grant).
var containerUlimits = [][2]string{{"nofile", "1024:1024"}, {"nproc", "1024:1024"}}

// cliLabel marks the CLI baseline's containers, so the harness removes
// every one of them and checks that none is left.
const cliLabel = "io.caddyportal.bench=cli"

// isTestdash says whether body is testdash's page for session name.
func isTestdash(name string, body []byte) bool {
	return bytes.Contains(body, []byte("<h1>Workshop dashboard "+name+"</h1>"))
}

// containerBlock is the body of the workshop's `spawner container` block:
// the test image's dashboard on its port, the same ulimits as the CLI, no
// pull (the image is local), and a short stop (testdash is PID 1 and
// ignores SIGTERM, so every stop waits for stop_timeout); network "" is a
// network of its own per session.
func containerBlock(host, image, network string) string {
	b := "\t\t\t\tengine " + host + "\n\t\t\t\timage " + image + fmt.Sprintf("\n\t\t\t\tport %d", containerPort) +
		"\n\t\t\t\tpull never\n\t\t\t\tready / 60s\n\t\t\t\tstop_timeout 1s"
	if network != "" {
		b += "\n\t\t\t\tnetwork " + network
	}
	for _, u := range containerUlimits {
		b += "\n\t\t\t\tulimit " + u[0] + " " + u[1]
	}
	return b
}

// containerRound is one measured round at one size.
type containerRound struct {
	toDash []time.Duration // portal: request to the dashboard through the gate
	cli    []time.Duration // CLI: `podman run` to the first 200 on the published port
	runRet []time.Duration // CLI: until `podman run -d` returned
	rm     time.Duration   // CLI: `podman rm -f` of all of them
	pcpu   time.Duration   // portal CPU during the portal's part
	errs   int
	first  error
}

// runContainer: for each size in -container-sessions (1 and 20), in
// -container-rounds rounds alternating which side goes first, N learners
// request and activate sessions of a container workshop (reserved 0,
// starts N) at once and poll their dashboards through the gate, and N
// containers of the same image are started with `podman run -d` and
// probed on their published port. Reports p50 / p99 of both, their ratio,
// the portal's RSS, and that nothing of either is left on the engine.
func runContainer(ctx context.Context, o Options, bin, work string, rep *Report, logf func(string, ...any)) error {
	const sc = "container"
	if len(o.ContainerSessions) == 0 || o.ContainerRounds < 1 {
		return errors.New("no container sizes or rounds")
	}
	podman, err := exec.LookPath("podman")
	if err != nil {
		return fmt.Errorf("the CLI baseline needs podman: %w", err)
	}
	host, err := engine.Addr()
	if err != nil {
		return err
	}
	t0 := time.Now()
	image, err := engine.BuildImage()
	if err != nil {
		return err
	}
	logf("container: engine %s, image %s (%s)", host, image, time.Since(t0).Round(time.Millisecond))
	cli, err := engine.NewClient()
	if err != nil {
		return err
	}
	defer cli.Close()
	ownLabel := container.LabelPortal + "=" + portalName
	engineLeft := func(label string) int {
		c, n, err := engine.Labelled(ctx, cli, label)
		if err != nil {
			return -1
		}
		return c + n
	}
	// What an interrupted earlier run left would be counted as this run's.
	for _, l := range []string{ownLabel, cliLabel} {
		if n := engineLeft(l); n != 0 {
			rep.note("container: removed %d objects labelled %s left by an earlier run", n, l)
			engine.RemoveLabelled(ctx, cli, l)
		}
	}
	// On a failure below, the engine is left clean all the same (after
	// the counts that report it).
	defer engine.RemoveLabelled(context.WithoutCancel(ctx), cli, cliLabel)
	defer engine.RemoveLabelled(context.WithoutCancel(ctx), cli, ownLabel)

	largest := 0
	for _, n := range o.ContainerSessions {
		largest = max(largest, n)
	}
	adminAt, err := adminAddr()
	if err != nil {
		return err
	}
	// starts = the largest class by default, so the portal starts them
	// all at once like the CLI does.
	starts := o.ContainerStarts
	if starts == 0 {
		starts = largest
	}
	spec := portalSpec{
		Data: filepath.Join(work, "badger"), Maximum: largest, Capacity: largest, Env: o.PortalEnv,
		SpawnerKind: "container", Spawner: containerBlock(host, image, o.ContainerNetwork), Starts: starts,
		Admin: adminAt,
	}
	p, err := startPortal(ctx, bin, work, spec)
	if err != nil {
		return err
	}
	defer p.Stop()
	admin := &adminClient{addr: spec.Admin, c: &http.Client{Timeout: 30 * time.Second}}
	client := newClient(largest)
	defer client.CloseIdleConnections()
	r := &rest{base: p.Base, c: client}
	if err := r.login(ctx); err != nil {
		return err
	}
	probe := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	defer probe.CloseIdleConnections()

	var memAll memInfo
	errs, running := 0, 0
	for _, n := range o.ContainerSessions {
		label := fmt.Sprintf("container (%d at once, reserved 0, starts %d, %d rounds)", n, starts, o.ContainerRounds)
		if o.ContainerNetwork != "" {
			label = fmt.Sprintf("container (%d at once, reserved 0, starts %d, %d rounds, network %s)", n, starts, o.ContainerRounds, o.ContainerNetwork)
		}
		var all containerRound
		// The two sides of a round run back to back, so the ratio of
		// their p50s is less affected by other work on the machine
		// drifting over the run than the ratio of the pooled figures.
		var ratios []float64
		for round := range o.ContainerRounds {
			var cr containerRound
			portalSide := func() error {
				var res []learnerResult
				cpu, _, _ := cpuUsed(p, func() {
					res, _ = learners(ctx, r, fmt.Sprintf("c%dr%d-", n, round), n, containerPoll, false, isTestdash)
				})
				cr.pcpu = cpu
				toDash, _, _, e, first := learnerStats(res)
				cr.toDash, cr.errs, cr.first = toDash, cr.errs+e, firstOf(cr.first, first)
				if n == largest {
					memAll, _ = p.Mem()
				}
				if c, _, err := engine.Labelled(ctx, cli, ownLabel); err == nil && c != n {
					cr.errs++
					cr.first = firstOf(cr.first, fmt.Errorf("%d containers of the portal run for %d sessions", c, n))
				} else if n == largest {
					running = c
				}
				left, err := endAll(ctx, p, admin, r, spec, work, func() int { return engineLeft(ownLabel) })
				if err != nil || left != 0 {
					return fmt.Errorf("ending the sessions: %d left: %w", left, err)
				}
				return nil
			}
			cliSide := func() error {
				var err error
				cr.cli, cr.runRet, cr.rm, err = cliStarts(ctx, podman, probe, image, cliNetwork(o.ContainerNetwork), n, round)
				if err != nil {
					cr.errs++
					cr.first = firstOf(cr.first, err)
				}
				// A `podman run` that failed after creating its
				// container printed no ID to remove it by.
				if left := engineLeft(cliLabel); left != 0 {
					cr.errs++
					cr.first = firstOf(cr.first, fmt.Errorf("%d CLI containers left after podman rm -f", left))
					engine.RemoveLabelled(ctx, cli, cliLabel)
				}
				return nil
			}
			sides := []func() error{cliSide, portalSide}
			if round%2 == 1 {
				sides[0], sides[1] = sides[1], sides[0]
			}
			for _, side := range sides {
				if err := side(); err != nil {
					return fmt.Errorf("%d at once, round %d: %w", n, round, err)
				}
			}
			all.toDash = append(all.toDash, cr.toDash...)
			all.cli = append(all.cli, cr.cli...)
			all.runRet = append(all.runRet, cr.runRet...)
			all.rm += cr.rm
			all.pcpu += cr.pcpu
			all.errs += cr.errs
			all.first = firstOf(all.first, cr.first)
			if len(cr.toDash) > 0 && len(cr.cli) > 0 {
				ratios = append(ratios, float64(pct(cr.toDash, 0.5))/float64(pct(cr.cli, 0.5)))
			}
			logf("container: %d at once, round %d: portal p50 %s, CLI p50 %s, %d errors", n, round,
				fmtDur(pct(cr.toDash, 0.5)), fmtDur(pct(cr.cli, 0.5)), cr.errs)
		}
		errs += all.errs
		if all.first != nil {
			rep.note("container, %d at once: first error: %v", n, all.first)
		}
		want := n * o.ContainerRounds
		rep.count(fmt.Sprintf("container.reached.%d", n), len(all.toDash))
		rep.count(fmt.Sprintf("container.cli.%d", n), len(all.cli))
		rep.goal(label, "reached their dashboard: portal / CLI, errors", fmt.Sprintf("%d / %d, %d", len(all.toDash), len(all.cli), all.errs),
			fmt.Sprintf("%d / %d, 0", want, want), len(all.toDash) == want && len(all.cli) == want && all.errs == 0)
		rep.metric(label, "portal: request to dashboard through the gate, p50 / p99", latencies(all.toDash))
		rep.metric(label, "CLI: `podman run -d` to first 200 on the published port, p50 / p99", latencies(all.cli))
		rep.metric(label, "CLI: of which until `podman run -d` returned, p50 / p99", latencies(all.runRet))
		if len(all.toDash) > 0 && len(all.cli) > 0 {
			r50 := float64(pct(all.toDash, 0.5)) / float64(pct(all.cli, 0.5))
			r99 := float64(pct(all.toDash, 0.99)) / float64(pct(all.cli, 0.99))
			rep.goal(label, "create-to-ready portal / CLI, p50 / p99", fmtRatio(r50, goalContainerRatio)+" / "+fmtRatio(r99, goalContainerRatio),
				fmt.Sprintf("≤ %.1f×", goalContainerRatio), r50 <= goalContainerRatio && r99 <= goalContainerRatio)
		}
		if len(ratios) > 0 {
			slices.Sort(ratios)
			rep.metric(label, "portal / CLI p50 of each round: median (lowest–highest)",
				fmt.Sprintf("%.2f× (%.2f–%.2f×)", ratios[len(ratios)/2], ratios[0], ratios[len(ratios)-1]))
		}
		rep.metric(label, "portal CPU per session (start, probe, learner's polls, stop); CLI `podman rm -f` per round",
			fmt.Sprintf("%.1f ms; %s", float64(all.pcpu.Microseconds())/1000/float64(max(1, want)),
				fmtDur(all.rm/time.Duration(o.ContainerRounds))))
	}
	p.Stop()
	// Stopping the portal leaves running environments for the next start
	// to adopt; there must be none, and no network either.
	left, cliLeft := engineLeft(ownLabel), engineLeft(cliLabel)
	if left != 0 || cliLeft != 0 {
		errs++
	}
	rep.addErrors(sc, errs)
	rep.count("container.running", running)
	wide := fmt.Sprintf("container (sizes %s)", joinInts(o.ContainerSessions))
	if memAll.RSS > 0 {
		rep.metric(wide, fmt.Sprintf("portal RSS with %d running / peak", largest), fmtMB(memAll.RSS)+" / "+fmtMB(memAll.HWM))
	}
	rep.goal(wide, "containers and networks of the portal / of the CLI left on the engine at the end",
		fmt.Sprintf("%d / %d", left, cliLeft), "0 / 0", left == 0 && cliLeft == 0)
	logf("container: %d errors, %d portal and %d CLI objects left", errs, left, cliLeft)
	return nil
}

// firstOf returns a if it is set, else b: the first error wins.
func firstOf(a, b error) error {
	if a != nil {
		return a
	}
	return b
}

func joinInts(ns []int) string {
	s := make([]string, len(ns))
	for i, n := range ns {
		s[i] = fmt.Sprint(n)
	}
	return strings.Join(s, ",")
}

// cliNetwork is the CLI's --network for the portal's network option: what
// the spawner gives each session on Podman when the option is unset (a
// network namespace of its own with slirp4netns, the host's loopback
// closed), else the same shared network.
func cliNetwork(shared string) string {
	if shared != "" {
		return shared
	}
	return "slirp4netns:allow_host_loopback=false"
}

// cliStarts runs `podman run -d` of image n times at once, each followed by
// `podman port` and a probe of the published port every containerPoll
// until testdash serves its page; then removes them all with one
// `podman rm -f -v` (-v: with their anonymous volumes, as the portal's
// spawner removes them). It returns each start's time to its page and to the
// return of `podman run -d`, and the removal's time.
func cliStarts(ctx context.Context, podman string, probe *http.Client, image, network string, n, round int) (toPage, runRet []time.Duration, rm time.Duration, err error) {
	var (
		mu   sync.Mutex
		ids  []string
		errl []error
		wg   sync.WaitGroup
	)
	release := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-release
			name := fmt.Sprintf("cli%dr%d-%d", n, round, i)
			page, ret, id, err := cliStart(ctx, podman, probe, image, network, name)
			mu.Lock()
			defer mu.Unlock()
			if id != "" {
				ids = append(ids, id)
			}
			if err != nil {
				errl = append(errl, fmt.Errorf("%s: %w", name, err))
				return
			}
			toPage, runRet = append(toPage, page), append(runRet, ret)
		}()
	}
	close(release)
	wg.Wait()
	if len(ids) > 0 {
		t0 := time.Now()
		out, err := exec.Command(podman, append([]string{"rm", "-f", "-v"}, ids...)...).CombinedOutput()
		rm = time.Since(t0)
		if err != nil {
			errl = append(errl, fmt.Errorf("podman rm -f: %v: %s", err, out))
		}
	}
	return toPage, runRet, rm, errors.Join(errl...)
}

// cliStart is one CLI start: what an operator scripting `podman run` would
// do, with the same image, command, ulimits, network and loopback
// publishing as the portal's container. It returns the container's ID whenever one was
// created, so the caller removes it.
func cliStart(ctx context.Context, podman string, probe *http.Client, image, network, name string) (toPage, runRet time.Duration, id string, err error) {
	args := []string{"--runtime", "runc", "run", "-d", "--label", cliLabel, "-e", "SESSION_NAME=" + name,
		"-p", fmt.Sprintf("127.0.0.1::%d", containerPort), "--network", network}
	for _, u := range containerUlimits {
		args = append(args, "--ulimit", u[0]+"="+u[1])
	}
	args = append(args, image, "/testdash")
	t0 := time.Now()
	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, podman, args...)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	runRet = time.Since(t0)
	id = strings.TrimSpace(string(out))
	if err != nil {
		return 0, runRet, id, fmt.Errorf("podman run: %v: %s", err, strings.TrimSpace(stderr.String()))
	}
	pout, err := exec.CommandContext(ctx, podman, "port", id, fmt.Sprintf("%d/tcp", containerPort)).Output()
	if err != nil {
		return 0, runRet, id, fmt.Errorf("podman port: %v", err)
	}
	addr := strings.TrimSpace(strings.SplitN(string(pout), "\n", 2)[0])
	url := "http://" + addr + "/"
	deadline := time.Now().Add(time.Minute)
	for {
		status, body, err := get(ctx, probe, url, "")
		if err == nil && status == http.StatusOK && isTestdash(name, body) {
			return time.Since(t0), runRet, id, nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return 0, runRet, id, fmt.Errorf("%s not ready after a minute (%v, %d)", url, err, status)
		}
		select {
		case <-ctx.Done():
		case <-time.After(containerPoll):
		}
	}
}
