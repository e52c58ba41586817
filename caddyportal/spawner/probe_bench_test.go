package spawner

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// BenchmarkProbe measures one readiness probe of a dashboard that does not
// listen yet (most probes of a start that takes a while: a class start of
// Python dashboards probes each about 25 times) and of one that answers.
// Each probe is the portal's CPU, spent while the machine is busiest.
func BenchmarkProbe(b *testing.B) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	closed := l.Addr().String()
	l.Close()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("<!doctype html><title>dashboard</title>"))
	}))
	defer srv.Close()
	ready := strings.TrimPrefix(srv.URL, "http://")
	ctx := context.Background()
	b.Run("refused", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if Probe(ctx, closed, "/") == nil {
				b.Fatal("a closed port answered")
			}
		}
	})
	b.Run("answered", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if err := Probe(ctx, ready, "/"); err != nil {
				b.Fatal(err)
			}
		}
	})
}
