package gate

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/caddyportal/caddyportal/caddyportal/sessions"
)

// touchEvery bounds how often one session's activity is written to the
// store: idle timeouts are minutes long, so finer records buy nothing and
// would cost a synced write per request.
const touchEvery = 30 * time.Second

// activity records dashboard use for idle tracking. A plain request counts
// when it arrives. A WebSocket counts for each message the browser sends
// through it, not for merely being open: a forgotten tab with a silent
// terminal must still time out as orphaned. Messages only set a flag; a
// periodic pass turns flags into at most one store write per session.
type activity struct {
	svc     *sessions.Service
	mu      sync.Mutex
	last    map[string]time.Time  // when a plain request last touched a session
	streams map[string]*streamUse // sessions with open streams
}

// streamUse counts a session's open streams and whether any carried a
// message from the browser since the last pass.
type streamUse struct {
	open    int
	traffic atomic.Bool
}

func newActivity(svc *sessions.Service) *activity {
	return &activity{svc: svc, last: map[string]time.Time{}, streams: map[string]*streamUse{}}
}

// request notes a plain request for session, whose record showed activity
// at recorded (the activation, or another replica's touch): within
// touchEvery of that nothing is written, so the first pages after an
// activation do not add a synced write each to the class's burst.
func (a *activity) request(session string, recorded time.Time) {
	now := a.svc.Now()
	a.mu.Lock()
	last := a.last[session]
	if recorded.After(last) {
		last = recorded
	}
	due := now.Sub(last) >= touchEvery
	if due {
		last = now
	}
	a.last[session] = last
	a.mu.Unlock()
	if due {
		go func() { _ = a.svc.Touch(context.Background(), session) }()
	}
}

// stream notes a stream opening for session (its opening request counts as
// activity) and returns the use to mark on each browser message and the
// func to call when the stream ends.
func (a *activity) stream(session string, recorded time.Time) (*streamUse, func()) {
	a.request(session, recorded)
	a.mu.Lock()
	u := a.streams[session]
	if u == nil {
		u = &streamUse{}
		a.streams[session] = u
	}
	u.open++
	a.mu.Unlock()
	return u, func() {
		a.mu.Lock()
		if u.open--; u.open <= 0 {
			delete(a.streams, session)
		}
		a.mu.Unlock()
	}
}

// run makes a pass every touchEvery until ctx ends.
func (a *activity) run(ctx context.Context) {
	t := time.NewTicker(touchEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			a.pass(ctx)
		}
	}
}

// pass touches every session whose streams carried browser messages since
// the previous pass, and forgets plain-request marks old enough not to
// matter.
func (a *activity) pass(ctx context.Context) {
	now := a.svc.Now()
	var names []string
	a.mu.Lock()
	for s, u := range a.streams {
		if u.traffic.Swap(false) {
			names = append(names, s)
		}
	}
	for s, at := range a.last {
		if now.Sub(at) > 10*touchEvery {
			delete(a.last, s)
		}
	}
	a.mu.Unlock()
	for _, s := range names {
		_ = a.svc.Touch(ctx, s)
	}
}

// observeStream makes the browser-to-dashboard direction of a stream mark
// use: for HTTP/2 extended CONNECT that direction is the request body; for
// an HTTP/1.1 Upgrade it is the connection Caddy's proxy hijacks from w.
func observeStream(w http.ResponseWriter, r *http.Request, use *streamUse) http.ResponseWriter {
	if r.Body != nil && r.Body != http.NoBody {
		r.Body = &markingBody{ReadCloser: r.Body, use: use}
	}
	return &markingWriter{ResponseWriter: w, use: use}
}

// markingBody marks use whenever the browser sends bytes.
type markingBody struct {
	io.ReadCloser
	use *streamUse
}

func (b *markingBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if n > 0 {
		b.use.traffic.Store(true)
	}
	return n, err
}

// markingWriter hands out a marking connection when the proxy hijacks it;
// everything else goes to the wrapped writer (Unwrap serves
// http.ResponseController's flushes and deadlines).
type markingWriter struct {
	http.ResponseWriter
	use *streamUse
}

func (w *markingWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (w *markingWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	conn, brw, err := http.NewResponseController(w.ResponseWriter).Hijack()
	if err != nil {
		return nil, nil, err
	}
	// Bytes already in brw were read during the upgrade; the proxy passes
	// them on itself and reads the rest from the returned connection.
	return &markingConn{Conn: conn, use: w.use}, brw, nil
}

// markingConn marks use whenever the browser sends bytes.
type markingConn struct {
	net.Conn
	use *streamUse
}

func (c *markingConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 {
		c.use.traffic.Store(true)
	}
	return n, err
}
