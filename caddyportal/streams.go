package caddyportal

import (
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/caddyportal/caddyportal/caddyportal/gate"
	"github.com/caddyportal/caddyportal/caddyportal/portal"
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

// limitsPool keeps one set of abuse limits per portal and store, so that a
// config reload does not forgive an address its failed logins (or its
// sign-ups, revocations and anonymous starts).
var limitsPool = caddy.NewUsagePool()

type pooledLimits struct{ *portal.Limits }

// Destruct has nothing to free: the counters are memory only.
func (pooledLimits) Destruct() error { return nil }

// acquireLimits returns the portal's limits. Each call must be matched by
// one releaseLimits(key).
func acquireLimits(key string) *portal.Limits {
	v, _, _ := limitsPool.LoadOrNew(key, func() (caddy.Destructor, error) {
		return pooledLimits{portal.NewLimits(time.Now)}, nil
	})
	return v.(pooledLimits).Limits
}

func releaseLimits(key string) {
	_, _ = limitsPool.Delete(key)
}
