package sessions_test

import (
	"context"
	"testing"

	"github.com/caddyportal/caddyportal/caddyportal/sessions"
	"github.com/caddyportal/caddyportal/caddyportal/store"
	"github.com/caddyportal/caddyportal/caddyportal/store/etcdstore"
	"github.com/caddyportal/caddyportal/caddyportal/store/etcdstore/etcdtest"
)

// On a store only this process uses, a portal block without `replica`
// keeps the name of its first start, whatever the host is called later;
// a store from before the name was kept takes the name its live
// environments were started under. On a store replicas share, each is
// called after its own host.
func TestStoredReplica(t *testing.T) {
	ctx := context.Background()
	stored := func(st store.Store, name string) string {
		t.Helper()
		got, err := sessions.StoredReplica(ctx, st, name)
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	clk := newClock()

	fresh := openStore(t, clk)
	if got := stored(fresh, "host-1"); got != "host-1" {
		t.Fatalf("first start: %q, want the host's name", got)
	}
	if got := stored(fresh, "host-2"); got != "host-1" {
		t.Fatalf("after the host was renamed: %q, want the first start's name", got)
	}

	// A store whose live environments were started by "old-host" before
	// the name was kept.
	upgraded := openStore(t, clk)
	svc := newSpawnService(t, upgraded, clk, portal(spawnWorkshop("lab", 2, 0)), newLoopSpawner(), sessions.Options{Replica: "old-host"})
	name := request(t, svc, "demo-w01", "u1").Session.Name
	eventually(t, "WAITING", func() bool { return stateIs(svc, name, "WAITING") })
	if got := stored(upgraded, "new-host"); got != "old-host" {
		t.Fatalf("a store with live environments of old-host: %q", got)
	}

	srv := etcdtest.Start(t)
	shared, err := etcdstore.Open(ctx, etcdstore.Options{Endpoints: srv.Endpoints(), Prefix: "/stored-replica/", SweepInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer shared.Close()
	for _, host := range []string{"node-a", "node-b"} {
		if got := stored(shared, host); got != host {
			t.Fatalf("replica on %s of a shared store: %q", host, got)
		}
	}
}
