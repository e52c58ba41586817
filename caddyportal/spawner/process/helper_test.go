package process

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/caddyportal/caddyportal/caddyportal/spawner"
	"github.com/caddyportal/caddyportal/internal/proctest"
)

// The test binary doubles as the dashboards and the "portal" these tests
// spawn (the helper-process pattern): with helperVar set it runs the helper
// named by its first argument instead of the tests.
const helperVar = "SPAWNER_TEST_HELPER"

func TestMain(m *testing.M) {
	if os.Getenv(helperVar) == "1" {
		helperMain(os.Args[1:])
		os.Exit(0)
	}
	proctest.Exit(m.Run(), MarkerVar)
}

func helperMain(args []string) {
	if len(args) == 0 {
		fmt.Fprintln(os.Stderr, "helper: no mode")
		os.Exit(2)
	}
	opts := map[string]bool{}
	for _, a := range args[1:] {
		opts[a] = true
	}
	if opts["ignore-term"] {
		signal.Ignore(syscall.SIGTERM)
	}
	switch args[0] {
	case "dashboard": // dashboard <addr> [ignore-term] [grandchildren]
		if opts["grandchildren"] {
			spawnGrandchildren()
		}
		dashboard(args[1])
	case "sleeper": // sleeper [ignore-term]: runs until killed
		select {}
	case "exit": // exits at once with a message
		fmt.Fprintln(os.Stderr, "helper: cannot read workshop.yaml")
		os.Exit(3)
	case "silent": // runs but never listens
		fmt.Println("helper: thinking")
		select {}
	case "portal": // portal <config json>: starts one environment, prints it, waits to be killed
		portalHelper(args[1])
	case "load": // load <config json>: loads the config, starts and stops one environment, prints ok
		loadHelper(args[1])
	default:
		fmt.Fprintln(os.Stderr, "helper: unknown mode", args[0])
		os.Exit(2)
	}
}

// spawnGrandchildren starts two sleepers that ignore SIGTERM: one stays in
// the dashboard's process group, one moves to a group of its own (as a
// daemonising tool would), so Stop must find it by session or marker.
func spawnGrandchildren() {
	for _, own := range []bool{false, true} {
		self, _ := os.Executable()
		cmd := exec.Command(self, "sleeper", "ignore-term")
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: own}
		if err := cmd.Start(); err != nil {
			fmt.Fprintln(os.Stderr, "helper: grandchild:", err)
			os.Exit(4)
		}
	}
}

// info is what the dashboard's /info answers.
type info struct {
	Args []string `json:"args"`
	Env  []string `json:"env"`
	Cwd  string   `json:"cwd"`
	PID  int      `json:"pid"`
}

func dashboard(addr string) {
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		fmt.Printf("helper: %s %s\n", r.Method, r.URL.Path) // one output line per request
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("/info", func(w http.ResponseWriter, r *http.Request) {
		cwd, _ := os.Getwd()
		_ = json.NewEncoder(w).Encode(info{Args: os.Args, Env: os.Environ(), Cwd: cwd, PID: os.Getpid()})
	})
	mux.HandleFunc("/write", func(w http.ResponseWriter, r *http.Request) {
		p := r.URL.Query().Get("path")
		if !filepath.IsAbs(p) {
			p = filepath.Join(".", p)
		}
		if err := os.WriteFile(p, []byte("secret of "+os.Getenv("SESSION_NAME")), 0o600); err != nil {
			http.Error(w, err.Error(), http.StatusForbidden)
			return
		}
		fmt.Fprintln(w, "written")
	})
	mux.HandleFunc("/read", func(w http.ResponseWriter, r *http.Request) {
		b, err := os.ReadFile(r.URL.Query().Get("path"))
		if err != nil {
			http.Error(w, err.Error(), http.StatusNotFound)
			return
		}
		w.Write(b)
	})
	mux.HandleFunc("/redirect", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "http://127.0.0.1:1/elsewhere", http.StatusFound)
	})
	mux.HandleFunc("/missing", http.NotFound)
	srv := &http.Server{Addr: addr, Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	fmt.Println("helper: listening on", addr)
	if err := srv.ListenAndServe(); err != nil {
		fmt.Fprintln(os.Stderr, "helper:", err)
		os.Exit(5)
	}
}

// portalHelper plays a portal that is killed with SIGKILL after starting one
// environment: it prints the Env as JSON and waits.
func portalHelper(cfgJSON string) {
	var cfg Config
	if err := json.Unmarshal([]byte(cfgJSON), &cfg); err != nil {
		fmt.Fprintln(os.Stderr, "helper:", err)
		os.Exit(2)
	}
	s, err := New(cfg, nil)
	if err != nil {
		fmt.Fprintln(os.Stderr, "helper:", err)
		os.Exit(2)
	}
	env, err := s.Start(context.Background(), specFor("prev-1"), nil)
	if err != nil {
		fmt.Fprintln(os.Stderr, "helper:", err)
		os.Exit(2)
	}
	_ = json.NewEncoder(os.Stdout).Encode(env)
	select {}
}

// loadHelper plays a portal loading a config: New, then one environment
// started, probed and stopped. It prints "ok", or the error and exits 2.
func loadHelper(cfgJSON string) {
	fail := func(err error) {
		fmt.Fprintln(os.Stderr, "helper:", err)
		os.Exit(2)
	}
	var cfg Config
	if err := json.Unmarshal([]byte(cfgJSON), &cfg); err != nil {
		fail(err)
	}
	s, err := New(cfg, nil)
	if err != nil {
		fail(err)
	}
	env, err := s.Start(context.Background(), specFor("load-1"), nil)
	if err != nil {
		fail(err)
	}
	if err := spawner.WaitReady(context.Background(), s, env, nil); err != nil {
		fail(err)
	}
	if err := s.Stop(context.Background(), env); err != nil {
		fail(err)
	}
	fmt.Println("ok")
}
