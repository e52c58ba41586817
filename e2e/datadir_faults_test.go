package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"

	"github.com/caddyportal/caddyportal/internal/e2etest"
	"github.com/caddyportal/caddyportal/internal/e2etest/tmpfs"
)

// mountDataTmpfs mounts a 96 MiB tmpfs, larger than the store's free-space
// reserve, as the portal's data directory under dir, unmounted when the
// test ends, and returns the directory.
func mountDataTmpfs(t *testing.T, dir string) (string, error) {
	t.Helper()
	data := filepath.Join(dir, "badger")
	return data, tmpfs.Mount(t, data, "96m")
}

// TestFaultDiskFullWhileServing: when the data directory's file system
// fills up under a running portal, session requests get a 503 with a JSON
// error and the log says why, instead of Badger killing the process with
// SIGBUS; reads keep working, and once space is freed the same process
// takes writes again. The portal runs in a child process on a tmpfs, so
// that a crash is seen as one.
func TestFaultDiskFullWhileServing(t *testing.T) {
	dir := t.TempDir()
	data, err := mountDataTmpfs(t, dir)
	if tmpfs.NotPermitted(err) {
		t.Skipf("a full disk needs a file system of its own: mounting a tmpfs is not permitted here (%v); run as root", err)
	}
	if err != nil {
		t.Fatalf("mount tmpfs: %v", err)
	}
	port := e2etest.FreePort(t)
	c := e2etest.StartServeChild(t, dir, port, e2etest.DefaultBody, e2etest.FaultLogEnv+"=1")
	p := remote(t, c.Base, port, dir)
	tok := p.Token(e2etest.RobotUser, e2etest.RobotPass)
	const index = "&index_url=https://hub.example.com/"
	r := p.Request(tok, "demo-w01", "user=before"+index)
	if r.Status != 200 {
		t.Fatalf("request before the disk filled: %d %s", r.Status, r.Body)
	}
	name := r.JSON(t)["name"].(string)

	filler := tmpfs.Fill(t, data)
	for i := range 20 {
		r, err := e2etest.DoWith(e2etest.HTTPClient(10e9), "GET", p.Base+"/workshops/environment/demo-w01/request/?user="+
			fmt.Sprint("full-", i)+index, tok, nil, nil)
		if err != nil {
			t.Fatalf("request %d on a full disk: %v (the portal died?); output:\n%s", i, err, tail(c.Output()))
		}
		if r.Status != 503 || !strings.HasPrefix(r.Header.Get("Content-Type"), "application/json") {
			t.Fatalf("request %d on a full disk: %d %s, want a 503 with JSON", i, r.Status, r.Body)
		}
		if msg, _ := r.JSON(t)["error"].(string); msg == "" {
			t.Fatalf("503 without an error message: %s", r.Body)
		}
	}
	// Reads need no space.
	if r := p.Do("GET", "/workshops/session/"+name+"/schedule/", tok, nil, nil); r.Status != 200 {
		t.Fatalf("reading a session on a full disk: %d %s", r.Status, r.Body)
	}
	out := c.Output()
	if !strings.Contains(out, "data directory is almost full") || !strings.Contains(out, data) {
		t.Fatalf("no log line names the full data directory %s; output:\n%s", data, tail(out))
	}

	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	r = p.Request(tok, "demo-w01", "user=after"+index)
	if r.Status != 200 {
		t.Fatalf("request after space was freed: %d %s; output:\n%s", r.Status, r.Body, tail(c.Output()))
	}
	if !strings.Contains(c.Output(), "writes resume") {
		t.Fatalf("no log line says writes resumed; output:\n%s", tail(c.Output()))
	}
}

// TestFaultDamagedDataDir: a portal does not start on a damaged data
// directory, neither silently empty (a deleted MANIFEST), nor without the
// acknowledged sessions after a damaged write-ahead log entry, nor with a
// panic (a damaged table footer): the start fails with a message naming
// the directory, what is wrong and how to recover. Each start runs in a
// child process, so that a panic is seen as a crash.
func TestFaultDamagedDataDir(t *testing.T) {
	damage := []struct {
		name, want string
		seed       func(t *testing.T, dir string)
		damage     func(t *testing.T, data string)
	}{
		{"manifest deleted", "MANIFEST is missing", seedTables, func(t *testing.T, data string) {
			if err := os.Remove(filepath.Join(data, "MANIFEST")); err != nil {
				t.Fatal(err)
			}
		}},
		{"table footer", "table ", seedTables, func(t *testing.T, data string) {
			editOnly(t, data, ".sst", func(b []byte) []byte {
				copy(b[len(b)-8:], "\xde\xad\xbe\xef\xde\xad\xbe\xef")
				return b
			})
		}},
		{"log entry", "committed transactions after it", seedLog, func(t *testing.T, data string) {
			editOnly(t, data, ".mem", func(b []byte) []byte {
				// The first transaction's end marker: the later sessions follow it.
				i := strings.Index(string(b), "!badger!txn")
				if i < 0 {
					t.Fatal("no transaction in the write-ahead log")
				}
				b[i+3] ^= 0xff
				return b
			})
		}},
	}
	for _, tc := range damage {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			data := filepath.Join(dir, "badger")
			tc.seed(t, dir)
			tc.damage(t, data)
			verdict, out, err := e2etest.StartOnce(t, dir, e2etest.DefaultBody)
			if err != nil || !strings.HasPrefix(verdict, e2etest.ChildLoadFail) {
				t.Fatalf("start on a damaged directory: verdict %q, exit %v; output:\n%s", verdict, err, tail(out))
			}
			for _, want := range []string{data, tc.want, "restore the directory from a backup"} {
				if !strings.Contains(verdict, want) {
					t.Fatalf("start error does not say %q: %s", want, verdict)
				}
			}
		})
	}
}

// seedTables stores sessions through a portal that stops cleanly, so they
// end up in tables.
func seedTables(t *testing.T, dir string) {
	seedStore(t, dir, "damage-1", "damage-2", "damage-3")
}

// seedLog stores sessions through a portal that is then killed, so they
// are only in the write-ahead log.
func seedLog(t *testing.T, dir string) {
	port := e2etest.FreePort(t)
	c := e2etest.StartServeChild(t, dir, port, e2etest.DefaultBody)
	p := remote(t, c.Base, port, dir)
	tok := p.Token(e2etest.RobotUser, e2etest.RobotPass)
	for i := range 3 {
		if r := p.Request(tok, "demo-w01", fmt.Sprint("user=log-", i, "&index_url=https://hub.example.com/")); r.Status != 200 {
			t.Fatalf("seeding: %d %s", r.Status, r.Body)
		}
	}
	c.Kill()
}

// editOnly rewrites the one file with the suffix in dir that holds data.
func editOnly(t *testing.T, dir, suffix string, edit func([]byte) []byte) {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(dir, "*"+suffix))
	var found []string
	for _, f := range files {
		if b, err := os.ReadFile(f); err == nil && strings.Trim(string(b), "\x00") != "" {
			found = append(found, f)
		}
	}
	if len(found) != 1 {
		t.Fatalf("want one %s file with data in %s, found %v", suffix, dir, found)
	}
	b, err := os.ReadFile(found[0])
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(found[0], edit(b), 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestMinFreeSpaceOption: the Caddyfile's min_free_space reaches the store:
// a reserve larger than any disk stops the start with a message naming the
// directory and the reserve, and `off` lets the same portal start.
func TestMinFreeSpaceOption(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "badger")
	body := strings.Replace(e2etest.DefaultBody, "storage badger {dir}", "storage badger {dir} {\n\t\t\tmin_free_space 1000TiB\n\t\t}", 1)
	err := e2etest.LoadCaddyfile(e2etest.Caddyfile(e2etest.FreePort(t), dir, body))
	wantStartError(t, err, data)
	if !strings.Contains(err.Error(), "1000.0 TiB the store keeps in reserve") {
		t.Fatalf("start error does not name the reserve: %v", err)
	}
	body = strings.Replace(body, "1000TiB", "off", 1)
	if err := e2etest.LoadCaddyfile(e2etest.Caddyfile(e2etest.FreePort(t), dir, body)); err != nil {
		t.Fatalf("start with min_free_space off: %v", err)
	}
	if err := caddy.Stop(); err != nil {
		t.Fatal(err)
	}
}
