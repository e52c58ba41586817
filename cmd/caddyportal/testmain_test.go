package main

import (
	"os"
	"testing"

	"github.com/caddyportal/caddyportal/internal/e2etest"
)

// TestMain removes the portal binary the tests built once for all of them
// (e2etest.Binary) after the last test.
func TestMain(m *testing.M) {
	code := m.Run()
	e2etest.Cleanup()
	os.Exit(code)
}
