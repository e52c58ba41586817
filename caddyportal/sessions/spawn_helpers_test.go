package sessions_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/caddyportal/caddyportal/caddyportal/config"
	"github.com/caddyportal/caddyportal/caddyportal/sessions"
	"github.com/caddyportal/caddyportal/caddyportal/spawner"
	"github.com/caddyportal/caddyportal/caddyportal/store"
)

// loopSpawner is a real spawner for tests: each environment is an HTTP
// server on a loopback port in this process. Environments can be made slow
// to become ready, fail to start, or die; Start and Stop can be held to
// observe the states in between. It survives a "portal restart" (a new
// Service on the same store), as processes survive their portal.
type loopSpawner struct {
	mu         sync.Mutex
	envs       map[int]*loopEnv // by id: two starts of one session make two environments, as real backends' do
	next       int
	readyAfter time.Duration // how long a new dashboard answers 503
	failStart  error         // Start fails with it
	hold       chan struct{} // Start waits for it to close (or ctx) when set
	tokens     chan struct{} // when set, each Start waits for one token
	failLater  chan error    // when set as a Start begins, that Start fails with what it receives
	holdStop   chan struct{} // Stop waits for it to close when set
	unsure     error         // Alive answers it when set: a backend that cannot tell
	timeout    time.Duration
	starts     []string                     // sessions in the order Start was called
	params     map[string]map[string]string // each start's request parameters, by session
	stops      []string                     // sessions in the order Stop removed them
	running    int                          // Start calls under way
	maxRunning int
}

type loopEnv struct {
	id      int
	session string
	srv     *httptest.Server
	readyAt time.Time
	dead    bool
}

type loopState struct {
	ID int `json:"id"`
}

func newLoopSpawner() *loopSpawner {
	return &loopSpawner{envs: map[int]*loopEnv{}, timeout: 5 * time.Second}
}

func (l *loopSpawner) Start(ctx context.Context, spec spawner.Spec, progress func(spawner.Progress)) (spawner.Env, error) {
	l.mu.Lock()
	l.starts = append(l.starts, spec.Session)
	if l.params == nil {
		l.params = map[string]map[string]string{}
	}
	l.params[spec.Session] = spec.Parameters
	l.running++
	l.maxRunning = max(l.maxRunning, l.running)
	hold, fail, tokens, later := l.hold, l.failStart, l.tokens, l.failLater
	l.mu.Unlock()
	defer func() {
		l.mu.Lock()
		l.running--
		l.mu.Unlock()
	}()
	spawner.Report(progress, spawner.StepStarting, "starting a loopback server")
	if later != nil {
		select {
		case err := <-later:
			return spawner.Env{}, err
		case <-ctx.Done():
			return spawner.Env{}, ctx.Err()
		}
	}
	if hold != nil {
		select {
		case <-hold:
		case <-ctx.Done():
			return spawner.Env{}, ctx.Err()
		}
	}
	if tokens != nil {
		select {
		case <-tokens:
		case <-ctx.Done():
			return spawner.Env{}, ctx.Err()
		}
	}
	if fail != nil {
		return spawner.Env{}, fail
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.next++
	e := &loopEnv{id: l.next, session: spec.Session, readyAt: time.Now().Add(l.readyAfter)}
	e.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		l.mu.Lock()
		notYet := time.Now().Before(e.readyAt)
		l.mu.Unlock()
		if notYet {
			http.Error(w, "not yet", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintf(w, "dashboard of %s", spec.Session)
	}))
	l.envs[e.id] = e
	spawner.Report(progress, spawner.StepStarted, "the server runs")
	return l.envOf(spec.Session, e), nil
}

// paramsOf returns the parameters session's last start was given.
func (l *loopSpawner) paramsOf(session string) map[string]string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.params[session]
}

// makeReady makes session's dashboard answer from now on.
func (l *loopSpawner) makeReady(session string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.latest(session).readyAt = time.Now()
}

func (l *loopSpawner) envOf(session string, e *loopEnv) spawner.Env {
	st, _ := json.Marshal(loopState{ID: e.id})
	return spawner.Env{Session: session, Addr: e.srv.Listener.Addr().String(), State: st}
}

// find returns the environment env names, if it is still that one.
func (l *loopSpawner) find(env spawner.Env) *loopEnv {
	var st loopState
	_ = json.Unmarshal(env.State, &st)
	e := l.envs[st.ID]
	if e == nil || e.session != env.Session {
		return nil
	}
	return e
}

func (l *loopSpawner) Ready(ctx context.Context, env spawner.Env) error {
	l.mu.Lock()
	e := l.find(env)
	gone := e == nil || e.dead
	l.mu.Unlock()
	if gone {
		return fmt.Errorf("loopback server of %s: %w", env.Session, spawner.ErrGone)
	}
	return spawner.Probe(ctx, env.Addr, "/")
}

func (l *loopSpawner) ReadyTimeout() time.Duration { return l.timeout }

func (l *loopSpawner) Stop(ctx context.Context, env spawner.Env) error {
	l.mu.Lock()
	hold := l.holdStop
	l.mu.Unlock()
	if hold != nil {
		select {
		case <-hold:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	l.mu.Lock()
	e := l.find(env)
	if e != nil {
		delete(l.envs, e.id)
		l.stops = append(l.stops, env.Session)
	}
	l.mu.Unlock()
	if e != nil {
		// Outside l.mu: Close waits for requests in flight, whose handler takes l.mu.
		e.srv.Close()
	}
	return nil
}

func (l *loopSpawner) List(context.Context) ([]spawner.Env, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []spawner.Env
	for _, e := range l.envs {
		out = append(out, l.envOf(e.session, e))
	}
	return out, nil
}

func (l *loopSpawner) Alive(_ context.Context, env spawner.Env) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	switch e := l.find(env); {
	case l.unsure != nil:
		return l.unsure
	case e == nil || e.dead:
		return spawner.Gone("the loopback server of " + env.Session + " was closed")
	}
	return nil
}

// kill makes a session's dashboard die (its server closes).
func (l *loopSpawner) kill(session string) {
	l.mu.Lock()
	e := l.latest(session)
	if e != nil {
		e.dead = true
	}
	l.mu.Unlock()
	if e != nil {
		// Outside l.mu, as in Stop: holding it deadlocked against a probe in flight.
		e.srv.Close()
	}
}

// stray starts an environment no session holds (left by a crash).
func (l *loopSpawner) stray(t *testing.T, session string) {
	t.Helper()
	if _, err := l.Start(context.Background(), spawner.Spec{Session: session}, nil); err != nil {
		t.Fatal(err)
	}
}

func (l *loopSpawner) has(session string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.latest(session) != nil
}

// count is how many environments of session are there.
func (l *loopSpawner) count(session string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, e := range l.envs {
		if e.session == session {
			n++
		}
	}
	return n
}

// latest is the newest environment of session still there; l.mu is held.
func (l *loopSpawner) latest(session string) *loopEnv {
	var out *loopEnv
	for _, e := range l.envs {
		if e.session == session && (out == nil || e.id > out.id) {
			out = e
		}
	}
	return out
}

func (l *loopSpawner) startOrder() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.starts...)
}

func (l *loopSpawner) runningStarts() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.running
}

var _ spawner.Spawner = (*loopSpawner)(nil)

// spawnWorkshop is a workshop for a spawner: no pool, an explicit capacity.
func spawnWorkshop(name string, capacity, reserved int) config.Workshop {
	return config.Workshop{Name: name, Title: "Title " + name, Capacity: intp(capacity), Reserved: intp(reserved)}
}

// testReplica is the replica of this run's services and process spawners.
// The process spawner finds its processes by a marker <portal>/<replica>/
// <session>, and reconciliation stops every marked process whose session is
// not live in its own store: with a fixed name, two runs of this package on
// one machine (a developer's and CI's, or a stress loop) killed each other's
// dashboards.
var testReplica = "r1-" + strconv.Itoa(os.Getpid())

// newSpawnService starts a service whose workshop "lab" (if configured)
// uses sp; opts may set more.
func newSpawnService(t *testing.T, st store.Store, clk *fakeClock, cfg config.Portal, sp spawner.Spawner, opts sessions.Options) *sessions.Service {
	t.Helper()
	opts.Now, opts.StopGrace = clk.Now, grace
	if opts.ReconcileInterval == 0 {
		opts.ReconcileInterval = time.Hour
	}
	if opts.Replica == "" {
		opts.Replica = testReplica
	}
	if opts.Spawners == nil {
		opts.Spawners = map[string]spawner.Spawner{"lab": sp}
	}
	svc, err := sessions.New(context.Background(), st, cfg, opts)
	if err != nil {
		t.Fatalf("sessions.New: %v", err)
	}
	t.Cleanup(svc.Close)
	return svc
}

// eventually polls cond until it holds, or fails the test after two
// minutes. The limit only keeps a broken test from hanging: it checks that
// something happens, never how fast (on a loaded CI machine a dashboard
// process of the race-built test binary took over 10 s to answer).
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// stateIs reports whether a session is in state want now.
func stateIs(svc *sessions.Service, name string, want string) bool {
	s, err := svc.Get(context.Background(), name)
	return err == nil && string(s.State) == want
}

// dashboard GETs a session's upstream and returns the body.
func dashboard(t *testing.T, sess *sessions.Session) string {
	t.Helper()
	resp, err := http.Get("http://" + sess.Upstream + "/")
	if err != nil {
		t.Fatalf("GET dashboard of %s: %v", sess.Name, err)
	}
	defer resp.Body.Close()
	buf := make([]byte, 256)
	n, _ := resp.Body.Read(buf)
	if resp.StatusCode != 200 {
		t.Fatalf("GET dashboard of %s: HTTP %d", sess.Name, resp.StatusCode)
	}
	return string(buf[:n])
}

// dialFails reports whether nothing answers at addr any more.
func dialFails(addr string) bool {
	c := http.Client{Timeout: time.Second}
	resp, err := c.Get("http://" + addr + "/")
	if err == nil {
		resp.Body.Close()
	}
	return err != nil
}

var errBoom = errors.New("boom: the image does not exist")
