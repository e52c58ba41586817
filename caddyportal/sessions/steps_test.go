package sessions_test

import (
	"testing"

	"github.com/caddyportal/caddyportal/caddyportal/sessions"
	"github.com/caddyportal/caddyportal/caddyportal/spawner"
)

// A step's line (the starting page's, the admin's) leaves out a message that only repeats the
// step's title ("Waiting for the dashboard: waiting for the dashboard"),
// and keeps one that says more.
func TestStepLine(t *testing.T) {
	for _, tc := range []struct {
		p              spawner.Progress
		title, message string
	}{
		{spawner.Progress{Step: spawner.StepWaiting, Message: "waiting for the dashboard"}, "Waiting for the dashboard", ""},
		{spawner.Progress{Step: spawner.StepStarting, Message: "creating the test dashboard"}, "Starting", "creating the test dashboard"},
		{spawner.Progress{Step: spawner.StepWaiting, Message: "waiting for the dashboard: HTTP 503"}, "Waiting for the dashboard", "waiting for the dashboard: HTTP 503"},
	} {
		if title, message := sessions.StepLine(tc.p); title != tc.title || message != tc.message {
			t.Errorf("StepLine(%+v) = %q, %q; want %q, %q", tc.p, title, message, tc.title, tc.message)
		}
	}
}

// Every step the portal and the backends report has a title of its own; a
// backend's own step is shown as it is.
func TestStepTitle(t *testing.T) {
	seen := map[string]string{}
	for _, step := range []string{sessions.StepQueued, spawner.StepStarting, spawner.StepStarted, spawner.StepWaiting,
		spawner.StepReady, sessions.StepFailed} {
		title := sessions.StepTitle(step)
		if title == step || title == "" || seen[title] != "" {
			t.Errorf("StepTitle(%q) = %q (also %q's)", step, title, seen[title])
		}
		seen[title] = step
	}
	if got := sessions.StepTitle("pulling"); got != "pulling" {
		t.Errorf("a backend's own step: %q", got)
	}
}
