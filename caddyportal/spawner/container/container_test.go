package container_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log"
	"maps"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moby/moby/client"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/caddyportal/caddyportal/caddyportal/spawner"
	"github.com/caddyportal/caddyportal/caddyportal/spawner/container"
	"github.com/caddyportal/caddyportal/internal/e2etest/engine"
)

// newSpawner returns a container spawner of the test image for a portal
// named after the test and this run's process, so neither tests nor two runs
// on one engine see each other's containers, and checks when the test ends
// that nothing of that portal is left.
func newSpawner(t *testing.T, change func(*container.Config)) *container.Spawner {
	t.Helper()
	portal := "t" + strconv.Itoa(os.Getpid()) + "-" + strings.ToLower(strings.NewReplacer("/", "-", "_", "-").Replace(t.Name()))
	cfg := container.Config{
		Engine: engine.Host(t), Image: engine.Image(t), Port: 8080, Pull: container.PullNever,
		ReadyPath: "/env", StopTimeout: time.Second, Portal: portal, Replica: "r1",
	}
	if change != nil {
		change(&cfg)
	}
	s, err := container.New(context.Background(), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	cli := engine.Client(t)
	t.Cleanup(func() {
		defer s.Close()
		envs, err := s.List(context.Background())
		if err != nil {
			t.Error(err)
		}
		for _, e := range envs {
			_ = s.Stop(context.Background(), e)
		}
		if len(envs) > 0 {
			t.Errorf("the test left %d environments behind", len(envs))
		}
		if c, n := engine.Count(t, cli, container.LabelPortal+"="+portal); c+n > 0 {
			t.Errorf("left behind: %d containers, %d networks", c, n)
		}
	})
	return s
}

func spec(session string) spawner.Spec {
	return spawner.Spec{Portal: "p", Session: session, User: "alice", Workshop: "lab", Environment: "lab-w01",
		Prefix: "/workshops/session/" + session + "/", URL: "http://" + session + ".lab.test:8000/",
		Domain: "lab.test", Protocol: "http", Parameters: map[string]string{"COLOR": "blue"}}
}

func start(t *testing.T, s *container.Spawner, session string) spawner.Env {
	t.Helper()
	var steps []string
	env, err := s.Start(context.Background(), spec(session), func(p spawner.Progress) { steps = append(steps, p.Step) })
	if err != nil {
		t.Fatal(err)
	}
	if err := spawner.WaitReady(context.Background(), s, env, nil); err != nil {
		t.Fatal(err)
	}
	if want := []string{spawner.StepStarting, container.StepCreating, spawner.StepStarted}; strings.Join(steps, ",") != strings.Join(want, ",") {
		t.Errorf("progress steps %v, want %v", steps, want)
	}
	return env
}

func get(t *testing.T, addr, path string) string {
	t.Helper()
	resp, err := http.Get("http://" + addr + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

func state(t *testing.T, env spawner.Env) container.State {
	t.Helper()
	var st container.State
	if err := json.Unmarshal(env.State, &st); err != nil {
		t.Fatal(err)
	}
	return st
}

func TestStartServesStopsAndRemovesEverything(t *testing.T) {
	s := newSpawner(t, func(c *container.Config) {
		c.Env = []container.EnvVar{{Name: "WHERE", Value: "{session} on {port} under {prefix}"}}
	})
	cli := engine.Client(t)
	env := start(t, s, "s1")
	ins, err := cli.ContainerInspect(context.Background(), state(t, env).Container, client.ContainerInspectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var volume string
	for _, m := range ins.Container.Mounts {
		if m.Destination == "/data" {
			volume = m.Name
		}
	}
	if volume == "" {
		t.Fatal("the container has no anonymous volume at /data: the test image changed, and this test no longer checks that it goes")
	}
	if !strings.HasPrefix(env.Addr, "127.0.0.1:") {
		t.Errorf("published on %s, want the loopback bind host", env.Addr)
	}
	var got map[string]string
	if err := json.Unmarshal([]byte(get(t, env.Addr, "/env")), &got); err != nil {
		t.Fatal(err)
	}
	for k, v := range map[string]string{
		"SESSION_NAME": "s1", "WORKSHOP_NAME": "lab", "ENVIRONMENT_NAME": "lab-w01", "PORTAL_USER": "alice",
		"SESSION_URL": "http://s1.lab.test:8000/", "INGRESS_DOMAIN": "lab.test", "COLOR": "blue",
		"WHERE": "s1 on 8080 under /workshops/session/s1/",
	} {
		if got[k] != v {
			t.Errorf("%s = %q, want %q", k, got[k], v)
		}
	}
	if err := s.Alive(context.Background(), env); err != nil {
		t.Errorf("Alive of a running container: %v", err)
	}
	listed, err := s.List(context.Background())
	if err != nil || len(listed) != 1 || listed[0].Session != "s1" || listed[0].Addr != env.Addr {
		t.Fatalf("List = %+v, %v; want s1 at %s", listed, err, env.Addr)
	}
	st := state(t, env)
	if st.Container == "" {
		t.Fatalf("state %+v lacks the container", st)
	}
	// A network of the session's own: on Podman a network namespace with
	// user-mode networking, on Docker a bridge network made for it (whose
	// isolation TestSessionsAreIsolated checks on either engine).
	mode := string(ins.Container.HostConfig.NetworkMode)
	switch {
	case s.OnPodman():
		if mode != "slirp4netns" && !strings.HasPrefix(mode, "slirp4netns:") {
			t.Errorf("network mode %q: on Podman a session's container has a network namespace of its own", mode)
		}
	case st.Network == "":
		t.Errorf("network mode %q and the state names no network: on Docker a session's container has a bridge network of its own", mode)
	default:
		n, err := cli.NetworkInspect(context.Background(), st.Network, client.NetworkInspectOptions{})
		if err != nil || n.Network.Name != mode || n.Network.Labels[container.LabelSession] != "s1" {
			t.Errorf("network mode %q, the session's network %+v (%v): on Docker a session's container has a bridge network of its own", mode, n.Network, err)
		}
	}
	if err := s.Stop(context.Background(), env); err != nil {
		t.Fatal(err)
	}
	if err := s.Alive(context.Background(), env); !errors.Is(err, spawner.ErrGone) {
		t.Errorf("Alive after Stop = %v, want ErrGone", err)
	}
	if err := s.Stop(context.Background(), env); err != nil {
		t.Errorf("a second Stop: %v", err)
	}
	if _, err := cli.VolumeInspect(context.Background(), volume, client.VolumeInspectOptions{}); err == nil {
		t.Errorf("the container's anonymous volume %s is still there", volume)
	}
	if st.Network != "" {
		if _, err := cli.NetworkInspect(context.Background(), st.Network, client.NetworkInspectOptions{}); err == nil {
			t.Errorf("the session's network %s is still there", st.Network)
		}
	}
}

// TestSessionsAreIsolated: a learner's container reaches neither another
// session's published port nor a service the portal's host runs on
// loopback (where the admin endpoints listen), by any address of the host
// or of the container's gateway, while other sessions' bridge networks are
// created and removed on the same engine (which is what broke the
// isolation of per-session bridges on Podman 4.3). It does reach its own
// dashboard and a service on the host's own address, so the probe itself
// works and the refusals mean something.
func TestSessionsAreIsolated(t *testing.T) {
	s := newSpawner(t, nil)
	a := start(t, s, "a")
	b := start(t, s, "b")
	admin, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	public, err := net.Listen("tcp", ":0")
	if err != nil {
		t.Fatal(err)
	}
	defer public.Close()
	_, adminPort, _ := net.SplitHostPort(admin.Addr().String())
	_, publicPort, _ := net.SplitHostPort(public.Addr().String())
	_, bPort, _ := net.SplitHostPort(b.Addr)

	// Every way a container might name the host: its own addresses, and
	// slirp4netns's gateway and DNS addresses (which forward to the host).
	hosts := []string{"10.0.2.2", "10.0.2.3", "fd00::2"}
	hostIP := ""
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		t.Fatal(err)
	}
	for _, ad := range addrs {
		if n, ok := ad.(*net.IPNet); ok && !n.IP.IsLoopback() && !n.IP.IsLinkLocalUnicast() {
			hosts = append(hosts, n.IP.String())
			if hostIP == "" && n.IP.To4() != nil {
				hostIP = n.IP.String()
			}
		}
	}
	if hostIP == "" {
		t.Fatal("the host has no IPv4 address but loopback: nothing to check the isolation against")
	}
	// And b's own addresses on a network, should it have any a does not
	// share (with bridges; slirp4netns gives every container the same one).
	ips := func(e spawner.Env) map[string]bool {
		ins, err := engine.Client(t).ContainerInspect(context.Background(), state(t, e).Container, client.ContainerInspectOptions{})
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]bool{}
		for _, n := range ins.Container.NetworkSettings.Networks {
			if n.IPAddress.IsValid() {
				out[n.IPAddress.String()] = true
			}
		}
		return out
	}
	aIPs := ips(a)
	var bTargets []string
	for ip := range ips(b) {
		if !aIPs[ip] {
			bTargets = append(bTargets, net.JoinHostPort(ip, "8080"))
		}
	}
	if got := get(t, a.Addr, "/dial?addr=127.0.0.1:8080"); !strings.Contains(got, "connected") {
		t.Fatalf("the container cannot reach its own dashboard (%q): the dial test is broken", got)
	}
	if got := get(t, a.Addr, "/dial?addr="+net.JoinHostPort(hostIP, publicPort)); !strings.Contains(got, "connected") {
		t.Fatalf("the container cannot reach a service on the host's address %s (%q): the dial test is broken", hostIP, got)
	}

	// Churn: another portal's sessions with bridge networks of their own
	// start and end while a probes.
	churner := newSpawner(t, nil)
	churner.UseBridges()
	done := make(chan error, 1)
	go func() {
		var errs []error
		for i := range 3 {
			env, err := churner.Start(context.Background(), spec(fmt.Sprintf("churn%d", i)), nil)
			if err == nil {
				err = churner.Stop(context.Background(), env)
			}
			errs = append(errs, err)
		}
		done <- errors.Join(errs...)
	}()
	probes, reached := 0, ""
	for churning := true; churning; {
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("churn: %v", err)
			}
			churning = false
		default:
		}
		targets := map[string]string{}
		for _, h := range hosts {
			targets[net.JoinHostPort(h, bPort)] = "another session's published port"
			targets[net.JoinHostPort(h, adminPort)] = "the host's loopback service"
		}
		for _, bt := range bTargets {
			targets[bt] = "another session's container"
		}
		for target, what := range targets {
			probes++
			if got := get(t, a.Addr, "/dial?addr="+target); reached == "" && !strings.Contains(got, "error") {
				reached = fmt.Sprintf("%s (%s) is reachable after %d probes: %q", what, target, probes, got)
			}
		}
	}
	if reached != "" {
		t.Fatal(reached)
	}
	t.Logf("%d probes, none reached another session or the host's loopback", probes)
	for _, e := range []spawner.Env{a, b} {
		if err := s.Stop(context.Background(), e); err != nil {
			t.Error(err)
		}
	}
}

// TestBridgeNetworkPerSession: on Docker each session gets a bridge network
// of its own, made at the start and removed at the end (run here on
// Podman, where it is made with "isolate").
func TestBridgeNetworkPerSession(t *testing.T) {
	s := newSpawner(t, nil)
	s.UseBridges()
	env := start(t, s, "br1")
	cli := engine.Client(t)
	st := state(t, env)
	if st.Network == "" {
		t.Fatalf("state %+v names no network of the session's own", st)
	}
	n, err := cli.NetworkInspect(context.Background(), st.Network, client.NetworkInspectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if n.Network.Labels[container.LabelSession] != "br1" {
		t.Errorf("the session's network has labels %v", n.Network.Labels)
	}
	if err := s.Stop(context.Background(), env); err != nil {
		t.Fatal(err)
	}
	if _, err := cli.NetworkInspect(context.Background(), st.Network, client.NetworkInspectOptions{}); err == nil {
		t.Error("the session's network is still there")
	}
}

// TestCutShortCreateLeavesNoNetwork: a start cut short while the engine
// creates the session's network (a reload, Close) still learns the network's
// ID and removes it. It used to leave it behind under the session's name,
// and on Docker, which lets two networks share a name, the session's next
// start then failed: "network ... is ambiguous". A front before the engine
// holds the create's answer until the start's context is cancelled.
func TestCutShortCreateLeavesNoNetwork(t *testing.T) {
	sock := strings.TrimPrefix(engine.Host(t), "unix://")
	if sock == engine.Host(t) {
		t.Fatalf("the front needs the engine on a unix socket, not %s", engine.Host(t))
	}
	proxy := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) { pr.Out.URL.Scheme, pr.Out.URL.Host = "http", "engine" },
		Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", sock)
		}},
	}
	created, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || !strings.HasSuffix(r.URL.Path, "/networks/create") {
			proxy.ServeHTTP(w, r)
			return
		}
		// The engine makes the network; its answer waits.
		rec := httptest.NewRecorder()
		proxy.ServeHTTP(rec, r.WithContext(context.WithoutCancel(r.Context())))
		once.Do(func() { close(created) })
		<-release
		maps.Copy(w.Header(), rec.Header())
		w.WriteHeader(rec.Code)
		_, _ = w.Write(rec.Body.Bytes())
	}))
	t.Cleanup(front.Close)
	s := newSpawner(t, func(c *container.Config) { c.Engine = "tcp://" + strings.TrimPrefix(front.URL, "http://") })
	s.UseBridges()
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		<-created
		cancel()
		close(release)
	}()
	if _, err := s.Start(ctx, spec("cut1"), nil); err == nil {
		t.Fatal("a start cancelled while its network was created succeeded")
	}
	if n, m := engine.Count(t, engine.Client(t), container.LabelSession+"=cut1"); n+m != 0 {
		t.Fatalf("the cut-short start left %d containers and %d networks", n, m)
	}
}

// TestSharedNetworkIsTheOperatorsChoice: with `network <name>` sessions
// share that network and reach each other, which is also what shows that
// the isolation test above would see a reachable container.
func TestSharedNetworkIsTheOperatorsChoice(t *testing.T) {
	cli := engine.Client(t)
	name := "shared-" + strings.ToLower(t.Name())
	if _, err := cli.NetworkCreate(context.Background(), name, client.NetworkCreateOptions{Driver: "bridge"}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = cli.NetworkRemove(context.Background(), name, client.NetworkRemoveOptions{}) })
	s := newSpawner(t, func(c *container.Config) { c.Network = name })
	a := start(t, s, "a")
	b := start(t, s, "b")
	if st := state(t, a); st.Network != "" {
		t.Errorf("a shared network is recorded as the session's own (%s): Stop would remove it", st.Network)
	}
	ib, err := cli.ContainerInspect(context.Background(), state(t, b).Container, client.ContainerInspectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	target := net.JoinHostPort(ib.Container.NetworkSettings.Networks[name].IPAddress.String(), "8080")
	if got := get(t, a.Addr, "/dial?addr="+target); !strings.Contains(got, "connected") {
		t.Errorf("on a shared network, a cannot reach b at %s: %q", target, got)
	}
	for _, e := range []spawner.Env{a, b} {
		if err := s.Stop(context.Background(), e); err != nil {
			t.Error(err)
		}
	}
}

// TestMemoryLimitEndsTheEnvironment: the engine enforces the memory limit,
// and Alive then says so in the learner's words.
func TestMemoryLimitEndsTheEnvironment(t *testing.T) {
	s := newSpawner(t, func(c *container.Config) { c.Memory = 32 << 20 })
	env := start(t, s, "m1")
	// The dashboard dies mid-answer; the error is expected.
	resp, err := http.Get("http://" + env.Addr + "/eat?mb=256")
	if err == nil {
		resp.Body.Close()
	}
	var alive error
	for range 100 { // the engine records the exit within moments
		if alive = s.Alive(context.Background(), env); alive != nil {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if !errors.Is(alive, spawner.ErrGone) || !strings.Contains(alive.Error(), "memory limit") {
		t.Fatalf("Alive after exceeding the memory limit = %v, want ErrGone naming memory", alive)
	}
	if err := s.Stop(context.Background(), env); err != nil {
		t.Fatal(err)
	}
}

func TestPidsLimitIsEnforced(t *testing.T) {
	s := newSpawner(t, func(c *container.Config) { c.Pids = 20 })
	env := start(t, s, "p1")
	got := get(t, env.Addr, "/fork?n=60")
	var n int
	if _, err := fmt.Sscanf(got, "started %d", &n); err != nil {
		t.Fatalf("fork answer %q: %v", got, err)
	}
	if n >= 20 || !strings.Contains(got, "error") {
		t.Errorf("the container started %d processes under a limit of 20: %q", n, got)
	}
	if err := s.Stop(context.Background(), env); err != nil {
		t.Fatal(err)
	}
}

// TestCPULimitIsEnforced: `cpus 0.5` becomes the container's CFS quota,
// and a dashboard that keeps two CPUs busy for a second gets about half a
// second of CPU time.
func TestCPULimitIsEnforced(t *testing.T) {
	s := newSpawner(t, func(c *container.Config) { c.CPUs = 0.5 })
	env := start(t, s, "c1")
	ins, err := engine.Client(t).ContainerInspect(context.Background(), state(t, env).Container, client.ContainerInspectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	quota, period, err := cfsQuota(ins.Container.State.Pid)
	if err != nil {
		t.Fatal(err)
	}
	if quota*2 != period {
		t.Errorf("the container's CFS quota is %d per %d µs, want half the period", quota, period)
	}
	got := get(t, env.Addr, "/burn?ms=1000")
	var used int
	if _, err := fmt.Sscanf(got, "cpu_ms %d", &used); err != nil {
		t.Fatalf("burn answer %q: %v", got, err)
	}
	// Half of one second, plus a period of slack at each end.
	if used > 700 {
		t.Errorf("a dashboard limited to half a CPU used %d ms of CPU in one second", used)
	}
	if err := s.Stop(context.Background(), env); err != nil {
		t.Fatal(err)
	}
}

// cfsQuota reads the CFS quota and period (µs) of the cgroup of process
// pid, from cgroup v1's cpu controller or cgroup v2's cpu.max ("max" is -1).
func cfsQuota(pid int) (quota, period int64, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
	if err != nil {
		return 0, 0, err
	}
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		parts := strings.SplitN(line, ":", 3)
		if len(parts) != 3 {
			continue
		}
		for _, ctrl := range strings.Split(parts[1], ",") {
			if ctrl != "cpu" {
				continue
			}
			dir := filepath.Join("/sys/fs/cgroup", parts[1], parts[2])
			q, qerr := os.ReadFile(filepath.Join(dir, "cpu.cfs_quota_us"))
			p, perr := os.ReadFile(filepath.Join(dir, "cpu.cfs_period_us"))
			if err := errors.Join(qerr, perr); err != nil {
				return 0, 0, err
			}
			_, err = fmt.Sscanf(strings.TrimSpace(string(q))+" "+strings.TrimSpace(string(p)), "%d %d", &quota, &period)
			return quota, period, err
		}
	}
	for _, line := range strings.Split(string(b), "\n") {
		if path, ok := strings.CutPrefix(line, "0::"); ok {
			m, err := os.ReadFile(filepath.Join("/sys/fs/cgroup", path, "cpu.max"))
			if err != nil {
				return 0, 0, err
			}
			f := strings.Fields(string(m))
			if len(f) != 2 {
				return 0, 0, fmt.Errorf("cpu.max %q", m)
			}
			if f[0] == "max" {
				quota = -1
			} else if _, err := fmt.Sscanf(f[0], "%d", &quota); err != nil {
				return 0, 0, err
			}
			_, err = fmt.Sscanf(f[1], "%d", &period)
			return quota, period, err
		}
	}
	return 0, 0, fmt.Errorf("no cpu cgroup for process %d: %s", pid, b)
}

// TestAnotherSpawnerAdoptsAndCleans is a portal restart: a new spawner of
// the same portal and replica lists the running container (so the portal
// can adopt it) and a network a killed start left without a container.
func TestAnotherSpawnerAdoptsAndCleans(t *testing.T) {
	s := newSpawner(t, nil)
	env := start(t, s, "r1")
	cli := engine.Client(t)
	st := state(t, env)
	if _, err := cli.NetworkCreate(context.Background(), "leftover-"+st.Portal, client.NetworkCreateOptions{Labels: map[string]string{
		container.LabelPortal: st.Portal, container.LabelReplica: "r1", container.LabelSession: "gone",
	}}); err != nil {
		t.Fatal(err)
	}
	other, err := container.New(context.Background(), container.Config{Engine: engine.Host(t), Image: engine.Image(t), Port: 8080,
		Portal: st.Portal, Replica: "r2"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	if l, err := other.List(context.Background()); err != nil || len(l) != 0 {
		t.Errorf("another replica lists %+v, %v; want nothing", l, err)
	}
	again := newSpawnerLike(t, s, nil)
	listed, err := again.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]string{}
	for _, e := range listed {
		seen[e.Session] = e.Addr
		if e.Session == "r1" {
			if err := again.Alive(context.Background(), e); err != nil {
				t.Errorf("the listed container is not alive: %v", err)
			}
		}
	}
	if seen["r1"] != env.Addr || len(seen) != 2 {
		t.Fatalf("listed %v; want r1 at %s and the leftover network of session gone", seen, env.Addr)
	}
	for _, e := range listed {
		if err := again.Stop(context.Background(), e); err != nil {
			t.Error(err)
		}
	}
}

// newSpawnerLike returns another spawner of the same portal and replica as
// newSpawner's (a restarted portal, or another workshop), changed by change.
func newSpawnerLike(t *testing.T, like *container.Spawner, change func(*container.Config)) *container.Spawner {
	t.Helper()
	cfg := like.Config()
	if change != nil {
		change(&cfg)
	}
	s, err := container.New(context.Background(), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// TestExitedDashboardIsGoneWithItsStatus: a container whose dashboard exits
// is reported gone at once (no waiting out the start timeout), with its
// exit status.
func TestExitedDashboardIsGoneWithItsStatus(t *testing.T) {
	s := newSpawner(t, func(c *container.Config) { c.Command = []string{"/testdash", "not-a-port"} })
	// The reason quotes what the dashboard said before it exited, whether
	// Start or the readiness wait sees it gone.
	const want = "status 1; last output: testdash: "
	env, err := s.Start(context.Background(), spec("x1"), nil)
	if err != nil {
		// The container may already have exited when Start looked.
		if !errors.Is(err, spawner.ErrGone) || !strings.Contains(err.Error(), want) {
			t.Fatalf("Start = %v, want ErrGone saying %q", err, want)
		}
		return
	}
	err = spawner.WaitReady(context.Background(), s, env, nil)
	if !errors.Is(err, spawner.ErrGone) || !strings.Contains(err.Error(), want) {
		t.Errorf("WaitReady = %v, want ErrGone saying %q", err, want)
	}
	if err := s.Stop(context.Background(), env); err != nil {
		t.Fatal(err)
	}
}

func TestConfigErrors(t *testing.T) {
	for name, tc := range map[string]struct {
		cfg  container.Config
		want string
	}{
		"no image":     {container.Config{Port: 80, Portal: "p"}, "image is required"},
		"no port":      {container.Config{Image: "x", Portal: "p"}, "port"},
		"bad pull":     {container.Config{Image: "x", Port: 80, Portal: "p", Pull: "sometimes"}, "never, missing or always"},
		"tiny memory":  {container.Config{Image: "x", Port: 80, Portal: "p", Memory: 1024}, "6MiB"},
		"placeholder":  {container.Config{Image: "x", Port: 80, Portal: "p", Command: []string{"{prot}"}}, "unknown placeholder"},
		"volume":       {container.Config{Image: "x", Port: 80, Portal: "p", Mounts: []container.Mount{{Source: "rel", Target: "/x"}}}, "absolute"},
		"bind":         {container.Config{Image: "x", Port: 80, Portal: "p", BindHost: "localhost"}, "IP address"},
		"bind all":     {container.Config{Image: "x", Port: 80, Portal: "p", BindHost: "0.0.0.0"}, "unspecified address"},
		"bind all v6":  {container.Config{Image: "x", Port: 80, Portal: "p", BindHost: "::"}, "unspecified address"},
		"dead engine":  {container.Config{Image: "x", Port: 80, Portal: "p", Engine: "unix:///nonexistent.sock"}, "does not answer"},
		"missing pull": {container.Config{Image: "localhost/absent:1", Port: 80, Portal: "p", Pull: "never", Engine: "HOST"}, "not on the engine"},
	} {
		t.Run(name, func(t *testing.T) {
			cfg := tc.cfg
			if cfg.Engine == "HOST" {
				cfg.Engine = engine.Host(t)
			}
			s, err := container.New(context.Background(), cfg, nil)
			if err == nil {
				defer s.Close()
				_, err = s.Start(context.Background(), spec("c1"), nil)
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one saying %q", err, tc.want)
			}
		})
	}
}

// TestMissingImageIsWarnedAtLoad: with pull never, an image the engine
// does not have loads (it may be loaded later) with a warning naming it;
// the test image, which the engine has, gives none.
func TestMissingImageIsWarnedAtLoad(t *testing.T) {
	for image, warn := range map[string]bool{"localhost/absent:1": true, engine.Image(t): false} {
		core, logs := observer.New(zap.WarnLevel)
		s, err := container.New(context.Background(), container.Config{Engine: engine.Host(t), Image: image, Port: 80,
			Portal: "p", Pull: container.PullNever}, zap.New(core))
		if err != nil {
			t.Fatalf("%s: %v", image, err)
		}
		s.Close()
		got := logs.FilterMessageSnippet("not on the engine").FilterField(zap.String("image", image)).Len()
		if warn && got != 1 || !warn && got != 0 {
			t.Errorf("%s: %d warnings, want warn=%v", image, got, warn)
		}
	}
}

// TestEducatesContract: with the educates preset the container gets what an
// Educates workshop image expects when run standalone: its user, port,
// readiness path, the workshop definition where start-container reads it,
// and the variables its start-up scripts and gateway read. The test image
// records what it received (no registry here to pull Educates' own).
func TestEducatesContract(t *testing.T) {
	def := filepath.Join(t.TempDir(), "workshop.yaml")
	if err := os.WriteFile(def, []byte("spec:\n  title: Lab\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	s := newSpawner(t, func(c *container.Config) {
		c.Port, c.ReadyPath = 0, ""
		c.Educates, c.EducatesWorkshop = true, def
		c.Command = []string{"/testdash", "{port}"}
		// The test reads the environment: no gateway login in front.
		c.Env = []container.EnvVar{{Name: "TESTDASH_NO_LOGIN", Value: "1"}}
	})
	env := start(t, s, "e1")
	var got map[string]string
	if err := json.Unmarshal([]byte(get(t, env.Addr, "/env")), &got); err != nil {
		t.Fatal(err)
	}
	for k, v := range map[string]string{
		"testdash.uid": "1001", "testdash.gid": "0",
		"SESSION_NAME": "e1", "SESSION_NAMESPACE": "e1", "WORKSHOP_NAME": "lab", "ENVIRONMENT_NAME": "lab-w01",
		"SESSION_URL": "http://e1.lab.test:8000/", "SESSION_HOSTNAME": "e1.lab.test",
		"INGRESS_PROTOCOL": "http", "INGRESS_DOMAIN": "lab.test", "INGRESS_PORT_SUFFIX": ":8000",
	} {
		if got[k] != v {
			t.Errorf("%s = %q, want %q", k, got[k], v)
		}
	}
	if _, set := got["PORTAL_CLIENT_ID"]; set {
		t.Error("PORTAL_CLIENT_ID is set: the image's gateway would ask the portal for an OAuth login")
	}
	if _, port, _ := net.SplitHostPort(env.Addr); port == "" {
		t.Fatal("no published port")
	}
	if body := get(t, env.Addr, "/file?name="+container.EducatesWorkshopPath); body != "spec:\n  title: Lab\n" {
		t.Errorf("workshop definition in the container: %q", body)
	}
	if err := s.Stop(context.Background(), env); err != nil {
		t.Fatal(err)
	}

	// With the portal login, the gateway gets its client and the
	// countdown and restart link that need it.
	login := spec("e2")
	login.Login = &spawner.PortalClient{ID: "e2", Secret: "s3cret", URL: "http://e2.lab.test:8000", APIURL: "http://portal.internal:8000"}
	env, err := s.Start(context.Background(), login, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := spawner.WaitReady(context.Background(), s, env, nil); err != nil {
		t.Fatal(err)
	}
	got = nil
	if err := json.Unmarshal([]byte(get(t, env.Addr, "/env")), &got); err != nil {
		t.Fatal(err)
	}
	for k, v := range map[string]string{
		"PORTAL_CLIENT_ID": "e2", "PORTAL_CLIENT_SECRET": "s3cret", "PORTAL_URL": "http://e2.lab.test:8000",
		"PORTAL_API_URL": "http://portal.internal:8000", "ENABLE_COUNTDOWN": "true",
		"RESTART_URL": "http://e2.lab.test:8000/workshops/session/e2/delete/",
	} {
		if got[k] != v {
			t.Errorf("with the portal login, %s = %q, want %q", k, got[k], v)
		}
	}
	if err := s.Stop(context.Background(), env); err != nil {
		t.Fatal(err)
	}
}

// TestPullFromARegistry: with pull missing, a start pulls the image from a
// real registry, showing the pull in its progress, and concurrent starts of
// the missing image all get it; pull always pulls even when the engine has
// the image; a registry that cannot be reached fails the start, leaving
// nothing behind.
func TestPullFromARegistry(t *testing.T) {
	reg := engine.StartRegistry(t)
	s := newSpawner(t, func(c *container.Config) { c.Engine, c.Image, c.Pull = reg.Host, reg.Image, container.PullMissing })
	var mu sync.Mutex
	var pulling []string
	errs := make(chan error, 3)
	envs := make(chan spawner.Env, 3)
	for i := range 3 {
		go func() {
			env, err := s.Start(context.Background(), spec(fmt.Sprintf("pull%d", i)), func(p spawner.Progress) {
				if p.Step == container.StepPulling {
					mu.Lock()
					pulling = append(pulling, p.Message)
					mu.Unlock()
				}
			})
			if err == nil {
				err = spawner.WaitReady(context.Background(), s, env, nil)
				envs <- env
			}
			errs <- err
		}()
	}
	for range 3 {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
	close(envs)
	for env := range envs {
		if err := s.Stop(context.Background(), env); err != nil {
			t.Error(err)
		}
	}
	if len(pulling) == 0 || !strings.Contains(pulling[0], reg.Image) {
		t.Errorf("no pulling step was reported: %q", pulling)
	}

	always := newSpawnerLike(t, s, func(c *container.Config) { c.Pull = container.PullAlways })
	var pulled bool
	env, err := always.Start(context.Background(), spec("pull9"), func(p spawner.Progress) { pulled = pulled || p.Step == container.StepPulling })
	if err != nil {
		t.Fatal(err)
	}
	if !pulled {
		t.Error("pull always did not pull an image the engine has")
	}
	if err := always.Stop(context.Background(), env); err != nil {
		t.Fatal(err)
	}

	gone := newSpawnerLike(t, s, func(c *container.Config) { c.Image = "127.0.0.1:1/nothing:1" })
	if _, err := gone.Start(context.Background(), spec("pull10"), nil); err == nil || !strings.Contains(err.Error(), "pulling image") {
		t.Fatalf("a start from an unreachable registry: %v", err)
	}
}

// TestTCPEngine: an engine reached over TCP (as a remote engine shared by
// several replicas would be) publishes on, and is dialled at, the engine's
// host unless bind says otherwise.
func TestTCPEngine(t *testing.T) {
	host := engine.StartTCP(t)
	s := newSpawner(t, func(c *container.Config) { c.Engine = host })
	if got := s.Config().BindHost; got != "127.0.0.1" {
		t.Errorf("bind host %q, want the engine's host 127.0.0.1", got)
	}
	env := start(t, s, "tcp1")
	if !strings.Contains(get(t, env.Addr, "/env"), `"SESSION_NAME":"tcp1"`) {
		t.Error("the dashboard of a container started over TCP does not answer as itself")
	}
	if err := s.Stop(context.Background(), env); err != nil {
		t.Fatal(err)
	}
}

// TestTLSEngine: a remote engine over TCP with TLS and a client
// certificate, as several replicas would share one. Podman's service
// speaks no TLS, so the test puts a TLS front (requiring the client's
// certificate) before it; the spawner connects with the tls files.
func TestTLSEngine(t *testing.T) {
	dir := t.TempDir()
	ca, caKey := newCA(t)
	writePEM(t, filepath.Join(dir, "ca.pem"), "CERTIFICATE", ca.Raw)
	serverCert := issue(t, ca, caKey, false)
	clientCert := issue(t, ca, caKey, true)
	writePEM(t, filepath.Join(dir, "cert.pem"), "CERTIFICATE", clientCert.Certificate[0])
	keyDER, err := x509.MarshalPKCS8PrivateKey(clientCert.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	writePEM(t, filepath.Join(dir, "key.pem"), "PRIVATE KEY", keyDER)

	// The front forwards the Docker API to the test engine's socket.
	sock := strings.TrimPrefix(engine.Host(t), "unix://")
	if sock == engine.Host(t) {
		t.Fatalf("the TLS front needs the engine on a unix socket, not %s", engine.Host(t))
	}
	front := httptest.NewUnstartedServer(&httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) { pr.Out.URL.Scheme, pr.Out.URL.Host = "http", "engine" },
		Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", sock)
		}},
		FlushInterval: -1,
	})
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	front.TLS = &tls.Config{Certificates: []tls.Certificate{serverCert}, ClientCAs: pool, ClientAuth: tls.RequireAndVerifyClientCert}
	front.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshake below is expected
	front.StartTLS()
	t.Cleanup(front.Close)
	addr := "tcp://" + strings.TrimPrefix(front.URL, "https://")

	s := newSpawner(t, func(c *container.Config) {
		c.Engine = addr
		c.TLSCA, c.TLSCert, c.TLSKey = filepath.Join(dir, "ca.pem"), filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	})
	env := start(t, s, "tls1")
	if !strings.Contains(get(t, env.Addr, "/env"), `"SESSION_NAME":"tls1"`) {
		t.Error("the dashboard of a container started over TLS does not answer as itself")
	}
	if err := s.Stop(context.Background(), env); err != nil {
		t.Fatal(err)
	}
	// Without the client certificate the engine is not reachable.
	_, err = container.New(context.Background(), container.Config{Engine: addr, TLSCA: filepath.Join(dir, "ca.pem"),
		Image: engine.Image(t), Port: 8080, Portal: "p"}, nil)
	if err == nil {
		t.Error("an engine behind TLS answered a client without a certificate")
	}
}

func newCA(t *testing.T) (*x509.Certificate, *ecdsa.PrivateKey) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test engine CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true,
		KeyUsage: x509.KeyUsageCertSign, BasicConstraintsValid: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return ca, key
}

// issue makes a server certificate for 127.0.0.1, or a client one.
func issue(t *testing.T, ca *x509.Certificate, caKey *ecdsa.PrivateKey, client bool) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: "engine"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}}
	if client {
		tmpl.ExtKeyUsage, tmpl.IPAddresses, tmpl.Subject.CommonName = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}, nil, "portal"
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

func writePEM(t *testing.T, path, kind string, der []byte) {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: kind, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}
