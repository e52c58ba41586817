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
	svc, clk := seedStored(b)
	ctx := context.Background()
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
				if got != want || got < seededLive {
					b.Fatalf("%d sessions in the window, want %d", got, want)
				}
			}
		})
	}
}

// seededLive and seededEnded are seedStored's sessions: users u0 to u94999
// each had one that ended, u95000 to u99999 each hold a live one.
const seededLive, seededEnded = 5000, 95000

// seedStored returns a service over an in-memory store holding 100,000
// sessions: 95,000 ended over the default retention's last 30 hours and
// 5,000 live.
func seedStored(b *testing.B) (*sessions.Service, *fakeClock) {
	b.Helper()
	const batches = 95
	clk := newClock()
	st, err := badgerstore.Open(badgerstore.Options{InMemory: true, Now: clk.Now, SweepInterval: -1})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	svc, err := sessions.New(context.Background(), st, portal(workshop("lab", seededLive+seededEnded/batches, 0)),
		sessions.Options{Now: clk.Now, StopGrace: grace, ReconcileInterval: time.Hour})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { svc.Close() })
	ctx := context.Background()
	n := 0
	for range batches {
		for range seededEnded / batches {
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
	for range seededLive {
		if _, err := svc.RequestSession(ctx, sessions.Request{Environment: "demo-w01", User: fmt.Sprint("u", n)}); err != nil {
			b.Fatal(err)
		}
		n++
	}
	return svc, clk
}

// BenchmarkUsersPage measures what the admin users page reads to count the
// sessions of its 100 users at 100,000 stored sessions (seedStored; 50 of
// the users had a session that ended, 50 hold a live one): EachSessionOf,
// from those users' owner and history indexes, against every record
// (EachSession, what it read before).
func BenchmarkUsersPage(b *testing.B) {
	svc, _ := seedStored(b)
	ctx := context.Background()
	var users []string
	for i := range 50 {
		users = append(users, fmt.Sprint("u", i*1900), fmt.Sprint("u", seededEnded+i*100))
	}
	page := map[string]bool{}
	for _, u := range users {
		page[u] = true
	}
	for _, bm := range []struct {
		name string
		each func(func(*sessions.Session)) error
	}{
		{"records", func(fn func(*sessions.Session)) error { return svc.EachSession(ctx, fn) }},
		{"index", func(fn func(*sessions.Session)) error { return svc.EachSessionOf(ctx, users, fn) }},
	} {
		b.Run(bm.name, func(b *testing.B) {
			for b.Loop() {
				total, live := 0, 0
				if err := bm.each(func(s *sessions.Session) {
					if !page[s.Owner] {
						return
					}
					total++
					if !s.State.Ending() {
						live++
					}
				}); err != nil {
					b.Fatal(err)
				}
				if total != 100 || live != 50 {
					b.Fatalf("%d sessions of the page's users, %d live; want 100 and 50", total, live)
				}
			}
		})
	}
}
