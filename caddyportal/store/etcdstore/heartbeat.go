package etcdstore

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/caddyportal/caddyportal/caddyportal/store"
)

// The store proves how current its watch is with heartbeats: every
// heartbeatEvery it writes its own key and notes when it sent the write;
// when the mirror's watch brings that write back, every change committed
// before the write was sent has come through the same watch first (etcd
// delivers a watch's events in revision order, and a write sent after a
// commit finished gets a later revision). CurrentAsOf is then the sending
// instant. Progress notifications would avoid the writes, but etcd 3.4's
// can run ahead of queued events.
//
//	~h/<instance>   "<sequence> <Unix nanoseconds of the sending>"
//
// <instance> is random per Open. Close deletes the key; Open deletes keys
// of other instances that have not beaten for heartbeatStale (processes
// that died without closing).
const (
	heartbeatPrefix = store.ReservedPrefix + "h/"
	heartbeatEvery  = 250 * time.Millisecond
	heartbeatStale  = 10 * time.Minute
	// heartbeatsKept is how many sent heartbeats wait for their echo;
	// an older one that comes back late is not counted, which can only
	// make the store look less current than it is.
	heartbeatsKept = 64
)

var _ store.Current = (*Store)(nil)

// heartbeats is the sending side's memory: when each recent heartbeat was
// sent, and the newest sending instant whose echo came back.
type heartbeats struct {
	key string // the full etcd key, prefix included

	mu    sync.Mutex
	seq   uint64
	sent  [heartbeatsKept]sentBeat
	heard time.Time
}

type sentBeat struct {
	seq uint64
	at  time.Time
}

func newHeartbeats(prefix string) (*heartbeats, error) {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		return nil, err
	}
	return &heartbeats{key: prefix + heartbeatPrefix + hex.EncodeToString(b[:])}, nil
}

// next numbers a heartbeat sent at now and returns the value to write.
func (h *heartbeats) next(now time.Time) string {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.seq++
	h.sent[h.seq%heartbeatsKept] = sentBeat{seq: h.seq, at: now}
	return strconv.FormatUint(h.seq, 10) + " " + strconv.FormatInt(now.UnixNano(), 10)
}

// echoed records that the watch brought back a heartbeat with value v.
func (h *heartbeats) echoed(v []byte) {
	seq, _, ok := parseBeat(v)
	if !ok {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if b := h.sent[seq%heartbeatsKept]; b.seq == seq && b.at.After(h.heard) {
		h.heard = b.at
	}
}

func (h *heartbeats) current() time.Time {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.heard
}

// parseBeat splits a heartbeat value into its sequence number and sending
// instant.
func parseBeat(v []byte) (seq uint64, sent time.Time, ok bool) {
	a, b, found := strings.Cut(string(v), " ")
	if !found {
		return 0, time.Time{}, false
	}
	seq, err1 := strconv.ParseUint(a, 10, 64)
	nanos, err2 := strconv.ParseInt(b, 10, 64)
	if err1 != nil || err2 != nil {
		return 0, time.Time{}, false
	}
	return seq, time.Unix(0, nanos), true
}

// CurrentAsOf implements store.Current: the sending instant of the newest
// heartbeat that came back through the mirror's watch.
func (s *Store) CurrentAsOf() time.Time { return s.beats.current() }

// beat writes heartbeats until the store closes. A write that hangs (etcd
// unreachable) holds the next one back, which is right: nothing can be
// proved meanwhile.
func (s *Store) beat() {
	ctx := s.life.Context()
	t := time.NewTicker(heartbeatEvery)
	defer t.Stop()
	for {
		v := s.beats.next(time.Now())
		cctx, cancel := s.callCtx(ctx)
		_, err := s.cli.Put(cctx, s.beats.key, v)
		cancel()
		if err != nil && ctx.Err() == nil {
			s.log.Debug("heartbeat not written", zap.Error(err))
		}
		select {
		case <-t.C:
		case <-ctx.Done():
			return
		}
	}
}

// dropBeat deletes this store's heartbeat key; Close calls it, before the
// client closes. When the heartbeats show etcd unreachable, it hardly
// waits: Caddy's stop must not be held up for RequestTimeout, and the next
// Open elsewhere drops the key.
func (s *Store) dropBeat() {
	timeout := s.reqTimeout
	if time.Since(s.beats.current()) > time.Second {
		timeout = min(timeout, 100*time.Millisecond)
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if _, err := s.cli.Delete(ctx, s.beats.key); err != nil {
		s.log.Debug("heartbeat key not deleted", zap.Error(err))
	}
}

// dropStaleBeats deletes the heartbeat keys of instances that stopped
// beating more than heartbeatStale ago. Each deletion is guarded by the
// key's revision, so a key that beat again meanwhile stays.
func (s *Store) dropStaleBeats(ctx context.Context) error {
	cctx, cancel := s.callCtx(ctx)
	defer cancel()
	resp, err := s.cli.Get(cctx, s.prefix+heartbeatPrefix, clientv3.WithPrefix())
	if err != nil {
		return s.wrap(ctx, "reading heartbeats", err)
	}
	for _, kv := range resp.Kvs {
		_, sent, ok := parseBeat(kv.Value)
		if ok && time.Since(sent) < heartbeatStale {
			continue
		}
		key := string(kv.Key)
		_, err := s.cli.Txn(cctx).If(clientv3.Compare(clientv3.ModRevision(key), "=", kv.ModRevision)).
			Then(clientv3.OpDelete(key)).Commit()
		if err != nil {
			return s.wrap(ctx, fmt.Sprintf("deleting the stale heartbeat %s", key), err)
		}
	}
	return nil
}
