package e2e

import (
	"bytes"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/caddyportal/caddyportal/internal/e2etest"
)

// TestConfigsThatDoNotRunTouchNothing: with a portal running a learner's
// dashboard process, what Caddy loads without running (`caddy validate`,
// a reload that fails) starts no environment, stops none and writes
// nothing to the store; a second portal process with the same portal and
// replica names on this machine is refused at its start, naming the first.
// Each of them used to start reserves nobody stopped, and validate with
// another store stopped the learner's dashboard as a stray.
func TestConfigsThatDoNotRunTouchNothing(t *testing.T) {
	t.Parallel() // separate binaries only (see doc.go)
	o := newOwnPortal(t, "check")
	name, sessionsDir, dataDir, admin := o.name, o.sessions, o.data, o.admin
	// cf is the Caddyfile with reserved reserves and the Badger store in
	// store ({dir}: the one under the data directory).
	cf := func(reserved int, store string) string {
		return o.caddyfile(name, reserved, "replica one", "storage badger "+store)
	}
	base := o.base
	running := e2etest.StartBinary(t, e2etest.Binary(t), dataDir, cf(0, "{dir}"), base, e2etest.NoRedirect)
	token := robotToken(t, base)
	alice, mark := markedLearner(t, base, token, "alice", name+"-w01", sessionsDir)
	before := dashboardsOf(name + "/one/")
	if len(before) != 1 {
		t.Fatalf("dashboards before: %v, want alice's only", before)
	}
	// unchanged checks that the dashboards are alice's alone, the same
	// processes, and that the store holds her session alone.
	unchanged := func(after string) {
		t.Helper()
		now := dashboardsOf(name + "/one/")
		if len(now) != 1 || !slices.Equal(now[alice.name], before[alice.name]) {
			t.Fatalf("after %s, the dashboards are %v; were %v", after, now, before)
		}
		alice.awaitDashboard(base, mark)
		var list []map[string]any
		adminCall(t, admin, "GET", "/portal/"+name+"/sessions/", 200, &list)
		if len(list) != 1 || list[0]["name"] != alice.name {
			t.Fatalf("after %s, the store holds %v; want alice's session alone", after, list)
		}
	}

	// validate runs `caddyportal validate` on the Caddyfile text cf on
	// this machine's data directory, and returns its output.
	validate := func(cf string) string {
		t.Helper()
		path := filepath.Join(t.TempDir(), "Caddyfile")
		if err := os.WriteFile(path, []byte(cf), 0o600); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(e2etest.Binary(t), "validate", "--config", path, "--adapter", "caddyfile")
		cmd.Env = append(os.Environ(), "XDG_DATA_HOME="+dataDir, "XDG_CONFIG_HOME="+dataDir, "HOME="+dataDir)
		out, err := cmd.CombinedOutput()
		if err != nil || !bytes.Contains(out, []byte("Valid configuration")) {
			t.Fatalf("validate: %v\n%s", err, out)
		}
		return string(out)
	}
	// The running portal's own config with a reserve: its store is in use.
	validate(cf(1, "{dir}"))
	unchanged("validate")
	// The same with a store of its own, which it must not even create.
	other := filepath.Join(t.TempDir(), "other-store")
	validate(cf(1, other))
	if _, err := os.Stat(other); !os.IsNotExist(err) {
		t.Fatalf("validate created the store it names: %v", err)
	}
	unchanged("validate with another store")

	// A reload that fails: a reserve for this portal, and a second site
	// whose dashboard program does not exist.
	failing := cf(1, "{dir}") + fmt.Sprintf(`
http://127.0.0.1:%d {
	bind 127.0.0.1
	portal {
		name %s-broken
		workshop lab {
			capacity 1
			spawner process {
				command /nonexistent/dashboard {port}
			}
		}
	}
}
`, e2etest.FreePort(t), name)
	o.load(t, failing, http.StatusBadRequest)
	unchanged("a reload that failed")

	// A second process with the same names, its own store and port.
	secondDir, secondPort := t.TempDir(), e2etest.FreePort(t)
	path := filepath.Join(secondDir, "Caddyfile")
	second := &ownPortal{name: name, sessions: o.sessions, data: secondDir, port: secondPort, admin: "off"}
	if err := os.WriteFile(path, []byte(second.caddyfile(name, 1, "replica one", "storage badger {dir}")), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(e2etest.Binary(t), "run", "--config", path, "--adapter", "caddyfile")
	cmd.Env = append(os.Environ(), "XDG_DATA_HOME="+secondDir, "XDG_CONFIG_HOME="+secondDir, "HOME="+secondDir)
	exited := make(chan []byte, 1)
	go func() {
		out, _ := cmd.CombinedOutput()
		exited <- out
	}()
	var out []byte
	select {
	case out = <-exited:
	case <-time.After(2 * time.Minute):
		_ = cmd.Process.Kill()
		t.Fatalf("a second portal process with the same names kept running:\n%s", <-exited)
	}
	want := fmt.Sprintf("process %d on this machine already runs portal %s as replica one", running.Cmd.Process.Pid, name)
	if cmd.ProcessState.Success() || !bytes.Contains(out, []byte(want)) {
		t.Fatalf("the second portal process: %v, want it refused with %q:\n%s", cmd.ProcessState, want, out)
	}
	unchanged("a second process was refused")
}

// TestRenamedPortalWarns: a reload that renames a portal with a live
// session says what it leaves behind; the old name, loaded again, serves
// the session as before, and dropping the other name, which has no
// session of its own on the shared store, says nothing.
func TestRenamedPortalWarns(t *testing.T) {
	t.Parallel() // separate binaries only (see doc.go)
	o := newOwnPortal(t, "renamed")
	name, sessionsDir, dataDir, base := o.name, o.sessions, o.data, o.base
	caddyfile := func(portal string) string { return o.caddyfile(portal, 0, "replica one", "storage badger {dir}") }
	p := e2etest.StartBinary(t, e2etest.Binary(t), dataDir, caddyfile(name), base, e2etest.NoRedirect)
	alice, mark := markedLearner(t, base, robotToken(t, base), "alice", name+"-w01", sessionsDir)
	load := func(cf string) { t.Helper(); o.load(t, cf, http.StatusOK) }
	load(caddyfile(name + "x"))
	waitFor(t, "the warning", func() bool {
		return strings.Contains(p.Logs.String(), "a portal with live sessions is no longer in the config")
	})
	logs := p.Logs.String()
	line := logs[strings.Index(logs, "a portal with live sessions"):]
	line = line[:strings.IndexByte(line, '\n')]
	if !strings.Contains(line, `"portal":"`+name+`"`) || !strings.Contains(line, `"learners_sessions":1`) {
		t.Fatalf("the warning does not name the portal and its session: %s", line)
	}
	// Back under its name; the other name, dropped now, held no session.
	load(caddyfile(name))
	alice.awaitDashboard(base, mark)
	if n := strings.Count(p.Logs.String(), "no longer in the config"); n != 1 {
		t.Fatalf("%d warnings about a portal left behind, want 1:\n%s", n, p.Logs)
	}
}
