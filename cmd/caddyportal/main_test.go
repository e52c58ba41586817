package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/caddyportal/caddyportal/internal/e2etest"
	"github.com/caddyportal/caddyportal/internal/gotool"
)

// caddyVersion is the Caddy release the project builds on. The binary must
// report it: a dependency that pulls in a newer Caddy through MVS would
// change the product silently.
const caddyVersion = "v2.11.9"

// run runs the binary with args and returns its stdout; a non-zero exit
// fails the test with stderr.
func run(t *testing.T, bin string, args ...string) string {
	t.Helper()
	cmd := exec.Command(bin, args...)
	// Keep Caddy's data and config (autosave, storage) out of $HOME.
	dir := t.TempDir()
	cmd.Env = append(os.Environ(), "XDG_DATA_HOME="+dir, "XDG_CONFIG_HOME="+dir, "HOME="+dir)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %s: %v\nstderr:\n%s", filepath.Base(bin), strings.Join(args, " "), err, stderr.String())
	}
	return stdout.String()
}

// TestBinary builds the command once, as an operator would with `go build`,
// and checks that it is Caddy at the pinned version with the portal module
// compiled in and that the example Caddyfile adapts to a portal route.
func TestBinary(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "caddyportal")
	if runtime.GOOS == "windows" {
		bin += ".exe"
	}
	build := exec.Command(gotool.Path(t), "build", "-o", bin, ".")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}

	t.Run("version", func(t *testing.T) {
		out := run(t, bin, "version")
		if f := strings.Fields(out); len(f) == 0 || f[0] != caddyVersion {
			t.Fatalf("version printed %q, want %s first", out, caddyVersion)
		}
	})

	t.Run("list-modules", func(t *testing.T) {
		out := run(t, bin, "list-modules")
		var found bool
		for _, line := range strings.Split(out, "\n") {
			if strings.TrimSpace(line) == "http.handlers.portal" {
				found = true
			}
		}
		if !found {
			t.Fatalf("list-modules does not list http.handlers.portal:\n%s", out)
		}
	})

	t.Run("adapt example", func(t *testing.T) {
		caddyfile := filepath.Join("..", "..", "Caddyfile.example")
		out := run(t, bin, "adapt", "--config", caddyfile)
		var cfg any
		if err := json.Unmarshal([]byte(out), &cfg); err != nil {
			t.Fatalf("adapt output is not JSON: %v\n%s", err, out)
		}
		if !hasHandler(cfg, "portal") {
			t.Fatalf("adapted config has no {\"handler\":\"portal\"} route:\n%s", out)
		}
	})

	t.Run("run example", func(t *testing.T) { runExample(t, bin) })
}

// runExample runs the quick start's command on Caddyfile.example (a copy
// with its own replica and ports, see exampleCopy) as a newcomer would and
// reads its log: one line says where the portal's pages
// are, nothing warns before the portal serves, and the portal answers.
func runExample(t *testing.T, bin string) {
	dir := t.TempDir()
	caddyfile, base := exampleCopy(t, dir)
	cmd := exec.Command(bin, "run", "--config", caddyfile)
	cmd.Env = append(os.Environ(), "XDG_DATA_HOME="+dir, "XDG_CONFIG_HOME="+dir, "HOME="+dir)
	logs, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
		// The example's spawned reserve outlives the portal (a restart
		// adopts it); it lives in this test's directory, so it goes too.
		killUnder(dir)
	}()
	var seen []string
	ready := false
	sc := bufio.NewScanner(logs)
	for !ready && sc.Scan() {
		var line struct {
			Level string `json:"level"`
			Msg   string `json:"msg"`
			Admin string `json:"admin"`
		}
		if json.Unmarshal(sc.Bytes(), &line) != nil {
			continue
		}
		seen = append(seen, line.Level+" "+line.Msg)
		if line.Level == "warn" || line.Level == "error" {
			t.Errorf("the example logs a %s at start-up: %s", line.Level, sc.Text())
		}
		if line.Msg == "portal ready" && line.Admin != base+"/admin/" {
			t.Errorf("the start-up line names the admin pages %q: %s", line.Admin, sc.Text())
		}
		ready = line.Msg == "serving initial configuration"
	}
	if !ready || !slices.Contains(seen, "info portal ready") {
		t.Fatalf("the example did not start and say where the portal is; its log:\n%s", strings.Join(seen, "\n"))
	}
	go func() { _, _ = io.Copy(io.Discard, logs) }()
	// The site is http://localhost:<port>: another host name would reach
	// no site at all (and Caddy's empty 200).
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	// A visitor's path: the catalog asks them to log in (or sign up), and
	// the login page has its form.
	res, err := noRedirect.Get(base + "/workshops/catalog/")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if loc := res.Header.Get("Location"); res.StatusCode != http.StatusFound || !strings.HasPrefix(loc, "/accounts/login/") {
		t.Errorf("the example's catalog for a visitor: %d to %q, want the login page", res.StatusCode, loc)
	}
	res, err = noRedirect.Get(base + "/accounts/login/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusOK || !strings.Contains(string(body), "<form") {
		t.Errorf("the example's login page: %d %.300s", res.StatusCode, body)
	}
	walkExample(t, base)
	// The stand-in hub explains the portal's notifications and never
	// prints a value it does not know.
	for note, want := range map[string]string{"session-deleted": "Your workshop session has ended", "%3Cb%3Ex": "sent you back here"} {
		res, err = noRedirect.Get(base + "/hub/?notification=" + note)
		if err != nil {
			t.Fatal(err)
		}
		body, _ = io.ReadAll(res.Body)
		res.Body.Close()
		if !strings.Contains(string(body), want) || strings.Contains(string(body), "<b>") {
			t.Errorf("the hub with notification %s: %d %.400s", note, res.StatusCode, body)
		}
	}
}

// exampleCopy writes Caddyfile.example into dir as the test runs it, and
// returns its path and the portal's base URL. Two things differ:
//   - a replica name no one else uses: a process spawner stops the
//     processes marked with its portal's name and replica that it did not
//     start from its own directory (see process.Spawner.List), so the
//     example run unchanged stopped, with a warning, the dashboard that a
//     developer's own run of the quick start left for its next start;
//   - every port is a free one: Caddy listens with SO_REUSEPORT, so with
//     the developer's demo running the two would share localhost:8080 and
//     the stand-in dashboards' ports, each answering some of the other's
//     requests.
func exampleCopy(t *testing.T, dir string) (path, base string) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "Caddyfile.example"))
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	const at = "\t\tname demo\n"
	if !strings.Contains(s, at) {
		t.Fatalf("Caddyfile.example has no %q line to add the test's replica after", at)
	}
	s = strings.Replace(s, at, at+"\t\treplica example-test\n", 1)
	// The portal, Caddy's admin API and the five stand-in dashboards.
	re := regexp.MustCompile(`:(8080|2019|9001|9002|9003|9011|9012)\b`)
	ports := map[string]string{}
	for _, m := range re.FindAllStringSubmatch(s, -1) {
		if ports[m[1]] == "" {
			ports[m[1]] = strconv.Itoa(e2etest.FreePort(t))
		}
	}
	if len(ports) != 7 {
		t.Fatalf("Caddyfile.example's ports changed (found %v); update this test", ports)
	}
	s = re.ReplaceAllStringFunc(s, func(m string) string { return ":" + ports[m[1:]] })
	path = filepath.Join(dir, "Caddyfile")
	if err := os.WriteFile(path, []byte(s), 0o600); err != nil {
		t.Fatal(err)
	}
	return path, "http://localhost:" + ports["8080"]
}

// killUnder kills the processes whose HOME is under dir: the example's
// spawned dashboards, whose HOME is their session directory.
func killUnder(dir string) {
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		env, err := os.ReadFile(filepath.Join("/proc", e.Name(), "environ"))
		if err == nil && (bytes.Contains(env, []byte("\x00HOME="+dir)) || bytes.HasPrefix(env, []byte("HOME="+dir))) {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
}

// hasHandler reports whether v, a decoded JSON config, contains an object
// with "handler": name at any depth (routes can nest in subroutes).
func hasHandler(v any, name string) bool {
	switch v := v.(type) {
	case map[string]any:
		if h, ok := v["handler"].(string); ok && h == name {
			return true
		}
		for _, e := range v {
			if hasHandler(e, name) {
				return true
			}
		}
	case []any:
		for _, e := range v {
			if hasHandler(e, name) {
				return true
			}
		}
	}
	return false
}

func TestHasHandler(t *testing.T) {
	tests := []struct {
		config string
		want   bool
	}{
		{`{"apps":{"http":{"servers":{"srv0":{"routes":[{"handle":[{"handler":"portal"}]}]}}}}}`, true},
		{`{"routes":[{"handle":[{"handler":"subroute","routes":[{"handle":[{"handler":"portal"}]}]}]}]}`, true},
		{`{"routes":[{"handle":[{"handler":"static_response","body":"portal"}]}]}`, false},
		{`{"handler":"portals"}`, false},
		{`[]`, false},
	}
	for _, tt := range tests {
		var v any
		if err := json.Unmarshal([]byte(tt.config), &v); err != nil {
			t.Fatal(err)
		}
		if got := hasHandler(v, "portal"); got != tt.want {
			t.Errorf("hasHandler(%s) = %v, want %v", tt.config, got, tt.want)
		}
	}
}
