package webui

import (
	"slices"
	"testing"
	"time"

	"github.com/caddyportal/caddyportal/caddyportal/lifecycle"
	"github.com/caddyportal/caddyportal/caddyportal/sessions"
)

func TestSessionChart(t *testing.T) {
	now := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	all := []*sessions.Session{
		// In use for the whole window.
		{Owner: "a", State: lifecycle.Running, Allocated: now.Add(-8 * time.Hour)},
		// Allocated this very instant: counts in the last bucket.
		{Owner: "b", State: lifecycle.Waiting, Allocated: now},
		// In use from 5h ago until 4h ago (buckets 2..4 of 30 minutes).
		{Owner: "c", State: lifecycle.Stopped, Allocated: now.Add(-5 * time.Hour), Stopped: now.Add(-4 * time.Hour)},
		// Stopped before the window: never counted.
		{Owner: "d", State: lifecycle.Stopped, Allocated: now.Add(-9 * time.Hour), Stopped: now.Add(-7 * time.Hour)},
		// A reserve is capacity, not use.
		{State: lifecycle.Waiting, Created: now.Add(-time.Hour)},
	}
	c := sessionChart(all, now, 6*time.Hour, 12)
	var got []int
	for _, b := range c.Bars {
		got = append(got, b.Count)
	}
	want := []int{1, 1, 2, 2, 2, 1, 1, 1, 1, 1, 1, 2}
	if !slices.Equal(got, want) {
		t.Fatalf("counts = %v, want %v", got, want)
	}
	if c.Max != 2 {
		t.Fatalf("max = %d", c.Max)
	}
	// The tallest bars reach the top margin; bars sit on the baseline.
	for _, b := range c.Bars {
		if b.Y+b.H != chartBase {
			t.Fatalf("bar %+v does not sit on the baseline", b)
		}
		if b.Count == c.Max && b.Y != chartTop {
			t.Fatalf("tallest bar %+v does not reach the top", b)
		}
	}
	if c.Bars[0].Label != "06:00" || c.Bars[1].Label != "" {
		t.Fatalf("labels %q %q", c.Bars[0].Label, c.Bars[1].Label)
	}
}

// TestSessionChartKeepsToTheClock: opened at 12:59:30, the chart's
// buckets still start on the half hour (07:00 to 13:00), so its labels
// read as times of day; the session allocated a moment ago is in the
// last bucket, and one that ended at 06:59 is before the first.
func TestSessionChartKeepsToTheClock(t *testing.T) {
	now := time.Date(2026, 5, 1, 12, 59, 30, 0, time.UTC)
	all := []*sessions.Session{
		{Owner: "a", State: lifecycle.Running, Allocated: now.Add(-30 * time.Second)},
		{Owner: "b", State: lifecycle.Stopped, Allocated: now.Add(-7 * time.Hour), Stopped: time.Date(2026, 5, 1, 6, 59, 0, 0, time.UTC)},
	}
	c := sessionChart(all, now, 6*time.Hour, 12)
	var labels []string
	total := 0
	for _, b := range c.Bars {
		if b.Label != "" {
			labels = append(labels, b.Label)
		}
		total += b.Count
	}
	if want := []string{"07:00", "08:00", "09:00", "10:00", "11:00", "12:00"}; !slices.Equal(labels, want) {
		t.Fatalf("labels %q, want %q", labels, want)
	}
	if last := c.Bars[len(c.Bars)-1]; last.Count != 1 || last.Title != "12:30–13:00 UTC" {
		t.Fatalf("last bucket %+v, want the session allocated at 12:59 in 12:30–13:00", last)
	}
	if total != 1 {
		t.Fatalf("%d sessions counted in all, want only the running one", total)
	}
}
