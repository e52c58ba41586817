package e2e

import (
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyportal/caddyportal/caddyportal/store/etcdstore/etcdtest"
	"github.com/caddyportal/caddyportal/internal/e2etest"
)

// BenchmarkEtcdReplicas measures session requests per second against one
// etcd through 1 and through 3 portal processes (the real binary), with 32
// concurrent clients spread round-robin; compare the two sub-benchmarks of
// one run. Each request allocates a new session for a new user.
func BenchmarkEtcdReplicas(b *testing.B) {
	for _, n := range []int{1, 3} {
		b.Run(fmt.Sprintf("replicas=%d", n), func(b *testing.B) {
			srv := etcdtest.Start(b)
			body := `
		name demo
		storage etcd ` + srv.Endpoints()[0] + ` {
			prefix /bench/
		}
		index https://hub.example.com/
		sessions registered 1 anonymous 1
		robot robot@portal robot-pass
		client test-client test-secret
		workshop lab {
			reserved 0
			capacity 1000000
			upstream {session}.lab.invalid:80
			health_check off
		}
`
			reps := replicas(b, n, body)
			token := robotToken(b, reps[0].Base)
			client := &http.Client{Timeout: 60 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
			var next, failed atomic.Int64
			var wg sync.WaitGroup
			b.ResetTimer()
			start := time.Now()
			for w := range 32 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for {
						i := next.Add(1) - 1
						if i >= int64(b.N) {
							return
						}
						base := reps[(int(i)+w)%n].Base
						r, err := e2etest.DoWith(client, "GET", fmt.Sprintf("%s/workshops/environment/demo-w01/request/?user=b%d&index_url=https://hub.example.com/", base, i), token, nil, nil)
						if err != nil || r.Status != 200 {
							failed.Add(1)
						}
					}
				}()
			}
			wg.Wait()
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "req/s")
			if f := failed.Load(); f > 0 {
				b.Fatalf("%d of %d requests failed", f, b.N)
			}
		})
	}
}
