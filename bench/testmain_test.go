package main

import (
	"os"
	"testing"

	"github.com/caddyportal/caddyportal/internal/e2etest/engine"
)

// TestMain removes what the harness built and started for the tests (the
// testdash build, an engine service of its own) after the last test.
func TestMain(m *testing.M) {
	code := m.Run()
	engine.Cleanup()
	os.Exit(code)
}
