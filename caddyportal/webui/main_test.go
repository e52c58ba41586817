package webui_test

import (
	"testing"

	"github.com/caddyportal/caddyportal/caddyportal/spawner/process"
	"github.com/caddyportal/caddyportal/internal/proctest"
)

func TestMain(m *testing.M) {
	// The process spawner's tests run this binary as their dashboards.
	proctest.Dashboard()
	// Every dashboard a test started must be gone when the package ends.
	proctest.Exit(m.Run(), process.MarkerVar)
}
