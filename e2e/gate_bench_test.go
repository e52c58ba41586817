package e2e

import (
	"fmt"
	"io"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/caddyportal/caddyportal/internal/e2etest"
	"github.com/caddyportal/caddyportal/internal/e2etest/echo"
)

// BenchmarkGateProxy compares, in one Caddy process and against one
// upstream, a dashboard request through the session gate (cookie check,
// session lookup, header stripping, Caddy's reverse proxy) with Caddy's
// plain reverse_proxy to the same upstream, and with a plain reverse_proxy
// that receives the same cookie and sets the same three headers as the
// gate, so the gate's own cost and that of the headers can be told apart. Clients run in parallel with keep-alive connections; besides
// ns/op each sub-benchmark reports the 99th percentile latency (p99-ns).
//
//	go test -run '^$' -bench BenchmarkGateProxy -benchtime 20000x ./e2e/
func BenchmarkGateProxy(b *testing.B) {
	up := echo.Start(b, "bench")
	plainPort := e2etest.FreePort(b)
	headersPort := e2etest.FreePort(b)
	plainSite := fmt.Sprintf(`
http://127.0.0.1:%d {
	bind 127.0.0.1
	reverse_proxy %s
}

http://127.0.0.1:%d {
	bind 127.0.0.1
	request_header X-Portal-Session demo-w01-s001
	request_header X-Portal-User bench
	request_header X-Forwarded-Prefix /workshops/session/demo-w01-s001
	reverse_proxy %s
}
`, plainPort, up.Addr, headersPort, up.Addr)
	p := startPortalSites(b, b.TempDir(), gateBody("", up.Addr), "", plainSite)
	tok := p.Token(e2etest.RobotUser, e2etest.RobotPass)
	name, ck, _ := p.Activate(tok, "demo-w01", "bench")

	client := &http.Client{
		Timeout: 30 * time.Second,
		Transport: &http.Transport{
			MaxIdleConns:        256,
			MaxIdleConnsPerHost: 256,
		},
	}
	b.Cleanup(client.CloseIdleConnections)

	run := func(b *testing.B, url, cookie string) {
		// Warm up and check the path works before timing it.
		if err := get1(client, url, cookie); err != nil {
			b.Fatal(err)
		}
		var mu sync.Mutex
		var all []time.Duration
		b.SetParallelism(8) // 8 clients per core
		b.ReportAllocs()
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			var lat []time.Duration
			for pb.Next() {
				start := time.Now()
				if err := get1(client, url, cookie); err != nil {
					b.Error(err)
					return
				}
				lat = append(lat, time.Since(start))
			}
			mu.Lock()
			all = append(all, lat...)
			mu.Unlock()
		})
		b.StopTimer()
		if len(all) > 0 {
			slices.Sort(all)
			b.ReportMetric(float64(all[(len(all)*99)/100].Nanoseconds()), "p99-ns")
			b.ReportMetric(float64(all[len(all)/2].Nanoseconds()), "p50-ns")
		}
	}
	b.Run("gated", func(b *testing.B) {
		run(b, p.Base+sessionPath(name), ck.Name+"="+ck.Value)
	})
	// The client's cookie and the gate's three headers on a plain
	// reverse_proxy: what the identity headers alone cost, so the gate's
	// own cost is the difference to gated.
	b.Run("plain+headers", func(b *testing.B) {
		run(b, fmt.Sprintf("http://127.0.0.1:%d/", headersPort), ck.Name+"="+ck.Value)
	})
	b.Run("plain", func(b *testing.B) {
		run(b, fmt.Sprintf("http://127.0.0.1:%d/", plainPort), "")
	})
}

// get1 fetches url and checks it is the upstream's dashboard page.
func get1(c *http.Client, url, cookie string) error {
	req, err := http.NewRequest("GET", url, nil)
	if err != nil {
		return err
	}
	if cookie != "" {
		req.Header.Set("Cookie", cookie)
	}
	res, err := c.Do(req)
	if err != nil {
		return err
	}
	n, _ := io.Copy(io.Discard, res.Body)
	res.Body.Close()
	if res.StatusCode != 200 || n < 500 {
		return fmt.Errorf("GET %s: %d (%d bytes)", url, res.StatusCode, n)
	}
	return nil
}
