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
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/moby/moby/client"

	"github.com/caddyportal/caddyportal/internal/gotool"
)

var (
	hostOnce sync.Once
	host     string
	hostErr  error

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
	podman, err := exec.LookPath("podman")
	if err != nil {
		return "", fmt.Errorf("no container engine: DOCKER_HOST is not set and podman is not installed (apt-get install -y podman runc uidmap slirp4netns): %v", err)
	}
	dir, err := os.MkdirTemp("", "caddyportal-engine")
	if err != nil {
		return "", err
	}
	sock := filepath.Join(dir, "podman.sock")
	cmd := exec.Command(podman, "--runtime", "runc", "system", "service", "--time", "0", "unix://"+sock)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		return "", fmt.Errorf("starting podman system service: %v", err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	// The service is up once its socket exists; no deadline of ours: a
	// busy machine is slow, a broken service exits and says why.
	for {
		if _, err := os.Stat(sock); err == nil {
			return "unix://" + sock, nil
		}
		select {
		case <-exited:
			return "", fmt.Errorf("podman system service exited: %s", out.String())
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
// command), built statically from this tree and imported once per test
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

// BuildImage is Image for programs that are not tests (the benchmark
// harness runs the same image).
func BuildImage() (string, error) {
	imageOnce.Do(func() { image, imageErr = buildImage() })
	return image, imageErr
}

func buildImage() (string, error) {
	dir, err := os.MkdirTemp("", "caddyportal-testdash")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(dir)
	bin := filepath.Join(dir, "testdash")
	gocmd, err := gotool.Find()
	if err != nil {
		return "", err
	}
	build := exec.Command(gocmd, "build", "-trimpath", "-o", bin, "github.com/caddyportal/caddyportal/internal/e2etest/testdash")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		return "", fmt.Errorf("building testdash: %v\n%s", err, out)
	}
	body, err := os.ReadFile(bin)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(body)
	ref := "localhost/caddyportal-testdash:" + hex.EncodeToString(sum[:6])
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
		client.ImageImportOptions{Changes: []string{`CMD ["/testdash"]`, "WORKDIR /tmp"}})
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
