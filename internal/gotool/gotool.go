// Package gotool finds the go command of the toolchain running a test, for
// tests that build a program of their own (the portal binary, the
// dashboard inside the test container image). It imports nothing of Caddy,
// so tests of Caddy-free packages can use it.
package gotool

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"
)

// Path returns the go command of the toolchain running the test, so a
// binary is built with the same Go as the tests.
func Path(t testing.TB) string {
	t.Helper()
	if root := runtime.GOROOT(); root != "" {
		p := filepath.Join(root, "bin", "go")
		if runtime.GOOS == "windows" {
			p += ".exe"
		}
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	p, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("no go command: %v", err)
	}
	return p
}
