package gate

import (
	"net/http"
	"sync"
	"time"

	"go.uber.org/zap"
)

// The access audit: what Pomerium and Teleport log for every access, as
// structured log events under the gate's logger named "access", without a
// line per HTTP request: the first request of a session from a new client
// address, each WebSocket opened and closed, and every refusal with why.
// Each event has "event", "session", "client" and, where known, "user".
const (
	auditNewAddress = "new-address"
	auditWSOpened   = "websocket-opened"
	auditWSClosed   = "websocket-closed"
	auditRefused    = "refused"
)

// Bounds of the memory of addresses seen: per session, and sessions in
// all. Past them the memory starts again, which at worst logs an address
// twice.
const (
	maxAddressesPerSession = 16
	maxAuditedSessions     = 10000
)

// audit remembers the client addresses each session was used from.
type audit struct {
	log  *zap.Logger
	mu   sync.Mutex
	seen map[string]map[string]struct{}
}

func newAudit(log *zap.Logger) *audit {
	return &audit{log: log.Named("access"), seen: map[string]map[string]struct{}{}}
}

// admitted logs the first request of session from the request's address.
func (a *audit) admitted(r *http.Request, client, session, user string) {
	a.mu.Lock()
	addrs := a.seen[session]
	_, known := addrs[client]
	if !known {
		if addrs == nil || len(addrs) >= maxAddressesPerSession {
			if len(a.seen) >= maxAuditedSessions {
				clear(a.seen)
			}
			addrs = map[string]struct{}{}
			a.seen[session] = addrs
		}
		addrs[client] = struct{}{}
	}
	a.mu.Unlock()
	if !known {
		a.log.Info("dashboard access from a new address", zap.String("event", auditNewAddress),
			zap.String("session", session), zap.String("user", user), zap.String("client", client),
			zap.String("user_agent", r.UserAgent()))
	}
}

// websocket logs a WebSocket opened and returns what logs its close.
func (a *audit) websocket(client, session, user, path string) func() {
	begin := time.Now()
	a.log.Info("dashboard WebSocket opened", zap.String("event", auditWSOpened), zap.String("session", session),
		zap.String("user", user), zap.String("client", client), zap.String("path", path))
	return func() {
		a.log.Info("dashboard WebSocket closed", zap.String("event", auditWSClosed), zap.String("session", session),
			zap.String("user", user), zap.String("client", client), zap.String("path", path),
			zap.Duration("open_for", time.Since(begin)))
	}
}

// refused logs a refused dashboard request with its reason. The session
// name came from the client and is logged as such (zap escapes it).
func (a *audit) refused(client, session, reason string, status int) {
	a.log.Info("dashboard access refused", zap.String("event", auditRefused), zap.String("session", session),
		zap.String("client", client), zap.String("reason", reason), zap.Int("status", status))
}

// forget drops what is remembered of an ended session.
func (a *audit) forget(session string) {
	a.mu.Lock()
	delete(a.seen, session)
	a.mu.Unlock()
}
