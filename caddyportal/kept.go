package caddyportal

import (
	"errors"
	"fmt"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/caddyportal/caddyportal/caddyportal/gate"
	"github.com/caddyportal/caddyportal/caddyportal/hostlock"
	"github.com/caddyportal/caddyportal/caddyportal/portal"
)

// keptPool holds, per portal and store, what must outlive a config reload:
//   - the registry of open dashboard requests. A reload leaves the old
//     config's WebSockets open (see StreamCloseDelay), and the new config's
//     service ends the streams the old one admitted;
//   - the abuse limits, so that a reload does not forgive an address its
//     failed logins (or its sign-ups, revocations and anonymous starts).
var keptPool = caddy.NewUsagePool()

// kept is what a portal keeps across configs.
type kept struct {
	streams *gate.Streams
	limits  *portal.Limits
}

// Destruct runs when no config serves the portal any more: nothing is left
// to check its streams against, so they end. The limits are memory only.
func (k kept) Destruct() error {
	k.streams.CloseAll()
	return nil
}

// acquireKept returns the portal's kept state. Each call must be matched
// by one releaseKept(key).
func acquireKept(key string) kept {
	v, _, _ := keptPool.LoadOrNew(key, func() (caddy.Destructor, error) {
		return kept{streams: gate.NewStreams(nil), limits: portal.NewLimits(time.Now)}, nil
	})
	return v.(kept)
}

func releaseKept(key string) {
	_, _ = keptPool.Delete(key)
}

// hostLocks holds, per portal and replica name, the machine-wide lock that
// a portal with spawned workshops takes (see package hostlock): its
// configs share it across reloads, and another process is refused it.
var hostLocks = caddy.NewUsagePool()

// heldLock is a pooled hostlock.Lock.
type heldLock struct{ *hostlock.Lock }

// Destruct frees the name when no config of this process uses it.
func (l heldLock) Destruct() error { return l.Close() }

// acquireHostLock takes portal/replica for this process; each success must
// be matched by one releaseHostLock with the key it returns.
func acquireHostLock(portal, replica string) (string, error) {
	key := portal + "/" + replica
	_, _, err := hostLocks.LoadOrNew(key, func() (caddy.Destructor, error) {
		lk, err := hostlock.Acquire(key)
		if err != nil {
			return nil, err
		}
		return heldLock{lk}, nil
	})
	var held *hostlock.HeldError
	if errors.As(err, &held) {
		return "", fmt.Errorf("%s on this machine already runs portal %s as replica %s: the two would take "+
			"each other's dashboards for strays and stop them. Stop it, or give this portal another replica name (or name)",
			held.Holder(), portal, replica)
	}
	return key, err
}

func releaseHostLock(key string) {
	_, _ = hostLocks.Delete(key)
}
