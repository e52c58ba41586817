package kvcore

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/caddyportal/caddyportal/caddyportal/store"
)

// within fails the test unless ch delivers within a generous deadline
// (which only bounds a failing run).
func within[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(time.Minute):
		t.Fatalf("%s did not happen", what)
		panic("unreachable")
	}
}

func TestCloseWaitsForCallsInFlight(t *testing.T) {
	l := NewLife(nil)
	if err := l.Enter(context.Background()); err != nil {
		t.Fatal(err)
	}
	var released atomic.Int32
	closed := make(chan error, 1)
	go func() {
		closed <- l.Close(func() error { released.Add(1); return nil })
	}()
	// Close has begun: the store's context ends and new calls are refused,
	// while the call in flight goes on.
	within(t, l.Context().Done(), "the end of the store's context")
	if err := l.Enter(context.Background()); !errors.Is(err, store.ErrClosed) {
		t.Fatalf("Enter during Close = %v, want store.ErrClosed", err)
	}
	select {
	case <-closed:
		t.Fatal("Close returned while a call was in flight")
	case <-time.After(50 * time.Millisecond):
	}
	if released.Load() != 0 {
		t.Fatal("the backend was released under a call in flight")
	}
	l.Leave()
	if err := within(t, closed, "Close after the last call left"); err != nil {
		t.Fatal(err)
	}
	if released.Load() != 1 {
		t.Fatalf("release ran %d times, want 1", released.Load())
	}
}

func TestEnterRefusesEndedContext(t *testing.T) {
	l := NewLife(nil)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := l.Enter(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Enter with an ended context = %v, want context.Canceled", err)
	}
	// The refused call was not counted: Close does not wait for it.
	if err := within(t, closeAsync(l), "Close"); err != nil {
		t.Fatal(err)
	}
	// Once closed, store.ErrClosed wins over the context's error.
	if err := l.Enter(ctx); !errors.Is(err, store.ErrClosed) {
		t.Fatalf("Enter after Close = %v, want store.ErrClosed", err)
	}
}

func closeAsync(l *Life) <-chan error {
	ch := make(chan error, 1)
	go func() { ch <- l.Close(nil) }()
	return ch
}

func TestCloseOnceKeepsFirstResult(t *testing.T) {
	l := NewLife(nil)
	boom := errors.New("boom")
	var released atomic.Int32
	release := func() error { released.Add(1); return boom }
	results := make(chan error, 3)
	for range 3 {
		go func() { results <- l.Close(release) }()
	}
	for range 3 {
		if err := within(t, results, "Close"); err != boom {
			t.Errorf("Close = %v, want the first call's %v", err, boom)
		}
	}
	if err := l.Close(nil); err != boom {
		t.Errorf("Close after Close = %v, want %v", err, boom)
	}
	if released.Load() != 1 {
		t.Fatalf("release ran %d times, want 1", released.Load())
	}
	if err := l.Enter(context.Background()); !errors.Is(err, store.ErrClosed) {
		t.Fatalf("Enter after Close = %v, want store.ErrClosed", err)
	}
}

func TestCloseWaitsForBackgroundWork(t *testing.T) {
	l := NewLife(nil)
	var goEnded, ticks atomic.Int32
	started := make(chan struct{})
	l.Go(func() {
		close(started)
		<-l.Context().Done()
		time.Sleep(20 * time.Millisecond) // slow to stop: Close must still wait
		goEnded.Add(1)
	})
	ticked := make(chan struct{}, 1)
	l.Every("tick", time.Millisecond, func() {
		ticks.Add(1)
		select {
		case ticked <- struct{}{}:
		default:
		}
	})
	<-started
	within(t, ticked, "a tick of Every")
	var releasedAfter int32 = -1
	if err := l.Close(func() error { releasedAfter = goEnded.Load(); return nil }); err != nil {
		t.Fatal(err)
	}
	if releasedAfter != 1 {
		t.Fatal("the backend was released before a background goroutine ended")
	}
	n := ticks.Load()
	time.Sleep(20 * time.Millisecond)
	if ticks.Load() != n {
		t.Fatal("Every kept running after Close")
	}
}

func TestSleep(t *testing.T) {
	l := NewLife(nil)
	if err := l.Sleep(context.Background(), time.Millisecond); err != nil {
		t.Fatalf("Sleep = %v, want nil", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := l.Sleep(ctx, time.Hour); !errors.Is(err, context.Canceled) {
		t.Fatalf("Sleep with an ended context = %v, want context.Canceled", err)
	}
	l.Close(nil)
	if err := l.Sleep(context.Background(), time.Hour); !errors.Is(err, store.ErrClosed) {
		t.Fatalf("Sleep after Close = %v, want store.ErrClosed", err)
	}
}

func TestBackgroundPanicIsLogged(t *testing.T) {
	core, logs := observer.New(zapcore.ErrorLevel)
	l := NewLife(zap.New(core))
	defer l.Close(nil)
	l.Safely("test task", func() { panic("boom") })
	entries := logs.FilterMessage("panic in store background task").All()
	if len(entries) != 1 || entries[0].ContextMap()["task"] != "test task" {
		t.Fatalf("logged %v, want one panic entry for the task", logs.All())
	}
	// Every survives a panicking task and keeps running it.
	calls := make(chan struct{}, 10)
	l.Every("panicky", time.Millisecond, func() {
		calls <- struct{}{}
		panic("again")
	})
	within(t, calls, "a first panicking tick")
	within(t, calls, "a tick after a panic")
}

func TestSweepEveryLogs(t *testing.T) {
	quiet := errors.New("reported elsewhere")
	loud := errors.New("disk on fire")
	for _, tc := range []struct {
		name  string
		n     int
		err   error
		level zapcore.Level
		msg   string // "" for nothing logged
	}{
		{"deletions", 3, nil, zapcore.DebugLevel, "expiry sweep"},
		{"nothing due", 0, nil, 0, ""},
		{"failure", 1, loud, zapcore.WarnLevel, "expiry sweep failed"},
		{"closing", 0, store.ErrClosed, 0, ""},
		{"canceled", 0, context.Canceled, 0, ""},
		{"quiet error", 0, quiet, 0, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			core, logs := observer.New(zapcore.DebugLevel)
			l := NewLife(zap.New(core))
			swept := make(chan struct{}, 1)
			l.SweepEvery(time.Millisecond, func(ctx context.Context) (int, error) {
				if ctx != l.Context() {
					t.Error("sweep does not run on the store's context")
				}
				select {
				case swept <- struct{}{}:
				default:
				}
				return tc.n, tc.err
			}, quiet)
			within(t, swept, "a sweep")
			l.Close(nil)
			all := logs.All()
			if tc.msg == "" {
				if len(all) != 0 {
					t.Fatalf("logged %v, want nothing", all)
				}
				return
			}
			if len(all) == 0 || all[0].Message != tc.msg || all[0].Level != tc.level {
				t.Fatalf("logged %v, want %v %q", all, tc.level, tc.msg)
			}
		})
	}
}
