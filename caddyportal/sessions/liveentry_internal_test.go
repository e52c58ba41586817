package sessions

import (
	"testing"
	"time"

	"github.com/caddyportal/caddyportal/caddyportal/lifecycle"
	"github.com/caddyportal/caddyportal/caddyportal/spawner"
)

// TestEntryLiveIsEffective: the state an index entry gives a session at a
// time, through its stored form, is the one its record, deadlines applied,
// has, for every state, with and without an owner, an environment, a start
// under way, an expiry and a stop time, at times around each deadline.
func TestEntryLiveIsEffective(t *testing.T) {
	base := time.Date(2026, 12, 7, 9, 0, 0, 0, time.UTC)
	expires, stopped := base.Add(10*time.Minute), base.Add(2*time.Second)
	var times []time.Time
	for _, at := range []time.Time{base, stopped, expires} {
		times = append(times, at.Add(-time.Nanosecond), at, at.Add(time.Nanosecond))
	}
	times = append(times, expires.Add(time.Hour))
	checked, stops := 0, 0
	for _, st := range lifecycle.States {
		for _, owner := range []string{"", "ada"} {
			for hold := range 3 { // none, an environment, a start under way
				for _, exp := range []time.Time{{}, expires} {
					for _, stop := range []time.Time{{}, stopped} {
						sess := &Session{Name: "lab-w01-s001", State: st, Owner: owner, Expires: exp, Stopped: stop,
							Upstream: "127.0.0.1:8080"}
						switch hold {
						case 1:
							sess.Env = &spawner.Env{Session: sess.Name, Addr: "127.0.0.1:9000"}
						case 2:
							sess.Spawning = true
						}
						e, ok := decodeEntry(entryOf(sess).encode())
						if !ok || e.Upstream != sess.Upstream || e.Owned != (owner != "") || e.State != st {
							t.Fatalf("%+v: entry %+v, %v after encoding", sess, e, ok)
						}
						for _, now := range times {
							eff, _ := sess.Effective(now)
							if got := e.effective(now); got != eff {
								t.Fatalf("%+v at %s: the entry says %s, Effective says %s", sess, now.Sub(base), got, eff)
							}
							if eff != st {
								stops++
							}
							checked++
						}
					}
				}
			}
		}
	}
	// Some of the cases are ones whose deadline changes their state.
	if stops == 0 || checked < 1000 {
		t.Fatalf("%d cases, %d changed by a deadline", checked, stops)
	}
}

// TestEntryEncoding: what an entry holds comes back from its stored form,
// an address with spaces included; what is not an entry of this version
// (empty, an address alone as stop 44's index held, a damaged one) is
// refused, so its record is read instead.
func TestEntryEncoding(t *testing.T) {
	at := time.Unix(0, 1765098000123456789)
	for _, e := range []liveEntry{
		{Upstream: "127.0.0.1:8080", State: lifecycle.Running, Owned: true, Expires: at},
		{Upstream: "http://dash host/x y", State: lifecycle.Starting, Queued: true, HoldsEnv: true},
		{State: lifecycle.Stopping, Owned: true, HoldsEnv: true, Expires: at, Stopped: at.Add(time.Second),
			Created: at.Add(-time.Hour), LastActivity: at.Add(-time.Minute)},
		{State: lifecycle.Waiting},
	} {
		got, ok := decodeEntry(e.encode())
		if !ok || got.Upstream != e.Upstream || got.State != e.State || got.Owned != e.Owned ||
			got.Queued != e.Queued || got.HoldsEnv != e.HoldsEnv || got.times() != e.times() {
			t.Fatalf("%+v came back as %+v, %v", e, got, ok)
		}
	}
	good := liveEntry{Upstream: "a:1", State: lifecycle.Running}.encode()
	for _, v := range [][]byte{nil, []byte("127.0.0.1:8080"), []byte("\x02"), good[:len(good)-len("RUNNING a:1")],
		append([]byte("\x02x"), good[2:]...), append([]byte("\x028"), good[2:]...), []byte("\x020 12 0 0 0 RUN a:1"),
		[]byte("\x020 z 0 0 0 RUNNING a:1"), []byte("\x020 0 0 0 RUNNING a:1"),
		[]byte("\x010 0 0 RUNNING a:1")} {
		if e, ok := decodeEntry(v); ok {
			t.Fatalf("%q was read as an entry: %+v", v, e)
		}
	}
}
