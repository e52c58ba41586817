// Package spawntest gives tests a process spawner whose dashboards are the
// test binary itself (proctest.Dashboard), so that sessions get real
// processes without anything installed.
package spawntest

import (
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/caddyportal/caddyportal/caddyportal/spawner/process"
	"github.com/caddyportal/caddyportal/internal/proctest"
)

// Replica is a replica name of this test process's own. Reconciliation
// stops the marked processes of its replica that its store does not know,
// so with a fixed name two runs of a package on one machine would stop
// each other's dashboards.
func Replica() string { return "r1-" + strconv.Itoa(os.Getpid()) }

// Dashboards returns a process spawner of portal "demo" and replica whose
// dashboards run this test binary in mode (proctest.DashboardServe, …);
// the binary's TestMain must call proctest.Dashboard first.
func Dashboards(t testing.TB, mode, replica string) *process.Spawner {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	sp, err := process.New(process.Config{
		Command:      []string{self, "{host}:{port}"},
		Env:          []process.EnvVar{{Name: proctest.DashboardVar, Value: mode}},
		Dir:          filepath.Join(t.TempDir(), "sessions"),
		Portal:       "demo",
		Replica:      replica,
		ReadyTimeout: 10 * time.Minute,
		StopTimeout:  2 * time.Second,
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return sp
}
