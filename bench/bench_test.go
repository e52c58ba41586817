package main

import (
	"context"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/caddyportal/caddyportal/internal/e2etest/engine"
)

// TestQuick runs the whole harness at smoke-test sizes against a freshly
// built portal binary and checks that every scenario ran, did the work it
// was asked to do, and saw no errors. It proves the harness works; it does
// not judge speed.
func TestQuick(t *testing.T) {
	// The container scenario creates and removes networks on the engine
	// other packages' tests use (see engine.Exclusive).
	engine.Exclusive(t)
	o := quickOptions()
	o.Workdir = t.TempDir()
	o.Command = "go test ./bench -run TestQuick"
	o.Progress = t.Logf
	// A bound on a hung run, not a measurement.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	rep, err := run(ctx, o)
	if err != nil {
		t.Fatalf("harness: %v", err)
	}
	md := rep.Markdown()
	t.Log("\n" + md)
	for _, sc := range allScenarios {
		n, ran := rep.Errors(sc)
		if !ran {
			t.Errorf("scenario %s did not run", sc)
		}
		if n != 0 {
			t.Errorf("scenario %s: %d errors", sc, n)
		}
		if !strings.Contains(md, "| "+sc) {
			t.Errorf("the results table has no %s rows", sc)
		}
	}
	for key, want := range map[string]int{
		"storm.served":  o.Users,
		"ws.open":       o.WSConns,
		"ws.echoes":     o.WSConns * o.WSMessages,
		"scaling.flows": o.ScaleFlows * len(o.Sessions) * o.StoredRounds,
		"memory.sizes":  len(o.Sessions),
		// Every learner reached its own dashboard, started for it (spawn)
		// or taken from the warm pool (pool), and every environment the
		// spawn scenario started was running at once.
		"spawn.reached": o.SpawnUsers * o.SpawnRounds,
		"spawn.running": o.SpawnUsers,
		"pool.reached":  o.PoolReserved * o.PoolRounds,
		// The container scenario's one session reached its dashboard in
		// a container through the gate, and so did the CLI's container.
		"container.reached.1": o.ContainerRounds,
		"container.cli.1":     o.ContainerRounds,
		"container.running":   1,
	} {
		if got := rep.Count(key); got != want {
			t.Errorf("%s = %d, want %d", key, got, want)
		}
	}
	for _, key := range []string{"gate.gated", "gate.plain", "gate.plain_headers", "gate.forward_auth"} {
		if rep.Count(key) == 0 {
			t.Errorf("%s: no requests were served", key)
		}
	}
	for _, row := range []string{"| gated / plain: throughput |", "| gated / plain: p99 |", "| gated / forward_auth: throughput |",
		"| spawn throughput: portal / direct (same command, same bound), each round (median) |", "| activation to dashboard page, p99 of each round (median) |",
		"| create-to-ready portal / CLI, p50 / p99 |", "| peak RSS (VmHWM), each round (median) |", "| containers and networks of the portal / of the CLI left on the engine at the end | 0 / 0 |"} {
		if !strings.Contains(md, row) {
			t.Errorf("the gate rows have no %q", row)
		}
	}
	if !strings.Contains(md, "Machine: ") || !strings.Contains(md, "Command: `"+o.Command+"`") {
		t.Errorf("the results do not name the machine and the command:\n%s", md)
	}
}

func TestPercentile(t *testing.T) {
	var ds []time.Duration
	for i := 100; i >= 1; i-- {
		ds = append(ds, time.Duration(i)*time.Millisecond)
	}
	for _, c := range []struct {
		q    float64
		want time.Duration
	}{{0.5, 50 * time.Millisecond}, {0.99, 99 * time.Millisecond}, {1, 100 * time.Millisecond}, {0, time.Millisecond}} {
		if got := pct(ds, c.q); got != c.want {
			t.Errorf("pct(%v) = %v, want %v", c.q, got, c.want)
		}
	}
	if ds[0] != 100*time.Millisecond {
		t.Error("pct sorted its input in place")
	}
	if pct(nil, 0.5) != 0 {
		t.Error("pct of no samples is not 0")
	}
}

func TestParseFlags(t *testing.T) {
	o, err := parseFlags([]string{"-quick", "-scenario", "storm,ws,spawn", "-users", "70", "-sessions", "10,20", "-live", "0",
		"-spawn-users", "30", "-spawn-rounds", "4", "-pool-reserved", "7", "-pool-rounds", "3", "-stored-rounds", "4", "-container-sessions", "2,5", "-container-rounds", "4", "-container-network", "podman", "-perf"})
	if err != nil {
		t.Fatal(err)
	}
	if o.Users != 70 || o.WSConns != quickOptions().WSConns || len(o.Scenarios) != 3 ||
		len(o.Sessions) != 2 || o.Sessions[1] != 20 || o.LiveFraction != 0 ||
		o.SpawnUsers != 30 || o.SpawnRounds != 4 || o.PoolReserved != 7 || o.PoolRounds != 3 || o.StoredRounds != 4 || o.SpawnStarts != 8 ||
		len(o.ContainerSessions) != 2 || o.ContainerSessions[1] != 5 || o.ContainerRounds != 4 || o.ContainerNetwork != "podman" || !o.Perf {
		t.Fatalf("parsed %+v", o)
	}
	if o, _ := parseFlags(nil); o.Users != 1000 || o.WSConns != 2000 || len(o.Scenarios) != len(allScenarios) ||
		o.SpawnUsers != 200 || o.SpawnRounds != 4 || o.PoolReserved != 50 || o.PoolRounds != 5 || o.StoredRounds != 3 || o.SpawnStarts != 8 ||
		len(o.ContainerSessions) != 2 || o.ContainerSessions[0] != 1 || o.ContainerSessions[1] != 20 || o.ContainerRounds != 5 || o.Perf {
		t.Fatalf("defaults %+v", o)
	}
	for _, bad := range [][]string{
		{"-scenario", "nope"}, {"-sessions", "1,x"}, {"-container-sessions", "0"}, {"-live", "2"}, {"-portal-env", "NOEQUALS"}, {"extra"},
	} {
		if _, err := parseFlags(bad); err == nil {
			t.Errorf("parseFlags(%q) accepted bad input", bad)
		}
	}
}

func TestFmtRatio(t *testing.T) {
	for _, c := range []struct {
		x, goal float64
		want    string
	}{
		{0.7957, 0.8, "0.796×"}, // "0.80×" beside "missed" read as a contradiction
		{0.8031, 0.8, "0.803×"},
		{0.87, 0.95, "0.87×"},
		{1.16, 1.1, "1.16×"},
	} {
		if got := fmtRatio(c.x, c.goal); got != c.want {
			t.Errorf("fmtRatio(%v, %v) = %q, want %q", c.x, c.goal, got, c.want)
		}
	}
}

// TestRunSaysWhyItStopped: a scenario that cannot run ends the run with an
// error, and the report (what -out writes) says which and why instead of
// an empty table.
func TestRunSaysWhyItStopped(t *testing.T) {
	o := quickOptions()
	o.Scenarios = []string{"storm"}
	o.Binary = filepath.Join(t.TempDir(), "no-such-portal")
	o.Workdir = t.TempDir()
	o.Progress = t.Logf
	rep, err := run(context.Background(), o)
	if err == nil {
		t.Fatal("run with a missing portal binary returned no error")
	}
	md := rep.Markdown()
	if !strings.Contains(md, "the run stopped early") || !strings.Contains(md, err.Error()) {
		t.Errorf("the report does not say why the run stopped (%v):\n%s", err, md)
	}
}

// TestBuildsTheRelease: the harness measures the binary the release build
// makes (xcaddy.json's tags), not one that links the database drivers
// Caddy's releases leave out, whose code alone is several MB of RSS.
func TestBuildsTheRelease(t *testing.T) {
	root, err := moduleRoot()
	if err != nil {
		t.Fatal(err)
	}
	bin, err := buildBinary(context.Background(), root, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("go", "version", "-m", bin).CombinedOutput()
	if err != nil {
		t.Fatalf("go version -m: %v\n%s", err, out)
	}
	deps := map[string]bool{}
	for _, line := range strings.Split(string(out), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "dep" {
			deps[f[1]] = true
		}
	}
	if !deps["github.com/dgraph-io/badger/v4"] || !deps["github.com/caddyserver/caddy/v2"] {
		t.Fatalf("the binary lacks the portal's own store or Caddy:\n%s", out)
	}
	for _, driver := range []string{"github.com/dgraph-io/badger", "github.com/dgraph-io/badger/v2", "github.com/go-sql-driver/mysql", "github.com/jackc/pgx/v5"} {
		if deps[driver] {
			t.Errorf("the harness's binary links %s, which the release build leaves out", driver)
		}
	}
}

// TestSeedFreshness: a cached seed is reused only while its live sessions
// have most of their time left; an older one would have them all expire as
// the measured portal starts.
func TestSeedFreshness(t *testing.T) {
	now := time.Now()
	for _, c := range []struct {
		created time.Time
		want    bool
	}{
		{time.Time{}, false}, // a seed.json from before Created was recorded
		{now.Add(-time.Minute), true},
		{now.Add(-seedSessionLife/2 + time.Minute), true},
		{now.Add(-seedSessionLife / 2), false},
		{now.Add(-4 * time.Hour), false},
	} {
		if got := (seedStats{Total: 1, Created: c.created}).fresh(now); got != c.want {
			t.Errorf("seeded %v ago: fresh %v, want %v", now.Sub(c.created), got, c.want)
		}
	}
}
