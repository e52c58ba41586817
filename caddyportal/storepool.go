package caddyportal

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/caddyserver/caddy/v2"

	"github.com/caddyportal/caddyportal/caddyportal/config"
	"github.com/caddyportal/caddyportal/caddyportal/store"
	"github.com/caddyportal/caddyportal/caddyportal/store/badgerstore"
	"github.com/caddyportal/caddyportal/caddyportal/store/etcdstore"
)

// stores holds each open store once per data directory. Caddy provisions a
// new config before it cleans up the old one, and Badger locks its
// directory, so handlers share the open database through this pool instead
// of opening it themselves; it closes when the last config using it goes.
var stores = caddy.NewUsagePool()

type pooledStore struct{ store.Store }

// Destruct closes the store when its last user is gone.
func (p pooledStore) Destruct() error { return p.Close() }

// storeSpec says which store a portal uses: its pool key, a description
// for error messages, and how to open it.
type storeSpec struct {
	key   string
	where string
	open  func() (store.Store, error)
}

// storeFor resolves the portal's storage settings, defaulted and with their
// secrets expanded (config.Portal.WithDefaults and ExpandSecrets).
func storeFor(p config.Portal) (storeSpec, error) {
	if p.Storage != nil && p.Storage.Backend == config.StorageEtcd {
		return etcdSpec(p), nil
	}
	dir := filepath.Join(caddy.AppDataDir(), "caddyportal", p.Name)
	if p.Storage != nil && p.Storage.Path != "" {
		dir = p.Storage.Path
	}
	var minFree int64
	if p.Storage != nil {
		minFree = p.Storage.MinFreeSpace
	}
	dir, err := filepath.Abs(dir)
	if err != nil {
		return storeSpec{}, err
	}
	return storeSpec{key: "badger:" + filepath.Clean(dir), where: dir, open: func() (store.Store, error) {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, fmt.Errorf("creating data directory: %w", err)
		}
		return badgerstore.Open(badgerstore.Options{
			Dir:          dir,
			SyncWrites:   true,
			MinFreeSpace: minFree,
			// The store outlives any one config, so it logs through
			// Caddy's default logger rather than a config's.
			Logger: caddy.Log().Named("portal.badger"),
		})
	}}, nil
}

// etcdSpec is the spec of an etcd-backed portal. Portals with the same
// endpoints and prefix share one client.
func etcdSpec(p config.Portal) storeSpec {
	st := *p.Storage
	prefix := st.Prefix
	opts := etcdstore.Options{
		Endpoints: st.Endpoints,
		Prefix:    prefix,
		Username:  st.Username,
		Password:  st.Password,
		Logger:    caddy.Log().Named("portal.etcd"),
	}
	if st.TLS != nil {
		opts.CAFile, opts.CertFile, opts.KeyFile = st.TLS.CA, st.TLS.Cert, st.TLS.Key
	}
	endpoints := slices.Clone(st.Endpoints)
	slices.Sort(endpoints)
	where := "etcd " + strings.Join(st.Endpoints, ",") + " prefix " + prefix
	return storeSpec{key: "etcd:" + strings.Join(endpoints, ",") + "|" + prefix, where: where,
		open: func() (store.Store, error) {
			return etcdstore.Open(context.Background(), opts)
		}}
}

// acquireStore opens the portal's store or shares the one already open;
// shared says it was open already (another config of this process uses it:
// a reload overlap). Each successful call must be matched by one
// releaseStore(key).
func acquireStore(spec storeSpec) (_ store.Store, shared bool, _ error) {
	v, shared, err := stores.LoadOrNew(spec.key, func() (caddy.Destructor, error) {
		st, err := spec.open()
		if err != nil {
			return nil, err
		}
		return pooledStore{st}, nil
	})
	if err != nil {
		return nil, false, err
	}
	return v.(pooledStore).Store, shared, nil
}

func releaseStore(key string) {
	_, _ = stores.Delete(key)
}
