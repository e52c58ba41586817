package e2e

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/caddyportal/caddyportal/internal/e2etest"
)

// TestRenamedHostKeepsItsEnvironments: a portal on Badger whose block names
// no replica is called after its host, and the host's name can change
// under it (a container gets a new one at every restart). Restarted under
// another host name (its own UTS namespace), the portal still owns the
// environments it started: it serves them, and ending a session stops its
// process, removes its directory and frees its place.
func TestRenamedHostKeepsItsEnvironments(t *testing.T) {
	t.Parallel() // separate binaries only (see doc.go)
	if _, err := os.Stat("/usr/bin/python3"); err != nil {
		t.Fatal("this test needs /usr/bin/python3 (Debian's python3)")
	}
	host, err := os.Hostname()
	if err != nil {
		t.Fatal(err)
	}
	// A portal name of this run's own: its dashboards are told apart by
	// the marker that names the portal, and other tests may run beside.
	name := fmt.Sprintf("rename%d", os.Getpid())
	sessionsDir, dataDir, port := t.TempDir(), t.TempDir(), e2etest.FreePort(t)
	t.Cleanup(func() {
		for _, pids := range dashboardsOf(name + "/") {
			for _, pid := range pids {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	})
	body := `
		name ` + name + `
		storage badger {dir}
		index https://hub.example.com/
		redirects https://hub.example.com
		sessions registered 1
		robot robot@portal robot-pass
		client test-client test-secret
` + processWorkshop("lab-proc", "", pythonDashboard, sessionsDir)
	cf := e2etest.ProcessCaddyfile(port, "off", dataDir, body)
	base := fmt.Sprintf("http://127.0.0.1:%d", port)

	first := e2etest.StartBinary(t, e2etest.Binary(t), dataDir, cf, base, e2etest.NoRedirect)
	token := robotToken(t, base)
	alice := activateOn(t, base, base, token, "alice", name+"-w01")
	mark := "mark-" + alice.name + ".txt"
	waitFor(t, "alice's directory", func() bool {
		return os.WriteFile(filepath.Join(sessionsDir, alice.name, mark), nil, 0o644) == nil
	})
	alice.awaitDashboard(base, mark)
	pids := markedProcesses(t, name+"/"+host+"/"+alice.name)
	if len(pids) == 0 {
		t.Fatalf("no dashboard process marked as %s's on replica %s", alice.name, host)
	}
	first.Kill()

	// The same binary, data and config on a host now called otherwise.
	wrapper := filepath.Join(t.TempDir(), "renamed")
	script := "#!/bin/sh\nexec unshare --uts sh -c 'hostname renamed-" + host + " && exec \"$0\" \"$@\"' " + e2etest.Binary(t) + " \"$@\"\n"
	if err := os.WriteFile(wrapper, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	e2etest.StartBinary(t, wrapper, dataDir, cf, base, e2etest.NoRedirect)
	alice.awaitDashboard(base, mark)
	if now := markedProcesses(t, name+"/"+host+"/"+alice.name); strings.Join(now, ",") != strings.Join(pids, ",") {
		t.Fatalf("after the rename alice's processes changed from %v to %v", pids, now)
	}
	if r := remote(t, base, 0, "").Do("GET", "/workshops/session/"+alice.name+"/terminate/", token, nil, nil); r.Status != http.StatusOK {
		t.Fatalf("terminating alice's session: %d %s", r.Status, r.Body)
	}
	waitFor(t, "alice's processes to stop", func() bool {
		return len(markedProcesses(t, name+"/"+host+"/"+alice.name)) == 0
	})
	waitFor(t, "alice's directory to go", func() bool {
		_, err := os.Stat(filepath.Join(sessionsDir, alice.name))
		return os.IsNotExist(err)
	})
	// Her place is free again: with capacity 2, two more learners start.
	for _, user := range []string{"bob", "carol"} {
		l := activateOn(t, base, base, token, user, name+"-w01")
		if r := l.page(base); r.Status >= 500 {
			t.Fatalf("%s's dashboard: %d %s", user, r.Status, r.Body)
		}
	}
}
