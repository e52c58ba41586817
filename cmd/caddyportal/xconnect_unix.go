//go:build unix

package main

import (
	"os"
	"strings"
	"syscall"
)

// enableExtendedConnect turns on RFC 8441 (WebSockets over HTTP/2 extended
// CONNECT) in Go's HTTP/2 server. Go reads the switch only from GODEBUG when
// net/http initialises, before any code of ours runs, so the binary starts
// itself once more with the setting added. An operator's own
// http2xconnect value (e.g. http2xconnect=0) is left alone.
func enableExtendedConnect() {
	godebug := os.Getenv("GODEBUG")
	if strings.Contains(godebug, "http2xconnect=") {
		return
	}
	exe, err := os.Executable()
	if err != nil {
		return
	}
	if godebug != "" {
		godebug += ","
	}
	env := []string{"GODEBUG=" + godebug + "http2xconnect=1"}
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "GODEBUG=") {
			env = append(env, kv)
		}
	}
	// Exec only returns on failure; then run on without the feature:
	// browsers fall back to WebSockets over HTTP/1.1.
	_ = syscall.Exec(exe, os.Args, env)
}
