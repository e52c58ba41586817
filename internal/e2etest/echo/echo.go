// Package echo is the stand-in workshop dashboard of the end-to-end tests
// and the benchmark harness, written once: an HTML page whose script talks
// to a WebSocket echo, the echo itself, a server-sent event stream, and a
// JSON echo of any other request. It does not import Caddy, so the
// benchmark program (which runs the portal as its own process) uses it too.
package echo

import (
	"context"
	"encoding/json"
	"fmt"
	"html"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// Page is the dashboard page served at "/": the Server's name in the <h1>,
// the session and user the gate named, and a script that opens a WebSocket
// relative to the page (through the gate that is
// /workshops/session/<s>/ws in path mode or /ws on the session host),
// sends one message and shows the echo; it adds #echoed once it came back.
const Page = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Workshop dashboard</title>
<style>body{font-family:sans-serif;margin:2rem}#echo{font-size:1.5rem;color:#063}</style></head>
<body><h1>Workshop dashboard %[1]s</h1>
<p>Session <span id="s">%[2]s</span>, learner <span id="u">%[3]s</span>.</p>
<p>WebSocket: <span id="status">connecting</span></p>
<p id="echo"></p>
<script>
const u = new URL("ws", location.href);
u.protocol = u.protocol === "https:" ? "wss:" : "ws:";
const ws = new WebSocket(u);
const status = document.getElementById("status");
ws.onopen = () => { status.textContent = "open"; ws.send("hello through the gate"); };
ws.onmessage = (e) => {
	document.getElementById("echo").textContent = "echo: " + e.data;
	status.textContent = "echoed";
	const done = document.createElement("div");
	done.id = "echoed";
	document.body.appendChild(done);
};
ws.onerror = () => { status.textContent = "error"; };
</script></body></html>
`

// IsPage reports whether body is the dashboard page.
func IsPage(body []byte) bool {
	return strings.Contains(string(body), "<h1>Workshop dashboard ")
}

// Seen is what the JSON echo reports about a request it received.
type Seen struct {
	Upstream string      `json:"upstream"`
	Method   string      `json:"method"`
	Path     string      `json:"path"`
	RawPath  string      `json:"raw_path"`
	Query    string      `json:"query"`
	Host     string      `json:"host"`
	Header   http.Header `json:"header"`
}

// Server is a running stand-in dashboard. Every listener serves the same
// handler; a pool of dashboard slots is one Server with several listeners.
type Server struct {
	// Name identifies the dashboard in its page and JSON echo.
	Name string
	// Addr is the first listener's host:port, Addrs all of them.
	Addr  string
	Addrs []string
	// Hits counts every request received, WebSocket handshakes included.
	Hits atomic.Int64

	mux    *http.ServeMux
	srv    *http.Server
	cancel context.CancelFunc
	once   sync.Once

	mu       sync.Mutex
	upgrades []http.Header // request headers of each WebSocket handshake
	received []string      // "<session>: <message>" per WebSocket message
}

// Option changes a Server before it starts.
type Option func(*config)

type config struct {
	listeners int
	listen    string
	routes    []route
	wrap      func(http.Handler) http.Handler
}

type route struct {
	pattern string
	h       http.HandlerFunc
}

// Listeners gives the Server n listeners (one per pool slot) instead of one.
func Listeners(n int) Option { return func(c *config) { c.listeners = n } }

// Listen makes the Server listen on addr instead of 127.0.0.1:0: inside a
// container, where the dashboard must answer on the container's own
// interface for the engine to publish it.
func Listen(addr string) Option { return func(c *config) { c.listen = addr } }

// Wrap puts middleware in front of every route (a login, say); nil adds
// none.
func Wrap(mw func(http.Handler) http.Handler) Option { return func(c *config) { c.wrap = mw } }

// Handle adds a route (a net/http ServeMux pattern) next to the standard
// ones, for a dashboard that must misbehave in a particular way.
func Handle(pattern string, h http.HandlerFunc) Option {
	return func(c *config) { c.routes = append(c.routes, route{pattern, h}) }
}

// Start starts a Server for a test on 127.0.0.1 and stops it when the test
// ends.
func Start(t testing.TB, name string, opts ...Option) *Server {
	t.Helper()
	s, err := New(name, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

// New starts a Server on 127.0.0.1; Close stops it.
func New(name string, opts ...Option) (*Server, error) {
	c := config{listeners: 1, listen: "127.0.0.1:0"}
	for _, o := range opts {
		o(&c)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Server{Name: name, mux: http.NewServeMux(), cancel: cancel}
	s.mux.HandleFunc("/{$}", s.page)
	s.mux.HandleFunc("/ws", s.ws)
	s.mux.HandleFunc("/events", events)
	s.mux.HandleFunc("/", s.json)
	for _, r := range c.routes {
		s.mux.HandleFunc(r.pattern, r.h)
	}
	var h http.Handler = s.mux
	if c.wrap != nil {
		h = c.wrap(h)
	}
	s.srv = &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			s.Hits.Add(1)
			h.ServeHTTP(w, r)
		}),
		// Cancelled at Close, which also ends hijacked WebSocket handlers
		// and open event streams.
		BaseContext:       func(net.Listener) context.Context { return ctx },
		ReadHeaderTimeout: 30 * time.Second,
	}
	for range c.listeners {
		l, err := net.Listen("tcp", c.listen)
		if err != nil {
			s.Close()
			return nil, err
		}
		s.Addrs = append(s.Addrs, l.Addr().String())
		go func() { _ = s.srv.Serve(l) }()
	}
	s.Addr = s.Addrs[0]
	return s, nil
}

// Close stops the Server and ends its WebSockets and event streams. It is
// safe to call more than once.
func (s *Server) Close() {
	s.once.Do(func() {
		s.cancel()
		_ = s.srv.Close()
	})
}

func (s *Server) page(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	fmt.Fprintf(w, Page, html.EscapeString(s.Name),
		html.EscapeString(r.Header.Get("X-Portal-Session")), html.EscapeString(r.Header.Get("X-Portal-User")))
}

// ws echoes every message and records, for each, the session whose
// handshake opened the connection (the gate's X-Portal-Session), so a test
// can tell whose typing reached the dashboard.
func (s *Server) ws(w http.ResponseWriter, r *http.Request) {
	owner := r.Header.Get("X-Portal-Session")
	s.mu.Lock()
	s.upgrades = append(s.upgrades, r.Header.Clone())
	s.mu.Unlock()
	c, err := websocket.Accept(w, r, &websocket.AcceptOptions{InsecureSkipVerify: true})
	if err != nil {
		return
	}
	defer c.CloseNow()
	c.SetReadLimit(1 << 20)
	for {
		typ, msg, err := c.Read(r.Context())
		if err != nil {
			return
		}
		s.mu.Lock()
		s.received = append(s.received, owner+": "+string(msg))
		s.mu.Unlock()
		if err := c.Write(r.Context(), typ, msg); err != nil {
			return
		}
	}
}

// events is a server-sent event stream that stays open until the client or
// the proxy goes away: a long-lived response that is not a WebSocket.
func events(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/event-stream")
	_, _ = w.Write([]byte("data: first\n\n"))
	w.(http.Flusher).Flush()
	<-r.Context().Done()
}

func (s *Server) json(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(Seen{s.Name, r.Method, r.URL.Path, r.URL.RawPath, r.URL.RawQuery, r.Host, r.Header})
}

// LastUpgrade returns the request headers of the last WebSocket handshake
// (nil before the first).
func (s *Server) LastUpgrade() http.Header {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.upgrades) == 0 {
		return nil
	}
	return s.upgrades[len(s.upgrades)-1].Clone()
}

// UpgradeSessions returns the session the gate named (X-Portal-Session) in
// each WebSocket handshake so far, in arrival order.
func (s *Server) UpgradeSessions() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]string, len(s.upgrades))
	for i, h := range s.upgrades {
		out[i] = h.Get("X-Portal-Session")
	}
	return out
}

// Received returns the WebSocket messages received so far, in arrival
// order, each as "<session>: <message>".
func (s *Server) Received() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.received...)
}
