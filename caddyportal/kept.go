package caddyportal

import (
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/caddyportal/caddyportal/caddyportal/gate"
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
