package container_test

import (
	"fmt"
	"os"
	"testing"

	"github.com/caddyportal/caddyportal/internal/e2etest/engine"
)

// TestMain holds the engine for the package's tests (see engine.Exclusive)
// and removes what they built and started (engine.Cleanup).
func TestMain(m *testing.M) {
	release := engine.Exclusive(nil)
	code := m.Run()
	engine.Cleanup()
	release()
	if left := engine.Leftovers(); len(left) > 0 {
		fmt.Fprintf(os.Stderr, "the tests left %v in the package directory\n", left)
		code = max(code, 1)
	}
	os.Exit(code)
}
