package container_test

import (
	"os"
	"testing"

	"github.com/caddyportal/caddyportal/internal/e2etest/engine"
)

// TestMain holds the engine for the package's tests (see engine.Exclusive).
func TestMain(m *testing.M) {
	release := engine.Exclusive(nil)
	code := m.Run()
	release()
	os.Exit(code)
}
