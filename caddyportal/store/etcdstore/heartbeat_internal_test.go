package etcdstore

import (
	"context"
	"slices"
	"strconv"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/caddyportal/caddyportal/caddyportal/store"
	"github.com/caddyportal/caddyportal/caddyportal/store/etcdstore/etcdtest"
)

// TestCurrentAsOf: a store proves how current its watch is while etcd is
// reachable, every change committed before the proven instant has reached
// its Watch subscribers by then, and behind a partition (a relay that
// passes nothing) the proof stops at the instant of the cut until the link
// is mended. Close deletes the store's heartbeat key; Open deletes those of
// replicas that died without closing.
func TestCurrentAsOf(t *testing.T) {
	srv := etcdtest.Start(t)
	relay := etcdtest.NewRelay(t, srv.Endpoints()[0])
	const prefix = "/current/"
	// The relayed store's calls made during the cut give up after
	// RequestTimeout; 2 s keeps the calls before it safe on a busy machine.
	s := openAt(t, Options{Endpoints: []string{relay.Endpoint()}, Prefix: prefix, RequestTimeout: 2 * time.Second})
	other := openAt(t, Options{Endpoints: srv.Endpoints(), Prefix: prefix})
	sub := s.mirror.subscribe("k/")
	defer s.mirror.unsubscribe(sub)

	// A liveness bound, not a speed check.
	const within = 20 * time.Second
	proven := func(after time.Time, what string) {
		t.Helper()
		for deadline := time.Now().Add(within); !s.CurrentAsOf().After(after); time.Sleep(10 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("%s: CurrentAsOf %v never passed %v", what, s.CurrentAsOf(), after)
			}
		}
	}
	write := func(key string) {
		t.Helper()
		if err := other.Update(context.Background(), func(tx store.Txn) error { return tx.Set(key, []byte("v")) }); err != nil {
			t.Fatal(err)
		}
	}

	write("k/1")
	proven(time.Now(), "reachable")
	if got := sub.take(); !slices.Contains(got, "k/1") {
		t.Fatalf("proven current, yet the change committed before was not passed on: %q", got)
	}

	relay.Cut()
	cut := time.Now()
	write("k/2")
	// Long enough for several heartbeats, none of which can come back.
	time.Sleep(8 * heartbeatEvery)
	if at := s.CurrentAsOf(); at.After(cut) {
		t.Fatalf("behind a partition the store claims to be current as of %v, after the cut at %v", at, cut)
	}
	if got := sub.take(); slices.Contains(got, "k/2") {
		t.Fatalf("the relay passed a change during the cut: %q", got)
	}

	relay.Mend()
	proven(time.Now(), "mended")
	if got := sub.take(); !slices.Contains(got, "k/2") {
		t.Fatalf("after the mend, the change made during the cut was not passed on: %q", got)
	}

	// Heartbeat keys: both stores' now; a dead replica's is dropped by the
	// next Open, and a closing store deletes its own.
	cli := srv.Client(t)
	dead := prefix + heartbeatPrefix + "dead"
	old := strconv.Itoa(1) + " " + strconv.FormatInt(time.Now().Add(-2*heartbeatStale).UnixNano(), 10)
	if _, err := cli.Put(context.Background(), dead, old); err != nil {
		t.Fatal(err)
	}
	beats := func() []string {
		t.Helper()
		resp, err := cli.Get(context.Background(), prefix+heartbeatPrefix, clientv3.WithPrefix(), clientv3.WithKeysOnly())
		if err != nil {
			t.Fatal(err)
		}
		var keys []string
		for _, kv := range resp.Kvs {
			keys = append(keys, string(kv.Key))
		}
		slices.Sort(keys)
		return keys
	}
	third := openAt(t, Options{Endpoints: srv.Endpoints(), Prefix: prefix})
	want := []string{other.beats.key, s.beats.key, third.beats.key}
	slices.Sort(want)
	// The new store's first heartbeat is written in the background.
	for deadline := time.Now().Add(within); ; time.Sleep(10 * time.Millisecond) {
		got := beats()
		if slices.Equal(got, want) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("heartbeat keys after a new Open = %q, want the three live stores' %q", got, want)
		}
	}
	if err := third.Close(); err != nil {
		t.Fatal(err)
	}
	if got := beats(); slices.Contains(got, third.beats.key) || len(got) != 2 {
		t.Fatalf("heartbeat keys after Close = %q, want the two open stores' only", got)
	}
}

// openAt opens a store without the background sweeper, closed on cleanup.
func openAt(t *testing.T, opts Options) *Store {
	t.Helper()
	opts.SweepInterval = -1
	s, err := Open(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}
