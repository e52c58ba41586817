// Package engine gives tests a real container engine and a real image: the
// Docker Engine API of Podman (or Docker) named by DOCKER_HOST, which .ci/run
// starts, or else a `podman system service` this test process starts itself;
// and an image holding the testdash dashboard, built from source and
// imported through the API (no registry is needed). It imports nothing of
// Caddy, so the container spawner's own tests use it.
package engine

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/moby/moby/client"

	"github.com/caddyportal/caddyportal/caddyportal/spawner/container"
	"github.com/caddyportal/caddyportal/internal/gotool"
)

var (
	hostOnce sync.Once
	host     string
	hostErr  error
	// hostStop stops the service startHost started and hostDir is its
	// socket's directory (both unset when DOCKER_HOST names an engine).
	hostStop func()
	hostDir  string

	imageOnce sync.Once
	image     string
	imageErr  error
)

// Host returns the engine's address (unix:///... or tcp://...). When
// DOCKER_HOST is not set it starts `podman --runtime runc system service`
// on a socket of its own, once per test process; the service ends with the
// process. crun cannot run containers on these machines' cgroup setup,
// hence runc.
func Host(t testing.TB) string {
	t.Helper()
	h, err := Addr()
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// Addr is Host for programs that are not tests (the benchmark harness).
func Addr() (string, error) {
	hostOnce.Do(func() { host, hostErr = startHost() })
	return host, hostErr
}

func startHost() (string, error) {
	if h := os.Getenv("DOCKER_HOST"); h != "" {
		return h, nil
	}
	dir, err := os.MkdirTemp("", "caddyportal-engine")
	if err != nil {
		return "", err
	}
	h, stop, err := startService(filepath.Join(dir, "podman.sock"))
	if err != nil {
		os.RemoveAll(dir)
		return "", err
	}
	hostStop, hostDir = stop, dir
	return h, nil
}

// Cleanup stops the engine service this process started and removes what
// it built in the temporary directory (the service's socket directory, the
// testdash build). Call it once, after the last test (TestMain) or at the
// end of a program: without it every test run left a testdash binary
// behind. Images and containers are not touched; tests remove their own.
func Cleanup() {
	if hostStop != nil {
		hostStop()
	}
	if hostDir != "" {
		os.RemoveAll(hostDir)
	}
	if dashPath != "" {
		os.RemoveAll(filepath.Dir(dashPath))
	}
}

// startService starts `podman --runtime runc system service` on sock with
// extra environment variables, and returns its address and a function that
// stops it. The service also ends with this process.
func startService(sock string, env ...string) (string, func(), error) {
	return startServiceAt("unix://"+sock, func() bool { _, err := os.Stat(sock); return err == nil }, env...)
}

// StartTCP starts a Podman API service of its own on a loopback TCP port
// (plain HTTP), for the test, and returns its tcp:// address.
func StartTCP(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	up := func() bool {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
		}
		return err == nil
	}
	h, stop, err := startServiceAt("tcp://"+addr, up)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stop)
	return h
}

// startServiceAt starts the service on addr and waits until up says so.
func startServiceAt(addr string, up func() bool, env ...string) (string, func(), error) {
	podman, err := exec.LookPath("podman")
	if err != nil {
		return "", nil, fmt.Errorf("no container engine: DOCKER_HOST is not set and podman is not installed (apt-get install -y podman runc): %v", err)
	}
	// The service writes a file named "oom" into its working directory
	// when a container is OOM-killed: a directory of its own keeps it out
	// of the source tree (where it was committed four times). One
	// shared by every run, since a service started once per test process
	// ends with it and cannot remove a directory of its own afterwards.
	dir := filepath.Join(os.TempDir(), "caddyportal-podman-service")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", nil, err
	}
	cmd := exec.Command(podman, "--runtime", "runc", "system", "service", "--time", "0", addr)
	cmd.Dir = dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	cmd.Env = append(os.Environ(), env...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		return "", nil, fmt.Errorf("starting podman system service: %v", err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	stop := func() { _ = cmd.Process.Signal(syscall.SIGTERM); <-exited }
	// No deadline of ours: a busy machine is slow, a broken service exits
	// and says why.
	for {
		if up() {
			return addr, stop, nil
		}
		select {
		case <-exited:
			return "", nil, fmt.Errorf("podman system service exited: %s", out.String())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// Client returns an API client of the engine, closed when the test ends.
func Client(t testing.TB) *client.Client {
	t.Helper()
	c, err := NewClient()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// NewClient is Client for programs that are not tests; the caller closes it.
func NewClient() (*client.Client, error) {
	h, err := Addr()
	if err != nil {
		return nil, err
	}
	return client.New(client.FromEnv, client.WithHost(h))
}

// Image returns the reference of the test image: testdash as /testdash (its
// command) and an anonymous volume at /data (which every container gets,
// and which must go with it), built statically from this tree and imported once per test
// process under a tag derived from the binary, so a changed testdash is a
// new image and an unchanged one is not imported again.
func Image(t testing.TB) string {
	t.Helper()
	ref, err := BuildImage()
	if err != nil {
		t.Fatal(err)
	}
	return ref
}

var (
	dashOnce sync.Once
	dashPath string
	dashErr  error
)

// Testdash returns the path of the testdash program, built statically
// once per test process: the dashboard of the test image, and a dashboard
// process of its own for the process spawner's tests.
func Testdash(t testing.TB) string {
	t.Helper()
	p, err := TestdashBinary()
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestdashBinary is Testdash for programs that are not tests.
func TestdashBinary() (string, error) {
	dashOnce.Do(func() {
		dir, err := os.MkdirTemp("", "caddyportal-testdash")
		if err != nil {
			dashErr = err
			return
		}
		dashPath = filepath.Join(dir, "testdash")
		gocmd, err := gotool.Find()
		if err != nil {
			dashErr = err
			return
		}
		build := exec.Command(gocmd, "build", "-trimpath", "-o", dashPath, "github.com/caddyportal/caddyportal/internal/e2etest/testdash")
		build.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := build.CombinedOutput(); err != nil {
			dashErr = fmt.Errorf("building testdash: %v\n%s", err, out)
		}
	})
	return dashPath, dashErr
}

// BuildImage is Image for programs that are not tests (the benchmark
// harness runs the same image).
func BuildImage() (string, error) {
	imageOnce.Do(func() { image, imageErr = buildImage() })
	return image, imageErr
}

func buildImage() (string, error) {
	bin, err := TestdashBinary()
	if err != nil {
		return "", err
	}
	body, err := os.ReadFile(bin)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(body)
	// The tag also names the image's layout, so a change of the changes
	// below is a new image too.
	ref := "localhost/caddyportal-testdash:" + hex.EncodeToString(sum[:6]) + "-v2"
	c, err := NewClient()
	if err != nil {
		return "", err
	}
	defer c.Close()
	ctx := context.Background()
	if _, err := c.ImageInspect(ctx, ref); err == nil {
		return ref, nil
	}
	var tarball bytes.Buffer
	tw := tar.NewWriter(&tarball)
	for _, d := range []string{"tmp", "proc", "dev", "sys", "etc"} {
		mode := int64(0o755)
		if d == "tmp" {
			mode = 0o1777
		}
		if err := tw.WriteHeader(&tar.Header{Name: d + "/", Typeflag: tar.TypeDir, Mode: mode}); err != nil {
			return "", err
		}
	}
	if err := tw.WriteHeader(&tar.Header{Name: "testdash", Mode: 0o755, Size: int64(len(body))}); err != nil {
		return "", err
	}
	if _, err := tw.Write(body); err != nil {
		return "", err
	}
	if err := tw.Close(); err != nil {
		return "", err
	}
	res, err := c.ImageImport(ctx, client.ImageImportSource{Source: &tarball, SourceName: "-"}, ref,
		client.ImageImportOptions{Changes: []string{`CMD ["/testdash"]`, "WORKDIR /tmp", "VOLUME /data"}})
	if err != nil {
		return "", fmt.Errorf("importing the test image: %w", err)
	}
	msg, _ := readAll(res)
	res.Close()
	if _, err := c.ImageInspect(ctx, ref); err != nil {
		return "", fmt.Errorf("the imported test image is not there (%s): %w", strings.TrimSpace(msg), err)
	}
	return ref, nil
}

func readAll(r interface{ Read([]byte) (int, error) }) (string, error) {
	var b bytes.Buffer
	_, err := b.ReadFrom(r)
	return b.String(), err
}

// Podman reports whether the engine c talks to is Podman, as the container
// spawner decides it (container.IsPodman).
func Podman(t testing.TB, c *client.Client) bool {
	t.Helper()
	v, err := c.ServerVersion(context.Background(), client.ServerVersionOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return container.IsPodman(v)
}

// Count returns how many containers and networks carry label (name=value).
func Count(t testing.TB, c *client.Client, label string) (containers, networks int) {
	t.Helper()
	containers, networks, err := Labelled(context.Background(), c, label)
	if err != nil {
		t.Fatal(err)
	}
	return containers, networks
}

// Labelled is Count for programs that are not tests.
func Labelled(ctx context.Context, c *client.Client, label string) (containers, networks int, err error) {
	f := make(client.Filters).Add("label", label)
	cs, err := c.ContainerList(ctx, client.ContainerListOptions{All: true, Filters: f})
	if err != nil {
		return 0, 0, err
	}
	ns, err := c.NetworkList(ctx, client.NetworkListOptions{Filters: f})
	if err != nil {
		return 0, 0, err
	}
	return len(cs.Items), len(ns.Items), nil
}

// Remove force-removes every container and network carrying label, for a
// test's cleanup after a failure.
func Remove(t testing.TB, c *client.Client, label string) {
	t.Helper()
	RemoveLabelled(context.Background(), c, label)
}

// RemoveLabelled is Remove for programs that are not tests.
func RemoveLabelled(ctx context.Context, c *client.Client, label string) {
	f := make(client.Filters).Add("label", label)
	if cs, err := c.ContainerList(ctx, client.ContainerListOptions{All: true, Filters: f}); err == nil {
		for _, x := range cs.Items {
			_, _ = c.ContainerRemove(ctx, x.ID, client.ContainerRemoveOptions{Force: true, RemoveVolumes: true})
		}
	}
	if ns, err := c.NetworkList(ctx, client.NetworkListOptions{Filters: f}); err == nil {
		for _, n := range ns.Items {
			_, _ = c.NetworkRemove(ctx, n.ID, client.NetworkRemoveOptions{})
		}
	}
}

// Registry is a real image registry (Debian's docker-registry) on loopback
// holding the test image, and an engine that pulls from it: a Podman API
// service of its own, whose registries.conf lets it use the registry over
// plain HTTP (the shared engine's configuration is left alone).
type Registry struct {
	// Host is the engine's address.
	Host string
	// Image is the test image's reference in the registry; the engine
	// does not have it under this name until it pulls it.
	Image string
	// Addr is the registry's host:port.
	Addr string
}

// StartRegistry starts a Registry for the test.
func StartRegistry(t testing.TB) *Registry {
	t.Helper()
	bin, err := exec.LookPath("docker-registry")
	if err != nil {
		t.Fatalf("no image registry: install Debian's docker-registry: %v", err)
	}
	dir := t.TempDir()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	cfg := fmt.Sprintf("version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: %s\nhttp:\n  addr: %s\n", filepath.Join(dir, "data"), addr)
	conf := filepath.Join(dir, "registry.yml")
	regs := filepath.Join(dir, "registries.conf")
	if err := os.WriteFile(conf, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(regs, []byte(fmt.Sprintf("[[registry]]\nlocation = %q\ninsecure = true\n", addr)), 0o600); err != nil {
		t.Fatal(err)
	}
	reg := exec.Command(bin, "serve", conf)
	reg.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	if err := reg.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = reg.Process.Kill(); _ = reg.Wait() })
	host, stop, err := startService(filepath.Join(dir, "podman.sock"), "CONTAINERS_REGISTRIES_CONF="+regs)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stop)
	r := &Registry{Host: host, Addr: addr, Image: addr + "/testdash:" + strings.ReplaceAll(strings.TrimPrefix(Image(t), "localhost/caddyportal-testdash:"), "-", "")}
	c, err := client.New(client.FromEnv, client.WithHost(host))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()
	if _, err := c.ImageTag(ctx, client.ImageTagOptions{Source: Image(t), Target: r.Image}); err != nil {
		t.Fatal(err)
	}
	// The registry answers once it listens; a push before that fails and
	// is tried again (no deadline: a broken registry fails every try, and
	// the test's own timeout ends it).
	for try := 0; ; try++ {
		res, err := c.ImagePush(ctx, r.Image, client.ImagePushOptions{RegistryAuth: "e30="})
		if err == nil {
			err = res.Wait(ctx)
			res.Close()
		}
		if err == nil {
			break
		}
		if try == 100 {
			t.Fatalf("pushing the test image to the registry: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if _, err := c.ImageRemove(ctx, r.Image, client.ImageRemoveOptions{}); err != nil {
		t.Fatal(err)
	}
	return r
}

// lockPath is the file whose lock the tests that use the engine take, so
// that tests of different packages (go test runs packages in parallel) do
// not create and remove networks under each other: Podman's network
// set-up is not atomic, and the isolation tests must see a steady engine.
var lockPath = filepath.Join(os.TempDir(), "caddyportal-engine-tests.lock")

// Exclusive holds the engine for the rest of the test (all of the test
// binary when called from TestMain with a nil t: then it returns the
// release function).
func Exclusive(t testing.TB) func() {
	f, err := os.OpenFile(lockPath, os.O_CREATE|os.O_RDWR, 0o600)
	if err == nil {
		err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX)
	}
	if err != nil {
		if t != nil {
			t.Fatalf("locking the engine for the test: %v", err)
		}
		panic(err)
	}
	release := func() { _ = f.Close() }
	if t != nil {
		t.Cleanup(release)
	}
	return release
}

// Leftovers lists what a container engine is known to leave in a test
// process's working directory (the package's source directory) that is there
// now: a TestMain fails the package on it, so it is never committed again.
func Leftovers() []string {
	var found []string
	for _, name := range []string{"oom"} {
		if _, err := os.Lstat(name); err == nil {
			found = append(found, name)
		}
	}
	return found
}
