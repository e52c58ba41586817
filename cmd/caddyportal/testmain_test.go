package main

import (
	"testing"

	"github.com/caddyportal/caddyportal/internal/e2etest"
)

// TestMain is the harness's (e2etest.Main): among other things it removes
// the portal binary the tests built once for all of them.
func TestMain(m *testing.M) { e2etest.Main(m) }
