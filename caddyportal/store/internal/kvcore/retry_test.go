package kvcore

import (
	"context"
	"errors"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyportal/caddyportal/caddyportal/store"
)

// retrier returns a Retrier on a fresh Life that the test closes.
func retrier(t *testing.T, maxAttempts, exclusiveAfter int, pause func(int) time.Duration) *Retrier {
	t.Helper()
	l := NewLife(nil)
	t.Cleanup(func() { l.Close(nil) })
	return &Retrier{Life: l, MaxAttempts: maxAttempts, ExclusiveAfter: exclusiveAfter, Pause: pause}
}

// conflicts returns an attempt that conflicts n times and then returns last.
func conflicts(n int, calls *int, last error) func() error {
	return func() error {
		*calls++
		if *calls <= n {
			return ErrRetry
		}
		return last
	}
}

func TestRunRetriesConflictsUntilDone(t *testing.T) {
	r := retrier(t, 10, 4, nil)
	calls := 0
	if err := r.Run(context.Background(), nil, conflicts(3, &calls, nil)); err != nil {
		t.Fatalf("Run = %v, want nil", err)
	}
	if calls != 4 {
		t.Fatalf("attempt ran %d times, want 4", calls)
	}
}

func TestRunStopsOnNonRetryableError(t *testing.T) {
	boom := errors.New("boom")
	r := retrier(t, 10, 4, nil)
	calls := 0
	err := r.Run(context.Background(), nil, conflicts(2, &calls, boom))
	if err != boom {
		t.Fatalf("Run = %v, want the attempt's own error unwrapped", err)
	}
	if calls != 3 {
		t.Fatalf("attempt ran %d times, want 3", calls)
	}
}

func TestRunGivesUpWithErrConflict(t *testing.T) {
	r := retrier(t, 7, 4, nil)
	calls := 0
	err := r.Run(context.Background(), nil, conflicts(1000, &calls, nil))
	if !errors.Is(err, store.ErrConflict) {
		t.Fatalf("Run = %v, want store.ErrConflict", err)
	}
	if calls != 7 {
		t.Fatalf("attempt ran %d times, want MaxAttempts (7)", calls)
	}
}

func TestRunStopsWhenContextEnds(t *testing.T) {
	r := retrier(t, 50, 4, nil)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	calls := 0
	err := r.Run(ctx, nil, func() error {
		calls++
		if calls == 2 {
			cancel()
		}
		return ErrRetry
	})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Run = %v, want context.Canceled", err)
	}
	if calls != 2 {
		t.Fatalf("attempt ran %d times, want 2", calls)
	}
}

// TestRunPauseEnds: a pause ends early when the caller's context ends or
// the store closes, and Run says which.
func TestRunPauseEnds(t *testing.T) {
	for _, tc := range []struct {
		name string
		end  func(r *Retrier, cancel context.CancelFunc)
		want error
	}{
		{"context", func(_ *Retrier, cancel context.CancelFunc) { cancel() }, context.Canceled},
		{"Close", func(r *Retrier, _ context.CancelFunc) { r.Life.Close(nil) }, store.ErrClosed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			paused := make(chan struct{})
			r := retrier(t, 50, 4, func(int) time.Duration { close(paused); return time.Hour })
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			calls := 0
			done := make(chan error, 1)
			go func() { done <- r.Run(ctx, nil, conflicts(1000, &calls, nil)) }()
			<-paused
			tc.end(r, cancel)
			if err := within(t, done, "the end of the pause"); !errors.Is(err, tc.want) {
				t.Fatalf("Run = %v, want %v", err, tc.want)
			}
			if calls != 1 {
				t.Fatalf("attempt ran %d times, want 1", calls)
			}
		})
	}
}

func TestRunAfterCloseDoesNotRun(t *testing.T) {
	r := retrier(t, 50, 4, nil)
	r.Life.Close(nil)
	ran := false
	err := r.Run(context.Background(), nil, func() error { ran = true; return nil })
	if !errors.Is(err, store.ErrClosed) || ran {
		t.Fatalf("Run after Close = %v (attempt ran: %v), want store.ErrClosed without running", err, ran)
	}
}

func TestRunBeforeRunsFirstAndItsErrorStops(t *testing.T) {
	r := retrier(t, 50, 4, nil)
	var order []string
	stop := errors.New("stop")
	befores := 0
	err := r.Run(context.Background(), func() error {
		befores++
		order = append(order, "before")
		if befores == 3 {
			return stop
		}
		return nil
	}, func() error {
		order = append(order, "attempt")
		return ErrRetry
	})
	if err != stop {
		t.Fatalf("Run = %v, want before's error", err)
	}
	want := []string{"before", "attempt", "before", "attempt", "before"}
	if !slices.Equal(order, want) {
		t.Fatalf("calls %v, want %v", order, want)
	}
}

func TestRunPausesAsThePolicySays(t *testing.T) {
	var asked []int
	r := retrier(t, 5, 100, func(n int) time.Duration {
		asked = append(asked, n)
		if n%2 == 0 {
			return 0 // at once
		}
		return time.Microsecond
	})
	calls := 0
	if err := r.Run(context.Background(), nil, conflicts(4, &calls, nil)); err != nil {
		t.Fatal(err)
	}
	// No pause after the last, successful attempt, nor after giving up.
	if want := []int{1, 2, 3, 4}; !slices.Equal(asked, want) {
		t.Fatalf("Pause asked for %v, want %v", asked, want)
	}
	asked = nil
	calls = 0
	if err := r.Run(context.Background(), nil, conflicts(1000, &calls, nil)); !errors.Is(err, store.ErrConflict) {
		t.Fatal(err)
	}
	if want := []int{1, 2, 3, 4}; !slices.Equal(asked, want) {
		t.Fatalf("Pause asked for %v when giving up after 5, want %v", asked, want)
	}
}

// TestRunSharesThenExcludes checks that the attempts up to ExclusiveAfter
// run side by side with another Run's attempt, and later ones run alone.
func TestRunSharesThenExcludes(t *testing.T) {
	const exclusiveAfter = 2
	r := retrier(t, 50, exclusiveAfter, nil)
	ctx := context.Background()
	var inside atomic.Bool
	otherIn := make(chan struct{})
	release := make(chan struct{})
	otherDone := make(chan error, 1)
	go func() {
		otherDone <- r.Run(ctx, nil, func() error {
			inside.Store(true)
			close(otherIn)
			<-release
			inside.Store(false)
			return nil
		})
	}()
	<-otherIn

	var sawOther []bool // per attempt: was the other Run's attempt running?
	shared := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- r.Run(ctx, nil, func() error {
			sawOther = append(sawOther, inside.Load())
			if len(sawOther) == exclusiveAfter {
				close(shared)
			}
			if len(sawOther) <= exclusiveAfter {
				return ErrRetry
			}
			return nil
		})
	}()
	select {
	case <-shared:
	case <-time.After(time.Minute):
		t.Fatal("optimistic attempts waited for another Run's attempt; they should share")
	}
	// Give a wrongly shared third attempt the time to run and be seen.
	time.Sleep(50 * time.Millisecond)
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if err := <-otherDone; err != nil {
		t.Fatal(err)
	}
	if want := []bool{true, true, false}; !slices.Equal(sawOther, want) {
		t.Fatalf("other Run inside during attempts: %v, want %v", sawOther, want)
	}
}

func TestBackoffWindow(t *testing.T) {
	const floor = 50 * time.Microsecond
	for _, tc := range []struct {
		n      int
		window time.Duration
	}{{1, time.Millisecond}, {2, 2 * time.Millisecond}, {4, 8 * time.Millisecond}, {5, 16 * time.Millisecond}, {100, 16 * time.Millisecond}} {
		var lo, hi time.Duration = time.Hour, 0
		for range 2000 {
			d := Backoff(tc.n)
			if d < floor || d >= floor+tc.window {
				t.Fatalf("Backoff(%d) = %v, want in [%v, %v)", tc.n, d, floor, floor+tc.window)
			}
			lo, hi = min(lo, d), max(hi, d)
		}
		// Full jitter: the waits spread over the window (the chance of
		// 2000 draws all in one half is 2^-1999).
		if lo >= floor+tc.window/2 || hi < floor+tc.window/2 {
			t.Errorf("Backoff(%d) ranged over [%v, %v] only, want jitter over %v", tc.n, lo, hi, tc.window)
		}
	}
}
