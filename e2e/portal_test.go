package e2e

import (
	"os"
	"strconv"
	"testing"

	"github.com/caddyportal/caddyportal/internal/e2etest"
)

// TestMain is the harness's: it also runs the portal children of the
// fault tests (e2etest.StartServeChild re-runs this binary).
func TestMain(m *testing.M) { e2etest.Main(m) }

// e2eReplica is the replica name of the spawned portals of this test
// binary: a portal reconciles away every environment of its portal and
// replica it does not hold, so two runs on one machine (or one engine)
// must not share one.
var e2eReplica = "e2e-" + strconv.Itoa(os.Getpid())

// portal is the harness's portal; tests add their own request helpers to
// it as methods.
type portal struct{ *e2etest.Portal }

// resp is a response read to the end.
type resp = e2etest.Resp

// startPortal runs a portal in this process's Caddy (see
// e2etest.StartPortal).
func startPortal(t testing.TB, dir, body string) *portal {
	t.Helper()
	return &portal{e2etest.StartPortal(t, dir, body)}
}

// startPortalSites is startPortal with a site address and extra site
// blocks (see e2etest.StartPortalSites).
func startPortalSites(t testing.TB, dir, body, site, extra string) *portal {
	t.Helper()
	return &portal{e2etest.StartPortalSites(t, dir, body, site, extra)}
}

// remote is a client for a portal served elsewhere (a child process, the
// binary) at base; port and dir may be zero when no test needs them.
func remote(t testing.TB, base string, port int, dir string) *portal {
	return &portal{&e2etest.Portal{T: t, Base: base, Port: port, Dir: dir}}
}
