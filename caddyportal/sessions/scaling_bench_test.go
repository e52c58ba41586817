package sessions_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/caddyportal/caddyportal/caddyportal/sessions"
	"github.com/caddyportal/caddyportal/caddyportal/store/badgerstore"
)

// BenchmarkRequestWithLive measures one session request while the
// environment already has live sessions. Allocation decides from the
// environment's counters, so the cost should not grow with the live set:
// compare the sub-benchmarks of one run with each other.
func BenchmarkRequestWithLive(b *testing.B) {
	for _, n := range []int{0, 1000, 5000} {
		b.Run(fmt.Sprintf("live=%d", n), func(b *testing.B) {
			clk := newClock()
			st, err := badgerstore.Open(badgerstore.Options{InMemory: true, Now: clk.Now, SweepInterval: -1})
			if err != nil {
				b.Fatal(err)
			}
			defer st.Close()
			svc, err := sessions.New(context.Background(), st, portal(workshop("lab", n+b.N+10, 0)),
				sessions.Options{Now: clk.Now, ReconcileInterval: time.Hour})
			if err != nil {
				b.Fatal(err)
			}
			defer svc.Close()
			ctx := context.Background()
			for i := range n {
				if _, err := svc.RequestSession(ctx, sessions.Request{Environment: "demo-w01", User: fmt.Sprint("seed-", i)}); err != nil {
					b.Fatal(err)
				}
			}
			b.ResetTimer()
			for i := range b.N {
				if _, err := svc.RequestSession(ctx, sessions.Request{Environment: "demo-w01", User: fmt.Sprint("bench-", i)}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkCatalogCounts measures what a catalog view costs to count an
// environment's live sessions, with 5,000 of them: from the live index
// (Usage, what the catalogs do) against counting the decoded records
// (UsageOf of EnvironmentSessions, what they did), in the same run.
func BenchmarkCatalogCounts(b *testing.B) {
	const live = 5000
	clk := newClock()
	st, err := badgerstore.Open(badgerstore.Options{InMemory: true, Now: clk.Now, SweepInterval: -1})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	svc, err := sessions.New(context.Background(), st, portal(workshop("lab", live, 0)),
		sessions.Options{Now: clk.Now, ReconcileInterval: time.Hour})
	if err != nil {
		b.Fatal(err)
	}
	defer svc.Close()
	ctx := context.Background()
	for i := range live {
		if _, err := svc.RequestSession(ctx, sessions.Request{Environment: "demo-w01", User: fmt.Sprint("seed-", i)}); err != nil {
			b.Fatal(err)
		}
	}
	check := func(b *testing.B, u sessions.Usage) {
		if u.Allocated != live {
			b.Fatalf("%d allocated, want %d", u.Allocated, live)
		}
	}
	b.Run("index", func(b *testing.B) {
		for b.Loop() {
			use, err := svc.Usage(ctx)
			if err != nil {
				b.Fatal(err)
			}
			check(b, use["demo-w01"])
		}
	})
	b.Run("records", func(b *testing.B) {
		for b.Loop() {
			all, err := svc.EnvironmentSessions(ctx)
			if err != nil {
				b.Fatal(err)
			}
			check(b, sessions.UsageOf(all["demo-w01"]))
		}
	})
}

// BenchmarkOverviewWindow measures what the admin overview reads for its
// last six hours at 100,000 stored sessions (5,000 live, 95,000 ended over
// the default retention's last 30 hours): EachRecent, from the live and
// ended indexes, against every record (EachSession, what it read before).
func BenchmarkOverviewWindow(b *testing.B) {
	const live, ended, batches = 5000, 95000, 95
	clk := newClock()
	st, err := badgerstore.Open(badgerstore.Options{InMemory: true, Now: clk.Now, SweepInterval: -1})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	svc, err := sessions.New(context.Background(), st, portal(workshop("lab", live+ended/batches, 0)),
		sessions.Options{Now: clk.Now, StopGrace: grace, ReconcileInterval: time.Hour})
	if err != nil {
		b.Fatal(err)
	}
	defer svc.Close()
	ctx := context.Background()
	n := 0
	for range batches {
		for range ended / batches {
			res, err := svc.RequestSession(ctx, sessions.Request{Environment: "demo-w01", User: fmt.Sprint("u", n)})
			if err == nil {
				_, err = svc.Terminate(ctx, res.Session.Name, "")
			}
			if err != nil {
				b.Fatal(err)
			}
			n++
		}
		clk.Advance(30 * time.Hour / batches)
		if err := svc.Reconcile(ctx); err != nil {
			b.Fatal(err)
		}
	}
	for range live {
		if _, err := svc.RequestSession(ctx, sessions.Request{Environment: "demo-w01", User: fmt.Sprint("u", n)}); err != nil {
			b.Fatal(err)
		}
		n++
	}
	since := clk.Now().Add(-6 * time.Hour)
	// inWindow is the overview's own filter (webui), applied to both.
	inWindow := func(s *sessions.Session) bool {
		return !s.State.Ending() || !s.Stopped.Before(since) || !s.Expires.Before(since)
	}
	var want int
	for _, bm := range []struct {
		name string
		each func(func(*sessions.Session)) error
	}{
		{"records", func(fn func(*sessions.Session)) error { return svc.EachSession(ctx, fn) }},
		{"index", func(fn func(*sessions.Session)) error { return svc.EachRecent(ctx, since, fn) }},
	} {
		b.Run(bm.name, func(b *testing.B) {
			for b.Loop() {
				got := 0
				if err := bm.each(func(s *sessions.Session) {
					if inWindow(s) {
						got++
					}
				}); err != nil {
					b.Fatal(err)
				}
				if want == 0 {
					want = got
				}
				if got != want || got < live {
					b.Fatalf("%d sessions in the window, want %d", got, want)
				}
			}
		})
	}
}
