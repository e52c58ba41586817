package sessions

import (
	"context"
	"errors"
	"sort"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/caddyportal/caddyportal/caddyportal/lifecycle"
	"github.com/caddyportal/caddyportal/caddyportal/store"
)

// StoredReplica is the replica name for a portal block that names none,
// given name, the default (the host's name). On a store that only this
// process uses (Badger) it is the name the store kept from its first
// start: environments belong to the replica that started them, and a host
// name that changes (a container's, at every restart) would otherwise
// leave every session's environment to a replica that never comes back,
// unchecked, never stopped and holding its place. A store without a kept
// name takes the one its live environments were started under, when they
// agree, else name. On a store replicas share, each replica is its own
// host's: name is returned as it is.
func StoredReplica(ctx context.Context, st store.Store, name string) (string, error) {
	if _, shared := unwrapStore(st).(store.Watcher); shared {
		return name, nil
	}
	err := st.Update(ctx, func(tx store.Txn) error {
		v, err := tx.Get(keyReplica)
		switch {
		case err == nil:
			name = string(v)
			return nil
		case !errors.Is(err, store.ErrNotFound):
			return err
		}
		owners, err := liveOwners(tx)
		if err != nil {
			return err
		}
		if len(owners) == 1 {
			name = owners[0]
		}
		return tx.Set(keyReplica, []byte(name))
	})
	return name, err
}

// liveOwners lists the replicas that own the environments of live
// sessions, sorted.
func liveOwners(tx store.Txn) ([]string, error) {
	seen := map[string]bool{}
	err := eachLiveRecord(tx, func(sess *Session) {
		if sess.EnvOwner != "" {
			seen[sess.EnvOwner] = true
		}
	})
	owners := make([]string, 0, len(seen))
	for o := range seen {
		owners = append(owners, o)
	}
	sort.Strings(owners)
	return owners, err
}

// Errors of the replica actions.
var (
	// ErrReplicaNotFound: no live session's environment belongs to the
	// replica, and no beat of it is kept.
	ErrReplicaNotFound = errors.New("replica not found")
	// ErrReplicaRunning refuses to release a replica that is running: the
	// one answering, or one that began a reconcile pass within the last
	// 30 seconds.
	ErrReplicaRunning = errors.New("replica is running")
)

// ReplicaStatus is a replica of this portal as the store knows it: from
// its beat (on a store replicas share) and from the live sessions whose
// environments it started and alone checks and stops.
type ReplicaStatus struct {
	Name string
	// This is the replica answering.
	This bool
	// LastBeat is when it last began a reconcile pass, by its own clock;
	// zero when not known (a store no other process shares, or a replica
	// that has not beaten within a day).
	LastBeat time.Time
	// Silent is set for another replica without a beat within the last 30
	// seconds: stopped, cut off from the store, or gone. Its learners'
	// dashboards may still run (any replica that reaches them proxies to
	// them), but nobody checks, stops or replaces its environments until
	// it returns or is released.
	Silent bool
	// Its live sessions, by what they wait for: Running are learners'
	// sessions with an environment, Reserves started spares, Starting
	// starts it claimed or queued, Stopping ended sessions whose
	// environment it has still to stop (each keeps its place until then).
	Running, Reserves, Starting, Stopping int
}

// Holds counts the live sessions that wait for the replica.
func (r ReplicaStatus) Holds() int { return r.Running + r.Reserves + r.Starting + r.Stopping }

// Stranded reports a replica that is not running while sessions wait for
// it: what the admin overview warns of and the stranded sessions gauge
// counts.
func (r ReplicaStatus) Stranded() bool { return r.Silent && r.Holds() > 0 }

// Replicas lists this replica, every replica that beat within the last
// day, and every replica that owns a live session's environment: this one
// first, then by name.
func (s *Service) Replicas(ctx context.Context) ([]ReplicaStatus, error) {
	var byName map[string]*ReplicaStatus // made afresh by each try of the view
	of := func(name string) *ReplicaStatus {
		r := byName[name]
		if r == nil {
			r = &ReplicaStatus{Name: name}
			byName[name] = r
		}
		return r
	}
	var beating map[string]bool
	err := s.st.View(ctx, func(tx store.Txn) error {
		now := s.now()
		byName = map[string]*ReplicaStatus{s.replica: {Name: s.replica, This: true}}
		beating = map[string]bool{}
		if s.shared {
			err := tx.Scan(prefixBeat, func(key string, v []byte) error {
				r := of(strings.TrimPrefix(key, prefixBeat))
				r.LastBeat, beating[r.Name] = beatAt(v, now)
				return nil
			})
			if err != nil {
				return err
			}
		}
		err := eachLiveRecord(tx, func(sess *Session) {
			if !waitsForOwner(sess, now) {
				return
			}
			r := of(sess.EnvOwner)
			switch st, _ := sess.Effective(now); {
			case st.Ending():
				r.Stopping++
			case st == lifecycle.Starting:
				r.Starting++
			case sess.Reserved():
				r.Reserves++
			default:
				r.Running++
			}
		})
		for _, r := range byName {
			r.Silent = !r.This && !beating[r.Name]
		}
		return err
	})
	if err != nil {
		return nil, vocabulary(err)
	}
	out := make([]ReplicaStatus, 0, len(byName))
	for _, r := range byName {
		out = append(out, *r)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].This != out[j].This {
			return out[i].This
		}
		return out[i].Name < out[j].Name
	})
	return out, nil
}

// waitsForOwner reports whether a live session waits for the replica that
// owns its environment: one that runs or is being started or stopped there,
// or a start queued there.
func waitsForOwner(sess *Session, now time.Time) bool {
	if sess.EnvOwner == "" {
		return false
	}
	st, _ := sess.Effective(now)
	return sess.holdsEnv() || st == lifecycle.Starting
}

// eachLiveRecord calls fn with the record of every live session (reserves
// included), in the live index's order.
func eachLiveRecord(tx store.Txn, fn func(*Session)) error {
	return tx.Scan(prefixLiveIndex, func(key string, _ []byte) error {
		v, err := tx.Get(keySession(key[strings.LastIndexByte(key, '/')+1:]))
		if errors.Is(err, store.ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		var sess Session
		if unmarshal(v, &sess) == nil {
			fn(&sess)
		}
		return nil
	})
}

// Released is what ReleaseReplica did.
type Released struct {
	// Ended counts the sessions ended (environment-lost), their places
	// freed: learners' sessions, reserves, and ended sessions that waited
	// for the replica to stop their environment.
	Ended int
	// Restarted counts the sessions still starting that this replica took
	// over and starts afresh: their learners keep waiting, not failing.
	Restarted int
}

// ReleaseReplica gives up on a replica that is gone for good (its machine
// lost, or scaled away): every live session whose environment it started
// ends, environment-lost, and its place is free at once; starts it had
// not finished are taken over by this replica. Nothing of the released
// environments is stopped, nobody else can reach them: should the replica
// start again, its start-up finds them without a live session and stops
// them as strays. A replica that is running is refused (ErrReplicaRunning):
// this one, or one that beat within the last 30 seconds. Each session is
// released in a transaction of its own that reads the replica's beat, so
// a replica that returns meanwhile keeps the rest.
func (s *Service) ReleaseReplica(ctx context.Context, name string) (Released, error) {
	var done Released
	if name == s.replica {
		return done, ErrReplicaRunning
	}
	var names []string
	beat := false
	err := s.st.View(ctx, func(tx store.Txn) error {
		names, beat = names[:0], false
		if s.shared {
			_, err := tx.Get(keyBeat(name))
			if err != nil && !errors.Is(err, store.ErrNotFound) {
				return err
			}
			beat = err == nil
		}
		now := s.now()
		return eachLiveRecord(tx, func(sess *Session) {
			if sess.EnvOwner == name && waitsForOwner(sess, now) {
				names = append(names, sess.Name)
			}
		})
	})
	if err != nil {
		return done, vocabulary(err)
	}
	if !beat && len(names) == 0 {
		return done, ErrReplicaNotFound
	}
	why := "the server it ran on (portal replica " + name + ") is no longer available; an administrator ended the sessions that ran there"
	for _, n := range names {
		var ended, restarted bool
		err := s.update(ctx, func(t *txState) error {
			ended, restarted = false, false
			if alive, err := t.beating(name); err != nil || alive {
				if alive {
					return ErrReplicaRunning
				}
				return err
			}
			sess, err := t.session(n)
			if err != nil || sess == nil || sess.EnvOwner != name || sess.State == lifecycle.Stopped || !waitsForOwner(sess, t.now) {
				return err
			}
			if st, _ := sess.Effective(t.now); st == lifecycle.Starting {
				restarted = true
				return t.restartHere(sess)
			}
			ended = true
			return t.abandon(sess, why)
		})
		s.cache.drop(n)
		if err != nil {
			if done != (Released{}) {
				s.log.Warn("released part of a replica's sessions", zap.String("replica", name),
					zap.Int("ended", done.Ended), zap.Int("restarted", done.Restarted), zap.Error(err))
			}
			return done, vocabulary(err)
		}
		if ended {
			done.Ended++
		}
		if restarted {
			done.Restarted++
		}
	}
	if s.shared {
		// Its beat goes too, so the replica leaves the lists; it writes a
		// new one should it return.
		err := s.st.Update(ctx, func(tx store.Txn) error {
			t := s.blankState(tx)
			if alive, err := t.beating(name); err != nil || alive {
				return err
			}
			return tx.Delete(keyBeat(name))
		})
		if err != nil {
			return done, vocabulary(err)
		}
	}
	s.log.Warn("released a replica's sessions", zap.String("replica", name),
		zap.Int("ended", done.Ended), zap.Int("restarted", done.Restarted))
	return done, nil
}
