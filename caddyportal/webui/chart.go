package webui

import (
	"time"

	"github.com/caddyportal/caddyportal/caddyportal/sessions"
)

// chart is a small bar chart of sessions in use over recent hours, laid
// out on the server so the page needs no script.
type chart struct {
	Bars   []bar
	Max    int
	Width  int
	Height int
	// Base is the y of the bars' baseline.
	Base int
}

// bar is one bucket: its geometry and what it shows.
type bar struct {
	X, Y, W, H int
	Count      int
	Label      string // start time of the bucket, every few bars
	Title      string // tooltip
}

const (
	chartWidth  = 600
	chartHeight = 160
	chartBase   = 130 // leaves room for the time labels below
	chartTop    = 16  // leaves room for the counts above
)

// sessionChart counts, for each of n buckets covering span up to now, the
// owned sessions in use at some point of the bucket: allocated before its
// end and not stopped before its start. Reserves are left out: they are
// capacity, not use. The buckets keep to the clock (the last one is the
// current half hour, for 30-minute buckets), so the labels read 07:00,
// 08:00 rather than whatever minute the page was opened at.
func sessionChart(all []*sessions.Session, now time.Time, span time.Duration, n int) chart {
	c := chart{Width: chartWidth, Height: chartHeight, Base: chartBase}
	step := span / time.Duration(n)
	end := now.Truncate(step)
	if end.Before(now) {
		end = end.Add(step)
	}
	start := end.Add(-span)
	counts := make([]int, n)
	for _, s := range all {
		if s.Owner == "" {
			continue
		}
		from := s.Allocated
		if from.IsZero() {
			from = s.Created
		}
		to := now
		if s.State.Ending() {
			to = s.Stopped
			if to.IsZero() || to.After(now) {
				to = now
			}
		}
		for i := range counts {
			b0 := start.Add(time.Duration(i) * step)
			b1 := b0.Add(step)
			// The last bucket includes now itself, so a session allocated
			// this instant shows.
			inside := from.Before(b1) || i == n-1 && !from.After(b1)
			if inside && !to.Before(b0) {
				counts[i]++
			}
		}
	}
	for _, k := range counts {
		c.Max = max(c.Max, k)
	}
	slot := chartWidth / n
	scale := max(c.Max, 1)
	for i, k := range counts {
		h := k * (chartBase - chartTop) / scale
		b0 := start.Add(time.Duration(i) * step)
		b := bar{X: i*slot + 2, W: slot - 4, H: h, Y: chartBase - h, Count: k,
			Title: b0.UTC().Format("15:04") + "–" + b0.Add(step).UTC().Format("15:04") + " UTC"}
		if i%2 == 0 {
			b.Label = b0.UTC().Format("15:04")
		}
		c.Bars = append(c.Bars, b)
	}
	return c
}
