package e2e

import (
	"strconv"
	"sync/atomic"
	"testing"

	"github.com/caddyportal/caddyportal/internal/e2etest"
)

// BenchmarkSessionRequest measures the REST session request end to end on a
// real Caddy server: HTTP, bearer check, allocation and the durable (synced)
// Badger commit. Each iteration allocates a new session for a new user.
// The sub-benchmark "baseline" serves a request Caddy answers without the
// portal on the same server, so the portal's own cost is the difference.
//
//	go test -run '^$' -bench BenchmarkSessionRequest -benchtime 2000x ./e2e/
func BenchmarkSessionRequest(b *testing.B) {
	dir := b.TempDir()
	body := `
		name bench
		storage badger {dir}
		index https://hub.example.com/
		robot robot@portal robot-pass
		client test-client test-secret
		workshop lab {
			reserved 0
			capacity 1000000
			upstream {session}.lab.invalid:80
			health_check off
		}
`
	p := startPortal(b, dir, body)
	tok := p.Token(e2etest.RobotUser, e2etest.RobotPass)
	var n atomic.Int64
	b.Run("request", func(b *testing.B) {
		b.SetParallelism(8)
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				r := p.Request(tok, "bench-w01", "user=u"+strconv.FormatInt(n.Add(1), 10))
				if r.Status != 200 {
					b.Errorf("status %d: %s", r.Status, r.Body)
					return
				}
			}
		})
	})
	b.Run("baseline", func(b *testing.B) {
		b.SetParallelism(8)
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if r := p.Do("GET", "/not-portal", "", nil, nil); r.Status != 404 {
					b.Errorf("status %d", r.Status)
					return
				}
			}
		})
	})
}
