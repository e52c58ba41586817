// Command benchdash is the dashboard the benchmark harness's spawn and pool
// scenarios start per session: a tiny HTTP server, so the measurement is
// the portal's cost of starting, probing and proxying an environment, not
// the dashboard's own start-up. It listens on 127.0.0.1:<port> and answers
// every GET with a small page naming its session ($SESSION_NAME, set by the
// process spawner), so the harness can tell the real dashboard from the
// portal's starting page and from another session's dashboard.
//
//	benchdash <port>
//
// It exits on SIGTERM (Go's default), which is how the spawner stops it.
package main

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"strconv"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: benchdash <port>")
		os.Exit(2)
	}
	port, err := strconv.Atoi(os.Args[1])
	if err != nil || port <= 0 || port > 65535 {
		fmt.Fprintf(os.Stderr, "benchdash: bad port %q\n", os.Args[1])
		os.Exit(2)
	}
	l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		fmt.Fprintln(os.Stderr, "benchdash:", err)
		os.Exit(1)
	}
	body := []byte(page(os.Getenv("SESSION_NAME")))
	err = http.Serve(l, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_, _ = w.Write(body)
	}))
	fmt.Fprintln(os.Stderr, "benchdash:", err)
	os.Exit(1)
}

// page is the dashboard page of session name. The harness builds the same
// string to recognise it (bench/spawn.go keeps a copy: the two packages are
// both main packages and cannot import each other).
func page(name string) string {
	return "<!doctype html><title>bench dashboard</title><p id=\"bench-dashboard\">session " + name + "</p>\n"
}
