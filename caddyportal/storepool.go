package caddyportal

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/caddyserver/caddy/v2"

	"github.com/caddyportal/caddyportal/caddyportal/config"
	"github.com/caddyportal/caddyportal/caddyportal/store"
	"github.com/caddyportal/caddyportal/caddyportal/store/badgerstore"
)

// stores holds each open store once per data directory. Caddy provisions a
// new config before it cleans up the old one, and Badger locks its
// directory, so handlers share the open database through this pool instead
// of opening it themselves; it closes when the last config using it goes.
var stores = caddy.NewUsagePool()

type pooledStore struct{ store.Store }

// Destruct closes the store when its last user is gone.
func (p pooledStore) Destruct() error { return p.Close() }

// storeKey returns the pool key and Badger directory for a portal.
func storeKey(p config.Portal) (key, dir string, err error) {
	if p.Storage != nil && p.Storage.Backend == config.StorageEtcd {
		return "", "", fmt.Errorf("storage etcd: not available in this build yet; use badger")
	}
	dir = filepath.Join(caddy.AppDataDir(), "caddyportal", p.Name)
	if p.Storage != nil && p.Storage.Path != "" {
		dir = p.Storage.Path
	}
	if dir, err = filepath.Abs(dir); err != nil {
		return "", "", err
	}
	return "badger:" + filepath.Clean(dir), dir, nil
}

// acquireStore opens the portal's store or shares the one already open.
// Each successful call must be matched by one releaseStore(key).
func acquireStore(key, dir string) (store.Store, error) {
	v, _, err := stores.LoadOrNew(key, func() (caddy.Destructor, error) {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, fmt.Errorf("creating data directory: %w", err)
		}
		st, err := badgerstore.Open(badgerstore.Options{
			Dir:        dir,
			SyncWrites: true,
			// The store outlives any one config, so it logs through
			// Caddy's default logger rather than a config's.
			Logger: caddy.Log().Named("portal.badger"),
		})
		if err != nil {
			return nil, err
		}
		return pooledStore{st}, nil
	})
	if err != nil {
		return nil, err
	}
	return v.(pooledStore).Store, nil
}

func releaseStore(key string) {
	_, _ = stores.Delete(key)
}
