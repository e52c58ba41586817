package caddyportal_test

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// fillFileSystem writes a file into dir until its file system is full, to
// the last byte, and returns the file's path.
func fillFileSystem(t *testing.T, dir string) string {
	t.Helper()
	filler := filepath.Join(dir, "filler")
	f, err := os.Create(filler)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, size := range []int{64 << 10, 512} {
		chunk := make([]byte, size)
		for {
			if _, err := f.Write(chunk); err != nil {
				if !errors.Is(err, syscall.ENOSPC) {
					t.Fatalf("filling %s: %v", dir, err)
				}
				break
			}
		}
	}
	var fs syscall.Statfs_t
	if err := syscall.Statfs(dir, &fs); err != nil || fs.Bavail != 0 {
		t.Fatalf("file system not full: %d blocks free (%v)", fs.Bavail, err)
	}
	return filler
}

// TestFaultDiskFullWhileServing: when the data directory's file system
// fills up under a running portal, session requests get a 503 with a JSON
// error and the log says why, instead of Badger killing the process with
// SIGBUS; reads keep working, and once space is freed the same process
// takes writes again. The portal runs in a child process on a tmpfs, so
// that a crash is seen as one.
func TestFaultDiskFullWhileServing(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "badger")
	if err := os.MkdirAll(data, 0o700); err != nil {
		t.Fatal(err)
	}
	err := syscall.Mount("tmpfs", data, "tmpfs", 0, "size=96m,mode=0700")
	if isEPERM(err) {
		t.Skipf("a full disk needs a file system of its own: mounting a tmpfs is not permitted here (%v); run as root", err)
	}
	if err != nil {
		t.Fatalf("mount tmpfs: %v", err)
	}
	t.Cleanup(func() {
		if err := syscall.Unmount(data, syscall.MNT_DETACH); err != nil {
			t.Errorf("unmount %s: %v", data, err)
		}
	})
	port := freePort(t)
	c := startServeChild(t, dir, port, defaultBody, faultLogEnv+"=1")
	p := &portal{t: t, base: c.base, port: port, dir: dir}
	tok := p.token(robotUser, robotPass)
	const index = "&index_url=https://hub.example.com/"
	r := p.request(tok, "demo-w01", "user=before"+index)
	if r.status != 200 {
		t.Fatalf("request before the disk filled: %d %s", r.status, r.body)
	}
	name := r.json(t)["name"].(string)

	filler := fillFileSystem(t, data)
	for i := range 20 {
		r, err := doWith(httpClient(10e9), "GET", p.base+"/workshops/environment/demo-w01/request/?user="+
			fmt.Sprint("full-", i)+index, tok, nil, nil)
		if err != nil {
			t.Fatalf("request %d on a full disk: %v (the portal died?); output:\n%s", i, err, tail(c.output()))
		}
		if r.status != 503 || !strings.HasPrefix(r.header.Get("Content-Type"), "application/json") {
			t.Fatalf("request %d on a full disk: %d %s, want a 503 with JSON", i, r.status, r.body)
		}
		if msg, _ := r.json(t)["error"].(string); msg == "" {
			t.Fatalf("503 without an error message: %s", r.body)
		}
	}
	// Reads need no space.
	if r := p.do("GET", "/workshops/session/"+name+"/schedule/", tok, nil, nil); r.status != 200 {
		t.Fatalf("reading a session on a full disk: %d %s", r.status, r.body)
	}
	out := c.output()
	if !strings.Contains(out, "data directory is almost full") || !strings.Contains(out, data) {
		t.Fatalf("no log line names the full data directory %s; output:\n%s", data, tail(out))
	}

	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	r = p.request(tok, "demo-w01", "user=after"+index)
	if r.status != 200 {
		t.Fatalf("request after space was freed: %d %s; output:\n%s", r.status, r.body, tail(c.output()))
	}
	if !strings.Contains(c.output(), "writes resume") {
		t.Fatalf("no log line says writes resumed; output:\n%s", tail(c.output()))
	}
}
