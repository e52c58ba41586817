package spawner

import "go.uber.org/zap"

// Identity names the portal replica a spawner works for (List, Stop and
// reconciliation touch only the environments of this pair, so two portals
// or two replicas of one on a machine never take each other's) and how
// many environments it may have to run.
type Identity struct {
	Portal, Replica string
	// Capacity is the most sessions of the workshop that may have an
	// environment at once (reserves included): what a spawner may prepare
	// for ahead of time.
	Capacity int
}

// Module is what a spawner's configuration provides (in Caddy, a guest
// module of namespace http.handlers.portal.spawners): the Spawner of one
// workshop for one portal replica. The portal calls it once per config.
type Module interface {
	Spawner(id Identity, log *zap.Logger) (Spawner, error)
}

// Checker is implemented by a Module that can check its configuration for
// a portal replica without creating or contacting anything: the portal
// calls it when a config is loaded (also by `caddy validate`, and for a
// reload that may still fail), and calls Spawner only once the config runs.
type Checker interface {
	Check(id Identity, log *zap.Logger) error
}
