package webui

import (
	"testing"
	"time"

	"github.com/caddyportal/caddyportal/caddyportal/sessions"
	"github.com/caddyportal/caddyportal/caddyportal/spawner"
)

func TestCatalogStatus(t *testing.T) {
	for _, tc := range []struct {
		spawned                        bool
		available, allocated, capacity int
		queued                         bool
		want                           string
	}{
		{false, 0, 0, 3, false, "ready"}, // fixed dashboards wait
		{false, 0, 3, 3, false, "full"},
		{true, 1, 3, 3, false, "ready"}, // a ready reserve is handed over even when full
		{true, 0, 1, 3, false, "starts"},
		{true, 0, 1, 3, true, "queued"},
		{true, 0, 3, 3, true, "full"},
		{true, 0, 0, 0, false, "closed"}, // capacity 0 takes no sessions
		{false, 0, 0, 0, false, "closed"},
	} {
		if got := catalogStatus(tc.spawned, tc.available, tc.allocated, tc.capacity, tc.queued); got != tc.want {
			t.Errorf("catalogStatus(%+v) = %q, want %q", tc, got, tc.want)
		}
	}
}

func TestProblems(t *testing.T) {
	now := time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)
	all := []*sessions.Session{
		{Name: "s1", Environment: "e", Reason: sessions.ReasonStartFailed, Stopped: now.Add(-time.Hour),
			Progress: &spawner.Progress{Step: sessions.StepFailed, Message: "HTTP 404"}},
		{Name: "s2", Environment: "e", Reason: "terminated", Stopped: now.Add(-time.Minute)},
		{Name: "s3", Environment: "e", Reason: sessions.ReasonEnvironmentLost, Stopped: now.Add(-time.Minute)},
		{Name: "s4", Environment: "e", Reason: sessions.ReasonStartFailed, Stopped: now.Add(-10 * time.Hour)},
	}
	got := problems(all, now.Add(-6*time.Hour), 20)
	if len(got) != 2 || got[0].Session != "s3" || got[1].Session != "s1" || got[1].Message != "HTTP 404" {
		t.Fatalf("problems = %+v, want s3 then s1", got)
	}
	if got := problems(all, now.Add(-6*time.Hour), 1); len(got) != 1 || got[0].Session != "s3" {
		t.Fatalf("problems with max 1 = %+v", got)
	}
}

func TestMinutesLeft(t *testing.T) {
	for d, want := range map[time.Duration]string{
		-time.Second:                    "less than a minute",
		59 * time.Second:                "less than a minute",
		time.Minute:                     "1 min",
		25*time.Minute + 59*time.Second: "25 min",
		time.Hour:                       "1 h",
		65 * time.Minute:                "1 h 5 min",
	} {
		if got := minutesLeft(d); got != want {
			t.Errorf("minutesLeft(%v) = %q, want %q", d, got, want)
		}
	}
}

func TestReplicaWaiting(t *testing.T) {
	for _, c := range []struct {
		rs   sessions.ReplicaStatus
		want string
	}{
		{sessions.ReplicaStatus{}, "nothing"},
		{sessions.ReplicaStatus{Running: 1}, "1 learner's session"},
		{sessions.ReplicaStatus{Running: 2, Stopping: 1}, "2 learners' sessions and 1 ended session"},
		{sessions.ReplicaStatus{Running: 1, Reserves: 3, Starting: 1, Stopping: 2},
			"1 learner's session, 3 reserves, 1 session starting and 2 ended sessions"},
	} {
		if got := (replicaRow{ReplicaStatus: c.rs}).Waiting(); got != c.want {
			t.Errorf("Waiting(%+v) = %q, want %q", c.rs, got, c.want)
		}
	}
}
