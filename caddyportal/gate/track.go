package gate

import (
	"bufio"
	"context"
	"errors"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/caddyportal/caddyportal/caddyportal/sessions"
)

// CheckSessions reads a session afresh for a stream registry: live while
// neither STOPPING nor STOPPED, until its expiry.
func CheckSessions(svc *sessions.Service) CheckFunc {
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
