package process

import (
	"context"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/caddyportal/caddyportal/caddyportal/spawner"
)

// BenchmarkStopClass ends a class of 100 running environments at once,
// 8 stops at a time as the portal's stopper runs them (sessions.maxStops).
// Every stop has to find its environment's processes in /proc and confirm
// that none is left, so the cost of a stop grows with the processes on the
// machine; ns/op is one stop's share of the wall time.
//
//	go test -run '^$' -bench BenchmarkStopClass -benchtime 200x ./caddyportal/spawner/process/
func BenchmarkStopClass(b *testing.B) {
	const class, concurrent = 100, 8
	s, _ := newSpawner(b, helperConfig(b, "sleeper"))
	ctx := context.Background()
	envs := make(chan spawner.Env, class)
	round := 0
	fill := func() {
		for len(envs) < class {
			env, err := s.Start(ctx, specFor("end"+strconv.Itoa(round)+"-"+strconv.Itoa(len(envs))), nil)
			if err != nil {
				b.Fatal(err)
			}
			envs <- env
		}
		round++
	}
	b.Cleanup(func() {
		close(envs)
		for env := range envs {
			_ = s.Stop(context.Background(), env)
		}
	})
	var cpu time.Duration
	b.ResetTimer()
	for done := 0; done < b.N; {
		b.StopTimer()
		fill()
		n := min(class, b.N-done)
		b.StartTimer()
		cpu0 := selfCPU(b)
		var wg sync.WaitGroup
		sem := make(chan struct{}, concurrent)
		for range n {
			env := <-envs
			sem <- struct{}{}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer func() { <-sem }()
				if err := s.Stop(ctx, env); err != nil {
					b.Error(err)
				}
			}()
		}
		wg.Wait()
		cpu += selfCPU(b) - cpu0
		done += n
	}
	b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N), "cpu-ns/op")
}

// selfCPU is the CPU time this process has used.
func selfCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
