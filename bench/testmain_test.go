package main

import (
	"testing"

	"github.com/caddyportal/caddyportal/internal/e2etest"
)

// TestMain is the test harness's (e2etest.Main): among other things it
// removes what the benchmark harness built and started for the tests (the
// testdash build, an engine service of its own) and fails the run if the
// harness left dashboard processes running.
func TestMain(m *testing.M) { e2etest.Main(m) }
