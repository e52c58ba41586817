package spawner

import (
	"fmt"
	"net"
)

// CheckBindHost refuses a bind host that is an unspecified address
// (0.0.0.0, ::). The gate dials the address a spawner records, and a
// connection to an unspecified address goes to the dialling machine's own
// loopback: on another replica that is whichever of its own dashboards has
// the same port, another learner's. The dashboards would also listen on
// every interface of the machine, reachable without the gate.
func CheckBindHost(host string) error {
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		return fmt.Errorf("bind %s: an unspecified address cannot be dialled (each replica would reach its own "+
			"loopback) and would open the dashboards on every interface, past the gate; use an address of this "+
			"machine: 127.0.0.1 (the default) for one replica, or one the other replicas reach", host)
	}
	return nil
}
