package caddyportal

import (
	"github.com/caddyserver/caddy/v2"

	"github.com/caddyportal/caddyportal/caddyportal/metrics"
)

// metricsPool keeps one set of portal collectors per process. Caddy 2.11
// gives every config a fresh metrics registry, so collectors created per
// config would restart from zero on each reload; instead every config
// registers these same collectors into its own registry, and counters keep
// their values for as long as any config with a portal is running.
var metricsPool = caddy.NewUsagePool()

// metricsKey is the single key of metricsPool: all portals of a process
// share the collectors (their environment labels are distinct).
const metricsKey = "metrics"

type pooledMetrics struct{ *metrics.Metrics }

// Destruct has nothing to release: the collectors only hold memory, and
// the registries that expose them go with their configs.
func (pooledMetrics) Destruct() error { return nil }

// acquireMetrics returns the process's portal collectors, creating them on
// first use. Each call must be matched by one releaseMetrics.
func acquireMetrics() (*metrics.Metrics, error) {
	v, _, err := metricsPool.LoadOrNew(metricsKey, func() (caddy.Destructor, error) {
		// Registered on no registry here: each config registers them
		// into its own with Register.
		m, err := metrics.New(nil)
		if err != nil {
			return nil, err
		}
		return pooledMetrics{m}, nil
	})
	if err != nil {
		return nil, err
	}
	return v.(pooledMetrics).Metrics, nil
}

func releaseMetrics() {
	_, _ = metricsPool.Delete(metricsKey)
}
