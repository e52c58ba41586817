package caddyportal_test

import (
	"strconv"
	"sync/atomic"
	"testing"
)

// BenchmarkSessionRequest measures the REST session request end to end on a
// real Caddy server: HTTP, bearer check, allocation and the durable (synced)
// Badger commit. Each iteration allocates a new session for a new user.
// The sub-benchmark "baseline" serves a request Caddy answers without the
// portal on the same server, so the portal's own cost is the difference.
//
//	go test -run '^$' -bench BenchmarkSessionRequest -benchtime 2000x ./caddyportal/
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
	p := startPortalB(b, dir, body)
	tok := p.token(robotUser, robotPass)
	var n atomic.Int64
	b.Run("request", func(b *testing.B) {
		b.SetParallelism(8)
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				r := p.request(tok, "bench-w01", "user=u"+strconv.FormatInt(n.Add(1), 10))
				if r.status != 200 {
					b.Errorf("status %d: %s", r.status, r.body)
					return
				}
			}
		})
	})
	b.Run("baseline", func(b *testing.B) {
		b.SetParallelism(8)
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if r := p.do("GET", "/not-portal", "", nil, nil); r.status != 404 {
					b.Errorf("status %d", r.status)
					return
				}
			}
		})
	})
}
