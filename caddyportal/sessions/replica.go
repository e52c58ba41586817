package sessions

import (
	"context"
	"errors"
	"sort"
	"strings"

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
	err := tx.Scan(prefixLiveIndex, func(key string, _ []byte) error {
		name := key[strings.LastIndexByte(key, '/')+1:]
		v, err := tx.Get(keySession(name))
		if errors.Is(err, store.ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		var sess Session
		if unmarshal(v, &sess) == nil && sess.EnvOwner != "" {
			seen[sess.EnvOwner] = true
		}
		return nil
	})
	owners := make([]string, 0, len(seen))
	for o := range seen {
		owners = append(owners, o)
	}
	sort.Strings(owners)
	return owners, err
}
