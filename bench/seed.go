package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/caddyportal/caddyportal/caddyportal/config"
	"github.com/caddyportal/caddyportal/caddyportal/sessions"
	"github.com/caddyportal/caddyportal/caddyportal/store/badgerstore"
)

// seedChunk is how many sessions are created between two reconcile passes.
// A pass finalizes every session stopped since the last one in a single
// transaction, and Badger bounds a transaction's size.
const seedChunk = 1000

// seedConcurrency is how many session requests are in flight at once while
// seeding: enough for the service to fill its commit batches.
const seedConcurrency = 256

// seedConfig is the portal configuration the seeding runs with. Its
// portal and workshop names match the generated Caddyfiles (portalSpec),
// so the binary adopts the seeded environment; capacity is unbounded
// because the upstream is a template.
func seedConfig() config.Portal {
	zero := 0
	capacity := 10_000_000
	return config.Portal{
		Name:     portalName,
		Index:    hubIndex,
		Sessions: config.SessionLimits{Registered: 1, Anonymous: 1},
		Robot:    config.Credentials{Username: robotUser, Password: robotPass},
		Client:   config.Client{ID: clientID, Secret: clientSecret},
		Workshops: []config.Workshop{{
			Name:      workshopName,
			Reserved:  &zero,
			Initial:   &zero,
			Capacity:  &capacity,
			Expires:   config.Duration(seedSessionLife),
			Upstreams: []string{templateUpstream},
		}},
	}
}

// seedSessionLife is how long a seeded live session runs (the workshop's
// expires). A cached seed is reused only for the first half of it: an older
// one's live sessions would all expire as the portal starts, and the
// memory scenario would measure thousands of expiries instead of a portal
// at rest (stop 43 found its figures taken so, from a seed four hours old).
const seedSessionLife = 60 * time.Minute

// seedStats describes a seeded data directory.
type seedStats struct {
	Total, Live, Stopped int
	Took                 time.Duration
	// Created is when the seeding began; live sessions expire
	// seedSessionLife after it.
	Created time.Time
}

// fresh reports whether a cached seed's live sessions are still live for
// a while at now.
func (ss seedStats) fresh(now time.Time) bool {
	return !ss.Created.IsZero() && now.Sub(ss.Created) < seedSessionLife/2
}

// seed writes total sessions of distinct users into the Badger directory
// dir with the product's own code (sessions.Service on badgerstore), as a
// busy portal would have left them: every session was requested and
// activated, and all but the most recent live fraction were terminated
// and are now STOPPED records kept for the retention period.
//
// Writes are not synced here: durability of the seeding is not what is
// measured, and Close flushes everything to disk before the binary opens
// the directory.
func seed(ctx context.Context, dir string, total int, liveFraction float64) (seedStats, error) {
	t0 := time.Now()
	st, err := badgerstore.Open(badgerstore.Options{Dir: dir, SyncWrites: false, GCInterval: -1, SweepInterval: -1})
	if err != nil {
		return seedStats{}, err
	}
	defer st.Close()
	svc, err := sessions.New(ctx, st, seedConfig(), sessions.Options{
		// Terminated sessions count as STOPPED at once, so the reconcile
		// pass after each chunk makes them durable STOPPED records.
		StopGrace:         time.Nanosecond,
		ReconcileInterval: time.Hour,
	})
	if err != nil {
		return seedStats{}, err
	}
	defer svc.Close()

	live := int(float64(total) * liveFraction)
	stopBefore := total - live // sessions [0, stopBefore) end STOPPED
	for lo := 0; lo < total; lo += seedChunk {
		hi := min(lo+seedChunk, total)
		if err := seedRange(ctx, svc, lo, hi, stopBefore); err != nil {
			return seedStats{}, err
		}
		if err := svc.Reconcile(ctx); err != nil {
			return seedStats{}, fmt.Errorf("reconcile after sessions %d-%d: %w", lo, hi, err)
		}
	}
	svc.Close()
	if err := st.Flatten(); err != nil {
		return seedStats{}, err
	}
	if err := st.Close(); err != nil {
		return seedStats{}, err
	}
	return seedStats{Total: total, Live: live, Stopped: stopBefore, Took: time.Since(t0), Created: t0}, nil
}

// seedRange creates sessions lo..hi-1 (user "seed<i>"), activating each and
// terminating those below stopBefore.
func seedRange(ctx context.Context, svc *sessions.Service, lo, hi, stopBefore int) error {
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		first error
	)
	next := make(chan int, hi-lo)
	for i := lo; i < hi; i++ {
		next <- i
	}
	close(next)
	for range min(seedConcurrency, hi-lo) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				if err := seedOne(ctx, svc, i, i < stopBefore); err != nil {
					mu.Lock()
					first = errors.Join(first, err)
					mu.Unlock()
					return
				}
			}
		}()
	}
	wg.Wait()
	return first
}

func seedOne(ctx context.Context, svc *sessions.Service, i int, stop bool) error {
	res, err := svc.RequestSession(ctx, sessions.Request{
		Environment: envName,
		User:        fmt.Sprintf("seed%d", i),
		Email:       fmt.Sprintf("seed%d@example.com", i),
		IndexURL:    hubIndex,
	})
	if err != nil {
		return fmt.Errorf("seeding session %d: %w", i, err)
	}
	if _, err := svc.Activate(ctx, res.Session.Name, res.Token); err != nil {
		return fmt.Errorf("seeding: activating %s: %w", res.Session.Name, err)
	}
	if stop {
		if _, err := svc.Terminate(ctx, res.Session.Name, ""); err != nil {
			return fmt.Errorf("seeding: terminating %s: %w", res.Session.Name, err)
		}
	}
	return nil
}

// seededStore puts a store with total seeded sessions at dst. Seeded stores
// are cached in the work directory (keyed by size and live fraction) and
// copied, so a run never sees another run's writes, and repeated runs with
// the same -workdir skip the seeding.
func seededStore(ctx context.Context, work, dst string, total int, liveFraction float64, logf func(string, ...any)) (seedStats, error) {
	cache := filepath.Join(work, fmt.Sprintf("seed-%d-live%g", total, liveFraction))
	marker := filepath.Join(cache, "seed.json")
	var ss seedStats
	if b, err := os.ReadFile(marker); err == nil && json.Unmarshal(b, &ss) == nil && ss.Total == total && ss.fresh(time.Now()) {
		logf("reusing %d seeded sessions from %s (seeded %s ago)", total, cache, time.Since(ss.Created).Round(time.Second))
	} else {
		if err := os.RemoveAll(cache); err != nil {
			return ss, err
		}
		logf("seeding %d sessions (%.0f%% live) ...", total, 100*liveFraction)
		if ss, err = seed(ctx, filepath.Join(cache, "badger"), total, liveFraction); err != nil {
			return ss, err
		}
		logf("seeded %d sessions (%d live) in %s", ss.Total, ss.Live, ss.Took.Round(time.Millisecond))
		b, _ := json.Marshal(ss)
		if err := os.WriteFile(marker, b, 0o644); err != nil {
			return ss, err
		}
	}
	if err := os.RemoveAll(dst); err != nil {
		return ss, err
	}
	return ss, copyDir(filepath.Join(cache, "badger"), dst)
}

// copyDir copies the regular files of src (one level, as Badger keeps them)
// into a new directory dst.
func copyDir(src, dst string) error {
	if err := os.MkdirAll(dst, 0o700); err != nil {
		return err
	}
	entries, err := os.ReadDir(src)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if !e.Type().IsRegular() {
			continue
		}
		if err := copyFile(filepath.Join(src, e.Name()), filepath.Join(dst, e.Name())); err != nil {
			return err
		}
	}
	return nil
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
