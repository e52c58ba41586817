package caddyportal

import (
	"bufio"
	"context"
	"errors"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/caddyportal/caddyportal/caddyportal/gate"
	"github.com/caddyportal/caddyportal/caddyportal/sessions"
)

// streamsPool keeps one registry of open dashboard requests per portal and
// store. A config reload leaves the old config's WebSockets open (see
// StreamCloseDelay), so the registry must outlive configs: the new config's
// service ends the streams the old one admitted.
var streamsPool = caddy.NewUsagePool()

type pooledStreams struct{ *gate.Streams }

// Destruct runs when no config serves the portal any more: nothing is left
// to check its streams against, so they end.
func (p pooledStreams) Destruct() error {
	p.CloseAll()
	return nil
}

// acquireStreams returns the portal's registry. Each call must be matched
// by one releaseStreams(key).
func acquireStreams(key string) *gate.Streams {
	v, _, _ := streamsPool.LoadOrNew(key, func() (caddy.Destructor, error) {
		return pooledStreams{gate.NewStreams(nil)}, nil
	})
	return v.(pooledStreams).Streams
}

func releaseStreams(key string) {
	_, _ = streamsPool.Delete(key)
}

// checkStream reads a session afresh for the stream registry: live while
// neither STOPPING nor STOPPED, until its expiry.
func checkStream(svc *sessions.Service) gate.CheckFunc {
	return func(ctx context.Context, name string) (bool, time.Time, error) {
		sess, err := svc.Get(ctx, name)
		if errors.Is(err, sessions.ErrSessionNotFound) {
			return false, time.Time{}, nil
		}
		if err != nil {
			return false, time.Time{}, err
		}
		return !sess.State.Ending(), sess.Expires, nil
	}
}

// track registers an admitted dashboard request with the portal's stream
// registry, so that it ends when its session does. It returns the writer
// and request to proxy with (the request's context is cancelled to end it)
// and the func to call when the proxy returns.
func (h *Handler) track(w http.ResponseWriter, r *http.Request, sess *sessions.Session) (http.ResponseWriter, *http.Request, func()) {
	ctx, cancel := context.WithCancel(r.Context())
	r = r.WithContext(ctx)
	stop := cancel
	if isStream(r) {
		// Cancelling the context makes Caddy's proxy close both ends of an
		// upgraded connection; closing the hijacked connection here as
		// well does not depend on that.
		cw := &closingWriter{ResponseWriter: w}
		w = cw
		stop = func() { cancel(); cw.close() }
	}
	done := h.streams.Open(sess.Name, sess.Expires, stop)
	return w, r, func() { done(); cancel() }
}

// closingWriter remembers the connection the proxy hijacks (a WebSocket)
// so that close can end it.
type closingWriter struct {
	http.ResponseWriter
	mu     sync.Mutex
	conn   net.Conn
	closed bool
}

// Unwrap serves http.ResponseController's flushes and deadlines.
func (w *closingWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (w *closingWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	conn, brw, err := http.NewResponseController(w.ResponseWriter).Hijack()
	if err != nil {
		return nil, nil, err
	}
	w.mu.Lock()
	w.conn = conn
	if w.closed {
		_ = conn.Close()
	}
	w.mu.Unlock()
	return conn, brw, nil
}

// close closes the hijacked connection, now or as soon as it is hijacked.
func (w *closingWriter) close() {
	w.mu.Lock()
	w.closed = true
	if w.conn != nil {
		_ = w.conn.Close()
	}
	w.mu.Unlock()
}
