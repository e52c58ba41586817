package process

import (
	"context"
	"testing"
)

// BenchmarkReadyNotListening is one readiness probe of an environment whose
// dashboard is still starting (the process runs, nothing listens on its
// port yet): the answer of most probes during a class start.
//
//	go test -run '^$' -bench BenchmarkReadyNotListening -count 3 ./caddyportal/spawner/process/
func BenchmarkReadyNotListening(b *testing.B) {
	s, _ := newSpawner(b, helperConfig(b, "silent"))
	ctx := context.Background()
	env, err := s.Start(ctx, specFor("ready-bench"), nil)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = s.Stop(context.Background(), env) })
	b.ReportAllocs()
	for b.Loop() {
		if err := s.Ready(ctx, env); err == nil {
			b.Fatal("a dashboard that never listens was ready")
		}
	}
}
