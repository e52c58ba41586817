// Package gotool finds the go command of the toolchain running a test, for
// tests that build a program of their own (the portal binary, the
// dashboard inside the test container image). It imports nothing of Caddy,
// so tests of Caddy-free packages can use it.
package gotool

import (
	"fmt"
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
	p, err := Find()
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// Find is Path for programs that are not tests (the benchmark harness):
// the go command of the running toolchain, else the one on PATH.
func Find() (string, error) {
	if root := runtime.GOROOT(); root != "" {
		p := filepath.Join(root, "bin", "go")
		if runtime.GOOS == "windows" {
			p += ".exe"
		}
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	p, err := exec.LookPath("go")
	if err != nil {
		return "", fmt.Errorf("no go command: %v", err)
	}
	return p, nil
}
