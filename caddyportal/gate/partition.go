package gate

import (
	"context"
	"time"

	"go.uber.org/zap"
)

// guardShared keeps this replica from holding requests to a shared
// dashboard (a slot of a fixed pool) that it can no longer vouch for. Other
// replicas hand a slot on StopGrace after its session ended; this one
// learns of the end from its store's watch. Cut off from the store (a
// network partition), it would learn nothing and keep the old learner's
// WebSocket open into the next learner's dashboard. So whenever the store
// cannot prove, within half the grace, that this replica has heard of every
// change made before (store.Current), the requests of shared dashboards are
// stopped and refused until it can; browsers reconnect through the gate,
// which reads the session afresh. Spawned and template dashboards are each
// session's alone and are left open. Stores no other process writes offer
// no proof and need none: then it returns at once.
func (g *Gate) guardShared(ctx context.Context) {
	if _, _, shared := g.svc.Current(); !shared {
		return
	}
	t := time.NewTicker(g.svc.StopGrace() / 8)
	defer t.Stop()
	wasStale := false
	for {
		select {
		case <-t.C:
		case <-ctx.Done():
			// Another config's gate, if one serves now, speaks for itself.
			g.streams.Distrust(g, false)
			return
		}
		current, at, _ := g.svc.Current()
		stale := !current
		// The gauge first: whoever sees the requests closed, or served
		// again, sees it agree.
		g.metrics.ReplicaCurrent(g.svc.Config().Name, current)
		stopped := g.streams.Distrust(g, stale)
		switch {
		case stale && !wasStale:
			g.log.Warn("gate: cannot confirm that this replica has heard of other replicas' changes; "+
				"requests to shared dashboards are closed until it can",
				zap.Time("current_as_of", at), zap.Int("closed", stopped))
		case stale && stopped > 0:
			g.log.Info("gate: closed requests to shared dashboards while unconfirmed", zap.Int("closed", stopped))
		case !stale && wasStale:
			g.log.Info("gate: this replica is current again; shared dashboards are served")
		}
		wasStale = stale
	}
}
