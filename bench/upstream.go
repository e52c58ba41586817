package main

import (
	"context"
	"fmt"
	"html"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/coder/websocket"
)

// dashboardPage is what a stand-in dashboard serves at /: a small HTML page
// of the size of a terminal or editor entry page's shell.
const dashboardPage = `<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>Workshop dashboard %[1]s</title>
<style>body{font-family:sans-serif;margin:2em}pre{background:#111;color:#eee;padding:1em}</style></head>
<body>
<h1>Workshop dashboard %[1]s</h1>
<p>Session <span id="s">%[2]s</span>, learner <span id="u">%[3]s</span>.</p>
<pre>$ kubectl get pods
NAME                     READY   STATUS    RESTARTS   AGE
web-6d4cf56db6-9xk2p     1/1     Running   0          2m
</pre>
<script>/* a real dashboard would open /ws here */</script>
</body>
</html>
`

// dashboards are stand-in workshop dashboards on 127.0.0.1: one listener
// per session slot, each serving the page at / and a WebSocket echo at /ws.
type dashboards struct {
	Addrs  []string
	srv    *http.Server
	cancel context.CancelFunc
}

func startDashboards(n int) (*dashboards, error) {
	ctx, cancel := context.WithCancel(context.Background())
	d := &dashboards{cancel: cancel}
	mux := http.NewServeMux()
	mux.HandleFunc("/ws", func(w http.ResponseWriter, r *http.Request) {
		c, err := websocket.Accept(w, r, &websocket.AcceptOptions{InsecureSkipVerify: true})
		if err != nil {
			return
		}
		defer c.CloseNow()
		for {
			typ, msg, err := c.Read(r.Context())
			if err != nil {
				return
			}
			if err := c.Write(r.Context(), typ, msg); err != nil {
				return
			}
		}
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprintf(w, dashboardPage, html.EscapeString(r.Host),
			html.EscapeString(r.Header.Get("X-Portal-Session")), html.EscapeString(r.Header.Get("X-Portal-User")))
	})
	d.srv = &http.Server{
		Handler: mux,
		// Cancelled at close, which also ends hijacked WebSocket handlers.
		BaseContext:       func(net.Listener) context.Context { return ctx },
		ReadHeaderTimeout: 30 * time.Second,
	}
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			d.Close()
			return nil, err
		}
		d.Addrs = append(d.Addrs, l.Addr().String())
		go func() { _ = d.srv.Serve(l) }()
	}
	return d, nil
}

// Close stops the dashboards and their WebSockets.
func (d *dashboards) Close() {
	d.cancel()
	_ = d.srv.Close()
}

// isDashboardPage checks a body is the stand-in page.
func isDashboardPage(b []byte) bool {
	return strings.Contains(string(b), "<h1>Workshop dashboard ")
}
