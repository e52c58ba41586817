package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/caddyportal/caddyportal/caddyportal/lifecycle"
	"github.com/caddyportal/caddyportal/caddyportal/store/badgerstore"
	"github.com/caddyportal/caddyportal/internal/e2etest"
)

// Spawn crash test sizes. CI runs spawnCrashRoundsDefault rounds; more with
// CRASH_ROUNDS=10 go test -run TestSpawnCrash ./e2e/.
const (
	spawnCrashRoundsDefault = 2
	spawnCrashCapacity      = 12
	spawnCrashReserved      = 2
	spawnCrashStarts        = 3
	spawnCrashUsers         = 18 // per round: more users than capacity
	spawnCrashWorkers       = 8
	// spawnCrashSettle bounds how long a restarted portal may take to
	// settle every session: a bound on a broken run on a loaded machine,
	// not a measurement.
	spawnCrashSettle = 4 * time.Minute
)

// spawnAcked is a session request the REST API answered with a 200.
type spawnAcked struct {
	name, user, token string
	round             int
	terminated        bool // its terminate was answered with a 200
}

// adminSession is the admin API's view of a session.
type adminSession struct {
	Name   string          `json:"name"`
	State  lifecycle.State `json:"state"`
	Reason string          `json:"reason"`
	Owner  string          `json:"owner"`
}

// spawnCrash is the state of one TestSpawnCrash run.
type spawnCrash struct {
	t           *testing.T
	portal, env string // the portal's name, its one environment
	marker      string // CADDYPORTAL_ENV prefix of its dashboards
	dataDir     string
	sessDir     string // the process spawner's dir
	admin       string // the child's admin listener
	client      *http.Client
	tok         string

	mu    sync.Mutex
	acked map[string]*spawnAcked
	// maxLive is the most live sessions one observation saw; observed
	// counts the observations.
	maxLive, observed int
}

// TestSpawnCrash kills a portal whose workshop spawns a real dashboard
// process per session with SIGKILL at a random moment of a storm of
// requests, activations and terminations (so mid-start and mid-stop),
// restarts it on the same data and spawner directory (sometimes killing it
// again soon after), and checks once it settled: every dashboard process
// of the portal belongs to a live session and every ready session has
// exactly one (no orphans); every acknowledged session is ready and
// answers through the gate, or STOPPED with a reason; session directories
// exist only for live sessions; and the live sessions never exceed the
// capacity, at every observation.
func TestSpawnCrash(t *testing.T) {
	t.Parallel() // separate processes only (see doc.go)
	if _, err := os.Stat("/usr/bin/python3"); err != nil {
		t.Fatal("this test needs /usr/bin/python3 (Debian's python3)")
	}
	rounds, rng := crashRounds(t, spawnCrashRoundsDefault)

	// A portal name of this run's own: the dashboards are told apart by
	// their marker, and other tests' portals may run on the machine.
	name := fmt.Sprintf("storm-%d", os.Getpid())
	sc := &spawnCrash{t: t, portal: name, env: name + "-w01", marker: name + "/test/",
		dataDir: t.TempDir(), sessDir: t.TempDir(),
		admin:  fmt.Sprintf("127.0.0.1:%d", e2etest.FreePort(t)),
		client: e2etest.HTTPClient(30 * time.Second), acked: map[string]*spawnAcked{}}
	// Runs after the portal child is killed (cleanups run last first):
	// whatever a failed run left of the dashboards must not outlive it.
	t.Cleanup(func() {
		for _, pids := range dashboardsOf(sc.marker) {
			for _, pid := range pids {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	})
	body := spawnCrashBody(name, sc.sessDir)
	port := e2etest.FreePort(t)
	start := func() *e2etest.Child {
		return e2etest.StartServeChild(t, sc.dataDir, port, body, e2etest.FaultAdminEnv+"="+sc.admin)
	}
	// A child is killed, never exits: with -race its reports are only in
	// its output.
	noRace := func(c *e2etest.Child) {
		if out := c.Output(); strings.Contains(out, "DATA RACE") {
			t.Fatalf("the portal child reported a data race:\n%s", out)
		}
	}
	c := start()
	p := remote(t, c.Base, port, sc.dataDir)
	sc.tok = p.Token(e2etest.RobotUser, e2etest.RobotPass)

	for round := 1; round <= rounds; round++ {
		// Kill after a random number of answers: from the first request
		// to the end of the storm, when starts are still queued.
		killAfter := 1 + rng.IntN(spawnCrashUsers*3)
		ops, statuses := sc.storm(c, round, killAfter)
		c.Kill()
		noRace(c)
		t.Logf("round %d: killed after %d of %d answers (aimed at %d); request statuses %v",
			round, min(ops, killAfter), ops, killAfter, statuses)
		t.Logf("round %d: at the kill the store held %s", round, sc.checkStore())

		c = start()
		if rng.IntN(3) == 0 {
			// Killed again soon after the restart, while the stops and
			// starts its reconciliation queued run: a crash of the
			// recovery must be recovered from as well.
			time.Sleep(time.Duration(rng.IntN(500)) * time.Millisecond)
			c.Kill()
			noRace(c)
			t.Logf("round %d: killed again soon after the restart; the store held %s", round, sc.checkStore())
			c = start()
		}
		p.Base = c.Base
		live := sc.settle()
		sc.checkSettled(p, live)
	}
	c.Kill()
	noRace(c)
	sc.checkStore()
	n := 0
	for _, a := range sc.acked {
		if !a.terminated {
			n++
		}
	}
	t.Logf("%d sessions acknowledged, %d terminated by the storms; %d observations, at most %d live sessions",
		len(sc.acked), len(sc.acked)-n, sc.observed, sc.maxLive)
	if len(sc.acked) == 0 {
		t.Fatal("no request was acknowledged in any round: the storm never reached the portal")
	}
}

// spawnCrashBody is the portal: one workshop whose sessions each run
// Python's file server, a few starts at once, reserves kept ready.
func spawnCrashBody(name, sessDir string) string {
	return fmt.Sprintf(`
		name %s
		storage badger {dir}
		index https://hub.example.com/
		redirects https://hub.example.com
		robot robot@portal robot-pass
		client test-client test-secret
		activation_timeout 30m
		starts %d
		replica test
		workshop lab {
			capacity %d
			reserved %d
			expires 60m
			spawner process {
				command /usr/bin/python3 -m http.server {port} --bind 127.0.0.1
				dir %s
				ready / 60s
				stop_timeout 5s
			}
		}
`, name, spawnCrashStarts, spawnCrashCapacity, spawnCrashReserved, sessDir)
}

// storm fires spawnCrashUsers concurrent learners at the child: each
// requests a session (trying again twice while the workshop is full),
// activates it, and then either opens it or (every third) terminates it; meanwhile the sessions of earlier rounds are
// terminated. The child is SIGKILLed once killAfter answers arrived, or
// at the end of the storm. It returns the number of answers and the
// request statuses.
func (sc *spawnCrash) storm(c *e2etest.Child, round, killAfter int) (int, map[int]int) {
	t := sc.t
	defer sc.client.CloseIdleConnections()
	var (
		mu       sync.Mutex
		statuses = map[int]int{}
		answers  atomic.Int64
		killed   atomic.Bool
		wg       sync.WaitGroup
	)
	kill := func() {
		if killed.CompareAndSwap(false, true) {
			// SIGKILL with requests in flight: no Close, no flush, no
			// deferred code, and starts and stops under way.
			c.KillNow()
		}
	}
	// answered counts an answer and kills the child at the chosen one.
	answered := func() {
		if answers.Add(1) == int64(killAfter) {
			kill()
		}
	}
	// failed reports a transport error, which is expected only after the
	// kill.
	failed := func(what string, err error) {
		if err != nil && !killed.Load() {
			t.Errorf("round %d: %s failed before the kill: %v", round, what, err)
		}
	}
	do := func(method, path, token string, hdr map[string]string) (resp, error) {
		return e2etest.DoWith(sc.client, method, c.Base+path, token, nil, hdr)
	}
	terminate := func(a *spawnAcked) bool {
		r, err := do(http.MethodGet, "/workshops/session/"+a.name+"/terminate/", sc.tok, nil)
		if err != nil {
			failed("terminate "+a.name, err)
			return false
		}
		switch r.Status {
		case http.StatusOK:
			sc.mu.Lock()
			a.terminated = true
			sc.mu.Unlock()
		case http.StatusNotFound:
			// Ended already (a start that failed): no promise to check.
		default:
			t.Errorf("round %d: terminate %s: %d %s", round, a.name, r.Status, r.Body)
		}
		answered()
		return true
	}

	// The capacity is checked all through the storm.
	stopObserver := make(chan struct{})
	observerDone := make(chan struct{})
	go func() {
		defer close(observerDone)
		for {
			select {
			case <-stopObserver:
				return
			case <-time.After(100 * time.Millisecond):
			}
			if killed.Load() {
				return
			}
			_, _ = sc.liveSessions() // an error is a portal being killed
		}
	}()

	// Earlier rounds' sessions end during the storm: stops under way
	// when the kill comes.
	var earlier []*spawnAcked
	sc.mu.Lock()
	for _, a := range sc.acked {
		if !a.terminated {
			earlier = append(earlier, a)
		}
	}
	sc.mu.Unlock()
	sort.Slice(earlier, func(i, j int) bool { return earlier[i].name < earlier[j].name })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for _, a := range earlier {
			if killed.Load() || !terminate(a) {
				return
			}
		}
	}()

	users := make(chan int, spawnCrashUsers)
	for i := range spawnCrashUsers {
		users <- i
	}
	close(users)
	for range spawnCrashWorkers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range users {
				if killed.Load() {
					return
				}
				user := fmt.Sprintf("r%02d-u%03d", round, i)
				var r resp
				for try := 0; ; try++ {
					var err error
					r, err = do(http.MethodGet, "/workshops/environment/"+sc.env+"/request/?user="+user, sc.tok, nil)
					if err != nil {
						failed("request for "+user, err)
						return
					}
					mu.Lock()
					statuses[r.Status]++
					mu.Unlock()
					if r.Status != http.StatusServiceUnavailable || try == 2 || killed.Load() {
						break
					}
					// Full: the learner tries again a moment later, when
					// the earlier rounds' sessions being stopped may have
					// freed their places (starts during stops).
					answered()
					time.Sleep(300 * time.Millisecond)
				}
				var a *spawnAcked
				switch r.Status {
				case http.StatusOK:
					var m map[string]any
					_ = json.Unmarshal(r.Body, &m)
					name, _ := m["name"].(string)
					link, _ := m["url"].(string)
					u, _ := url.Parse(link)
					if name == "" || u == nil || u.Query().Get("token") == "" || m["user"] != user {
						t.Errorf("round %d: 200 without a name, user or token: %s", round, r.Body)
						break
					}
					a = &spawnAcked{name: name, user: user, token: u.Query().Get("token"), round: round}
					sc.mu.Lock()
					if sc.acked[name] != nil {
						t.Errorf("round %d: session %s acknowledged twice", round, name)
					}
					sc.acked[name] = a
					sc.mu.Unlock()
				case http.StatusServiceUnavailable:
					// Capacity full: not a promise. Busy starts never
					// refuse a learner, so that is the only 503.
					if !bytes.Contains(r.Body, []byte("No session available")) {
						t.Errorf("round %d: request for %s: %d %s", round, user, r.Status, r.Body)
					}
				default:
					t.Errorf("round %d: request for %s: %d %s", round, user, r.Status, r.Body)
				}
				answered()
				if a == nil {
					continue
				}
				act, err := do(http.MethodGet, routesActivate(a), "", nil)
				if err != nil {
					failed("activation of "+a.name, err)
					return
				}
				if act.Status != http.StatusFound {
					t.Errorf("round %d: activation of %s: %d %s", round, a.name, act.Status, act.Body)
				}
				answered()
				if (i+round)%3 == 0 {
					if !terminate(a) {
						return
					}
					continue
				}
				// The learner opens the session: the starting page or,
				// already, the dashboard.
				var ck string
				for _, k := range (&http.Response{Header: act.Header}).Cookies() {
					if k.Name == "portal-"+sc.portal+"-"+a.name {
						ck = k.Name + "=" + k.Value
					}
				}
				if ck == "" {
					continue // ended already: the activation went to the index
				}
				if _, err := do(http.MethodGet, "/workshops/session/"+a.name+"/", "", map[string]string{"Cookie": ck}); err != nil {
					failed("opening "+a.name, err)
					return
				}
				answered()
			}
		}()
	}
	wg.Wait()
	close(stopObserver)
	<-observerDone
	kill()
	mu.Lock()
	defer mu.Unlock()
	return int(answers.Load()), statuses
}

// routesActivate is the activation link of an acknowledged session.
func routesActivate(a *spawnAcked) string {
	return "/workshops/session/" + a.name + "/activate/?token=" + url.QueryEscape(a.token)
}

// admin sends a GET to the child's admin API and decodes a 200's body into v.
func (sc *spawnCrash) adminGet(path string, v any) (int, error) {
	r, err := e2etest.DoWith(sc.client, http.MethodGet, "http://"+sc.admin+"/portal/"+sc.portal+path, "", nil, nil)
	if err != nil {
		return 0, err
	}
	if r.Status == http.StatusOK {
		if err := json.Unmarshal(r.Body, v); err != nil {
			return r.Status, fmt.Errorf("%s: %v in %s", path, err, r.Body)
		}
	}
	return r.Status, nil
}

// liveSessions lists the live sessions (reserves included) through the
// admin API; every listing is an observation of the capacity.
func (sc *spawnCrash) liveSessions() ([]adminSession, error) {
	var list []adminSession
	status, err := sc.adminGet("/sessions/", &list)
	if err != nil {
		return nil, err
	}
	if status != http.StatusOK {
		return nil, fmt.Errorf("admin API sessions: %d", status)
	}
	sc.mu.Lock()
	sc.observed++
	sc.maxLive = max(sc.maxLive, len(list))
	sc.mu.Unlock()
	if len(list) > spawnCrashCapacity {
		sc.t.Errorf("%d live sessions for a capacity of %d: %v", len(list), spawnCrashCapacity, list)
	}
	return list, nil
}

// session is one session through the admin API; ok is false for a session
// the portal does not know.
func (sc *spawnCrash) session(name string) (s adminSession, ok bool) {
	sc.t.Helper()
	status, err := sc.adminGet("/sessions/"+name+"/", &s)
	if err != nil || status != http.StatusOK && status != http.StatusNotFound {
		sc.t.Fatalf("admin API session %s: %d %v", name, status, err)
	}
	return s, status == http.StatusOK
}

// checkStore reads the killed portal's store: every acknowledged session
// is there, a terminated one is ending or ended, and the live sessions fit
// the capacity. It returns what the live sessions were doing, for the log.
func (sc *spawnCrash) checkStore() string {
	t := sc.t
	t.Helper()
	st := sc.openStore()
	defer st.Close()
	stored := e2etest.StoredSessions(t, st)
	sc.mu.Lock()
	defer sc.mu.Unlock()
	for name, a := range sc.acked {
		s, ok := stored[name]
		if !ok {
			t.Fatalf("acknowledged session %s (round %d) lost after kill -9 (%d stored)", name, a.round, len(stored))
		}
		if s.Owner != a.user {
			t.Fatalf("acknowledged session %s belongs to %q, want %q", name, s.Owner, a.user)
		}
		if a.terminated && s.State != lifecycle.Stopping && s.State != lifecycle.Stopped {
			t.Fatalf("session %s was terminated (200) but is stored %s", name, s.State)
		}
	}
	now := time.Now()
	live := 0
	doing := map[string]int{}
	for _, s := range stored {
		if !s.Live(now) {
			continue
		}
		live++
		switch st, _ := s.Effective(now); {
		case s.Spawning:
			doing[string(st)+" (spawning)"]++
		case st == lifecycle.Starting && s.Env == nil:
			doing[string(st)+" (queued)"]++
		default:
			doing[string(st)]++
		}
	}
	sc.observed++
	sc.maxLive = max(sc.maxLive, live)
	if live > spawnCrashCapacity {
		t.Fatalf("%d live sessions stored for a capacity of %d", live, spawnCrashCapacity)
	}
	return fmt.Sprint(doing)
}

// settle waits (bounded) until the restarted portal has no session starting
// or stopping and its reserves are ready, and returns the live sessions.
func (sc *spawnCrash) settle() map[string]adminSession {
	t := sc.t
	t.Helper()
	deadline := time.Now().Add(spawnCrashSettle)
	for {
		list, err := sc.liveSessions()
		busy := []string{}
		allocated, reserves := 0, 0
		for _, s := range list {
			if s.State != lifecycle.Waiting && s.State != lifecycle.Running {
				busy = append(busy, s.Name+" "+string(s.State))
			}
			if s.Owner == "" {
				reserves++
			} else {
				allocated++
			}
		}
		// Reserves are real: the pool is topped up again (by the
		// periodic pass) as far as the capacity allows.
		want := min(spawnCrashReserved, spawnCrashCapacity-allocated)
		if err == nil && len(busy) == 0 && reserves == want {
			live := map[string]adminSession{}
			for _, s := range list {
				live[s.Name] = s
			}
			return live
		}
		if time.Now().After(deadline) {
			t.Fatalf("the restarted portal did not settle in %v: %v; still busy: %v; %d reserves ready, want %d",
				spawnCrashSettle, err, busy, reserves, want)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// checkSettled checks a settled portal: processes, acknowledged sessions,
// session directories.
func (sc *spawnCrash) checkSettled(p *portal, live map[string]adminSession) {
	t := sc.t
	t.Helper()
	// (1) Every dashboard process of this portal belongs to a live
	// session; each ready session has exactly one. A session not in the
	// listing may have started since (a reserve refilled): it must exist
	// and be live, never STOPPED (STOPPED comes only after its processes
	// are gone).
	procs := dashboardsOf(sc.marker)
	total := 0
	for name, pids := range procs {
		total += len(pids)
		if _, ok := live[name]; ok {
			continue
		}
		s, ok := sc.session(name)
		if !ok || s.State == lifecycle.Stopped {
			t.Fatalf("orphan dashboard processes %v of session %s (known %v, state %s, reason %q)", pids, name, ok, s.State, s.Reason)
		}
	}
	for name := range live {
		if n := len(procs[name]); n != 1 {
			t.Fatalf("ready session %s (%s) has %d dashboard processes %v, want 1", name, live[name].State, n, procs[name])
		}
	}

	// (4) Session directories and the spawner's state files exist only
	// for live sessions, and every ready session has its directory.
	entries, err := os.ReadDir(sc.sessDir)
	if err != nil {
		t.Fatal(err)
	}
	dirs := map[string]bool{}
	for _, e := range entries {
		if e.Name() != ".caddyportal" {
			dirs[e.Name()] = true
		}
	}
	state, _ := os.ReadDir(filepath.Join(sc.sessDir, ".caddyportal"))
	for _, e := range state {
		if e.Name() == "spare" && e.IsDir() {
			continue
		}
		dirs[strings.TrimSuffix(strings.TrimSuffix(e.Name(), ".json"), ".out")] = true
	}
	// Spares, kept or made for later starts, hold no record of a session.
	spareDir := filepath.Join(sc.sessDir, ".caddyportal", "spare")
	spares, _ := os.ReadDir(spareDir)
	for _, e := range spares {
		if strings.HasSuffix(e.Name(), ".dir") {
			// Made ahead, never a session's: empty.
			if inside, err := os.ReadDir(filepath.Join(spareDir, e.Name())); err != nil || len(inside) != 0 {
				t.Fatalf("spare directory %s holds %d entries (%v), want none", e.Name(), len(inside), err)
			}
			continue
		}
		if !strings.HasSuffix(e.Name(), ".json") {
			continue
		}
		b, err := os.ReadFile(filepath.Join(spareDir, e.Name()))
		if err != nil || len(bytes.TrimSpace(b)) != 0 {
			t.Fatalf("spare state file %s holds %q (%v), want nothing but spaces", e.Name(), b, err)
		}
	}
	for name := range dirs {
		if _, ok := live[name]; ok {
			continue
		}
		if s, ok := sc.session(name); !ok || s.State == lifecycle.Stopped {
			t.Fatalf("files of ended or unknown session %s are left in the spawner's dir (known %v, reason %q)", name, ok, s.Reason)
		}
	}
	for name := range live {
		if fi, err := os.Stat(filepath.Join(sc.sessDir, name)); err != nil || !fi.IsDir() {
			t.Fatalf("ready session %s has no directory: %v", name, err)
		}
	}

	// (2) Every acknowledged session is ready and its dashboard answers
	// through the gate, or it is STOPPED with a reason.
	sc.mu.Lock()
	acked := make([]*spawnAcked, 0, len(sc.acked))
	for _, a := range sc.acked {
		acked = append(acked, a)
	}
	sc.mu.Unlock()
	sort.Slice(acked, func(i, j int) bool { return acked[i].name < acked[j].name })
	reasons := map[string]int{}
	ready := 0
	for _, a := range acked {
		s, ok := sc.session(a.name)
		if !ok {
			t.Fatalf("acknowledged session %s (round %d) is lost: the portal does not know it", a.name, a.round)
		}
		switch s.State {
		case lifecycle.Stopped:
			if s.Reason == "" {
				t.Fatalf("acknowledged session %s is STOPPED without a reason", a.name)
			}
			reasons[s.Reason]++
			continue
		case lifecycle.Waiting, lifecycle.Running:
		default:
			t.Fatalf("acknowledged session %s is %s after the portal settled", a.name, s.State)
		}
		if a.terminated {
			t.Fatalf("session %s was terminated (200) but is %s again", a.name, s.State)
		}
		if s.Owner != a.user {
			t.Fatalf("session %s belongs to %q, want %q", a.name, s.Owner, a.user)
		}
		ready++
		sc.checkGate(p, a)
	}
	reserves := 0
	for _, s := range live {
		if s.Owner == "" {
			reserves++
		}
	}
	t.Logf("settled: %d live sessions (%d reserves), %d dashboard processes; acknowledged: %d ready, stopped %v",
		len(live), reserves, total, ready, reasons)
}

// checkGate activates an acknowledged ready session again and reads its
// dashboard (Python's directory listing) through the gate.
func (sc *spawnCrash) checkGate(p *portal, a *spawnAcked) {
	t := sc.t
	t.Helper()
	act := p.Do(http.MethodGet, routesActivate(a), "", nil, nil)
	if act.Status != http.StatusFound || act.Header.Get("Location") != "/workshops/session/"+a.name+"/" {
		t.Fatalf("activation of ready session %s: %d %q %s", a.name, act.Status, act.Header.Get("Location"), act.Body)
	}
	var ck string
	for _, k := range (&http.Response{Header: act.Header}).Cookies() {
		if k.Name == "portal-"+sc.portal+"-"+a.name {
			ck = k.Name + "=" + k.Value
		}
	}
	if ck == "" {
		t.Fatalf("activation of ready session %s set no session cookie", a.name)
	}
	var last resp
	waitFor(t, "the dashboard of "+a.name+" through the gate", func() bool {
		last = p.Do(http.MethodGet, "/workshops/session/"+a.name+"/", "", nil, map[string]string{"Cookie": ck})
		return last.Status == http.StatusOK && bytes.Contains(last.Body, []byte("Directory listing"))
	})
}

// dashboardsOf finds the live (not zombie) processes whose environment
// carries a marker starting with prefix, by session.
func dashboardsOf(prefix string) map[string][]int {
	out := map[string][]int{}
	entries, _ := os.ReadDir("/proc")
	key := []byte("CADDYPORTAL_ENV=" + prefix)
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		env, err := os.ReadFile(filepath.Join("/proc", e.Name(), "environ"))
		if err != nil {
			continue
		}
		for _, kv := range bytes.Split(env, []byte{0}) {
			if !bytes.HasPrefix(kv, key) {
				continue
			}
			stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
			if i := bytes.LastIndexByte(stat, ')'); err != nil || i < 0 || i+2 >= len(stat) || stat[i+2] == 'Z' || stat[i+2] == 'X' {
				break // gone, or exited and waiting to be reaped
			}
			session := string(kv[len(key):])
			out[session] = append(out[session], pid)
		}
	}
	return out
}

// openStore opens the killed portal's store. Its lock is released when the
// last descriptor of it is closed: a dashboard the portal was forking when
// it was killed holds a copy until its exec closes it, so a failure to
// lock is retried (bounded) and then reported with the holders.
func (sc *spawnCrash) openStore() *badgerstore.Store {
	t := sc.t
	t.Helper()
	dir := filepath.Join(sc.dataDir, "badger")
	deadline := time.Now().Add(30 * time.Second)
	var (
		locked bool
		held   []string
	)
	for {
		st, err := badgerstore.Open(badgerstore.DefaultOptions(dir))
		if err == nil {
			if locked {
				t.Logf("the killed portal's store was still open by %v for a moment", held)
			}
			return st
		}
		if !locked {
			locked, held = true, holdersOf(dir)
		}
		if time.Now().After(deadline) {
			t.Fatalf("reopening the store after the kill: %v; open by %v", err, holdersOf(dir))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// holdersOf lists the processes with a file under dir open.
func holdersOf(dir string) []string {
	var out []string
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		fds, _ := os.ReadDir(filepath.Join("/proc", e.Name(), "fd"))
		for _, fd := range fds {
			l, _ := os.Readlink(filepath.Join("/proc", e.Name(), "fd", fd.Name()))
			if strings.HasPrefix(l, dir) {
				cmd, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
				out = append(out, e.Name()+" ("+string(bytes.ReplaceAll(cmd, []byte{0}, []byte(" ")))+"): "+l)
			}
		}
	}
	return out
}
