// Command testdash is the dashboard inside the test container image (see
// package e2etest/engine): the end-to-end tests' echo dashboard (page,
// WebSocket echo, JSON echo) plus routes that let a test look inside and
// misbehave on purpose:
//
//	GET /env           the environment it was started with, as JSON, and
//	                   its user and group as "testdash.uid" and "testdash.gid"
//	GET /file?name=N   the content of file N (404 when absent)
//	PUT /file?name=N   writes the body to file N
//	GET /eat?mb=N      allocates and touches N MiB (to meet a memory limit)
//	GET /fork?n=N      starts N child processes that sleep; says how many started
//	GET /burn?ms=N     keeps two CPUs busy for N ms of wall time; says the CPU
//	                   time the process used meanwhile ("cpu_ms M")
//	GET /dial?addr=A   tries a TCP connection to A; says "connected" or the error
//
// With PORTAL_CLIENT_ID set it logs its learner in through the portal as an
// Educates workshop gateway does (login.go).
//
// It is built statically (CGO_ENABLED=0), so the image needs nothing else.
//
//	testdash [<port> | <host:port>]   (default $PORT, else 8080; a port alone listens on every interface)
//	testdash sleep        (a child of /fork)
package main

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/caddyportal/caddyportal/internal/e2etest/echo"
)

func main() {
	if len(os.Args) == 2 && os.Args[1] == "sleep" {
		time.Sleep(time.Hour)
		return
	}
	port := os.Getenv("PORT")
	if len(os.Args) == 2 {
		port = os.Args[1]
	}
	if port == "" {
		port = "8080"
	}
	listen := ":" + port // in a container: every interface of its own
	if strings.Contains(port, ":") {
		listen = port // as a process: the address the spawner gives
	}
	var wrap func(http.Handler) http.Handler
	if l := newLogin(); l != nil {
		wrap = l.wrap
	}
	srv, err := echo.New(os.Getenv("SESSION_NAME"), echo.Listen(listen), echo.Wrap(wrap),
		echo.Handle("/env", env), echo.Handle("/file", file), echo.Handle("/eat", eat),
		echo.Handle("/fork", fork), echo.Handle("/dial", dial), echo.Handle("/burn", burn))
	if err != nil {
		fmt.Fprintln(os.Stderr, "testdash:", err)
		os.Exit(1)
	}
	fmt.Println("testdash: listening on", srv.Addr)
	select {}
}

func env(w http.ResponseWriter, _ *http.Request) {
	m := map[string]string{}
	for _, kv := range os.Environ() {
		k, v, _ := strings.Cut(kv, "=")
		m[k] = v
	}
	m["testdash.uid"] = strconv.Itoa(os.Getuid())
	m["testdash.gid"] = strconv.Itoa(os.Getgid())
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(m)
}

func file(w http.ResponseWriter, r *http.Request) {
	name := r.URL.Query().Get("name")
	if r.Method == http.MethodPut {
		b := make([]byte, 1<<16)
		n, _ := r.Body.Read(b)
		if err := os.WriteFile(name, b[:n], 0o600); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
		}
		return
	}
	b, err := os.ReadFile(name)
	if err != nil {
		http.Error(w, err.Error(), http.StatusNotFound)
		return
	}
	_, _ = w.Write(b)
}

var eaten [][]byte

func eat(w http.ResponseWriter, r *http.Request) {
	mb, _ := strconv.Atoi(r.URL.Query().Get("mb"))
	for range mb {
		b := make([]byte, 1<<20)
		for i := range b {
			b[i] = byte(i)
		}
		eaten = append(eaten, b)
	}
	fmt.Fprintf(w, "ate %d MiB\n", mb)
}

func fork(w http.ResponseWriter, r *http.Request) {
	n, _ := strconv.Atoi(r.URL.Query().Get("n"))
	started := 0
	var last error
	for range n {
		c := exec.Command("/proc/self/exe", "sleep")
		if err := c.Start(); err != nil {
			last = err
			break
		}
		started++
	}
	fmt.Fprintf(w, "started %d\n", started)
	if last != nil {
		fmt.Fprintf(w, "error: %v\n", last)
	}
}

// burn spins two goroutines (one per CPU of the test machines) for the
// asked wall time, so a CPU limit shows as CPU time used below it.
func burn(w http.ResponseWriter, r *http.Request) {
	ms, _ := strconv.Atoi(r.URL.Query().Get("ms"))
	before := cpuTime()
	until := time.Now().Add(time.Duration(ms) * time.Millisecond)
	var wg sync.WaitGroup
	for range 2 {
		wg.Go(func() {
			for x := 0; time.Now().Before(until); x++ {
				_ = x * x
			}
		})
	}
	wg.Wait()
	fmt.Fprintf(w, "cpu_ms %d\n", (cpuTime() - before).Milliseconds())
}

// cpuTime is the user and system time this process has used.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func dial(w http.ResponseWriter, r *http.Request) {
	c, err := net.DialTimeout("tcp", r.URL.Query().Get("addr"), 2*time.Second)
	if err != nil {
		fmt.Fprintf(w, "error: %v\n", err)
		return
	}
	c.Close()
	fmt.Fprintln(w, "connected")
}
