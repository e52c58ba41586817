package main

import (
	"fmt"
	"math"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"
)

// Report collects the results of one harness run.
type Report struct {
	Command string
	Machine Machine
	Started time.Time
	Elapsed time.Duration

	mu   sync.Mutex
	rows []Row
	// errors counts failed operations per scenario; a scenario that ran
	// has an entry even when it is 0.
	errors map[string]int
	// counts holds per-scenario totals (served flows, open sockets...) so
	// a test can check that work was really done.
	counts map[string]int
	notes  []string
}

// Row is one line of the results table.
type Row struct {
	Scenario string
	Metric   string
	Value    string
	// Goal is the target, empty when there is none; Met says
	// whether this run reached it.
	Goal string
	Met  bool
}

// Machine describes where the run happened.
type Machine struct {
	CPUs      int
	CPUModel  string
	GoVersion string
	Kernel    string
	LoadAvg   string
	MemTotal  string
}

func newReport(command string) *Report {
	return &Report{Command: command, Machine: describeMachine(), Started: time.Now(),
		errors: map[string]int{}, counts: map[string]int{}}
}

func (r *Report) add(row Row) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.rows = append(r.rows, row)
}

// metric adds a row without a goal.
func (r *Report) metric(scenario, metric, value string) {
	r.add(Row{Scenario: scenario, Metric: metric, Value: value})
}

// goal adds a row with a goal and whether it was met.
func (r *Report) goal(scenario, metric, value, goal string, met bool) {
	r.add(Row{Scenario: scenario, Metric: metric, Value: value, Goal: goal, Met: met})
}

func (r *Report) addErrors(scenario string, n int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.errors[scenario] += n
}

func (r *Report) count(key string, n int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.counts[key] += n
}

func (r *Report) note(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.notes = append(r.notes, fmt.Sprintf(format, args...))
}

// Errors returns the error count of a scenario and whether it ran.
func (r *Report) Errors(scenario string) (int, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	n, ok := r.errors[scenario]
	return n, ok
}

// Count returns a total recorded under key.
func (r *Report) Count(key string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.counts[key]
}

// TotalErrors sums the errors of every scenario.
func (r *Report) TotalErrors() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, v := range r.errors {
		n += v
	}
	return n
}

// Markdown renders the machine, the command and the results table.
func (r *Report) Markdown() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var b strings.Builder
	m := r.Machine
	fmt.Fprintf(&b, "### Benchmark results (%s)\n\n", r.Started.UTC().Format("2006-01-02 15:04 MST"))
	fmt.Fprintf(&b, "- Machine: %d CPUs (`nproc`), %s, %s RAM, %s\n", m.CPUs, m.CPUModel, m.MemTotal, m.Kernel)
	fmt.Fprintf(&b, "- Go: %s; load average at start: %s\n", m.GoVersion, m.LoadAvg)
	fmt.Fprintf(&b, "- Command: `%s` (took %s)\n", r.Command, r.Elapsed.Round(time.Second))
	b.WriteString("- The load generator and the stand-in dashboards run on the same machine as the portal.\n\n")
	b.WriteString("| Scenario | Metric | Result | Goal |\n|---|---|---|---|\n")
	for _, row := range r.rows {
		goal := ""
		if row.Goal != "" {
			verdict := "met"
			if !row.Met {
				verdict = "**missed**"
			}
			goal = row.Goal + " — " + verdict
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s |\n", row.Scenario, row.Metric, row.Value, goal)
	}
	var scen []string
	for s := range r.errors {
		scen = append(scen, s)
	}
	slices.Sort(scen)
	b.WriteString("\nErrors:")
	for _, s := range scen {
		fmt.Fprintf(&b, " %s %d;", s, r.errors[s])
	}
	b.WriteString("\n")
	if len(r.notes) > 0 {
		b.WriteString("\nNotes:\n\n")
		for _, n := range r.notes {
			fmt.Fprintf(&b, "- %s\n", n)
		}
	}
	return b.String()
}

func describeMachine() Machine {
	m := Machine{CPUs: runtime.NumCPU(), CPUModel: "unknown CPU", GoVersion: runtime.Version(), Kernel: runtime.GOOS + "/" + runtime.GOARCH}
	if out, err := exec.Command("nproc").Output(); err == nil {
		fmt.Sscan(string(out), &m.CPUs)
	}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPUModel = strings.TrimSpace(v)
				break
			}
		}
	}
	if out, err := exec.Command("go", "version").Output(); err == nil {
		m.GoVersion = strings.TrimPrefix(strings.TrimSpace(string(out)), "go version ")
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = "Linux " + strings.TrimSpace(string(b))
	}
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		f := strings.Fields(string(b))
		if len(f) >= 3 {
			m.LoadAvg = strings.Join(f[:3], " ")
		}
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "MemTotal:"); ok {
				var kb int64
				fmt.Sscan(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), &kb)
				m.MemTotal = fmt.Sprintf("%.0f GB", float64(kb)/(1<<20))
			}
		}
	}
	return m
}

// Formatting helpers for the table.

func fmtDur(d time.Duration) string {
	switch {
	case d >= time.Second:
		return fmt.Sprintf("%.2f s", d.Seconds())
	case d >= time.Millisecond:
		return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond))
	default:
		return fmt.Sprintf("%.0f µs", float64(d)/float64(time.Microsecond))
	}
}

// fmtRatio formats ratio x against its goal with two decimals, or three when
// two would round it onto the goal: "0.80× — missed" for 0.796 read as a
// contradiction.
func fmtRatio(x, goal float64) string {
	if math.Abs(x-goal) < 0.005 {
		return fmt.Sprintf("%.3f×", x)
	}
	return fmt.Sprintf("%.2f×", x)
}

// fmtDurs formats ds with fmtDur, comma-separated.
func fmtDurs(ds []time.Duration) string {
	parts := make([]string, len(ds))
	for i, d := range ds {
		parts[i] = fmtDur(d)
	}
	return strings.Join(parts, ", ")
}

func fmtMB(kb int64) string { return fmt.Sprintf("%.1f MB", float64(kb)/1024) }

func fmtRate(n int, d time.Duration) string {
	if d <= 0 {
		return "n/a"
	}
	return fmt.Sprintf("%.0f /s", float64(n)/d.Seconds())
}
