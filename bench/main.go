// Command bench is the caddyportal benchmark harness (issue #5). It builds the
// portal binary, runs it as a separate process with generated Caddyfiles,
// starts stand-in dashboards (HTTP and WebSocket echo, the tests' own from
// internal/e2etest/echo) in its own process on 127.0.0.1 and drives load
// with a Go HTTP/1.1 keep-alive load generator.
//
//	go run ./bench -scenario all -out bench/results.md
//
// Scenarios (comma-separated, or "all"):
//
//	storm    N users request and activate a session at once, capacity N
//	gate     gated dashboard proxy vs plain reverse_proxy and forward_auth, same upstream
//	ws       concurrent WebSockets through the gate, echo round trips
//	memory   RSS and start-up time with stored sessions seeded in advance
//	scaling  request + activate latency as stored sessions grow
//	spawn    N learners at once, an environment (a real process) started per session
//	pool     learners taking warm reserves: activation to dashboard page
//	container  sessions in containers (Podman) vs `podman run` of the same image
//
// memory and scaling share the seeded data directories, so "all" seeds
// each size once. -quick runs tiny sizes as a smoke test.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"time"

	"github.com/caddyportal/caddyportal/internal/e2etest/engine"
)

func main() {
	opts, err := parseFlags(os.Args[1:])
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	rep, err := run(ctx, opts)
	// The container scenario's testdash build and engine service go with
	// the run.
	engine.Cleanup()
	if rep != nil {
		md := rep.Markdown()
		fmt.Println()
		fmt.Print(md)
		if opts.Out != "" {
			if werr := os.WriteFile(opts.Out, []byte(md), 0o644); werr != nil {
				fmt.Fprintln(os.Stderr, "bench: writing results:", werr)
				os.Exit(1)
			}
			fmt.Fprintf(os.Stderr, "bench: results written to %s\n", opts.Out)
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
	if rep.TotalErrors() > 0 {
		fmt.Fprintf(os.Stderr, "bench: %d errors\n", rep.TotalErrors())
		os.Exit(1)
	}
}

// Options are the harness settings; see parseFlags for their meaning.
type Options struct {
	Scenarios    []string
	Users        int
	GateConns    int
	Duration     time.Duration
	WSConns      int
	WSSessions   int
	WSMessages   int
	WSInterval   time.Duration
	Sessions     []int
	LiveFraction float64
	ScaleFlows   int
	ScaleConns   int
	// StoredRounds is how many times memory and scaling start the portal
	// on a fresh copy of each seeded store; memory's goals are judged on
	// the median round.
	StoredRounds int
	// SpawnUsers learners arrive at once in the spawn scenario, which
	// starts environments at most SpawnStarts at a time (the portal's
	// `starts`, also used by pool); PoolReserved is pool's `reserved`.
	SpawnUsers, SpawnStarts, PoolReserved int
	// PoolRounds is how many times the pool scenario runs its class, each
	// with a new portal; its goal is judged on the median round.
	// SpawnRounds is the same for the spawn scenario, each round with the
	// direct starts it is compared with.
	PoolRounds, SpawnRounds int
	// SpawnPython makes the spawn scenario's dashboard python3 -m
	// http.server instead of bench/cmd/benchdash.
	SpawnPython bool
	// ContainerSessions are the class sizes of the container scenario
	// (sessions started at once), each measured ContainerRounds times;
	// ContainerStarts is that portal's `starts` (0: the largest size, so
	// the portal starts a class at once like the CLI baseline does).
	ContainerSessions []int
	ContainerRounds   int
	ContainerStarts   int
	// ContainerNetwork is the spawner's network option: "" for one per
	// session (the default, isolated), or an existing network all share.
	ContainerNetwork string
	Binary           string
	Workdir          string
	Keep             bool
	Profile          time.Duration
	// Perf records `perf record -g` of the portal process (children
	// included) during each class of spawn and pool into the round's
	// directory as perf.data.
	Perf bool
	// PortalEnv is added to the portal process's environment (KEY=VALUE).
	PortalEnv []string
	Out       string
	Command   string
	// Verbose progress goes to Progress (nil: stderr).
	Progress func(format string, args ...any)
	// dashboard is the built bench/cmd/benchdash binary (spawn, pool).
	dashboard string
}

var allScenarios = []string{"storm", "gate", "ws", "memory", "scaling", "spawn", "pool", "container"}

// defaultOptions are the sizes.
func defaultOptions() Options {
	return Options{
		Scenarios:    allScenarios,
		Users:        1000,
		GateConns:    32,
		Duration:     10 * time.Second,
		WSConns:      2000,
		WSSessions:   20,
		WSMessages:   10,
		WSInterval:   500 * time.Millisecond,
		Sessions:     []int{1000, 10000, 100000},
		LiveFraction: 0.05,
		ScaleFlows:   500,
		ScaleConns:   16,
		StoredRounds: 3,
		SpawnUsers:   200,
		// Eight starts at once (four per core here): a start is mostly
		// waiting (fork and exec, the dashboard binding its port, the
		// readiness probe), so a few in parallel keep the CPU busy, while
		// the bound still keeps a class of heavy dashboards (Jupyter:
		// about a second of CPU each) from thrashing the machine.
		SpawnStarts:  8,
		PoolReserved: 50,
		PoolRounds:   5,
		// Even: each order of direct and portal runs equally often.
		SpawnRounds: 4,
		// Issue 15: one learner, and a class of 20.
		ContainerSessions: []int{1, 20},
		ContainerRounds:   5,
	}
}

// quickOptions is the smoke-test size: every scenario, seconds in all.
func quickOptions() Options {
	o := defaultOptions()
	o.Users = 50
	o.GateConns = 8
	o.Duration = time.Second
	o.WSConns = 50
	o.WSSessions = 5
	o.WSMessages = 3
	o.WSInterval = 100 * time.Millisecond
	o.Sessions = []int{1000}
	o.ScaleFlows = 50
	o.ScaleConns = 8
	o.StoredRounds = 2
	o.SpawnUsers = 10
	o.PoolReserved = 5
	o.PoolRounds = 2
	o.SpawnRounds = 2
	o.ContainerSessions = []int{1}
	o.ContainerRounds = 1
	return o
}

func parseFlags(args []string) (Options, error) {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	quick := fs.Bool("quick", false, "smoke-test sizes (storm 50, ws 50, sessions 1000 twice, 1s gate time per proxy kind, spawn 10 twice, pool 5 twice, container 1 once); explicit size flags still apply")
	scen := fs.String("scenario", "all", "scenarios to run: all, or a comma-separated list of "+strings.Join(allScenarios, ","))
	users := fs.Int("users", 0, "storm: users requesting and activating at once (capacity is the same) [1000]")
	gateConns := fs.Int("conns", 0, "gate: concurrent keep-alive clients [32]")
	dur := fs.Duration("duration", 0, "gate: measured time per proxy kind, split over three alternating rounds [10s]")
	wsConns := fs.Int("ws", 0, "ws: concurrent WebSocket connections [2000]")
	wsSess := fs.Int("ws-sessions", 0, "ws: sessions the connections are spread over [20]")
	wsMsgs := fs.Int("ws-messages", 0, "ws: echo round trips per connection [10]")
	wsEvery := fs.Duration("ws-interval", 0, "ws: pause between one connection's messages [500ms]")
	sess := fs.String("sessions", "", "memory, scaling: stored session counts to seed, comma-separated [1000,10000,100000]")
	live := fs.Float64("live", defaultOptions().LiveFraction, "memory, scaling: fraction of seeded sessions left running, the rest STOPPED")
	flows := fs.Int("flows", 0, "scaling: request+activate flows measured per size [500]")
	flowConns := fs.Int("flow-conns", 0, "scaling: concurrent clients for those flows [16]")
	storedRounds := fs.Int("stored-rounds", 0, "memory, scaling: rounds per stored-session size, each a new portal on a fresh copy of the seeded store; memory's goals are judged on the median round [3]")
	spawnUsers := fs.Int("spawn-users", 0, "spawn: learners arriving at once, capacity the same, reserved 0 [200]")
	spawnPython := fs.Bool("spawn-python", false, "spawn: the dashboard is Debian's python3 -m http.server (tens of ms of CPU to start) instead of bench/cmd/benchdash (a few ms)")
	spawnRounds := fs.Int("spawn-rounds", 0, "spawn: rounds, each starting the class directly and through a new portal (alternating which goes first; an even count runs each order equally often); the goal is judged on the median round's ratio [4]")
	spawnStarts := fs.Int("spawn-starts", 0, "spawn, pool: the portal's starts (environments started at once), also the direct baseline's bound [8]")
	poolReserved := fs.Int("pool-reserved", 0, "pool: reserved environments, and learners taking them at once [50]")
	poolRounds := fs.Int("pool-rounds", 0, "pool: classes run, each with a new portal; the goal is judged on the median round's p99 [5]")
	contSess := fs.String("container-sessions", "", "container: sessions started at once, comma-separated sizes [1,20]")
	contRounds := fs.Int("container-rounds", 0, "container: rounds per size, alternating which of portal and CLI goes first [5]")
	contNet := fs.String("container-network", "", "container: an existing network every session joins, the CLI's containers too (the spawner's network option; Podman's default network is \"podman\") [each its own namespace, slirp4netns]")
	contStarts := fs.Int("container-starts", 0, "container: the portal's starts [the largest of -container-sessions]")
	bin := fs.String("binary", "", "use this caddyportal binary instead of building ./cmd/caddyportal")
	work := fs.String("workdir", "", "directory for binaries, data and logs (default: a new temp dir)")
	keep := fs.Bool("keep", false, "keep the work directory (Caddyfiles, logs, data, seeded stores) after the run; a later run with the same -workdir reuses the seeded stores")
	prof := fs.Duration("pprof", 0, "storm, gate, memory, scaling, spawn, pool: enable the portal's admin API and save CPU profiles of this length taken under load (and heap profiles for memory) into the work directory; use with -keep")
	perf := fs.Bool("perf", false, "spawn, pool: record Linux perf (perf record -g, children included) of the portal process during each class into the round's directory as perf.data; needs perf; use with -keep")
	penv := fs.String("portal-env", "", "extra environment for the portal process, comma-separated KEY=VALUE (e.g. GOMEMLIMIT=64MiB)")
	out := fs.String("out", "", "also write the Markdown results to this file")
	if err := fs.Parse(args); err != nil {
		return Options{}, err
	}
	if fs.NArg() > 0 {
		return Options{}, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	o := defaultOptions()
	if *quick {
		o = quickOptions()
	}
	if *scen != "all" {
		o.Scenarios = nil
		for _, s := range strings.Split(*scen, ",") {
			s = strings.TrimSpace(s)
			if !contains(allScenarios, s) {
				return Options{}, fmt.Errorf("-scenario: unknown scenario %q (want all or %s)", s, strings.Join(allScenarios, ","))
			}
			o.Scenarios = append(o.Scenarios, s)
		}
	}
	setPos := func(dst *int, v int) {
		if v > 0 {
			*dst = v
		}
	}
	setPos(&o.Users, *users)
	setPos(&o.GateConns, *gateConns)
	setPos(&o.WSConns, *wsConns)
	setPos(&o.WSSessions, *wsSess)
	setPos(&o.WSMessages, *wsMsgs)
	setPos(&o.ScaleFlows, *flows)
	setPos(&o.ScaleConns, *flowConns)
	setPos(&o.StoredRounds, *storedRounds)
	setPos(&o.SpawnUsers, *spawnUsers)
	setPos(&o.SpawnStarts, *spawnStarts)
	setPos(&o.SpawnRounds, *spawnRounds)
	setPos(&o.PoolReserved, *poolReserved)
	setPos(&o.PoolRounds, *poolRounds)
	o.SpawnPython = *spawnPython
	setPos(&o.ContainerRounds, *contRounds)
	setPos(&o.ContainerStarts, *contStarts)
	if *wsEvery > 0 {
		o.WSInterval = *wsEvery
	}
	if *dur > 0 {
		o.Duration = *dur
	}
	if *live < 0 || *live > 1 {
		return Options{}, fmt.Errorf("-live must be between 0 and 1")
	}
	o.LiveFraction = *live
	if *sess != "" {
		o.Sessions = nil
		for _, s := range strings.Split(*sess, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(s))
			if err != nil || n < 0 {
				return Options{}, fmt.Errorf("-sessions: %q is not a count", s)
			}
			o.Sessions = append(o.Sessions, n)
		}
	}
	if *contSess != "" {
		o.ContainerSessions = nil
		for _, s := range strings.Split(*contSess, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(s))
			if err != nil || n < 1 {
				return Options{}, fmt.Errorf("-container-sessions: %q is not a positive count", s)
			}
			o.ContainerSessions = append(o.ContainerSessions, n)
		}
	}
	o.ContainerNetwork = *contNet
	o.Binary, o.Workdir, o.Keep, o.Out, o.Profile, o.Perf = *bin, *work, *keep, *out, *prof, *perf
	if *penv != "" {
		for _, kv := range strings.Split(*penv, ",") {
			if !strings.Contains(kv, "=") {
				return Options{}, fmt.Errorf("-portal-env: %q is not KEY=VALUE", kv)
			}
			o.PortalEnv = append(o.PortalEnv, strings.TrimSpace(kv))
		}
	}
	o.Command = "go run ./bench " + strings.Join(args, " ")
	return o, nil
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}
